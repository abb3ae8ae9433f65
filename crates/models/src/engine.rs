//! Choosing the engine that runs a layer's recurrence, and the fused engine's scratch memory.

/// Which engine runs a layer's recurrence. Both compute the same function (the parity grid
/// checks each against PyTorch); they differ in speed and in where they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// The fused kernel with hand-written BPTT where it is available — f32 tensors on a CPU
    /// backend (`flex`, `ndarray`) enabled in this crate's features, no LSTM projection — and
    /// the reference path everywhere else.
    #[default]
    Auto,
    /// The reference path: Burn tensor ops step by step, differentiated op by op by Burn's
    /// autodiff. Runs on every backend.
    Reference,
}

/// Hands the scratch buffers that the fused kernels keep between calls back to the allocator
/// and returns how many bytes that was.
///
/// Training steps reuse the same multi-megabyte buffers (input projections, saved activations,
/// gate gradients), so the fused kernels keep freed ones — at most 256 MiB — instead of paying
/// for fresh pages every call. Call this after training or inference to shrink the process;
/// the next call simply allocates again. Without the `fused` feature it returns 0.
///
/// ```
/// let _released_bytes = rnn_models::release_scratch_memory();
/// ```
pub fn release_scratch_memory() -> usize {
    #[cfg(feature = "fused")]
    {
        crate::fused::release_scratch_memory()
    }
    #[cfg(not(feature = "fused"))]
    {
        0
    }
}

/// GFLOP/s of the fused CPU kernels' packed GEMM on one thread, `[m, k] · [k, n]` with `B`
/// packed once as the per-step products use it (best of five rounds): what `rnn-bench
/// --gemm-shapes` prints. `None` without the `fused` feature.
#[doc(hidden)]
pub fn packed_gemm_gflops(m: usize, n: usize, k: usize) -> Option<f64> {
    #[cfg(feature = "fused")]
    {
        Some(crate::fused::packed_gemm_gflops(m, n, k))
    }
    #[cfg(not(feature = "fused"))]
    {
        let _ = (m, n, k);
        None
    }
}
