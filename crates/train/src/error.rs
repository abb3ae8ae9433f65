use std::path::PathBuf;

use rnn_models::ModelError;
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
    /// A model rejected its input inside an objective's step. Its message says what was
    /// expected and what was got, so it is shown as is.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A dataset could not produce an item.
    #[error("cannot read item {index} of the dataset: {reason}")]
    Dataset {
        /// The item's index in the dataset.
        index: usize,
        /// What the dataset reported (kept as text: Burn's `DatasetError` repeats its cause
        /// as its source, which would print it twice).
        reason: String,
    },
    /// An objective failed in a way of its own: targets that do not fit the predictions, a
    /// loss that is not one number, a tensor that cannot be read back.
    #[error("step failed: {0}")]
    Step(String),
    /// A plot could not be drawn (the file is then left as it was).
    #[error("cannot draw the plot {path}: {reason}")]
    Plot {
        /// The PNG being drawn.
        path: PathBuf,
        /// What the drawing library reported.
        reason: String,
    },
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
    /// A run file (metrics log, plot, checkpoint) could not be read or written.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error (the cause, shown by `{:#}` and error reporters, not repeated above).
        source: std::io::Error,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }

    /// An objective's own failure, as [`TrainError::Step`]; model errors convert with `?`
    /// into [`TrainError::Model`] instead.
    pub fn step(err: impl std::fmt::Display) -> Self {
        TrainError::Step(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// The message and its chain of sources, as `{:#}` (anyhow) prints them.
    fn chain(e: &TrainError) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut source = e.source();
        while let Some(s) = source {
            out.push(s.to_string());
            source = s.source();
        }
        out
    }

    #[test]
    fn each_error_says_its_cause_once() {
        let model = ModelError::EmptyInput { batch: 0, seq: 3 };
        let errors = [
            TrainError::from(model.clone()),
            TrainError::Io {
                path: "run/metrics.jsonl".into(),
                source: std::io::Error::other("disk full"),
            },
            TrainError::Plot {
                path: "run/learning_curve.png".into(),
                reason: "out of memory".into(),
            },
        ];
        for e in &errors {
            let chain = chain(e);
            for (i, cause) in chain.iter().enumerate().skip(1) {
                assert!(
                    chain[..i]
                        .iter()
                        .all(|outer| !outer.contains(cause.as_str())),
                    "{chain:?}"
                );
            }
        }
        assert_eq!(errors[0].to_string(), model.to_string());
        assert_eq!(
            chain(&errors[1]),
            ["I/O error on run/metrics.jsonl", "disk full"]
        );
    }
}
