//! A GEMM against a right-hand matrix packed once and reused at every time step.
//!
//! Why by hand: the per-step GEMMs of a recurrence multiply a small batch slice by the same
//! recurrent weights every step. The `gemm` crate re-packs those weights on every call (1 MB
//! per step for hidden 256), which held it to 37–62 GFLOP/s on these shapes (`rnn-bench
//! --gemm-shapes`). Packing once into 16-column panels lets a micro-kernel stream each panel
//! from L1 across all rows of the slice: 8 rows × 32 columns (two panels, two registers per
//! row) with AVX-512, 6 × 16 with AVX2/FMA, plain Rust elsewhere; the fastest the CPU has is
//! picked at run time and the tests run every one the CPU has.

use rayon::prelude::*;

use super::gemm::{View, in_split_job};
use super::pool::Buf;

/// Columns per panel: two AVX2 registers, one AVX-512 register.
const PANEL: usize = 16;

/// `B: [k, n]` repacked as `ceil(n / 16)` panels of `[k, 16]` (zero-padded).
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    data: Buf,
}

impl PackedB {
    /// Packs a row-major `k × n` matrix.
    pub fn new(b: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "packed GEMM: B has the wrong size");
        Self::from_strided(b, k, n, n, 1)
    }

    /// Packs a `k × n` matrix given by strides: element `(r, c)` is `b[r·rs + c·cs]`.
    pub fn from_strided(b: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Self {
        Self::side_by_side(&[View {
            data: b,
            rows: k,
            cols: n,
            rs,
            cs,
        }])
    }

    /// Packs the `k × Σ nᵢ` matrix whose columns are those of `blocks` (each `k × nᵢ`, by
    /// strides), side by side in order.
    pub fn side_by_side(blocks: &[View<'_>]) -> Self {
        let k = blocks.first().map_or(0, |b| b.rows);
        for b in blocks {
            assert_eq!(b.rows, k, "packed GEMM: blocks side by side differ in rows");
            b.check();
        }
        let n: usize = blocks.iter().map(|b| b.cols).sum();
        let panels = n.div_ceil(PANEL);
        // Every element is written below (the last panel's padding with zeros), so the buffer
        // needs no zeroing first: for the weight gradients' operands that pass was as long as
        // the copy itself.
        let mut data = Buf::dirty(panels * k * PANEL);
        let fill = |(p, panel): (usize, &mut [f32])| {
            let col0 = p * PANEL;
            // The pieces of blocks this panel holds: (block, its first column, how many).
            let mut pieces = Vec::with_capacity(2);
            let mut start = 0;
            for b in blocks {
                let (from, to) = (col0.max(start), (col0 + PANEL).min(start + b.cols));
                if from < to {
                    pieces.push((b, from - start, to - from));
                }
                start += b.cols;
            }
            for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                let mut lane = 0;
                for &(b, c0, width) in &pieces {
                    let start = kk * b.rs + c0 * b.cs;
                    let values = &mut row[lane..lane + width];
                    if b.cs == 1 && width == PANEL {
                        // A whole panel row of contiguous values: a fixed-size copy, two
                        // vector moves instead of a call to `memmove` per 16 values.
                        let whole: &mut [f32; PANEL] = values.try_into().expect("a panel row");
                        *whole = b.data[start..start + PANEL]
                            .try_into()
                            .expect("a panel row");
                    } else if b.cs == 1 {
                        // Rows of `B` lie contiguous (activations, weights by rows): one copy.
                        values.copy_from_slice(&b.data[start..start + width]);
                    } else {
                        for (c, v) in values.iter_mut().enumerate() {
                            *v = b.data[start + c * b.cs];
                        }
                    }
                    lane += width;
                }
                row[lane..].fill(0.0);
            }
        };
        // A copy bound by memory: large ones (the weight gradients' operands) on every thread,
        // unless the caller is one of a layer's split jobs.
        if k * n >= PARALLEL_PACK && !in_split_job() {
            data.par_chunks_exact_mut(k * PANEL)
                .enumerate()
                .for_each(fill);
        } else {
            data.chunks_exact_mut(k * PANEL).enumerate().for_each(fill);
        }
        Self { k, n, data }
    }

    /// `dst = a · B` with `a: [m, k]` and `dst: [m, n]`, both row-major.
    pub fn matmul(&self, dst: &mut [f32], a: &[f32], m: usize) {
        assert_eq!(a.len(), m * self.k, "packed GEMM: shapes disagree");
        self.matmul_strided(dst, a, self.k, m);
    }

    /// [`PackedB::matmul`] with the rows of `a` `lda` elements apart (row `i` is
    /// `a[i·lda .. i·lda + k]`).
    pub fn matmul_strided(&self, dst: &mut [f32], a: &[f32], lda: usize, m: usize) {
        self.matmul_view(dst, View::strided_rows(a, m, self.k, lda), false);
    }

    /// [`PackedB::matmul`] with `a: [m, k]` given by strides (a transposed matrix is `rs = 1`);
    /// with `accumulate`, `dst += a · B`.
    ///
    /// Small products (a step's batch slice, rows contiguous) go straight to the micro-kernel.
    /// Larger ones are blocked as in BLIS: `k` in blocks of [`KC`], rows in blocks of [`MC`],
    /// so that a block of `a` stays in L2 while each panel's block stays in L1. A block of an
    /// `a` whose rows are not contiguous (the transposed gate gradients of the weight
    /// gradients) is first copied into a row-major buffer: read in place, each of its `k`
    /// values lay a whole row of the gate gradients apart (4 KiB for hidden 256, the same L1
    /// and L2 sets every time), and the product ran at 15 GFLOP/s on a core that does 89.
    pub fn matmul_view(&self, dst: &mut [f32], a: View<'_>, accumulate: bool) {
        assert!(
            a.cols == self.k && dst.len() == a.rows * self.n,
            "packed GEMM: shapes disagree"
        );
        a.check();
        let (m, k, n) = (a.rows, self.k, self.n);
        if k == 0 {
            if !accumulate {
                dst.fill(0.0);
            }
            return;
        }
        let pack = a.cs != 1;
        if !pack && m <= MC {
            self.kernel(dst, a, 0, accumulate);
            return;
        }
        let mut block = if pack {
            vec![0.0; MC.min(m) * KC.min(k)]
        } else {
            Vec::new()
        };
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            for i0 in (0..m).step_by(MC) {
                let mb = MC.min(m - i0);
                let rows = if pack {
                    let block = &mut block[..mb * kc];
                    pack_rows(block, a, i0, mb, k0, kc);
                    View::rows(block, mb, kc)
                } else {
                    View {
                        data: &a.data[i0 * a.rs + k0..],
                        rows: mb,
                        cols: kc,
                        ..a
                    }
                };
                let out = &mut dst[i0 * n..(i0 + mb) * n];
                self.kernel(out, rows, k0, accumulate || k0 > 0);
            }
        }
    }

    /// `dst (+)= a · B[k0 .. k0 + a.cols, ..]` on the widest micro-kernel the CPU runs
    /// (`a.cols ≥ 1`).
    fn kernel(&self, dst: &mut [f32], a: View<'_>, k0: usize, accumulate: bool) {
        assert!(
            k0 + a.cols <= self.k && dst.len() == a.rows * self.n,
            "packed GEMM: block out of range"
        );
        a.check();
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above); sizes were checked above.
            unsafe { self.matmul_avx512(dst, a, k0, accumulate) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); sizes were checked above.
            unsafe { self.matmul_avx2(dst, a, k0, accumulate) };
            return;
        }
        self.matmul_portable(dst, a, k0, accumulate);
    }

    /// The same product in plain Rust (any CPU), `k` in blocks of [`KC`] as the SIMD kernels
    /// take it, so that every path sums in the same order.
    fn matmul_portable(&self, dst: &mut [f32], a: View<'_>, k0: usize, accumulate: bool) {
        let kc_all = a.cols;
        let (a, rs, cs, m) = a.parts();
        let (k, n) = (self.k, self.n);
        for kb in (0..kc_all).step_by(KC) {
            let kc = KC.min(kc_all - kb);
            let add = accumulate || kb > 0;
            for (p, panel) in self.data.chunks_exact(k * PANEL).enumerate() {
                let col0 = p * PANEL;
                let width = PANEL.min(n - col0);
                let panel = &panel[(k0 + kb) * PANEL..(k0 + kb + kc) * PANEL];
                for i in 0..m {
                    let mut acc = [0.0f32; PANEL];
                    for (kk, b) in panel.chunks_exact(PANEL).enumerate() {
                        let x = a[i * rs + (kb + kk) * cs];
                        for (c, v) in acc.iter_mut().zip(b) {
                            *c += x * v;
                        }
                    }
                    let out = &mut dst[i * n + col0..i * n + col0 + width];
                    if add {
                        out.iter_mut().zip(&acc).for_each(|(o, v)| *o += v);
                    } else {
                        out.copy_from_slice(&acc[..width]);
                    }
                }
            }
        }
    }

    /// Two panels (32 columns) × 8 rows per micro-kernel call — sixteen accumulator registers,
    /// two loads of `B` and eight broadcasts per `k` — then 4 and 1 rows for the remainder and
    /// one panel for an odd last one; `k` in blocks of [`KC`] so that a pair of panels stays in
    /// L1 (a block after the first adds to `dst`). Partial panels are written with masked stores.
    /// Why two panels: one panel (8 accumulators) fed 8 FMAs per 9 loads, and measured ≈ 1.4×
    /// slower on the per-step shapes (`[32, 128] · [128, 512]`) on an AVX-512 EPYC.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn matmul_avx512(&self, dst: &mut [f32], a: View<'_>, k0: usize, accumulate: bool) {
        let kc_all = a.cols;
        let (a, rs, cs, m) = a.parts();
        let (k, n) = (self.k, self.n);
        let panels = n.div_ceil(PANEL);
        for kb in (0..kc_all).step_by(KC) {
            let kc = KC.min(kc_all - kb);
            let add = accumulate || kb > 0;
            let mut p = 0;
            while p < panels {
                let pair = p + 1 < panels;
                let col0 = p * PANEL;
                let last = if pair { col0 + PANEL } else { col0 };
                let width = PANEL.min(n - last);
                // The low `width` lanes of the last panel: its padding never reaches `dst`.
                let mask: Mask16 = if width == PANEL {
                    u16::MAX
                } else {
                    (1u16 << width) - 1
                };
                let tile = Tile {
                    panel: self.data[p * k * PANEL + (k0 + kb) * PANEL..].as_ptr(),
                    stride: k * PANEL,
                    kc,
                    rs,
                    cs,
                    n,
                    mask,
                    add,
                };
                let mut i = 0;
                // SAFETY: `kernel` checked that rows 0..m of `a` hold `kc_all` elements each
                // at (r, kk) ↦ r·rs + kk·cs, that k0 + kc_all ≤ k and that dst holds m·n; the
                // panels hold k·16 elements each, and tiles only touch rows i.. of `a` and
                // `dst` at columns col0..n.
                unsafe {
                    let a0 = a.as_ptr().add(kb * cs);
                    let d0 = dst.as_mut_ptr().add(col0);
                    macro_rules! tiles {
                        ($np:literal) => {{
                            while i + 8 <= m {
                                tile.run::<8, $np>(a0.add(i * rs), d0.add(i * n));
                                i += 8;
                            }
                            if i + 4 <= m {
                                tile.run::<4, $np>(a0.add(i * rs), d0.add(i * n));
                                i += 4;
                            }
                            while i < m {
                                tile.run::<1, $np>(a0.add(i * rs), d0.add(i * n));
                                i += 1;
                            }
                        }};
                    }
                    if pair {
                        tiles!(2);
                    } else {
                        tiles!(1);
                    }
                }
                p += if pair { 2 } else { 1 };
            }
        }
    }

    /// 6 rows × 16 columns per micro-kernel call — twelve accumulator registers, two loads of
    /// `B` and six broadcasts per `k` — then 4, 2 and 1 rows for the remainder; `k` in blocks of
    /// [`KC`] (a block after the first adds to `dst`).
    /// Why 6 rows: 4 rows (8 accumulators, 8 FMAs per 6 loads) measured 5–15 % slower on the
    /// whole-batch shapes and up to 5 % on the per-step ones, on one core of an AVX2 EPYC.
    /// Why eight rows left go as 4 + 4: a 2-row tile has four accumulators, too few
    /// independent chains to hide the FMA's latency; a thread's 32-row step slice (6·5 + 2
    /// before) ran 2–10 % faster as 6·4 + 4 + 4 (best of eight single-core runs, `rnn-bench
    /// --gemm-shapes`, 2026-12-08).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn matmul_avx2(&self, dst: &mut [f32], a: View<'_>, k0: usize, accumulate: bool) {
        let kc_all = a.cols;
        let (a, rs, cs, m) = a.parts();
        let (k, n) = (self.k, self.n);
        for kb in (0..kc_all).step_by(KC) {
            let kc = KC.min(kc_all - kb);
            let add = accumulate || kb > 0;
            for p in 0..n.div_ceil(PANEL) {
                let col0 = p * PANEL;
                let tile = Tile2 {
                    panel: self.data[p * k * PANEL + (k0 + kb) * PANEL..].as_ptr(),
                    kc,
                    rs,
                    cs,
                    n,
                    width: PANEL.min(n - col0),
                    add,
                };
                let mut i = 0;
                // SAFETY: as in `matmul_avx512`.
                unsafe {
                    let a0 = a.as_ptr().add(kb * cs);
                    let d0 = dst.as_mut_ptr().add(col0);
                    // Eight rows left go as two tiles of 4, not 6 and 2 (see above).
                    while i + 6 <= m && m - i != 8 {
                        tile.run::<6>(a0.add(i * rs), d0.add(i * n));
                        i += 6;
                    }
                    while i + 4 <= m {
                        tile.run::<4>(a0.add(i * rs), d0.add(i * n));
                        i += 4;
                    }
                    if i + 2 <= m {
                        tile.run::<2>(a0.add(i * rs), d0.add(i * n));
                        i += 2;
                    }
                    if i < m {
                        tile.run::<1>(a0.add(i * rs), d0.add(i * n));
                    }
                }
            }
        }
    }
}

