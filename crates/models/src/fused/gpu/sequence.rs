//! The persistent forward: one launch runs every step of a layer. Cube `(d, slice)` owns
//! `rows` batch rows of direction `d`; unit `u` owns hidden features `u·N .. u·N + N` of
//! those rows (`N` the vector width: a cube is `hidden / N` units wide). The rows' `h` lives
//! in shared memory and each unit's cell states in registers; every step streams `W_hhᵀ` from
//! global memory (the cache), `N` floats per load, into the recurrent products, applies the gates and writes the same `hs`, `cs` and `acts`
//! as the per-step kernels of [`super::kernels`], so backward is shared. Two cube barriers
//! per step and none across cubes: the rows of a slice depend only on each other.
//!
//! Layouts as in [`super::kernels`]; `w_t: [D, H, G·H]` is `W_hhᵀ` made contiguous.

use cubecl::prelude::*;

use super::kernels::{save_four, sigmoid};

/// Unit `u`'s recurrent products for the cube's rows, `N` features at once:
/// `acc[g·rows + r][e] = Σ_k h[r, k] · W_hh[d][g·H + u·N + e, k]`, reading `h` from
/// `h_sh: [rows, H]` and `W_hhᵀ` (`[D, H, G·H]` in vectors of `N`) from `w_t` from vector
/// `base` on.
#[cube]
fn recurrent_products<N: Size>(
    w_t: &Tensor<Vector<f32, N>>,
    h_sh: &Shared<[f32]>,
    acc: &mut Array<Vector<f32, N>>,
    base: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] gates: usize,
    #[comptime] rows: usize,
) {
    let per_gate = hidden / N::value();
    #[unroll]
    for q in 0..comptime!(gates * rows) {
        acc[q] = Vector::new(f32::new(0.0));
    }
    let mut hk = Array::<Vector<f32, N>>::new(rows);
    for k in 0..hidden {
        #[unroll]
        for r in 0..rows {
            hk[r] = Vector::new(h_sh[r * hidden + k]);
        }
        let w_row = base + k * gates * per_gate + u;
        #[unroll]
        for g in 0..gates {
            let w = w_t[w_row + g * per_gate];
            #[unroll]
            for r in 0..rows {
                acc[g * rows + r] += hk[r] * w;
            }
        }
    }
}

/// Fills `h_sh` with the cube's rows of `h_0` (`hs[0]`; unit `u` its `N` features) and `len`
/// with their lengths; rows past the batch get length 0 and never write.
#[cube]
fn start_rows<N: Size>(
    hs: &Tensor<f32>,
    lengths: &Tensor<f32>,
    h_sh: &mut Shared<[f32]>,
    len: &mut Array<u32>,
    d: usize,
    b0: usize,
    bn: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
) {
    #[unroll]
    for r in 0..rows {
        let b = b0 + r;
        len[r] = 0;
        #[unroll]
        for e in 0..N::value() {
            let j = u * N::value() + e;
            h_sh[r * hidden + j] = f32::new(0.0);
            if b < bn {
                h_sh[r * hidden + j] = hs[(d * bn + b) * hidden + j];
            }
        }
        if b < bn {
            len[r] = u32::cast_from(lengths[b]);
        }
    }
}

