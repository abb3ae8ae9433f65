//! The persistent loops: one launch runs every step of a layer, forward or backward. Cube
//! `(d, slice)` owns `rows` batch rows of direction `d`; unit `u` owns hidden features
//! `u·N .. u·N + N` of those rows (`N` the vector width, also passed as `width` where a size
//! must be known when the kernel is compiled: a cube is `hidden / N` units wide). Per step the
//! units exchange the rows' `h` (forward) or gate gradients (backward) through shared memory,
//! `N` floats per load, and stream `W_hh` from global memory (the cache), `N` floats per load;
//! everything else a unit carries stays in its registers. Forward writes the same `hs`, `cs`
//! and `acts` as the per-step kernels of [`super::kernels`], backward the same `dg`, so the
//! two loops mix. Two cube barriers per step and none across cubes: the rows of a slice
//! depend only on each other.
//!
//! Layouts as in [`super::kernels`]; `w_t: [D, H, G·H]` is `W_hhᵀ` and `w: [D, G·H, H]` is
//! `W_hh`, both contiguous and read in vectors of `N`.

use cubecl::prelude::*;

use super::kernels::{save_four, sigmoid};

/// The cube's direction and first batch row for slices of `rows` rows.
#[cube]
fn slice_of(bn: usize, #[comptime] rows: usize) -> (usize, usize) {
    let slices = bn.div_ceil(rows);
    (CUBE_POS / slices, (CUBE_POS % slices) * rows)
}

/// `v` with every lane zero.
#[cube]
fn zero_vectors<N: Size>(v: &mut Array<Vector<f32, N>>, #[comptime] len: usize) {
    #[unroll]
    for q in 0..len {
        v[q] = Vector::new(f32::new(0.0));
    }
}

/// Unit `u`'s recurrent products for the cube's rows: `acc[g·rows + r][e] = Σ_k h[r, k] ·
/// W_hh[d][g·H + u·N + e, k]`, reading `h` from `h_sh: [rows, H / N]` and `W_hhᵀ` from `w_t`
/// from vector `base` on.
#[cube]
fn recurrent_products<N: Size>(
    w_t: &Tensor<Vector<f32, N>>,
    h_sh: &Shared<[Vector<f32, N>]>,
    acc: &mut Array<Vector<f32, N>>,
    base: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] gates: usize,
    #[comptime] rows: usize,
) {
    let per_gate = comptime!(hidden / width);
    zero_vectors::<N>(acc, comptime!(gates * rows));
    let mut hv = Array::<Vector<f32, N>>::new(rows);
    for k4 in 0..per_gate {
        #[unroll]
        for r in 0..rows {
            hv[r] = h_sh[r * per_gate + k4];
        }
        #[unroll]
        for e in 0..width {
            let w_row = base + (k4 * width + e) * gates * per_gate + u;
            #[unroll]
            for g in 0..gates {
                let w = w_t[w_row + g * per_gate];
                #[unroll]
                for r in 0..rows {
                    acc[g * rows + r] += Vector::new(hv[r].extract(e)) * w;
                }
            }
        }
    }
}

/// Unit `u`'s share of the step's recurrent gradient for the cube's rows: `acc[r][e] =
/// Σ_m dg[r, m] · W_hh[d][m, u·N + e]` over the `G·H` gate columns, reading `dg` from
/// `dg_sh: [rows, G·H / N]` and `W_hh` from `w` from vector `base` on.
#[cube]
fn recurrent_grads<N: Size>(
    w: &Tensor<Vector<f32, N>>,
    dg_sh: &Shared<[Vector<f32, N>]>,
    acc: &mut Array<Vector<f32, N>>,
    base: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] gates: usize,
    #[comptime] rows: usize,
) {
    let per_row = comptime!(hidden / width);
    let row_len = comptime!(gates * hidden / width);
    zero_vectors::<N>(acc, rows);
    let mut dv = Array::<Vector<f32, N>>::new(rows);
    for m4 in 0..row_len {
        #[unroll]
        for r in 0..rows {
            dv[r] = dg_sh[r * row_len + m4];
        }
        #[unroll]
        for e in 0..width {
            let wm = w[base + (m4 * width + e) * per_row + u];
            #[unroll]
            for r in 0..rows {
                acc[r] += Vector::new(dv[r].extract(e)) * wm;
            }
        }
    }
}

/// Stores feature `e`'s gate gradients `q` (four blocks, `h` apart from `a` on) in `dg` and
/// the first `gates` of them — the recurrent side's — into lane `e` of `gv`.
#[cube]
fn keep_gate_grads<N: Size>(
    dg: &mut Tensor<f32>,
    gv: &mut Array<Vector<f32, N>>,
    q: Vector<f32, Const<4>>,
    a: usize,
    h: usize,
    #[comptime] e: usize,
    #[comptime] gates: usize,
) {
    save_four(
        dg,
        a,
        h,
        q.extract(0usize),
        q.extract(1usize),
        q.extract(2usize),
        q.extract(3usize),
    );
    #[unroll]
    for k in 0..gates {
        let mut v = gv[k];
        v.insert(e, q.extract(k));
        gv[k] = v;
    }
}