/// GFLOP/s of [`PackedB::matmul`] on one thread, `[m, k] · [k, n]` with `B` packed once
/// (best of five rounds of enough products for ≈ 2 GFLOP).
pub(crate) fn serial_gflops(m: usize, n: usize, k: usize) -> f64 {
    let a = vec![0.01f32; m * k];
    let b = PackedB::new(&vec![0.02f32; k * n], k, n);
    let mut c = vec![0.0f32; m * n];
    let flops = 2.0 * (m * n * k) as f64;
    let reps = (2e9 / flops).clamp(3.0, 2000.0) as usize;
    let best = (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..reps {
                b.matmul(&mut c, std::hint::black_box(&a), m);
            }
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    flops * reps as f64 / best / 1e9
}

/// Copies rows `i0 .. i0 + mb`, columns `k0 .. k0 + kc` of `a` into `block` as a row-major
/// `[mb, kc]` matrix. Eight columns at a time: each row of the block gets eight contiguous
/// values from eight columns of `a` (for a transposed `a`, eight contiguous rows of its buffer).
fn pack_rows(block: &mut [f32], a: View<'_>, i0: usize, mb: usize, k0: usize, kc: usize) {
    const W: usize = 8;
    debug_assert_eq!(block.len(), mb * kc);
    let at = |col: usize| &a.data[i0 * a.rs + col * a.cs..];
    let mut kk = 0;
    while kk + W <= kc {
        let cols: [&[f32]; W] = std::array::from_fn(|c| at(k0 + kk + c));
        let done = if a.rs == 1 {
            transposed_tiles(block, &cols, mb, kc, kk)
        } else {
            0
        };
        for (r, out) in block.chunks_exact_mut(kc).enumerate().skip(done) {
            let out: &mut [f32; W] = (&mut out[kk..kk + W]).try_into().unwrap();
            *out = std::array::from_fn(|c| cols[c][r * a.rs]);
        }
        kk += W;
    }
    for kk in kk..kc {
        let col = at(k0 + kk);
        for (r, out) in block.chunks_exact_mut(kc).enumerate() {
            out[kk] = col[r * a.rs];
        }
    }
}

/// For a transposed `a` (its columns contiguous): columns `kk .. kk + 8` of the first rows of
/// `block` from `cols` by 8 × 8 transposes in registers, where the CPU has AVX2; returns how
/// many rows that filled (a multiple of 8; 0 elsewhere).
fn transposed_tiles(
    block: &mut [f32],
    cols: &[&[f32]; 8],
    mb: usize,
    kc: usize,
    kk: usize,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if super::cpu::has_avx2() {
        let cols: [&[f32]; 8] = std::array::from_fn(|c| &cols[c][..mb]);
        let mut r = 0;
        while r + 8 <= mb {
            let rows = &mut block[r * kc..(r + 8) * kc];
            // SAFETY: AVX2 is present (checked above); each column holds `mb ≥ r + 8`
            // elements and `rows` holds 8 rows of `kc ≥ kk + 8`.
            unsafe { transpose8_avx2(&cols, r, rows, kc, kk) };
            r += 8;
        }
        return r;
    }
    let _ = (block, cols, mb, kc, kk);
    0
}

/// `rows[i][kk + c] = cols[c][r + i]` for `i, c < 8`: an 8 × 8 transpose in registers (eight
/// loads, 24 shuffles, eight stores, instead of 64 scalar loads and stores: the copy of the
/// weight gradients' transposed operand took 5 % of `mnist_rnn`'s epochs).
///
/// # Safety
/// AVX2; every `cols[c]` holds at least `r + 8` elements, `rows` 8 rows `stride` apart with at
/// least `kk + 8` elements each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose8_avx2(
    cols: &[&[f32]; 8],
    r: usize,
    rows: &mut [f32],
    stride: usize,
    kk: usize,
) {
    use std::arch::x86_64::*;
    assert!(cols.iter().all(|c| c.len() >= r + 8) && rows.len() >= 7 * stride + kk + 8);
    // SAFETY: the bounds were checked just above.
    unsafe {
        let v: [__m256; 8] = std::array::from_fn(|c| _mm256_loadu_ps(cols[c].as_ptr().add(r)));
        // Pairs of columns interleaved, then quadruples, then the 128-bit halves swapped.
        let t0 = _mm256_unpacklo_ps(v[0], v[1]);
        let t1 = _mm256_unpackhi_ps(v[0], v[1]);
        let t2 = _mm256_unpacklo_ps(v[2], v[3]);
        let t3 = _mm256_unpackhi_ps(v[2], v[3]);
        let t4 = _mm256_unpacklo_ps(v[4], v[5]);
        let t5 = _mm256_unpackhi_ps(v[4], v[5]);
        let t6 = _mm256_unpacklo_ps(v[6], v[7]);
        let t7 = _mm256_unpackhi_ps(v[6], v[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let out = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (i, o) in out.iter().enumerate() {
            _mm256_storeu_ps(rows.as_mut_ptr().add(i * stride + kk), *o);
        }
    }
}

/// Writes (or with `accumulate` adds) one row of a 16-column panel's result, `c0 ++ c1`, to
/// its first `width` columns at `out`.
///
/// # Safety
/// AVX2; `out` valid for `width ≤ 16` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_row_avx2(
    out: *mut f32,
    c0: std::arch::x86_64::__m256,
    c1: std::arch::x86_64::__m256,
    width: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY: as the caller promises; partial rows go through a local buffer.
    unsafe {
        if width == PANEL {
            let (mut c0, mut c1) = (c0, c1);
            if accumulate {
                c0 = _mm256_add_ps(c0, _mm256_loadu_ps(out));
                c1 = _mm256_add_ps(c1, _mm256_loadu_ps(out.add(8)));
            }
            _mm256_storeu_ps(out, c0);
            _mm256_storeu_ps(out.add(8), c1);
        } else {
            let mut tail = [0.0f32; PANEL];
            _mm256_storeu_ps(tail.as_mut_ptr(), c0);
            _mm256_storeu_ps(tail.as_mut_ptr().add(8), c1);
            let out = std::slice::from_raw_parts_mut(out, width);
            if accumulate {
                out.iter_mut().zip(&tail).for_each(|(o, v)| *o += v);
            } else {
                out.copy_from_slice(&tail[..width]);
            }
        }
    }
}

/// One AVX2 micro-kernel call's fixed arguments: one panel's block of `kc` rows of 16 at
/// `panel`, `a` by strides, `dst` rows `n` apart, the panel's `width` of real columns, and
/// whether to add to `dst`.
#[cfg(target_arch = "x86_64")]
struct Tile2 {
    panel: *const f32,
    kc: usize,
    rs: usize,
    cs: usize,
    n: usize,
    width: usize,
    add: bool,
}

#[cfg(target_arch = "x86_64")]
impl Tile2 {
    /// `R` rows × 16 columns: `dst[r, ..width] (+)= Σ_kk a[r·rs + kk·cs] · panel[kk]`.
    ///
    /// # Safety
    /// AVX2 and FMA; `a` and `dst` valid for `R` rows as described on [`Tile2`], the panel for
    /// `kc` rows of 16.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn run<const R: usize>(&self, a: *const f32, dst: *mut f32) {
        use std::arch::x86_64::*;
        // SAFETY: as the caller promises.
        unsafe {
            let mut c = [[_mm256_setzero_ps(); 2]; R];
            let mut b = self.panel;
            let mut ak = a;
            for _ in 0..self.kc {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                b = b.add(PANEL);
                for (r, row) in c.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*ak.add(r * self.rs));
                    row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(x, b1, row[1]);
                }
                ak = ak.add(self.cs);
            }
            for (r, row) in c.iter().enumerate() {
                store_row_avx2(dst.add(r * self.n), row[0], row[1], self.width, self.add);
            }
        }
    }
}

