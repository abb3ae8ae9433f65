//! This machine's fp32 GEMM throughput: the yardstick for "% of peak".

use std::time::Instant;

use gemm::Parallelism;

/// The best GFLOP/s of square f32 GEMMs (the `gemm` crate, on Rayon's pool) over a few sizes.
/// `quick` measures one small size once.
pub fn gemm_peak_gflops(quick: bool) -> f64 {
    let sizes: &[usize] = if quick { &[128] } else { &[256, 512, 1024] };
    let threads = rayon::current_num_threads();
    let mut best = 0.0f64;
    for &n in sizes {
        let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
        let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
        let mut c = vec![0.0f32; n * n];
        let reps = if quick {
            1
        } else {
            (2_000_000_000 / (2 * n * n * n)).clamp(3, 200)
        };
        for round in 0..3 {
            let start = Instant::now();
            for _ in 0..reps {
                // SAFETY: three distinct n×n row-major buffers, strides within bounds.
                unsafe {
                    gemm::gemm(
                        n,
                        n,
                        n,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        n as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        if threads > 1 {
                            Parallelism::Rayon(threads)
                        } else {
                            Parallelism::None
                        },
                    );
                }
            }
            let secs = start.elapsed().as_secs_f64();
            if round > 0 || quick {
                best = best.max(2.0 * (n * n * n * reps) as f64 / secs / 1e9);
            }
        }
        std::hint::black_box(&c);
    }
    best
}
