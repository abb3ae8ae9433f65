//! Choosing how a layer runs its recurrence.

/// Which implementation runs a layer's recurrence. Both compute the same function (the parity
/// grid checks each against PyTorch); they differ in speed and in where they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Recurrence {
    /// The fused kernel with hand-written BPTT where it is available — f32 tensors on a CPU
    /// backend (`flex`, `ndarray`) enabled in this crate's features, no LSTM projection — and
    /// the reference path everywhere else.
    #[default]
    Auto,
    /// The reference path: Burn tensor ops step by step, differentiated op by op by Burn's
    /// autodiff. Runs on every backend.
    Reference,
}
