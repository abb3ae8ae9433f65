//! What this CPU can run: the one place the fused kernels detect instruction sets.
//!
//! `RNN_CPU_ISA=portable|avx2|avx512` caps what the kernels use (as oneDNN's
//! `ONEDNN_MAX_CPU_ISA` does): for measuring one variant against another and for running the
//! whole test suite through a fallback on a machine that has more. It is read once per process;
//! an unknown value is ignored.

use std::sync::OnceLock;

/// The instruction sets the kernels have builds for, in increasing order.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Isa {
    Portable,
    Avx2,
    Avx512,
}

/// The cap from `RNN_CPU_ISA` (no cap when unset or unknown).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn cap() -> Isa {
    static CAP: OnceLock<Isa> = OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("RNN_CPU_ISA").as_deref() {
        Ok("portable") => Isa::Portable,
        Ok("avx2") => Isa::Avx2,
        _ => Isa::Avx512,
    })
}

/// Whether the kernels run their AVX2/FMA builds (detected once, cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    cap() >= Isa::Avx2
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
}

/// Whether the kernels run their AVX-512 builds (AVX-512F; detected once, cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    cap() >= Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512f")
}
