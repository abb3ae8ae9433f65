//! A GEMM against a right-hand matrix packed once and reused at every time step.
//!
//! Why by hand: the per-step GEMMs of a recurrence multiply a small batch slice by the same
//! recurrent weights every step. The `gemm` crate re-packs those weights on every call (1 MB
//! per step for hidden 256), which held it to 37–62 GFLOP/s on these shapes (`rnn-bench
//! --gemm-shapes`). Packing once into 16-column panels lets a micro-kernel stream each panel
//! from L1 across all rows of the slice: 8 rows × 16 columns (one register per row) with
//! AVX-512, 4 × 16 with AVX2/FMA, plain Rust elsewhere; the fastest the CPU has is picked at run
//! time and the tests run every one the CPU has.

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
        let panels = n.div_ceil(PANEL);
        let mut data = Buf::zeroed(panels * k * PANEL);
        for (p, panel) in data.chunks_exact_mut(k * PANEL).enumerate() {
            let col0 = p * PANEL;
            let width = PANEL.min(n - col0);
            for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                row[..width].copy_from_slice(&b[kk * n + col0..kk * n + col0 + width]);
            }
        }
        Self { k, n, data }
    }

    /// Packs a `k × n` matrix given by strides: element `(r, c)` is `b[r·rs + c·cs]`.
    pub fn from_strided(b: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Self {
        assert!(
            k == 0 || n == 0 || (k - 1) * rs + (n - 1) * cs < b.len(),
            "packed GEMM: B view out of bounds"
        );
        let panels = n.div_ceil(PANEL);
        let mut data = Buf::zeroed(panels * k * PANEL);
        for (p, panel) in data.chunks_exact_mut(k * PANEL).enumerate() {
            let col0 = p * PANEL;
            let width = PANEL.min(n - col0);
            for (kk, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (c, v) in row[..width].iter_mut().enumerate() {
                    *v = b[kk * rs + (col0 + c) * cs];
                }
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
        self.matmul_view(dst, a, lda, 1, m);
    }

    /// [`PackedB::matmul`] with `a` given by strides: element `(i, kk)` is `a[i·rs + kk·cs]`
    /// (a transposed matrix is `rs = 1`: its columns are read as they lie, no copy).
    pub fn matmul_view(&self, dst: &mut [f32], a: &[f32], rs: usize, cs: usize, m: usize) {
        assert!(
            dst.len() == m * self.n
                && (m == 0 || self.k == 0 || a.len() > (m - 1) * rs + (self.k - 1) * cs),
            "packed GEMM: shapes disagree"
        );
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above); sizes were checked above.
            unsafe { self.matmul_avx512(dst, a, rs, cs, m) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); sizes were checked above.
            unsafe { self.matmul_avx2(dst, a, rs, cs, m) };
            return;
        }
        self.matmul_portable(dst, a, rs, cs, m);
    }

    /// The same product in plain Rust (any CPU).
    fn matmul_portable(&self, dst: &mut [f32], a: &[f32], rs: usize, cs: usize, m: usize) {
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
                dst[i * n + col0..i * n + col0 + width].copy_from_slice(&acc[..width]);
            }
        }
    }

    /// 8 rows × 16 columns per micro-kernel call (eight accumulator registers, one broadcast
    /// and one FMA per row and `k`), one row at a time for the remainder; partial panels are
    /// written with a masked store.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn matmul_avx512(&self, dst: &mut [f32], a: &[f32], rs: usize, cs: usize, m: usize) {
        use std::arch::x86_64::*;
        const ROWS: usize = 8;
        let (k, n) = (self.k, self.n);
        for (p, panel) in self.data.chunks_exact(k * PANEL).enumerate() {
            let col0 = p * PANEL;
            let width = PANEL.min(n - col0);
            // The low `width` lanes: a partial panel's padding never reaches `dst`.
            let mask: __mmask16 = if width == PANEL {
                u16::MAX
            } else {
                (1u16 << width) - 1
            };
            let mut i = 0;
            while i + ROWS <= m {
                // SAFETY: rows i..i+8 of `a` hold k elements each (element (r, kk) at r·rs + kk·cs;
                // checked by `matmul_view`), the panel holds k·16 elements, and every masked store
                // writes row i+r of `dst` (dst.len() == m·n) at columns col0..col0+width.
                unsafe {
                    let mut c = [_mm512_setzero_ps(); ROWS];
                    let rows: [*const f32; ROWS] =
                        std::array::from_fn(|r| a.as_ptr().add((i + r) * rs));
                    let mut b = panel.as_ptr();
                    for kk in 0..k {
                        let bv = _mm512_loadu_ps(b);
                        b = b.add(PANEL);
                        for r in 0..ROWS {
                            let x = _mm512_set1_ps(*rows[r].add(kk * cs));
                            c[r] = _mm512_fmadd_ps(x, bv, c[r]);
                        }
                    }
                    for (r, acc) in c.iter().enumerate() {
                        let out = dst.as_mut_ptr().add((i + r) * n + col0);
                        _mm512_mask_storeu_ps(out, mask, *acc);
                    }
                }
                i += ROWS;
            }
            while i < m {
                // SAFETY: as above, for the single row i.
                unsafe {
                    let mut acc = _mm512_setzero_ps();
                    let row = a.as_ptr().add(i * rs);
                    let mut b = panel.as_ptr();
                    for kk in 0..k {
                        let x = _mm512_set1_ps(*row.add(kk * cs));
                        acc = _mm512_fmadd_ps(x, _mm512_loadu_ps(b), acc);
                        b = b.add(PANEL);
                    }
                    _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i * n + col0), mask, acc);
                }
                i += 1;
            }
        }
    }

    /// 4 rows × 16 columns per micro-kernel call, one row at a time for the remainder.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn matmul_avx2(&self, dst: &mut [f32], a: &[f32], rs: usize, cs: usize, m: usize) {
        use std::arch::x86_64::*;
        let (k, n) = (self.k, self.n);
        // Rows of partial panels go through this buffer.
        let mut tail = [0.0f32; PANEL];
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
                        if width == PANEL {
                            _mm256_storeu_ps(out, c[2 * r]);
                            _mm256_storeu_ps(out.add(8), c[2 * r + 1]);
                        } else {
                            _mm256_storeu_ps(tail.as_mut_ptr(), c[2 * r]);
                            _mm256_storeu_ps(tail.as_mut_ptr().add(8), c[2 * r + 1]);
                            std::ptr::copy_nonoverlapping(tail.as_ptr(), out, width);
                        }
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
                    _mm256_storeu_ps(tail.as_mut_ptr(), c0);
                    _mm256_storeu_ps(tail.as_mut_ptr().add(8), c1);
                    std::ptr::copy_nonoverlapping(
                        tail.as_ptr(),
                        dst.as_mut_ptr().add(i * n + col0),
                        width,
                    );
                }
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_products_match_the_definition() {
        // Sizes that exercise full and partial panels and the row remainder.
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 17),
            (8, 7, 32),
            (7, 13, 40),
            (32, 16, 64),
            (19, 9, 33),
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
            let mut portable = vec![f32::NAN; m * n];
            packed.matmul_portable(&mut portable, &a, k, 1, m);
            // Every instruction-set variant this CPU runs, whichever `matmul` picked.
            let mut variants = vec![portable.clone()];
            #[cfg(target_arch = "x86_64")]
            {
                if crate::fused::cpu::has_avx2() {
                    let mut out = vec![f32::NAN; m * n];
                    // SAFETY: AVX2/FMA present; sizes as for `matmul`.
                    unsafe { packed.matmul_avx2(&mut out, &a, k, 1, m) };
                    variants.push(out);
                }
                if crate::fused::cpu::has_avx512() {
                    let mut out = vec![f32::NAN; m * n];
                    // SAFETY: AVX-512F present; sizes as for `matmul`.
                    unsafe { packed.matmul_avx512(&mut out, &a, k, 1, m) };
                    variants.push(out);
                }
            }
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
            packed.matmul_view(&mut transposed, &a_t, 1, m, m);
            assert_eq!(transposed, fast, "{m}×{k}×{n} transposed");
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                    let got_all = std::iter::once(fast[i * n + j])
                        .chain(variants.iter().map(|v| v[i * n + j]));
                    for got in got_all {
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{m}×{k}×{n} at ({i},{j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
