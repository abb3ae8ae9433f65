//! The one trait an example implements: how a batch of items becomes a loss.

use burn::tensor::{Device, Tensor};

use crate::{BatchStats, EpochRecord, TrainError};

/// What one step produced: the scalar loss to back-propagate and the batch's counts.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// `[1]`: the batch's mean loss.
    pub loss: Tensor<1>,
    /// Counts for the epoch's metrics.
    pub stats: BatchStats,
}

/// Names the first non-finite value among a batch's input rows: `"item 3 has NaN at value 5"`.
/// A building block for [`Objective::diagnose`].
pub fn non_finite<'a>(rows: impl IntoIterator<Item = &'a [f32]>) -> Option<String> {
    rows.into_iter().enumerate().find_map(|(item, row)| {
        row.iter()
            .position(|v| !v.is_finite())
            .map(|at| format!("item {item} has {} at value {at}", row[at]))
    })
}

/// A training task: turns a batch of dataset items into a loss for model `M`.
///
/// The same objective serves training (the model on the autodiff device) and validation (the
/// model after `valid()`, on the plain device); `device` is the one to build batch tensors on.
/// Objectives that carry a hidden state between consecutive batches (truncated BPTT) keep it
/// in `self`, detach it after each step, and clear it in [`Objective::start_pass`].
pub trait Objective<M> {
    /// A dataset item.
    type Item: Clone + Send + Sync + 'static;

    /// Runs the model on a batch.
    ///
    /// # Errors
    /// A model's [`TrainError::Model`] (`?` converts a `ModelError`), or the objective's own
    /// [`TrainError::Step`] (bad targets, a loss that cannot be read).
    fn step(
        &mut self,
        model: &M,
        batch: Vec<Self::Item>,
        device: &Device,
    ) -> Result<StepOutput, TrainError>;

    /// Says what is wrong with a batch's inputs, if anything — e.g. "item 3 has NaN at value 5"
    /// (see [`crate::non_finite`]). [`crate::fit`] calls it only after a NaN/Inf loss, to tell
    /// bad data from a diverging model in [`TrainError::NonFiniteLoss`]. Default: nothing known.
    fn diagnose(&self, _batch: &[Self::Item]) -> Option<String> {
        None
    }

    /// Called before each training epoch and each validation pass: drop carried state here.
    fn start_pass(&mut self, _training: bool) {}

    /// Called before training epoch `epoch` (0-based; a resumed run starts at the epoch it
    /// resumes), before [`Objective::start_pass`]: per-epoch randomness such as data
    /// augmentation can be derived from it, so that a resumed run sees what an uninterrupted
    /// one would have seen.
    fn start_epoch(&mut self, _epoch: usize) {}

    /// Whether the objective carries state from one training batch to the next (truncated
    /// BPTT with [`crate::Carried`]). Such an objective trains on one device only: data
    /// parallelism splits each batch. Default: no.
    fn carries_state(&self) -> bool {
        false
    }

    /// Called after each epoch with the validation-mode model and the epoch's record, e.g. to
    /// print a few predictions.
    fn end_epoch(&mut self, _model: &M, _record: &EpochRecord) {}
}
