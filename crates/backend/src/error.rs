use thiserror::Error;

/// Why a backend could not be chosen or started.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// The name matches no backend this toolkit knows.
    #[error("unknown backend '{name}'; valid backends: {}", .compiled.join(", "))]
    Unknown {
        /// What the user asked for.
        name: String,
        /// The backends compiled into this binary.
        compiled: Vec<&'static str>,
    },
    /// The backend exists but its cargo feature was not enabled in this build.
    #[error(
        "backend '{name}' is not compiled in (enable the `{name}` cargo feature of rnn-backend); \
         valid backends: {}", .compiled.join(", ")
    )]
    NotCompiled {
        /// The backend asked for.
        name: &'static str,
        /// The backends compiled into this binary.
        compiled: Vec<&'static str>,
    },
    /// The backend is compiled in but no device could be opened (e.g. no wgpu adapter).
    #[error("backend '{name}' is unavailable on this machine: {reason}; valid backends: {}", .compiled.join(", "))]
    Unavailable {
        /// The backend asked for.
        name: &'static str,
        /// What the runtime reported.
        reason: String,
        /// The backends compiled into this binary.
        compiled: Vec<&'static str>,
    },
    /// Fewer devices of the backend than data-parallel training asked for.
    #[error(
        "--devices {asked}: backend '{name}' has {found} device(s) here{}",
        if *.found == 1 && (*.name == "flex" || *.name == "ndarray") {
            " (a CPU backend is one device: its threads already share every batch; data-parallel training needs a GPU backend such as wgpu or cuda)"
        } else {
            ""
        }
    )]
    TooFewDevices {
        /// The backend asked for.
        name: &'static str,
        /// Devices asked for.
        asked: usize,
        /// Devices found.
        found: usize,
    },
    /// The environment variable holds something other than UTF-8.
    #[error("{var} is not valid UTF-8")]
    NotUnicode {
        /// The variable's name.
        var: &'static str,
    },
}
