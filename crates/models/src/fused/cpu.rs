//! What this CPU can run: the one place the fused kernels detect instruction sets.

/// Whether this CPU runs the AVX2/FMA builds of the kernels (detected once, cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