/// Unit `u`'s features of the cube's rows in slot `slot` of `t: [S, D, B, H]`, one vector a
/// row (zero past the batch).
#[cube]
fn load_rows<N: Size>(
    t: &Tensor<f32>,
    v: &mut Array<Vector<f32, N>>,
    slot: usize,
    dbh: usize,
    d: usize,
    b0: usize,
    bn: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
) {
    #[unroll]
    for r in 0..rows {
        let mut row = Vector::new(f32::new(0.0));
        if b0 + r < bn {
            #[unroll]
            for e in 0..width {
                row.insert(
                    e,
                    t[slot * dbh + (d * bn + b0 + r) * hidden + u * width + e],
                );
            }
        }
        v[r] = row;
    }
}

/// Writes unit `u`'s features of the cube's rows into slot `slot` of `t: [S, D, B, H]`.
#[cube]
fn store_rows<N: Size>(
    t: &mut Tensor<f32>,
    v: &Array<Vector<f32, N>>,
    slot: usize,
    dbh: usize,
    d: usize,
    b0: usize,
    bn: usize,
    u: usize,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
) {
    #[unroll]
    for r in 0..rows {
        if b0 + r < bn {
            #[unroll]
            for e in 0..width {
                t[slot * dbh + (d * bn + b0 + r) * hidden + u * width + e] = v[r].extract(e);
            }
        }
    }
}

/// The rows' lengths (0 past the batch: such rows never count as running).
#[cube]
fn row_lengths(
    lengths: &Tensor<f32>,
    len: &mut Array<u32>,
    b0: usize,
    bn: usize,
    #[comptime] rows: usize,
) {
    #[unroll]
    for r in 0..rows {
        len[r] = 0;
        if b0 + r < bn {
            len[r] = u32::cast_from(lengths[b0 + r]);
        }
    }
}

/// Every LSTM (`lstm`) or GRU step; arguments as [`super::kernels::lstm_step`]'s and
/// [`super::kernels::gru_step`]'s without the step and `hh`. LSTM reads and writes `cs` and
/// never reads `b_hn`; GRU reads `b_hn` and never touches `cs` (either may be a placeholder).
#[cube(launch)]
pub fn gated_sequence<N: Size>(
    xp: &Tensor<f32>,
    w_t: &Tensor<Vector<f32, N>>,
    b_hn: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    cs: &mut Tensor<f32>,
    acts: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
    #[comptime] save: bool,
    #[comptime] lstm: bool,
) {
    let gates = comptime!(if lstm { 4usize } else { 3usize });
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let (d, b0) = slice_of(bn, rows);
    let dbh = hs.len() / (t_len + 1);
    let per = comptime!(hidden / width);
    let mut h_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * hidden / width));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    let mut hv = Array::<Vector<f32, N>>::new(rows);
    let mut c = Array::<Vector<f32, N>>::new(rows);
    load_rows::<N>(
        &*hs, &mut hv, 0usize, dbh, d, b0, bn, u, hidden, width, rows,
    );
    zero_vectors::<N>(&mut c, rows);
    if lstm {
        load_rows::<N>(&*cs, &mut c, 0usize, dbh, d, b0, bn, u, hidden, width, rows);
    }
    #[unroll]
    for r in 0..rows {
        h_sh[r * per + u] = hv[r];
    }
    let mut acc = Array::<Vector<f32, N>>::new(comptime!(gates * rows));
    let base = d * h * gates * per;
    sync_cube();
    for s in 0..t_len {
        recurrent_products::<N>(w_t, &h_sh, &mut acc, base, u, hidden, width, gates, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if s < len[r] as usize {
                let mut hr = hv[r];
                let mut cr = c[r];
                #[unroll]
                for e in 0..width {
                    let j = u * width + e;
                    let x = ((d * t_len + s) * bn + b) * gates * h + j;
                    let a = (s * dbh + (d * bn + b) * h) * 4 + j;
                    if lstm {
                        let ig = sigmoid(xp[x] + acc[r].extract(e));
                        let fg = sigmoid(xp[x + h] + acc[rows + r].extract(e));
                        let gg = (xp[x + 2 * h] + acc[2 * rows + r].extract(e)).tanh();
                        let og = sigmoid(xp[x + 3 * h] + acc[3 * rows + r].extract(e));
                        let ce = fg * cr.extract(e) + ig * gg;
                        cr.insert(e, ce);
                        hr.insert(e, og * ce.tanh());
                        if save {
                            save_four(acts, a, h, ig, fg, gg, og);
                        }
                    } else {
                        let rg = sigmoid(xp[x] + acc[r].extract(e));
                        let z = sigmoid(xp[x + h] + acc[rows + r].extract(e));
                        let hn = acc[2 * rows + r].extract(e) + b_hn[d * h + j];
                        let n = (xp[x + 2 * h] + rg * hn).tanh();
                        hr.insert(e, (f32::new(1.0) - z) * n + z * hr.extract(e));
                        if save {
                            save_four(acts, a, h, rg, z, n, hn);
                        }
                    }
                }
                hv[r] = hr;
                c[r] = cr;
                h_sh[r * per + u] = hr;
            }
        }
        store_rows::<N>(hs, &hv, s + 1, dbh, d, b0, bn, u, hidden, width, rows);
        if lstm && save {
            store_rows::<N>(cs, &c, s + 1, dbh, d, b0, bn, u, hidden, width, rows);
        }
        sync_cube();
    }
    if lstm && !save {
        // Inference keeps two cell-state slots; the last step's is `T mod 2`.
        store_rows::<N>(cs, &c, t_len % 2, dbh, d, b0, bn, u, hidden, width, rows);
    }
}

