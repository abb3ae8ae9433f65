//! The whole-batch GEMMs of the fused kernels (input projection, weight and input gradients)
//! behind one bounds-checked front taking strided views.
//!
//! Where the CPU has AVX2 (and AVX-512), they run on the packed micro-kernels of
//! [`super::packed`], rows split across Rayon's threads: those measured faster per FLOP than
//! the `gemm` crate's generic path on these shapes (which also has no AVX-512 build on stable
//! Rust). Elsewhere the `gemm` crate (the GEMM Burn's flex backend uses) runs them.

use std::cell::Cell;

use gemm::Parallelism;
use rayon::prelude::*;

use super::packed::{PackedB, tile_rows};

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
    #[cfg(test)]
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    /// The transpose of columns `columns` of a row-major `[rows, width]` matrix, seen as
    /// `columns.len() × rows` (an empty view when `rows` is 0).
    pub fn transposed_columns(
        data: &'a [f32],
        width: usize,
        columns: std::ops::Range<usize>,
        rows: usize,
    ) -> Self {
        Self {
            data: &data[columns.start.min(data.len())..],
            rows: columns.len(),
            cols: rows,
            rs: 1,
            cs: width,
        }
    }

    /// A `rows × cols` matrix whose rows lie `rs` elements apart (each row contiguous).
    pub fn strided_rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// `(data, rs, cs, rows)`: what a kernel loop reads.
    pub fn parts(self) -> (&'a [f32], usize, usize, usize) {
        (self.data, self.rs, self.cs, self.rows)
    }

    /// Panics unless every element of the view lies inside `data` (an internal invariant: the
    /// callers derive all sizes from one set of dimensions).
    pub fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "GEMM view out of bounds");
        }
    }
}

thread_local! {
    /// Set while this thread runs one of a layer's split jobs.
    static IN_SPLIT_JOB: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs inside one of a layer's split jobs (a slice of the batch or a group
/// of hidden units, [`super::parallel`]): the split already keeps every thread busy, so the
/// GEMMs and packing such a job calls stay serial.
pub(crate) fn in_split_job() -> bool {
    IN_SPLIT_JOB.get()
}

/// Runs `work` as one of a layer's split jobs ([`in_split_job`]).
pub(crate) fn as_split_job<R>(work: impl FnOnce() -> R) -> R {
    /// Puts the flag back when the job ends, also by a panic (the thread lives on in the pool).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_SPLIT_JOB.set(self.0);
        }
    }
    let _restore = Restore(IN_SPLIT_JOB.replace(true));
    work()
}

/// Work (m·n·k) above which a GEMM is split across Rayon's threads; below it the hand-off
/// costs more than it saves.
const PARALLEL_WORK: usize = 1 << 18;

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major `m × n`.
pub(crate) fn matmul(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    matmul_side_by_side(dst, a, &[b], accumulate);
}

/// `dst = a · [b₀ b₁ …]` (or `+=`): the products of one `a` with several right-hand
/// matrices of the same rows, their columns side by side in `dst` (row-major `m × Σ nᵢ`).
/// One call instead of one per block: `a` is read (and, transposed, copied into rows) once.
pub(crate) fn matmul_side_by_side(dst: &mut [f32], a: View<'_>, bs: &[View<'_>], accumulate: bool) {
    let (m, k) = (a.rows, a.cols);
    let n: usize = bs.iter().map(|b| b.cols).sum();
    assert!(
        bs.iter().all(|b| b.rows == k) && dst.len() == m * n,
        "GEMM shapes disagree"
    );
    a.check();
    bs.iter().for_each(View::check);
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
    let parallel = threads > 1 && !in_split_job() && m * n * k >= PARALLEL_WORK;
    #[cfg(target_arch = "x86_64")]
    if super::cpu::has_avx2() {
        packed_matmul(dst, a, bs, accumulate, if parallel { threads } else { 1 });
        return;
    }
    let mut col = 0;
    for b in bs {
        crate_matmul(dst, n, col, a, *b, accumulate, parallel.then_some(threads));
        col += b.cols;
    }
}

/// [`matmul_side_by_side`] on the packed micro-kernels: the `bs` packed once, `a` read
/// through its strides, rows of `dst` in `threads` blocks.
fn packed_matmul(dst: &mut [f32], a: View<'_>, bs: &[View<'_>], accumulate: bool, threads: usize) {
    let m = a.rows;
    let packed = PackedB::side_by_side(bs);
    let n = dst.len() / m;
    // Blocks of whole micro-kernel tiles, one per thread.
    let tile = tile_rows();
    let block = m.div_ceil(threads).next_multiple_of(tile).max(tile);
    let run = |(i, rows): (usize, &mut [f32])| {
        let first = i * block;
        let block = View {
            data: &a.data[first * a.rs..],
            rows: rows.len() / n,
            ..a
        };
        packed.matmul_view(rows, block, accumulate);
    };
    if threads > 1 {
        dst.par_chunks_mut(block * n).enumerate().for_each(run);
    } else {
        dst.chunks_mut(block * n).enumerate().for_each(run);
    }
}

