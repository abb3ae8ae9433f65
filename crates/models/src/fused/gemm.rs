//! A bounds-checked front for the `gemm` crate (the GEMM Burn's flex backend uses): the
//! kernels pass strided views, so transposes cost nothing.

use gemm::Parallelism;

/// A read-only strided `rows × cols` view: element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `cols × rows` matrix, seen as `rows × cols`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    /// Panics unless every element of the view lies inside `data` (an internal invariant: the
    /// callers derive all sizes from one set of dimensions).
    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "GEMM view out of bounds");
        }
    }
}

/// Work (m·n·k) above which a GEMM is split across Rayon's threads; below it the hand-off
/// costs more than it saves.
const PARALLEL_WORK: usize = 1 << 18;

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major `m × n`.
pub(crate) fn matmul(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() == m * n, "GEMM shapes disagree");
    a.check();
    b.check();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let threads = rayon::current_num_threads();
    // Inside a Rayon worker the caller already splits the work (batch slices): stay serial.
    let nested = rayon::current_thread_index().is_some();
    let parallelism = if threads > 1 && !nested && m * n * k >= PARALLEL_WORK {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: both views were bounds-checked above, `dst` holds exactly `m × n` elements with
    // row stride `n`, and `dst` (a `&mut`) cannot alias the shared inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols)
                    .map(|k| a.data[r * a.rs + k * a.cs] * b.data[k * b.rs + c * b.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_match_the_definition() {
        let a: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..20).map(|v| (v as f32).sin()).collect();
        // a as 3×4, b as 4×5; then aᵀ (4×3 seen from a 3×4 buffer) times a 3×5 block.
        let (va, vb) = (View::rows(&a, 3, 4), View::rows(&b, 4, 5));
        let mut dst = vec![1.0; 15];
        matmul(&mut dst, va, vb, false);
        let want = naive(va, vb);
        assert!(dst.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
        matmul(&mut dst, va, vb, true);
        assert!(
            dst.iter()
                .zip(&want)
                .all(|(x, y)| (x - 2.0 * y).abs() < 1e-5)
        );

        let at = View::transposed(&a, 4, 3);
        let vb3 = View::rows(&b[..15], 3, 5);
        let mut dst = vec![0.0; 20];
        matmul(&mut dst, at, vb3, false);
        let want = naive(at, vb3);
        assert!(dst.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
    }
}
