//! The fused recurrences on host buffers: one direction of one layer, forward (optionally
//! keeping what backward needs) and backward through time by hand.
//!
//! All buffers are row-major `f32`, time-major: `x: [seq, batch, input]`, `out: [seq, batch,
//! hidden]`, states `[batch, hidden]`; weights in PyTorch's layout (`w_ih: [G·H, input]`,
//! `w_hh: [G·H, hidden]`, gate blocks in PyTorch's order).
//!
//! Forward: one GEMM projects every step's input at once; each step then runs one recurrent
//! GEMM and a single pass over the gates. Backward walks the steps in reverse with one GEMM per
//! step for the state gradient and leaves every weight gradient to three large GEMMs over all
//! steps.

use super::gemm::{View, matmul};
use super::math::{sigmoid, tanh};
use super::packed::PackedB;
use crate::CellKind;

/// The sizes of one direction of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub kind: CellKind,
    pub seq: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
}

impl Dims {
    /// `G·H`: the width of the stacked gate blocks.
    pub fn gates(&self) -> usize {
        self.kind.gates() * self.hidden
    }

    /// `seq · batch`.
    pub fn rows(&self) -> usize {
        self.seq * self.batch
    }

    /// Elements of the packed output: `out ++ h_n (++ c_n for LSTM)`.
    pub fn packed_len(&self) -> usize {
        let state = self.batch * self.hidden;
        self.rows() * self.hidden + state * if self.kind == CellKind::Lstm { 2 } else { 1 }
    }
}

/// Which steps run: the direction, and per-sequence lengths with packed-sequence semantics
/// (past its length a sequence's output is zero and its state is held; in reverse, each
/// sequence starts at its own last step).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Schedule {
    pub reverse: bool,
    pub lengths: Option<Vec<usize>>,
}

impl Schedule {
    /// The time index of the `i`-th step taken.
    fn step(&self, i: usize, seq: usize) -> usize {
        if self.reverse { seq - 1 - i } else { i }
    }

    fn active(&self, t: usize, b: usize) -> bool {
        self.lengths.as_ref().is_none_or(|l| t < l[b])
    }
}

/// One cell's weights, PyTorch layout.
pub(crate) struct Params<'a> {
    pub w_ih: &'a [f32],
    pub w_hh: &'a [f32],
    pub b_ih: Option<&'a [f32]>,
    pub b_hh: Option<&'a [f32]>,
}

/// What the forward pass keeps for backward (all `[seq, batch, ·]`).
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// LSTM `i, f, g, o` and GRU `r, z, n` activations (`G·H` wide); RNN: `h_t` (`H` wide).
    acts: Vec<f32>,
    /// The state each step started from.
    h_prev: Vec<f32>,
    /// LSTM: the cell state each step started from; GRU: `W_hn h + b_hn`.
    aux: Vec<f32>,
    /// LSTM: `tanh(c_t)`.
    tanh_c: Vec<f32>,
}

/// The forward pass's results, each a flat buffer.
#[derive(Debug)]
pub(crate) struct Outputs {
    /// `[seq, batch, hidden]`.
    pub out: Vec<f32>,
    /// `[batch, hidden]`.
    pub h_n: Vec<f32>,
    /// `[batch, hidden]` for LSTM, empty otherwise.
    pub c_n: Vec<f32>,
}

/// Gradients of the loss with respect to every input of [`forward_chunk`].
#[derive(Debug)]
pub(crate) struct Grads {
    pub x: Vec<f32>,
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
}

/// The bias added to the input projection: `b_ih + b_hh`, except GRU's `b_hn`, which sits
/// inside `r ⊙ (W_hn h + b_hn)` and stays on the recurrent side.
fn folded_bias(d: &Dims, p: &Params<'_>) -> Option<Vec<f32>> {
    let gh = d.gates();
    let folded_hh = if d.kind == CellKind::Gru {
        2 * d.hidden
    } else {
        gh
    };
    match (p.b_ih, p.b_hh) {
        (None, None) => None,
        (b_ih, b_hh) => {
            let mut bias = b_ih.map_or_else(|| vec![0.0; gh], <[f32]>::to_vec);
            if let Some(b_hh) = b_hh {
                for (acc, v) in bias[..folded_hh].iter_mut().zip(b_hh) {
                    *acc += v;
                }
            }
            Some(bias)
        }
    }
}

/// Runs the recurrence. `c0` is read for LSTM only. With `save`, also returns what
/// [`backward_chunk`] needs; without, nothing beyond the outputs is allocated.
pub(crate) fn forward_chunk(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Outputs, Option<Saved>) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { forward_avx2(d, schedule, p, x, h0, c0, save) };
    }
    forward_impl(d, schedule, p, x, h0, c0, save)
}