/// Every LSTM step; arguments as [`super::kernels::lstm_step`]'s without the step and `hh`,
/// and `W_hhᵀ` in vectors of `N`.
#[cube(launch)]
pub fn lstm_sequence<N: Size>(
    xp: &Tensor<f32>,
    w_t: &Tensor<Vector<f32, N>>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    cs: &mut Tensor<f32>,
    acts: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
    #[comptime] save: bool,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden;
    let u = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = hs.len() / (t_len + 1);
    let mut h_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut len = Array::<u32>::new(rows);
    start_rows::<N>(
        &*hs, lengths, &mut h_sh, &mut len, d, b0, bn, u, hidden, rows,
    );
    // The rows' cell states, `N` features per vector.
    let mut c = Array::<Vector<f32, N>>::new(rows);
    #[unroll]
    for r in 0..rows {
        let mut cr = Vector::new(f32::new(0.0));
        if b0 + r < bn {
            #[unroll]
            for e in 0..N::value() {
                cr.insert(e, cs[(d * bn + b0 + r) * h + u * N::value() + e]);
            }
        }
        c[r] = cr;
    }
    let mut acc = Array::<Vector<f32, N>>::new(comptime!(4 * rows));
    let base = d * h * 4 * (h / N::value());
    sync_cube();
    for s in 0..t_len {
        recurrent_products::<N>(w_t, &h_sh, &mut acc, base, u, hidden, 4usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if b < bn {
                let live = s < len[r] as usize;
                let mut cr = c[r];
                #[unroll]
                for e in 0..N::value() {
                    let j = u * N::value() + e;
                    let i = (d * bn + b) * h + j;
                    if live {
                        let x = ((d * t_len + s) * bn + b) * 4 * h + j;
                        let ig = sigmoid(xp[x] + acc[r].extract(e));
                        let fg = sigmoid(xp[x + h] + acc[rows + r].extract(e));
                        let gg = (xp[x + 2 * h] + acc[2 * rows + r].extract(e)).tanh();
                        let og = sigmoid(xp[x + 3 * h] + acc[3 * rows + r].extract(e));
                        let ce = fg * cr.extract(e) + ig * gg;
                        cr.insert(e, ce);
                        h_sh[r * h + j] = og * ce.tanh();
                        if save {
                            let a = (s * dbh + i - j) * 4 + j;
                            save_four(acts, a, h, ig, fg, gg, og);
                        }
                    }
                    hs[(s + 1) * dbh + i] = h_sh[r * h + j];
                    if save {
                        cs[(s + 1) * dbh + i] = cr.extract(e);
                    }
                }
                c[r] = cr;
            }
        }
        sync_cube();
    }
    if !save {
        // Inference keeps two cell-state slots; the last step's is `T mod 2`.
        #[unroll]
        for r in 0..rows {
            if b0 + r < bn {
                #[unroll]
                for e in 0..N::value() {
                    let i = (d * bn + b0 + r) * h + u * N::value() + e;
                    cs[(t_len % 2) * dbh + i] = c[r].extract(e);
                }
            }
        }
    }
}

/// Every GRU step; arguments as [`super::kernels::gru_step`]'s without the step and `hh`,
/// and `W_hhᵀ` in vectors of `N`.
#[cube(launch)]
pub fn gru_sequence<N: Size>(
    xp: &Tensor<f32>,
    w_t: &Tensor<Vector<f32, N>>,
    b_hn: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    acts: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
    #[comptime] save: bool,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden;
    let u = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = hs.len() / (t_len + 1);
    let mut h_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut len = Array::<u32>::new(rows);
    start_rows::<N>(
        &*hs, lengths, &mut h_sh, &mut len, d, b0, bn, u, hidden, rows,
    );
    let mut acc = Array::<Vector<f32, N>>::new(comptime!(3 * rows));
    let base = d * h * 3 * (h / N::value());
    sync_cube();
    for s in 0..t_len {
        recurrent_products::<N>(w_t, &h_sh, &mut acc, base, u, hidden, 3usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if b < bn {
                let live = s < len[r] as usize;
                #[unroll]
                for e in 0..N::value() {
                    let j = u * N::value() + e;
                    let i = (d * bn + b) * h + j;
                    if live {
                        let x = ((d * t_len + s) * bn + b) * 3 * h + j;
                        let rg = sigmoid(xp[x] + acc[r].extract(e));
                        let z = sigmoid(xp[x + h] + acc[rows + r].extract(e));
                        let hn = acc[2 * rows + r].extract(e) + b_hn[d * h + j];
                        let n = (xp[x + 2 * h] + rg * hn).tanh();
                        h_sh[r * h + j] = (f32::new(1.0) - z) * n + z * h_sh[r * h + j];
                        if save {
                            let a = (s * dbh + i - j) * 4 + j;
                            save_four(acts, a, h, rg, z, n, hn);
                        }
                    }
                    hs[(s + 1) * dbh + i] = h_sh[r * h + j];
                }
            }
        }
        sync_cube();
    }
}