/// Elements of `B` from which packing runs on every thread.
const PARALLEL_PACK: usize = 1 << 16;

/// The rows of the micro-kernel this CPU runs (AVX-512: 8, AVX2: 6, portable: 1): blocks of
/// rows handed to threads are cut at multiples of it, so that only the last one has a partial
/// tile. Why not one multiple of every kernel's rows (24): it splits case D's 128-row weight
/// gradient 72 : 56 on two threads, where multiples of 6 split it 66 : 62.
pub(crate) fn tile_rows() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if super::cpu::has_avx512() {
            return 8;
        }
        if super::cpu::has_avx2() {
            return 6;
        }
    }
    1
}

/// `k` per block: two panels of 256 × 16 floats are 32 KiB, inside L1.
const KC: usize = 256;

/// Rows of `a` per block of a large product: 96 × [`KC`] floats are 96 KiB, inside L2.
const MC: usize = 96;

#[cfg(target_arch = "x86_64")]
type Mask16 = std::arch::x86_64::__mmask16;

/// One AVX-512 micro-kernel call's fixed arguments: panels from `panel` (`stride` apart), a
/// block of `kc` values of `k`, `a` by strides, `dst` rows `n` apart, the last panel's store
/// mask, and whether to add to `dst`.
#[cfg(target_arch = "x86_64")]
struct Tile {
    panel: *const f32,
    stride: usize,
    kc: usize,
    rs: usize,
    cs: usize,
    n: usize,
    mask: Mask16,
    add: bool,
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// `R` rows × `NP` panels: `dst[r, ..16·NP] (+)= Σ_kk a[r·rs + kk·cs] · panel[kk]`.
    ///
    /// # Safety
    /// AVX-512F; `a` and `dst` valid for `R` rows as described on [`Tile`], the panels for `kc`
    /// rows of 16.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const R: usize, const NP: usize>(&self, a: *const f32, dst: *mut f32) {
        use std::arch::x86_64::*;
        let masks: [__mmask16; NP] =
            std::array::from_fn(|q| if q + 1 == NP { self.mask } else { u16::MAX });
        // SAFETY: as the caller promises.
        unsafe {
            // c[r][q]: row r of the tile, panel q.
            let mut c = [[_mm512_setzero_ps(); NP]; R];
            if self.add {
                for (r, row) in c.iter_mut().enumerate() {
                    for (q, acc) in row.iter_mut().enumerate() {
                        *acc = _mm512_maskz_loadu_ps(masks[q], dst.add(r * self.n + q * PANEL));
                    }
                }
            }
            let mut b: [*const f32; NP] = std::array::from_fn(|q| self.panel.add(q * self.stride));
            let mut ak = a;
            for _ in 0..self.kc {
                let bv: [__m512; NP] = std::array::from_fn(|q| _mm512_loadu_ps(b[q]));
                for bq in b.iter_mut() {
                    *bq = bq.add(PANEL);
                }
                for (r, row) in c.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ak.add(r * self.rs));
                    for (acc, bq) in row.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(x, *bq, *acc);
                    }
                }
                ak = ak.add(self.cs);
            }
            for (r, row) in c.iter().enumerate() {
                for (q, acc) in row.iter().enumerate() {
                    _mm512_mask_storeu_ps(dst.add(r * self.n + q * PANEL), masks[q], *acc);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::gemm::pattern;

    /// Every instruction-set variant this CPU runs on `a · B` (row-major `a`), writing or
    /// adding to `base`: each in one call over all of `k`, and (for `k > 1`) in two calls split
    /// at `k / 2` (the second one from `k0 = k / 2`, adding to the first).
    fn variants(packed: &PackedB, a: &[f32], m: usize, base: &[f32], add: bool) -> Vec<Vec<f32>> {
        type Kernel = fn(&PackedB, &mut [f32], View<'_>, usize, bool);
        let mut kernels: Vec<Kernel> = vec![|p, d, a, k0, add| p.matmul_portable(d, a, k0, add)];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::fused::cpu::has_avx2() {
                // SAFETY: AVX2/FMA present (checked here); sizes as for `kernel`.
                kernels.push(|p, d, a, k0, add| unsafe { p.matmul_avx2(d, a, k0, add) });
            }
            if crate::fused::cpu::has_avx512() {
                // SAFETY: AVX-512F present (checked here); sizes as for `kernel`.
                kernels.push(|p, d, a, k0, add| unsafe { p.matmul_avx512(d, a, k0, add) });
            }
        }
        let k = packed.k;
        let half = k / 2;
        let mut out = Vec::new();
        for kernel in kernels {
            let mut whole = base.to_vec();
            kernel(packed, &mut whole, View::rows(a, m, k), 0, add);
            out.push(whole);
            if half == 0 {
                continue;
            }
            let mut split = base.to_vec();
            let first = View {
                cols: half,
                ..View::rows(a, m, k)
            };
            kernel(packed, &mut split, first, 0, add);
            let second = View {
                data: &a[half..],
                cols: k - half,
                ..View::rows(a, m, k)
            };
            kernel(packed, &mut split, second, half, true);
            out.push(split);
        }
        out
    }

    #[test]
    fn packed_products_match_the_definition() {
        // Sizes that exercise full and partial panels, pairs of panels and an odd last one,
        // every row remainder (AVX-512: 8, 4, 1; AVX2: 6, 4, 2, 1) and `k` over more than one
        // block.
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 17),
            (8, 7, 32),
            (7, 13, 40),
            (32, 16, 64),
            (19, 9, 33),
            (15, 300, 50),
            (13, 600, 16),
            // More rows than one block of `MC`: the blocked path, `a` in place and packed.
            (200, 300, 40),
            (97, 17, 20),
        ] {
            let a = pattern(m * k, 7, 11);
            let b = pattern(k * n, 5, 13);
            let packed = PackedB::new(&b, k, n);
            let mut fast = vec![f32::NAN; m * n];
            packed.matmul(&mut fast, &a, m);
            // The same rows spread `k + 3` apart.
            let lda = k + 3;
            let mut spread = vec![f32::NAN; m * lda];
            for i in 0..m {
                spread[i * lda..i * lda + k].copy_from_slice(&a[i * k..(i + 1) * k]);
            }
            let mut strided = vec![f32::NAN; m * n];
            packed.matmul_strided(&mut strided, &spread[..(m - 1) * lda + k], lda, m);
            assert_eq!(strided, fast, "{m}×{k}×{n} strided");
            // The same matrix stored transposed, read by strides.
            let mut a_t = vec![f32::NAN; k * m];
            for i in 0..m {
                for kk in 0..k {
                    a_t[kk * m + i] = a[i * k + kk];
                }
            }
            let mut transposed = vec![f32::NAN; m * n];
            packed.matmul_view(&mut transposed, View::transposed(&a_t, m, k), false);
            assert_eq!(transposed, fast, "{m}×{k}×{n} transposed");
            let base: Vec<f32> = (0..m * n).map(|v| (v % 3) as f32 - 1.0).collect();
            let written = variants(&packed, &a, m, &vec![f32::NAN; m * n], false);
            let added = variants(&packed, &a, m, &base, true);
            // Rounding grows with the length of the sums.
            let tolerance = 1e-4 * (1 + k / 100) as f32;
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                    let got_all = std::iter::once(fast[i * n + j])
                        .chain(written.iter().map(|v| v[i * n + j]));
                    for got in got_all {
                        assert!(
                            (got - want).abs() < tolerance,
                            "{m}×{k}×{n} at ({i},{j}): {got} vs {want}"
                        );
                    }
                    for got in added.iter().map(|v| v[i * n + j]) {
                        let want = base[i * n + j] + want;
                        assert!(
                            (got - want).abs() < tolerance,
                            "{m}×{k}×{n} at ({i},{j}) added: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