/// [`forward_chunk`] compiled for AVX2: the gate loops run 8 lanes wide instead of SSE2's 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Outputs, Option<Saved>) {
    forward_impl(d, schedule, p, x, h0, c0, save)
}

/// Whether this CPU runs the AVX2 builds of the kernels (detected once, cached by std).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[inline(always)]
fn forward_impl(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Outputs, Option<Saved>) {
    let (hid, gh, batch) = (d.hidden, d.gates(), d.batch);
    let rows = d.rows();
    let is_lstm = d.kind == CellKind::Lstm;

    // Every step's input projection in one GEMM, biases folded in.
    let mut xp = vec![0.0; rows * gh];
    matmul(
        &mut xp,
        View::rows(x, rows, d.input),
        View::transposed(p.w_ih, d.input, gh),
        false,
    );
    if let Some(bias) = folded_bias(&d, p) {
        for row in xp.chunks_exact_mut(gh) {
            for (v, b) in row.iter_mut().zip(&bias) {
                *v += b;
            }
        }
    }
    let b_hn = match (d.kind, p.b_hh) {
        (CellKind::Gru, Some(b)) => b[2 * hid..].to_vec(),
        _ => vec![0.0; hid],
    };

    // W_hhᵀ laid out row-major once, then packed for the per-step GEMMs.
    let mut w_hh_t = vec![0.0; hid * gh];
    for (g, row) in p.w_hh.chunks_exact(hid).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            w_hh_t[k * gh + g] = v;
        }
    }
    let w_hh_packed = PackedB::new(&w_hh_t, hid, gh);
    let mut h = h0.to_vec();
    let mut c = if is_lstm { c0.to_vec() } else { Vec::new() };
    let mut out = vec![0.0; rows * hid];
    let mut hh = vec![0.0; batch * gh];
    let mut scratch = vec![0.0; hid];
    let act_width = if d.kind.gates() == 1 { hid } else { gh };
    let mut saved = save.then(|| Saved {
        acts: vec![0.0; rows * act_width],
        h_prev: vec![0.0; rows * hid],
        aux: if d.kind.gates() > 1 {
            vec![0.0; rows * hid]
        } else {
            Vec::new()
        },
        tanh_c: if is_lstm {
            vec![0.0; rows * hid]
        } else {
            Vec::new()
        },
    });

    for i in 0..d.seq {
        let t = schedule.step(i, d.seq);
        w_hh_packed.matmul(&mut hh, &h, batch);
        let state = t * batch * hid..(t + 1) * batch * hid;
        if let Some(s) = saved.as_mut() {
            s.h_prev[state.clone()].copy_from_slice(&h);
            if is_lstm {
                s.aux[state.clone()].copy_from_slice(&c);
            }
        }
        for b in 0..batch {
            if !schedule.active(t, b) {
                continue;
            }
            let row = t * batch + b;
            let xr = &xp[row * gh..][..gh];
            // The recurrent projection's row becomes the pre-activations, then the gates.
            let a = &mut hh[b * gh..][..gh];
            let h_b = &mut h[b * hid..][..hid];
            let out_b = &mut out[row * hid..][..hid];
            match d.kind {
                CellKind::Lstm => {
                    add_assign(a, xr);
                    let (ai, rest) = a.split_at_mut(hid);
                    let (af, rest) = rest.split_at_mut(hid);
                    let (ag, ao) = rest.split_at_mut(hid);
                    sigmoid_all(ai);
                    sigmoid_all(af);
                    tanh_all(ag);
                    sigmoid_all(ao);
                    let c_b = &mut c[b * hid..][..hid];
                    let tc = &mut scratch[..hid];
                    for j in 0..hid {
                        let c_new = af[j] * c_b[j] + ai[j] * ag[j];
                        c_b[j] = c_new;
                        tc[j] = c_new;
                    }
                    tanh_all(tc);
                    for j in 0..hid {
                        h_b[j] = ao[j] * tc[j];
                    }
                    out_b.copy_from_slice(h_b);
                    if let Some(s) = saved.as_mut() {
                        s.acts[row * gh..][..gh].copy_from_slice(a);
                        s.tanh_c[row * hid..][..hid].copy_from_slice(tc);
                    }
                }
                CellKind::Gru => {
                    let (arz, an) = a.split_at_mut(2 * hid);
                    add_assign(arz, &xr[..2 * hid]);
                    sigmoid_all(arz);
                    let (ar, az) = arz.split_at(hid);
                    // `an` holds W_hn h; it becomes b_hn + W_hn h (saved), then n.
                    add_assign(an, &b_hn);
                    let xn = &xr[2 * hid..];
                    let n = &mut scratch[..hid];
                    for j in 0..hid {
                        n[j] = xn[j] + ar[j] * an[j];
                    }
                    tanh_all(n);
                    for j in 0..hid {
                        h_b[j] = n[j] + az[j] * (h_b[j] - n[j]);
                    }
                    out_b.copy_from_slice(h_b);
                    if let Some(s) = saved.as_mut() {
                        let acts = &mut s.acts[row * gh..][..gh];
                        acts[..2 * hid].copy_from_slice(arz);
                        acts[2 * hid..].copy_from_slice(n);
                        s.aux[row * hid..][..hid].copy_from_slice(an);
                    }
                }
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    add_assign(a, xr);
                    if d.kind == CellKind::RnnRelu {
                        for v in a.iter_mut() {
                            *v = v.max(0.0);
                        }
                    } else {
                        tanh_all(a);
                    }
                    h_b.copy_from_slice(a);
                    out_b.copy_from_slice(a);
                    if let Some(s) = saved.as_mut() {
                        s.acts[row * hid..][..hid].copy_from_slice(a);
                    }
                }
            }
        }
    }
    let outputs = Outputs {
        out,
        h_n: h,
        c_n: c,
    };
    (outputs, saved)
}