/// `dst[.., col .. col + b.cols] (+)= a · b` on the `gemm` crate (`dst` row-major with rows
/// `n` apart), split across `threads` when given.
fn crate_matmul(
    dst: &mut [f32],
    n: usize,
    col: usize,
    a: View<'_>,
    b: View<'_>,
    accumulate: bool,
    threads: Option<usize>,
) {
    let (m, k, cols) = (a.rows, a.cols, b.cols);
    assert!(
        col + cols <= n && dst.len() == m * n,
        "GEMM shapes disagree"
    );
    let parallelism = match threads {
        Some(threads) => Parallelism::Rayon(threads),
        None => Parallelism::None,
    };
    // SAFETY: both views were bounds-checked by the caller, `dst` holds `m` rows of `n`
    // elements and columns col..col + cols < n of each are written, and `dst` (a `&mut`)
    // cannot alias the shared inputs.
    unsafe {
        gemm::gemm(
            m,
            cols,
            k,
            dst.as_mut_ptr().add(col),
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

/// A `len`-element test matrix: `((v · mul) mod modulo − modulo / 2) / 10`, small values
/// without a pattern that a wrong stride or offset could reproduce.
#[cfg(test)]
pub(crate) fn pattern(len: usize, mul: usize, modulo: usize) -> Vec<f32> {
    (0..len)
        .map(|v| ((v * mul % modulo) as f32 - (modulo / 2) as f32) * 0.1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_job_is_marked_while_it_runs_and_after_it_not() {
        assert!(!in_split_job());
        assert!(as_split_job(|| as_split_job(in_split_job) && in_split_job()));
        assert!(!in_split_job());
        let panicked = std::panic::catch_unwind(|| as_split_job(|| panic!("a job fails")));
        assert!(panicked.is_err());
        assert!(!in_split_job());
    }

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

    /// Every path: the packed kernels (where the CPU has them) and the `gemm` crate, serial
    /// and split across threads.
    fn all_paths(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) -> Vec<Vec<f32>> {
        let start = dst.to_vec();
        let mut results = Vec::new();
        for threads in [None, Some(3)] {
            let mut out = start.clone();
            crate_matmul(&mut out, b.cols, 0, a, b, accumulate, threads);
            results.push(out);
            #[cfg(target_arch = "x86_64")]
            if crate::fused::cpu::has_avx2() {
                let mut out = start.clone();
                packed_matmul(&mut out, a, &[b], accumulate, threads.unwrap_or(1));
                results.push(out);
            }
        }
        matmul(dst, a, b, accumulate);
        results.push(dst.to_vec());
        results
    }

    #[test]
    fn every_path_matches_the_definition_on_strided_views() {
        // 37×29 times 29×21, with A given transposed (as the weight gradients pass it).
        let (m, k, n) = (37, 29, 21);
        let a_t = pattern(k * m, 7, 17);
        let b = pattern(k * n, 5, 13);
        let (va, vb) = (View::transposed(&a_t, m, k), View::rows(&b, k, n));
        let want = naive(va, vb);
        for accumulate in [false, true] {
            let mut dst = vec![0.5f32; m * n];
            for got in all_paths(&mut dst, va, vb, accumulate) {
                for (g, w) in got.iter().zip(&want) {
                    let w = if accumulate { w + 0.5 } else { *w };
                    assert!((g - w).abs() < 1e-4, "{g} vs {w} (accumulate {accumulate})");
                }
            }
        }
    }

    #[test]
    fn a_block_of_columns_transposed_is_that_blocks_transpose() {
        // Columns 5..42 of a 29×45 matrix, transposed (37×29), as the GRU's candidate block
        // of the gate gradients; every path against the same block copied out first.
        let (width, rows, cols) = (45, 29, 5..42);
        let full = pattern(rows * width, 7, 17);
        let block: Vec<f32> = full
            .chunks_exact(width)
            .flat_map(|row| row[cols.clone()].to_vec())
            .collect();
        let b = pattern(rows * 21, 5, 13);
        let vb = View::rows(&b, rows, 21);
        let want = naive(View::transposed(&block, cols.len(), rows), vb);
        let va = View::transposed_columns(&full, width, cols.clone(), rows);
        assert_eq!((va.rows, va.cols), (cols.len(), rows));
        // No rows: an empty view, not a slice past the end.
        let empty = View::transposed_columns(&[], width, cols.clone(), 0);
        assert!(empty.data.is_empty() && empty.cols == 0);
        let mut dst = vec![0.0f32; cols.len() * 21];
        for got in all_paths(&mut dst, va, vb, false) {
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn products_side_by_side_are_each_blocks_product() {
        // One transposed `a` (37×29) times a 29×21 block and a 29×13 one given transposed:
        // panels of 16 columns straddle the two blocks.
        let (m, k, n0, n1) = (37, 29, 21, 13);
        let n = n0 + n1;
        let a_t = pattern(k * m, 7, 17);
        let b0 = pattern(k * n0, 5, 13);
        let b1_t = pattern(n1 * k, 3, 11);
        let a = View::transposed(&a_t, m, k);
        let blocks = [View::rows(&b0, k, n0), View::transposed(&b1_t, k, n1)];
        let (want0, want1) = (naive(a, blocks[0]), naive(a, blocks[1]));
        let mut results = Vec::new();
        for threads in [None, Some(3)] {
            let mut out = vec![f32::NAN; m * n];
            let mut col = 0;
            for b in blocks {
                crate_matmul(&mut out, n, col, a, b, false, threads);
                col += b.cols;
            }
            results.push(out);
            #[cfg(target_arch = "x86_64")]
            if crate::fused::cpu::has_avx2() {
                let mut out = vec![f32::NAN; m * n];
                packed_matmul(&mut out, a, &blocks, false, threads.unwrap_or(1));
                results.push(out);
            }
        }
        let mut out = vec![f32::NAN; m * n];
        matmul_side_by_side(&mut out, a, &blocks, false);
        results.push(out);
        for got in results {
            for r in 0..m {
                let row = &got[r * n..(r + 1) * n];
                let want = want0[r * n0..(r + 1) * n0]
                    .iter()
                    .chain(&want1[r * n1..(r + 1) * n1]);
                for (c, (g, w)) in row.iter().zip(want).enumerate() {
                    assert!((g - w).abs() < 1e-4, "({r}, {c}): {g} vs {w}");
                }
            }
        }
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
