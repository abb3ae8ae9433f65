//! Kernel launches per step on the CubeCL backends (wgpu, CUDA).
//!
//! Counted with CubeCL's launch observer, which sees every kernel issued in the process, on
//! every thread, before it reaches the device: our kernels, Burn's (matmul, reductions,
//! copies) and the optimizer-free autodiff pass alike. The CPU backends launch none.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cubecl_runtime::logging::{LaunchObservation, LaunchObserver};

/// Counts every launch it is told of.
#[derive(Default)]
struct Counter(AtomicUsize);

impl LaunchObserver for Counter {
    fn launched(&self, _kernel: &'static str) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `f` and returns what it returned with the number of kernels issued meanwhile.
///
/// The observer is process-wide: run nothing else on a CubeCL device at the same time.
pub fn count<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let counter = Arc::new(Counter::default());
    let watching = LaunchObservation::new(counter.clone());
    let out = f();
    drop(watching);
    (out, counter.0.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor};

    #[test]
    fn a_gpu_step_is_counted_and_a_cpu_step_launches_nothing() {
        let add = |device: &Device| {
            let a = Tensor::<1>::ones([4], device);
            let sum = (a.clone() + a).sum().into_scalar::<f32>();
            assert_eq!(sum, 8.0);
        };
        let ((), on_cpu) = super::count(|| add(&Device::flex()));
        assert_eq!(on_cpu, 0);
        let wgpu = rnn_backend::Backend::Wgpu
            .select()
            .expect("a wgpu adapter (lavapipe in CI)");
        let ((), on_gpu) = super::count(|| add(wgpu.device()));
        // ones, add and sum are at least three kernels.
        assert!(on_gpu >= 3, "{on_gpu} launches");
    }
}