/// Every Elman step, tanh or (`relu`) ReLU; arguments as [`super::kernels::rnn_step`]'s
/// without the step and `hh`, and `W_hhᵀ` in vectors of `N`.
#[cube(launch)]
pub fn rnn_sequence<N: Size>(
    xp: &Tensor<f32>,
    w_t: &Tensor<Vector<f32, N>>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
    #[comptime] relu: bool,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden;
    let u = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = hs.len() / (t_len + 1);
    let mut h_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut len = Array::<u32>::new(rows);
    start_rows::<N>(
        &*hs, lengths, &mut h_sh, &mut len, d, b0, bn, u, hidden, rows,
    );
    let mut acc = Array::<Vector<f32, N>>::new(rows);
    let base = d * h * (h / N::value());
    sync_cube();
    for s in 0..t_len {
        recurrent_products::<N>(w_t, &h_sh, &mut acc, base, u, hidden, 1usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if b < bn {
                let live = s < len[r] as usize;
                #[unroll]
                for e in 0..N::value() {
                    let j = u * N::value() + e;
                    let i = (d * bn + b) * h + j;
                    if live {
                        let pre = xp[((d * t_len + s) * bn + b) * h + j] + acc[r].extract(e);
                        let mut out = pre.tanh();
                        if relu {
                            out = f32::new(0.0);
                            if pre > f32::new(0.0) {
                                out = pre;
                            }
                        }
                        h_sh[r * h + j] = out;
                    }
                    hs[(s + 1) * dbh + i] = h_sh[r * h + j];
                }
            }
        }
        sync_cube();
    }
}

/// Unit `u`'s share of the step's recurrent gradient for the cube's rows, `N` features at
/// once: `acc[r][e] = Σ_m dg[r, m] · W_hh[d][m, u·N + e]` over the `G·H` gate columns, reading
/// `dg` from `dg_sh: [rows, G·H]` and `W_hh` (`[D, G·H, H]` in vectors of `N`) from `w` from
/// vector `base` on.
#[cube]
fn recurrent_grads<N: Size>(
    w: &Tensor<Vector<f32, N>>,
    dg_sh: &Shared<[f32]>,
    acc: &mut Array<Vector<f32, N>>,
    base: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] gates: usize,
    #[comptime] rows: usize,
) {
    let per_row = hidden / N::value();
    let width = gates * hidden;
    #[unroll]
    for r in 0..rows {
        acc[r] = Vector::new(f32::new(0.0));
    }
    for m in 0..width {
        let wm = w[base + m * per_row + u];
        #[unroll]
        for r in 0..rows {
            acc[r] += Vector::new(dg_sh[r * width + m]) * wm;
        }
    }
}

/// The carried `dh` of the cube's rows from `dstate[0]` (`dstate: [S, D, B, H]`), `N`
/// features per vector; zero for rows past the batch.
#[cube]
fn start_grads<N: Size>(
    dstate: &Tensor<f32>,
    dh: &mut Array<Vector<f32, N>>,
    slot: usize,
    d: usize,
    b0: usize,
    bn: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
) {
    let dbh = dstate.len() / (slot + 1);
    #[unroll]
    for r in 0..rows {
        let mut v = Vector::new(f32::new(0.0));
        if b0 + r < bn {
            #[unroll]
            for e in 0..N::value() {
                v.insert(
                    e,
                    dstate[slot * dbh + (d * bn + b0 + r) * hidden + u * N::value() + e],
                );
            }
        }
        dh[r] = v;
    }
}

/// Writes `v` of the cube's rows into slot `slot` of `dstate: [S, D, B, H]`.
#[cube]
fn finish_grads<N: Size>(
    dstate: &mut Tensor<f32>,
    v: &Array<Vector<f32, N>>,
    slot: usize,
    slots: usize,
    d: usize,
    b0: usize,
    bn: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
) {
    let dbh = dstate.len() / slots;
    #[unroll]
    for r in 0..rows {
        if b0 + r < bn {
            #[unroll]
            for e in 0..N::value() {
                dstate[slot * dbh + (d * bn + b0 + r) * hidden + u * N::value() + e] =
                    v[r].extract(e);
            }
        }
    }
}