#[inline(always)]
fn add_assign(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[inline(always)]
fn sigmoid_all(v: &mut [f32]) {
    for x in v {
        *x = sigmoid(*x);
    }
}

#[inline(always)]
fn tanh_all(v: &mut [f32]) {
    for x in v {
        *x = tanh(*x);
    }
}

/// Backpropagation through time. `d_out: [seq, batch, hidden]`, `d_hn`, `d_cn: [batch,
/// hidden]` (`d_cn` read for LSTM only) are the gradients of the loss with respect to
/// [`forward_chunk`]'s outputs.
#[allow(clippy::too_many_arguments)] // one argument per tensor of the op; a struct would only rename them
pub(crate) fn backward_chunk(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    saved: &Saved,
    d_out: &[f32],
    d_hn: &[f32],
    d_cn: &[f32],
) -> Grads {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { backward_avx2(d, schedule, p, x, saved, d_out, d_hn, d_cn) };
    }
    backward_impl(d, schedule, p, x, saved, d_out, d_hn, d_cn)
}

/// [`backward_chunk`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn backward_avx2(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    saved: &Saved,
    d_out: &[f32],
    d_hn: &[f32],
    d_cn: &[f32],
) -> Grads {
    backward_impl(d, schedule, p, x, saved, d_out, d_hn, d_cn)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_impl(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    saved: &Saved,
    d_out: &[f32],
    d_hn: &[f32],
    d_cn: &[f32],
) -> Grads {
    let (hid, gh, batch) = (d.hidden, d.gates(), d.batch);
    let rows = d.rows();
    let is_gru = d.kind == CellKind::Gru;
    // d(loss)/d(pre-activation) as the input projection sees it, and (GRU only, where `r`
    // scales the recurrent part of `n`) as the recurrent projection sees it.
    let mut dg = vec![0.0; rows * gh];
    let mut dhh = if is_gru {
        vec![0.0; rows * gh]
    } else {
        Vec::new()
    };
    let mut dh = d_hn.to_vec();
    let mut dc = if d.kind == CellKind::Lstm {
        d_cn.to_vec()
    } else {
        Vec::new()
    };
    let mut dh_prev = vec![0.0; batch * hid];
    let w_hh_packed = PackedB::new(p.w_hh, gh, hid);
    // GRU: the part of dh_prev that bypasses W_hh (`z ⊙ dh`).
    let mut direct = if is_gru {
        vec![0.0; batch * hid]
    } else {
        Vec::new()
    };

    for i in (0..d.seq).rev() {
        let t = schedule.step(i, d.seq);
        for b in 0..batch {
            if !schedule.active(t, b) {
                continue;
            }
            let row = t * batch + b;
            let dh_b = &dh[b * hid..][..hid];
            let dout_b = &d_out[row * hid..][..hid];
            let dg_r = &mut dg[row * gh..][..gh];
            match d.kind {
                CellKind::Lstm => {
                    let a = &saved.acts[row * gh..][..gh];
                    let tc = &saved.tanh_c[row * hid..][..hid];
                    let cp = &saved.aux[row * hid..][..hid];
                    let dc_b = &mut dc[b * hid..][..hid];
                    for j in 0..hid {
                        let grad = dh_b[j] + dout_b[j];
                        let (ig, fg, gg, og) = (a[j], a[hid + j], a[2 * hid + j], a[3 * hid + j]);
                        let dct = dc_b[j] + grad * og * (1.0 - tc[j] * tc[j]);
                        dg_r[j] = dct * gg * ig * (1.0 - ig);
                        dg_r[hid + j] = dct * cp[j] * fg * (1.0 - fg);
                        dg_r[2 * hid + j] = dct * ig * (1.0 - gg * gg);
                        dg_r[3 * hid + j] = grad * tc[j] * og * (1.0 - og);
                        dc_b[j] = dct * fg;
                    }
                }
                CellKind::Gru => {
                    let a = &saved.acts[row * gh..][..gh];
                    let hn = &saved.aux[row * hid..][..hid];
                    let hp = &saved.h_prev[row * hid..][..hid];
                    let dhh_r = &mut dhh[row * gh..][..gh];
                    let direct_b = &mut direct[b * hid..][..hid];
                    for j in 0..hid {
                        let grad = dh_b[j] + dout_b[j];
                        let (r, z, n) = (a[j], a[hid + j], a[2 * hid + j]);
                        let da_n = grad * (1.0 - z) * (1.0 - n * n);
                        let da_z = grad * (hp[j] - n) * z * (1.0 - z);
                        let da_r = da_n * hn[j] * r * (1.0 - r);
                        dg_r[j] = da_r;
                        dg_r[hid + j] = da_z;
                        dg_r[2 * hid + j] = da_n;
                        dhh_r[j] = da_r;
                        dhh_r[hid + j] = da_z;
                        dhh_r[2 * hid + j] = da_n * r;
                        direct_b[j] = grad * z;
                    }
                }
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    let relu = d.kind == CellKind::RnnRelu;
                    let h_t = &saved.acts[row * hid..][..hid];
                    for j in 0..hid {
                        let grad = dh_b[j] + dout_b[j];
                        dg_r[j] = if relu {
                            if h_t[j] > 0.0 { grad } else { 0.0 }
                        } else {
                            grad * (1.0 - h_t[j] * h_t[j])
                        };
                    }
                }
            }
        }
        // dh_prev = dHH_t · W_hh for running sequences; ended ones carry dh through unchanged.
        let rec = if is_gru { &dhh } else { &dg };
        w_hh_packed.matmul(&mut dh_prev, &rec[t * batch * gh..][..batch * gh], batch);
        for b in 0..batch {
            let range = b * hid..(b + 1) * hid;
            if !schedule.active(t, b) {
                dh_prev[range.clone()].copy_from_slice(&dh[range]);
            } else if is_gru {
                for (v, s) in dh_prev[range.clone()].iter_mut().zip(&direct[range]) {
                    *v += s;
                }
            }
        }
        std::mem::swap(&mut dh, &mut dh_prev);
    }

    let rec = if is_gru { &dhh } else { &dg };
    let mut w_hh = vec![0.0; gh * hid];
    matmul(
        &mut w_hh,
        View::transposed(rec, gh, rows),
        View::rows(&saved.h_prev, rows, hid),
        false,
    );
    let mut w_ih = vec![0.0; gh * d.input];
    matmul(
        &mut w_ih,
        View::transposed(&dg, gh, rows),
        View::rows(x, rows, d.input),
        false,
    );
    let mut dx = vec![0.0; rows * d.input];
    matmul(
        &mut dx,
        View::rows(&dg, rows, gh),
        View::rows(p.w_ih, gh, d.input),
        false,
    );
    let column_sums = |m: &[f32]| {
        let mut sums = vec![0.0; gh];
        for row in m.chunks_exact(gh) {
            for (acc, v) in sums.iter_mut().zip(row) {
                *acc += v;
            }
        }
        sums
    };
    Grads {
        x: dx,
        w_ih,
        w_hh,
        b_ih: column_sums(&dg),
        b_hh: column_sums(rec),
        h0: dh,
        c0: dc,
    }
}

