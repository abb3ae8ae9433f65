//! A GEMM against a right-hand matrix packed once and reused at every time step.
//!
//! Why by hand: the per-step GEMMs of a recurrence multiply a small batch slice by the same
//! recurrent weights every step. The `gemm` crate re-packs those weights on every call (1 MB
//! per step for hidden 256), which held it to 37–62 GFLOP/s on these shapes (`rnn-bench
//! --gemm-shapes`). Packing once into 16-column panels lets a micro-kernel stream each panel
//! from L1 across all rows of the slice: 8 rows × 32 columns (two panels, two registers per
//! row) with AVX-512, 4 × 16 with AVX2/FMA, plain Rust elsewhere; the fastest the CPU has is
//! picked at run time and the tests run every one the CPU has.

use super::gemm::View;
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
        assert!(
            k == 0 || n == 0 || (k - 1) * rs + (n - 1) * cs < b.len(),
            "packed GEMM: B view out of bounds"
        );
        let panels = n.div_ceil(PANEL);
        // Every element is written below (the last panel's padding with zeros), so the buffer
        // needs no zeroing first: for the weight gradients' operands that pass was as long as
        // the copy itself.
        let mut data = Buf::dirty(panels * k * PANEL);
        for (p, panel) in data.chunks_exact_mut(k * PANEL).enumerate() {
            let col0 = p * PANEL;
            let width = PANEL.min(n - col0);
            for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                let start = kk * rs + col0 * cs;
                let (values, padding) = row.split_at_mut(width);
                if cs == 1 {
                    // Rows of `B` lie contiguous (activations, weights by rows): one copy.
                    values.copy_from_slice(&b[start..start + width]);
                } else {
                    for (c, v) in values.iter_mut().enumerate() {
                        *v = b[start + c * cs];
                    }
                }
                padding.fill(0.0);
            }
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

    /// [`PackedB::matmul`] with `a: [m, k]` given by strides (a transposed matrix is `rs = 1`:
    /// its columns are read as they lie, no copy); with `accumulate`, `dst += a · B`.
    pub fn matmul_view(&self, dst: &mut [f32], a: View<'_>, accumulate: bool) {
        assert!(
            a.cols == self.k && dst.len() == a.rows * self.n,
            "packed GEMM: shapes disagree"
        );
        a.check();
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above); sizes were checked above.
            unsafe { self.matmul_avx512(dst, a, accumulate) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); sizes were checked above.
            unsafe { self.matmul_avx2(dst, a, accumulate) };
            return;
        }
        self.matmul_portable(dst, a, accumulate);
    }

    /// The same product in plain Rust (any CPU).
    fn matmul_portable(&self, dst: &mut [f32], a: View<'_>, accumulate: bool) {
        let (a, rs, cs, m) = a.parts();
        let (k, n) = (self.k, self.n);
        for (p, panel) in self.data.chunks_exact(k * PANEL).enumerate() {
            let col0 = p * PANEL;
            let width = PANEL.min(n - col0);
            for i in 0..m {
                let mut acc = [0.0f32; PANEL];
                for (kk, b) in panel.chunks_exact(PANEL).enumerate() {
                    let x = a[i * rs + kk * cs];
                    for (c, v) in acc.iter_mut().zip(b) {
                        *c += x * v;
                    }
                }
                let out = &mut dst[i * n + col0..i * n + col0 + width];
                if accumulate {
                    out.iter_mut().zip(&acc).for_each(|(o, v)| *o += v);
                } else {
                    out.copy_from_slice(&acc[..width]);
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
    unsafe fn matmul_avx512(&self, dst: &mut [f32], a: View<'_>, accumulate: bool) {
        let (a, rs, cs, m) = a.parts();
        let (k, n) = (self.k, self.n);
        let panels = n.div_ceil(PANEL);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let add = accumulate || k0 > 0;
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
                    panel: self.data[p * k * PANEL + k0 * PANEL..].as_ptr(),
                    stride: k * PANEL,
                    kc,
                    rs,
                    cs,
                    n,
                    mask,
                    add,
                };
                let mut i = 0;
                // SAFETY: `matmul_view` checked that rows 0..m of `a` hold k elements each at
                // (r, kk) ↦ r·rs + kk·cs and that dst holds m·n; the panels hold k·16 elements
                // each, and tiles only touch rows i.. of `a` and `dst` at columns col0..n.
                unsafe {
                    let a0 = a.as_ptr().add(k0 * cs);
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

    /// 4 rows × 16 columns per micro-kernel call, one row at a time for the remainder.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn matmul_avx2(&self, dst: &mut [f32], a: View<'_>, accumulate: bool) {
        let (a, rs, cs, m) = a.parts();
        use std::arch::x86_64::*;
        let (k, n) = (self.k, self.n);
        for (p, panel) in self.data.chunks_exact(k * PANEL).enumerate() {
            let col0 = p * PANEL;
            let width = PANEL.min(n - col0);
            let mut i = 0;
            while i + 4 <= m {
                // SAFETY: rows i..i+4 of `a` hold k elements each (element (r, kk) at r·rs + kk·cs;
                // checked by `matmul_view`), the panel
                // holds k·16 elements, and every store below lands in row i+r of `dst`
                // (dst.len() == m·n) at columns col0..col0+width.
                unsafe {
                    let mut c = [_mm256_setzero_ps(); 8];
                    let rows = [
                        a.as_ptr().add(i * rs),
                        a.as_ptr().add((i + 1) * rs),
                        a.as_ptr().add((i + 2) * rs),
                        a.as_ptr().add((i + 3) * rs),
                    ];
                    let mut b = panel.as_ptr();
                    for kk in 0..k {
                        let b0 = _mm256_loadu_ps(b);
                        let b1 = _mm256_loadu_ps(b.add(8));
                        b = b.add(PANEL);
                        for r in 0..4 {
                            let x = _mm256_broadcast_ss(&*rows[r].add(kk * cs));
                            c[2 * r] = _mm256_fmadd_ps(x, b0, c[2 * r]);
                            c[2 * r + 1] = _mm256_fmadd_ps(x, b1, c[2 * r + 1]);
                        }
                    }
                    for r in 0..4 {
                        let out = dst.as_mut_ptr().add((i + r) * n + col0);
                        store_row_avx2(out, c[2 * r], c[2 * r + 1], width, accumulate);
                    }
                }
                i += 4;
            }
            while i < m {
                // SAFETY: as above, for the single row i.
                unsafe {
                    let (mut c0, mut c1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let row = a.as_ptr().add(i * rs);
                    let mut b = panel.as_ptr();
                    for kk in 0..k {
                        let x = _mm256_broadcast_ss(&*row.add(kk * cs));
                        c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c0);
                        c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b.add(8)), c1);
                        b = b.add(PANEL);
                    }
                    store_row_avx2(
                        dst.as_mut_ptr().add(i * n + col0),
                        c0,
                        c1,
                        width,
                        accumulate,
                    );
                }
                i += 1;
            }
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

/// `k` per block of the AVX-512 kernel: two panels of 256 × 16 floats are 32 KiB, inside L1.
#[cfg(target_arch = "x86_64")]
const KC: usize = 256;

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

    /// Every instruction-set variant this CPU runs on `a · B` (row-major `a`), writing or
    /// adding to `base`.
    fn variants(packed: &PackedB, a: &[f32], m: usize, base: &[f32], add: bool) -> Vec<Vec<f32>> {
        let k = packed.k;
        let mut out = vec![base.to_vec()];
        packed.matmul_portable(&mut out[0], View::rows(a, m, k), add);
        #[cfg(target_arch = "x86_64")]
        {
            if crate::fused::cpu::has_avx2() {
                let mut v = base.to_vec();
                // SAFETY: AVX2/FMA present; sizes as for `matmul`.
                unsafe { packed.matmul_avx2(&mut v, View::rows(a, m, k), add) };
                out.push(v);
            }
            if crate::fused::cpu::has_avx512() {
                let mut v = base.to_vec();
                // SAFETY: AVX-512F present; sizes as for `matmul`.
                unsafe { packed.matmul_avx512(&mut v, View::rows(a, m, k), add) };
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn packed_products_match_the_definition() {
        // Sizes that exercise full and partial panels, pairs of panels and an odd last one,
        // every row remainder (8, 4, 1) and `k` over more than one AVX-512 block.
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 17),
            (8, 7, 32),
            (7, 13, 40),
            (32, 16, 64),
            (19, 9, 33),
            (15, 300, 50),
            (13, 600, 16),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|v| ((v * 7 % 11) as f32 - 5.0) * 0.1)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|v| ((v * 5 % 13) as f32 - 6.0) * 0.1)
                .collect();
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