/// BPTT through every LSTM step in one launch; arguments as [`super::kernels::lstm_back`]'s
/// without the step and `rec`, and `W_hh` (`w: [D, 4H, H]`) in vectors of `N`. On return
/// `dstate` holds the gradients of `h_0` (the recurrent product included) and `c_0`.
#[cube(launch)]
pub fn lstm_sequence_back<N: Size>(
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    acts: &Tensor<f32>,
    cs: &Tensor<f32>,
    w: &Tensor<Vector<f32, N>>,
    dstate: &mut Tensor<f32>,
    dg: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden;
    let u = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = dstate.len() / 2;
    let gw = 4 * h;
    let mut dg_sh = Shared::<[f32]>::new_slice(comptime!(rows * 4 * hidden));
    let mut dh = Array::<Vector<f32, N>>::new(rows);
    let mut dc = Array::<Vector<f32, N>>::new(rows);
    start_grads::<N>(&*dstate, &mut dh, 0usize, d, b0, bn, u, hidden, rows);
    start_grads::<N>(&*dstate, &mut dc, 1usize, d, b0, bn, u, hidden, rows);
    let mut rec = Array::<Vector<f32, N>>::new(rows);
    #[unroll]
    for r in 0..rows {
        rec[r] = Vector::new(f32::new(0.0));
    }
    let one = f32::new(1.0);
    let zero = f32::new(0.0);
    let base = d * gw * (h / N::value());
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            let mut dhr = dh[r];
            let mut dcr = dc[r];
            #[unroll]
            for e in 0..N::value() {
                let j = u * N::value() + e;
                let mut gates = Vector::<f32, Const<4>>::new(zero);
                if b < bn {
                    let i = (d * bn + b) * h + j;
                    let g = rec[r].extract(e)
                        + dhr.extract(e)
                        + d_out[((d * t_len + s) * bn + b) * h + j];
                    let a = (s * dbh + i - j) * 4 + j;
                    let len = u32::cast_from(lengths[b]) as usize;
                    if s < len {
                        let ig = acts[a];
                        let fg = acts[a + h];
                        let gg = acts[a + 2 * h];
                        let og = acts[a + 3 * h];
                        let tc = cs[(s + 1) * dbh + i].tanh();
                        let dct = dcr.extract(e) + g * og * (one - tc * tc);
                        gates.insert(0usize, dct * gg * ig * (one - ig));
                        gates.insert(1usize, dct * cs[s * dbh + i] * fg * (one - fg));
                        gates.insert(2usize, dct * ig * (one - gg * gg));
                        gates.insert(3usize, g * tc * og * (one - og));
                        dhr.insert(e, zero);
                        dcr.insert(e, dct * fg);
                    } else {
                        dhr.insert(e, g);
                    }
                    save_four(
                        dg,
                        a,
                        h,
                        gates.extract(0usize),
                        gates.extract(1usize),
                        gates.extract(2usize),
                        gates.extract(3usize),
                    );
                }
                #[unroll]
                for k in 0..4 {
                    dg_sh[r * gw + k * h + j] = gates.extract(k);
                }
            }
            dh[r] = dhr;
            dc[r] = dcr;
        }
        sync_cube();
        recurrent_grads::<N>(w, &dg_sh, &mut rec, base, u, hidden, 4usize, rows);
        sync_cube();
    }
    #[unroll]
    for r in 0..rows {
        rec[r] += dh[r];
    }
    finish_grads::<N>(dstate, &rec, 0usize, 2usize, d, b0, bn, u, hidden, rows);
    finish_grads::<N>(dstate, &dc, 1usize, 2usize, d, b0, bn, u, hidden, rows);
}