/// Every Elman step, tanh or (`relu`) ReLU; arguments as [`super::kernels::rnn_step`]'s
/// without the step and `hh`.
#[cube(launch)]
pub fn rnn_sequence<N: Size>(
    xp: &Tensor<f32>,
    w_t: &Tensor<Vector<f32, N>>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
    #[comptime] relu: bool,
) {
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let (d, b0) = slice_of(bn, rows);
    let dbh = hs.len() / (t_len + 1);
    let per = comptime!(hidden / width);
    let mut h_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * hidden / width));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    let mut hv = Array::<Vector<f32, N>>::new(rows);
    load_rows::<N>(
        &*hs, &mut hv, 0usize, dbh, d, b0, bn, u, hidden, width, rows,
    );
    #[unroll]
    for r in 0..rows {
        h_sh[r * per + u] = hv[r];
    }
    let mut acc = Array::<Vector<f32, N>>::new(rows);
    let base = d * h * per;
    sync_cube();
    for s in 0..t_len {
        recurrent_products::<N>(w_t, &h_sh, &mut acc, base, u, hidden, width, 1usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if s < len[r] as usize {
                let mut hr = hv[r];
                #[unroll]
                for e in 0..width {
                    let pre =
                        xp[((d * t_len + s) * bn + b) * h + u * width + e] + acc[r].extract(e);
                    let mut out = pre.tanh();
                    if relu {
                        out = f32::new(0.0);
                        if pre > f32::new(0.0) {
                            out = pre;
                        }
                    }
                    hr.insert(e, out);
                }
                hv[r] = hr;
                h_sh[r * per + u] = hr;
            }
        }
        store_rows::<N>(hs, &hv, s + 1, dbh, d, b0, bn, u, hidden, width, rows);
        sync_cube();
    }
}

