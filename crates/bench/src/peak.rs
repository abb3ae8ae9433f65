//! This machine's fp32 GEMM throughput: the yardstick for "% of peak".

use std::time::Instant;

use gemm::Parallelism;

/// The best GFLOP/s of square f32 GEMMs (the `gemm` crate, on Rayon's pool) over a few sizes.
/// `quick` measures one small size.
pub fn gemm_peak_gflops(quick: bool) -> f64 {
    let sizes: &[usize] = if quick { &[128] } else { &[256, 512, 1024] };
    let threads = rayon::current_num_threads();
    sizes
        .iter()
        .map(|&n| shape_gflops(n, n, n, threads))
        .fold(0.0, f64::max)
}

/// GFLOP/s of one `m×k · k×n` GEMM (best of 5 rounds of `reps`), serial or on `threads`.
fn shape_gflops(m: usize, n: usize, k: usize, threads: usize) -> f64 {
    let a = vec![0.01f32; m * k];
    let b = vec![0.02f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(3.0, 2000.0) as usize;
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..reps {
            // SAFETY: row-major buffers of m×k, k×n and m×n elements, strides within bounds.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

/// Where the time goes: the GEMM throughput on the shapes the fused kernels run (per step,
/// per batch chunk of 32 serially or the whole batch on every thread) next to the square
/// peak — `rnn-bench --gemm-shapes`.
pub fn shape_report() -> String {
    let threads = rayon::current_num_threads();
    let mut out = format!(
        "| GEMM | m | n | k | serial GFLOP/s | {threads} threads GFLOP/s | ours, serial |\n|---|---|---|---|---|---|---|\n"
    );
    for &(m, n, k, what) in &[
        (32, 512, 128, "A recurrent step, chunk of 32"),
        (32, 512, 28, "A step's input projection, chunk of 32"),
        (32, 512, 156, "A step, both products in one, chunk of 32"),
        (64, 512, 128, "A recurrent step, batch 64"),
        (32, 1024, 256, "B recurrent step, chunk of 32"),
        (64, 1024, 256, "B recurrent step, batch 64"),
        (1792, 512, 28, "A input projection"),
        (512, 128, 1792, "A dW_hh"),
        (6400, 1024, 64, "B input projection"),
        (1024, 256, 6400, "B dW_hh"),
        (1024, 64, 6400, "B dW_ih"),
        (6400, 64, 1024, "B dx"),
        (1024, 1024, 1024, "square"),
    ] {
        out.push_str(&format!(
            "| {what} | {m} | {n} | {k} | {:.1} | {:.1} | {} |\n",
            shape_gflops(m, n, k, 1),
            shape_gflops(m, n, k, threads),
            rnn_models::packed_gemm_gflops(m, n, k).map_or("—".into(), |g| format!("{g:.1}"))
        ));
    }
    out
}