#[cfg(test)]
mod tests {
    //! The kernels against central finite differences of their own forward pass in f64
    //! arithmetic terms: every input's gradient, for every kind, with and without lengths, in
    //! both directions. (The PyTorch parity grid checks the same numbers end to end.)
    use super::*;
    use crate::fused::parallel;

    struct Case {
        /// Batch chunks to split into (1: the serial path; 2: the parallel path).
        chunks: usize,
        d: Dims,
        schedule: Schedule,
        tensors: Vec<Vec<f32>>, // x, w_ih, w_hh, b_ih, b_hh, h0, c0
    }

    fn case(kind: CellKind, reverse: bool, lengths: Option<Vec<usize>>, chunks: usize) -> Case {
        let d = Dims {
            kind,
            seq: 4,
            batch: 3,
            input: 2,
            hidden: 3,
        };
        let gh = d.gates();
        let sizes = [
            d.rows() * d.input,
            gh * d.input,
            gh * d.hidden,
            gh,
            gh,
            d.batch * d.hidden,
            d.batch * d.hidden,
        ];
        let mut seed = 0x9e37_79b9u32;
        let tensors = sizes
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                    })
                    .collect()
            })
            .collect();
        Case {
            chunks,
            d,
            schedule: Schedule { reverse, lengths },
            tensors,
        }
    }

    /// A fixed random projection of all outputs: a scalar loss that touches every output.
    fn loss(c: &Case, tensors: &[Vec<f32>]) -> f64 {
        let p = Params {
            w_ih: &tensors[1],
            w_hh: &tensors[2],
            b_ih: Some(&tensors[3]),
            b_hh: Some(&tensors[4]),
        };
        let (o, _) = parallel::forward_in(
            c.chunks,
            c.d,
            &c.schedule,
            &p,
            &tensors[0],
            &tensors[5],
            &tensors[6],
            false,
        );
        o.out
            .iter()
            .chain(&o.h_n)
            .chain(&o.c_n)
            .enumerate()
            .map(|(i, &v)| v as f64 * ((i as f64 * 0.37).sin() + 0.2))
            .sum()
    }

    fn check(c: Case) {
        let t = &c.tensors;
        let p = Params {
            w_ih: &t[1],
            w_hh: &t[2],
            b_ih: Some(&t[3]),
            b_hh: Some(&t[4]),
        };
        let (o, saved) =
            parallel::forward_in(c.chunks, c.d, &c.schedule, &p, &t[0], &t[5], &t[6], true);
        let weight = |i: usize| ((i as f64 * 0.37).sin() + 0.2) as f32;
        let n_out = o.out.len();
        let d_out: Vec<f32> = (0..n_out).map(weight).collect();
        let d_hn: Vec<f32> = (0..o.h_n.len()).map(|i| weight(n_out + i)).collect();
        let d_cn: Vec<f32> = (0..o.c_n.len())
            .map(|i| weight(n_out + o.h_n.len() + i))
            .collect();
        let saved = saved.expect("saved");
        let g = parallel::backward(c.d, &c.schedule, &p, &t[0], &saved, &d_out, &d_hn, &d_cn);
        let analytic = [&g.x, &g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh, &g.h0, &g.c0];
        for (which, grad) in analytic.iter().enumerate() {
            if which == 6 && c.d.kind != CellKind::Lstm {
                continue;
            }
            for k in 0..t[which].len() {
                let eps = 1e-2f32;
                let mut plus = t.clone();
                plus[which][k] += eps;
                let mut minus = t.clone();
                minus[which][k] -= eps;
                let numeric = (loss(&c, &plus) - loss(&c, &minus)) / (2.0 * eps as f64);
                let err = (numeric - grad[k] as f64).abs();
                assert!(
                    err < 2e-3 * (1.0 + numeric.abs()),
                    "{:?} tensor {which} element {k}: analytic {} numeric {numeric}",
                    c.d.kind,
                    grad[k]
                );
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for kind in [
            CellKind::Lstm,
            CellKind::Gru,
            CellKind::RnnTanh,
            CellKind::RnnRelu,
        ] {
            for reverse in [false, true] {
                for lengths in [None, Some(vec![4, 2, 1])] {
                    for chunks in [1, 2] {
                        check(case(kind, reverse, lengths.clone(), chunks));
                    }
                }
            }
        }
    }

    #[test]
    fn ended_sequences_output_zero_and_hold_their_state() {
        let c = case(CellKind::Lstm, false, Some(vec![4, 2, 1]), 2);
        let t = &c.tensors;
        let p = Params {
            w_ih: &t[1],
            w_hh: &t[2],
            b_ih: Some(&t[3]),
            b_hh: Some(&t[4]),
        };
        let (o, _) =
            parallel::forward_in(c.chunks, c.d, &c.schedule, &p, &t[0], &t[5], &t[6], false);
        let hid = c.d.hidden;
        // Sequence 2 has length 1: steps 1.. output zeros, h_n is its step-0 output.
        for step in 1..4 {
            let at = (step * 3 + 2) * hid;
            assert!(o.out[at..at + hid].iter().all(|&v| v == 0.0));
        }
        assert_eq!(&o.h_n[2 * hid..3 * hid], &o.out[2 * hid..3 * hid]);
    }
}
