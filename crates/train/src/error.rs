use std::path::PathBuf;

use thiserror::Error;

/// Everything that can stop a training run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A configuration value is out of range.
    #[error("invalid training config: {field} = {value} ({expected})")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The loss became NaN or infinite. The last good checkpoint, if any, is kept.
    #[error(
        "loss is {value} at epoch {epoch}, step {step} (global step {global_step}): {cause}; the last good checkpoint is kept"
    )]
    NonFiniteLoss {
        /// What the objective found wrong with the batch's inputs, or, when the inputs are
        /// finite, that the model diverged.
        cause: String,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch (1-based).
        step: usize,
        /// Step since the start of training (1-based).
        global_step: usize,
        /// The loss value.
        value: f64,
    },
    /// The training set is empty.
    #[error("the training set is empty")]
    EmptyDataset,
    /// The objective failed (a model error, bad batch, …).
    #[error("step failed: {0}")]
    Step(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `resume` was asked for but the run directory holds a checkpoint of another config.
    #[error("cannot resume from {path}: it was written with a different training config")]
    ConfigMismatch {
        /// The checkpoint.
        path: PathBuf,
    },
    /// An I/O error on a run file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }

    /// Wraps any error of an objective.
    pub fn step(err: impl std::fmt::Display) -> Self {
        TrainError::Step(err.to_string())
    }
}