/// BPTT through every GRU step in one launch; arguments as [`super::kernels::gru_back`]'s
/// without the step and `rec`, and `W_hh` (`w: [D, 3H, H]`) in vectors of `N`. On return
/// `dh` holds the gradient of `h_0`.
#[cube(launch)]
pub fn gru_sequence_back<N: Size>(
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    acts: &Tensor<f32>,
    hs: &Tensor<f32>,
    w: &Tensor<Vector<f32, N>>,
    dh: &mut Tensor<f32>,
    dg: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden;
    let u = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = dh.len();
    let gw = 3 * h;
    let mut dg_sh = Shared::<[f32]>::new_slice(comptime!(rows * 3 * hidden));
    let mut carried = Array::<Vector<f32, N>>::new(rows);
    start_grads::<N>(&*dh, &mut carried, 0usize, d, b0, bn, u, hidden, rows);
    let mut rec = Array::<Vector<f32, N>>::new(rows);
    #[unroll]
    for r in 0..rows {
        rec[r] = Vector::new(f32::new(0.0));
    }
    let one = f32::new(1.0);
    let zero = f32::new(0.0);
    let base = d * gw * (h / N::value());
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            let mut dhr = carried[r];
            #[unroll]
            for e in 0..N::value() {
                let j = u * N::value() + e;
                let mut gates = Vector::<f32, Const<4>>::new(zero);
                if b < bn {
                    let i = (d * bn + b) * h + j;
                    let g = rec[r].extract(e)
                        + dhr.extract(e)
                        + d_out[((d * t_len + s) * bn + b) * h + j];
                    let a = (s * dbh + i - j) * 4 + j;
                    let len = u32::cast_from(lengths[b]) as usize;
                    if s < len {
                        let rg = acts[a];
                        let z = acts[a + h];
                        let n = acts[a + 2 * h];
                        let hn = acts[a + 3 * h];
                        let dn = g * (one - z) * (one - n * n);
                        gates.insert(0usize, dn * hn * rg * (one - rg));
                        gates.insert(1usize, g * (hs[s * dbh + i] - n) * z * (one - z));
                        gates.insert(2usize, dn * rg);
                        gates.insert(3usize, dn);
                        dhr.insert(e, g * z);
                    } else {
                        dhr.insert(e, g);
                    }
                    save_four(
                        dg,
                        a,
                        h,
                        gates.extract(0usize),
                        gates.extract(1usize),
                        gates.extract(2usize),
                        gates.extract(3usize),
                    );
                }
                #[unroll]
                for k in 0..3 {
                    dg_sh[r * gw + k * h + j] = gates.extract(k);
                }
            }
            carried[r] = dhr;
        }
        sync_cube();
        recurrent_grads::<N>(w, &dg_sh, &mut rec, base, u, hidden, 3usize, rows);
        sync_cube();
    }
    #[unroll]
    for r in 0..rows {
        rec[r] += carried[r];
    }
    finish_grads::<N>(dh, &rec, 0usize, 1usize, d, b0, bn, u, hidden, rows);
}

/// BPTT through every Elman step in one launch; arguments as [`super::kernels::rnn_back`]'s
/// without the step and `rec`, and `W_hh` (`w: [D, H, H]`) in vectors of `N`. On return `dh`
/// holds the gradient of `h_0`.
#[cube(launch)]
pub fn rnn_sequence_back<N: Size>(
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &Tensor<f32>,
    w: &Tensor<Vector<f32, N>>,
    dh: &mut Tensor<f32>,
    dg: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
    #[comptime] relu: bool,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden;
    let u = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = dh.len();
    let mut dg_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut carried = Array::<Vector<f32, N>>::new(rows);
    start_grads::<N>(&*dh, &mut carried, 0usize, d, b0, bn, u, hidden, rows);
    let mut rec = Array::<Vector<f32, N>>::new(rows);
    #[unroll]
    for r in 0..rows {
        rec[r] = Vector::new(f32::new(0.0));
    }
    let zero = f32::new(0.0);
    let base = d * h * (h / N::value());
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            let mut dhr = carried[r];
            #[unroll]
            for e in 0..N::value() {
                let j = u * N::value() + e;
                let mut v = zero;
                if b < bn {
                    let i = (d * bn + b) * h + j;
                    let g = rec[r].extract(e)
                        + dhr.extract(e)
                        + d_out[((d * t_len + s) * bn + b) * h + j];
                    let len = u32::cast_from(lengths[b]) as usize;
                    if s < len {
                        let ht = hs[(s + 1) * dbh + i];
                        v = g * (f32::new(1.0) - ht * ht);
                        if relu {
                            v = zero;
                            if ht > zero {
                                v = g;
                            }
                        }
                        dhr.insert(e, zero);
                    } else {
                        dhr.insert(e, g);
                    }
                    dg[s * dbh + i] = v;
                }
                dg_sh[r * h + j] = v;
            }
            carried[r] = dhr;
        }
        sync_cube();
        recurrent_grads::<N>(w, &dg_sh, &mut rec, base, u, hidden, 1usize, rows);
        sync_cube();
    }
    #[unroll]
    for r in 0..rows {
        rec[r] += carried[r];
    }
    finish_grads::<N>(dh, &rec, 0usize, 1usize, d, b0, bn, u, hidden, rows);
}