/// BPTT through every LSTM (`lstm`) or GRU step in one launch; arguments as
/// [`super::kernels::lstm_back`]'s or [`super::kernels::gru_back`]'s without the step and
/// `rec`, with `states` the LSTM's cell states or the GRU's hidden states. On return `dstate`
/// holds the gradients of `h_0` (the recurrent product included) and, for LSTM, `c_0`.
#[cube(launch)]
pub fn gated_sequence_back<N: Size>(
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    acts: &Tensor<f32>,
    states: &Tensor<f32>,
    w: &Tensor<Vector<f32, N>>,
    dstate: &mut Tensor<f32>,
    dg: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
    #[comptime] lstm: bool,
) {
    let gates = comptime!(if lstm { 4usize } else { 3usize });
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let (d, b0) = slice_of(bn, rows);
    let dbh = dstate.len() / comptime!(if lstm { 2usize } else { 1usize });
    let per = comptime!(hidden / width);
    let mut dg_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * gates * hidden / width));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    // The carried `dh` and, for LSTM, `dc`.
    let mut dh = Array::<Vector<f32, N>>::new(rows);
    let mut dc = Array::<Vector<f32, N>>::new(rows);
    load_rows::<N>(
        &*dstate, &mut dh, 0usize, dbh, d, b0, bn, u, hidden, width, rows,
    );
    zero_vectors::<N>(&mut dc, rows);
    if lstm {
        load_rows::<N>(
            &*dstate, &mut dc, 1usize, dbh, d, b0, bn, u, hidden, width, rows,
        );
    }
    let mut rec = Array::<Vector<f32, N>>::new(rows);
    zero_vectors::<N>(&mut rec, rows);
    let mut gv = Array::<Vector<f32, N>>::new(gates);
    let one = f32::new(1.0);
    let base = d * gates * h * per;
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            zero_vectors::<N>(&mut gv, gates);
            if b < bn {
                let mut dhr = dh[r];
                let mut dcr = dc[r];
                #[unroll]
                for e in 0..width {
                    let j = u * width + e;
                    let i = (d * bn + b) * h + j;
                    let g = rec[r].extract(e)
                        + dhr.extract(e)
                        + d_out[((d * t_len + s) * bn + b) * h + j];
                    let a = (s * dbh + i - j) * 4 + j;
                    let mut q = Vector::<f32, Const<4>>::new(f32::new(0.0));
                    if s < len[r] as usize {
                        let a0 = acts[a];
                        let a1 = acts[a + h];
                        let a2 = acts[a + 2 * h];
                        let a3 = acts[a + 3 * h];
                        if lstm {
                            // i, f, g, o; `states` are the cell states.
                            let tc = states[(s + 1) * dbh + i].tanh();
                            let dct = dcr.extract(e) + g * a3 * (one - tc * tc);
                            q.insert(0usize, dct * a2 * a0 * (one - a0));
                            q.insert(1usize, dct * states[s * dbh + i] * a1 * (one - a1));
                            q.insert(2usize, dct * a0 * (one - a2 * a2));
                            q.insert(3usize, g * tc * a3 * (one - a3));
                            dhr.insert(e, f32::new(0.0));
                            dcr.insert(e, dct * a1);
                        } else {
                            // r, z, n, W_hn h + b_hn; `states` are the hidden states.
                            let dn = g * (one - a1) * (one - a2 * a2);
                            q.insert(0usize, dn * a3 * a0 * (one - a0));
                            q.insert(1usize, g * (states[s * dbh + i] - a2) * a1 * (one - a1));
                            q.insert(2usize, dn * a0);
                            q.insert(3usize, dn);
                            dhr.insert(e, g * a1);
                        }
                    } else {
                        dhr.insert(e, g);
                    }
                    keep_gate_grads::<N>(dg, &mut gv, q, a, h, e, gates);
                }
                dh[r] = dhr;
                dc[r] = dcr;
            }
            #[unroll]
            for k in 0..gates {
                dg_sh[(r * gates + k) * per + u] = gv[k];
            }
        }
        sync_cube();
        recurrent_grads::<N>(w, &dg_sh, &mut rec, base, u, hidden, width, gates, rows);
        sync_cube();
    }
    #[unroll]
    for r in 0..rows {
        rec[r] += dh[r];
    }
    store_rows::<N>(dstate, &rec, 0usize, dbh, d, b0, bn, u, hidden, width, rows);
    if lstm {
        store_rows::<N>(dstate, &dc, 1usize, dbh, d, b0, bn, u, hidden, width, rows);
    }
}

/// BPTT through every Elman step in one launch; arguments as [`super::kernels::rnn_back`]'s
/// without the step and `rec`. On return `dh` holds the gradient of `h_0`.
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
    #[comptime] width: usize,
    #[comptime] rows: usize,
    #[comptime] relu: bool,
) {
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let (d, b0) = slice_of(bn, rows);
    let dbh = dh.len();
    let per = comptime!(hidden / width);
    let mut dg_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * hidden / width));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    let mut carried = Array::<Vector<f32, N>>::new(rows);
    load_rows::<N>(
        &*dh,
        &mut carried,
        0usize,
        dbh,
        d,
        b0,
        bn,
        u,
        hidden,
        width,
        rows,
    );
    let mut rec = Array::<Vector<f32, N>>::new(rows);
    zero_vectors::<N>(&mut rec, rows);
    let zero = f32::new(0.0);
    let base = d * h * per;
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            let mut gv = Vector::<f32, N>::new(zero);
            if b < bn {
                let mut dhr = carried[r];
                #[unroll]
                for e in 0..width {
                    let i = (d * bn + b) * h + u * width + e;
                    let g = rec[r].extract(e)
                        + dhr.extract(e)
                        + d_out[((d * t_len + s) * bn + b) * h + u * width + e];
                    let mut v = zero;
                    if s < len[r] as usize {
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
                    gv.insert(e, v);
                }
                carried[r] = dhr;
            }
            dg_sh[r * per + u] = gv;
        }
        sync_cube();
        recurrent_grads::<N>(w, &dg_sh, &mut rec, base, u, hidden, width, 1usize, rows);
        sync_cube();
    }
    #[unroll]
    for r in 0..rows {
        rec[r] += carried[r];
    }
    store_rows::<N>(dh, &rec, 0usize, dbh, d, b0, bn, u, hidden, width, rows);
}
