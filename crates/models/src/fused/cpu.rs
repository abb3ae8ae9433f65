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

/// `isa_dispatch!(fn name(arg: Type, …) => body_fn);` defines `name`, which runs `body_fn`
/// (an `#[inline(always)]` function) compiled for AVX-512, for AVX2/FMA or for the baseline,
/// the widest the CPU runs: the loops inside are vectorized 16, 8 or 4 lanes wide.
macro_rules! isa_dispatch {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if $crate::fused::cpu::has_avx512() {
                    // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked at run time).
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::fused::cpu::has_avx2() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use isa_dispatch;
