use std::fmt;
use std::str::FromStr;

use crate::BackendError;

/// The environment variable read by [`Backend::from_env`]: `RNN_BACKEND=wgpu`.
pub const ENV_VAR: &str = "RNN_BACKEND";

/// A Burn backend the toolkit can run on.
///
/// Every variant exists in every build so that names always parse to a helpful answer;
/// [`Backend::is_compiled`] tells whether this binary can actually use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Burn's pure-Rust CPU backend; the default.
    Flex,
    /// Burn's ndarray CPU backend (deprecated upstream, still supported).
    NdArray,
    /// wgpu on the best adapter found (a GPU, or lavapipe on a CPU).
    Wgpu,
    /// CubeCL's CPU runtime.
    Cpu,
    /// NVIDIA CUDA, device 0.
    Cuda,
}

impl Backend {
    /// Every backend the toolkit knows, compiled in or not.
    pub const ALL: [Backend; 5] = [
        Backend::Flex,
        Backend::NdArray,
        Backend::Wgpu,
        Backend::Cpu,
        Backend::Cuda,
    ];

    /// The lowercase name used on command lines and in `RNN_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::NdArray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether the backend runs CubeCL kernels (wgpu, CubeCL's CPU runtime, CUDA): work goes
    /// to the device as kernel launches, which CubeCL can observe.
    pub fn is_cubecl(self) -> bool {
        matches!(self, Backend::Wgpu | Backend::Cpu | Backend::Cuda)
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Flex => cfg!(feature = "flex"),
            Backend::NdArray => cfg!(feature = "ndarray"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cpu => cfg!(feature = "cpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backends compiled into this binary, in order of preference.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// Names of [`Backend::compiled`], for messages.
    pub fn compiled_names() -> Vec<&'static str> {
        Self::compiled().into_iter().map(Backend::name).collect()
    }

    /// The backend used when the user names none: flex if compiled in, else the first one
    /// compiled in. `None` when the build has no backend at all.
    pub fn default_choice() -> Option<Backend> {
        Self::compiled().into_iter().next()
    }

    /// Parses a name, accepting only backends compiled into this binary.
    ///
    /// Case-insensitive and tolerant of surrounding spaces; `"nd-array"`/`"nd_array"` are
    /// accepted for ndarray.
    pub fn parse(name: &str) -> Result<Backend, BackendError> {
        let wanted = name.trim().to_ascii_lowercase().replace(['-', '_'], "");
        let backend = Self::ALL
            .into_iter()
            .find(|b| b.name() == wanted)
            .ok_or_else(|| BackendError::Unknown {
                name: name.to_string(),
                compiled: Self::compiled_names(),
            })?;
        if !backend.is_compiled() {
            return Err(BackendError::NotCompiled {
                name: backend.name(),
                compiled: Self::compiled_names(),
            });
        }
        Ok(backend)
    }

    /// Reads [`ENV_VAR`] (`RNN_BACKEND`): `Ok(None)` when unset or empty, an error when it names
    /// something unusable.
    pub fn from_env() -> Result<Option<Backend>, BackendError> {
        Self::from_env_value(std::env::var_os(ENV_VAR))
    }

    /// [`Backend::from_env`] on a given value, so callers and tests need not touch the process
    /// environment.
    pub fn from_env_value(
        value: Option<std::ffi::OsString>,
    ) -> Result<Option<Backend>, BackendError> {
        match value {
            None => Ok(None),
            Some(v) => {
                let v = v
                    .into_string()
                    .map_err(|_| BackendError::NotUnicode { var: ENV_VAR })?;
                if v.trim().is_empty() {
                    Ok(None)
                } else {
                    Self::parse(&v).map(Some)
                }
            }
        }
    }

    /// The user's choice in order of precedence: an explicit choice (e.g. `--backend`), then
    /// `RNN_BACKEND`, then [`Backend::default_choice`].
    pub fn resolve(explicit: Option<Backend>) -> Result<Backend, BackendError> {
        if let Some(b) = explicit {
            return Ok(b);
        }
        if let Some(b) = Self::from_env()? {
            return Ok(b);
        }
        Self::default_choice().ok_or_else(|| BackendError::Unknown {
            name: String::from("<default>"),
            compiled: Vec::new(),
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for b in Backend::compiled() {
            assert_eq!(Backend::parse(&b.name().to_uppercase()), Ok(b));
            assert_eq!(b.to_string().parse::<Backend>(), Ok(b));
        }
    }

    #[test]
    fn unknown_name_lists_the_compiled_backends() {
        let err = Backend::parse("nope").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'nope'"), "{msg}");
        for name in Backend::compiled_names() {
            assert!(msg.contains(name), "{msg} should list {name}");
        }
    }

    #[test]
    fn missing_feature_is_named() {
        for b in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
            let err = Backend::parse(b.name()).unwrap_err();
            assert!(matches!(err, BackendError::NotCompiled { name, .. } if name == b.name()));
            assert!(err.to_string().contains("cargo feature"));
        }
    }

    #[test]
    fn env_value_unset_empty_and_bad() {
        assert_eq!(Backend::from_env_value(None), Ok(None));
        assert_eq!(Backend::from_env_value(Some("  ".into())), Ok(None));
        assert!(matches!(
            Backend::from_env_value(Some("nope".into())),
            Err(BackendError::Unknown { .. })
        ));
        if Backend::Flex.is_compiled() {
            assert_eq!(
                Backend::from_env_value(Some("FLEX".into())),
                Ok(Some(Backend::Flex))
            );
        }
    }

    #[test]
    fn flex_is_the_default_when_compiled() {
        if Backend::Flex.is_compiled() {
            assert_eq!(Backend::default_choice(), Some(Backend::Flex));
        }
    }
}
