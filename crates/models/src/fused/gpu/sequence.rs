//! The persistent loops: one launch runs every step of a layer, forward or backward. Cube
//! `(d, slice)` owns `rows` batch rows of direction `d`; unit `u` owns the `V` vectors
//! `u·V .. u·V + V` of `N` hidden features each of those rows (`N` the vector width, also
//! passed as `width`, and `V` as `vecs`, where a size must be known when the kernel is
//! compiled: a cube is `hidden / (N·V)` units wide; [`super::plan`] picks both). Per
//! step the units exchange the rows' `h` (forward) or gate gradients (backward) through
//! shared memory, `N` floats per load, and stream `W_hh` from global memory (the cache), `N`
//! floats per load; everything else a unit carries stays in its registers. Forward reads
//! each step's input projection, or projects the step's inputs itself (staged in shared
//! memory, `W_ih` streamed like `W_hh`) where [`super::plan`] says so. Forward writes
//! the same `hs`, `cs`, `acts` and packed output as the per-step kernels of
//! [`super::kernels`] and backward the same `dg`, so the two loops mix. Two cube barriers per
//! step and none across cubes: the rows of a slice depend only on each other.
//!
//! Layouts as in [`super::kernels`]; `w_t: [D, H, G·H]` is `W_hhᵀ` and `w: [D, G·H, H]` is
//! `W_hh`, both contiguous and read in vectors of `N`.

use cubecl::prelude::*;

use super::kernels::{save_four, sigmoid, time_of};

/// What a unit of a persistent loop owns: cube `(d, slice)` runs batch rows `b0 .. b0 + rows`
/// (those below `bn`) of direction `d`; unit `u` owns vectors `u·vecs .. u·vecs + vecs` of
/// `width` features each of those rows.
#[derive(CubeType, Clone)]
struct Block {
    d: usize,
    b0: usize,
    bn: usize,
    u: usize,
    #[cube(comptime)]
    hidden: usize,
    #[cube(comptime)]
    width: usize,
    #[cube(comptime)]
    rows: usize,
    #[cube(comptime)]
    vecs: usize,
}

#[cube]
impl Block {
    /// This unit's block of a batch of `bn` rows.
    fn new(
        bn: usize,
        #[comptime] hidden: usize,
        #[comptime] width: usize,
        #[comptime] rows: usize,
        #[comptime] vecs: usize,
    ) -> Block {
        let slices = bn.div_ceil(rows);
        Block {
            d: CUBE_POS / slices,
            b0: (CUBE_POS % slices) * rows,
            bn,
            u: UNIT_POS as usize,
            hidden,
            width,
            rows,
            vecs,
        }
    }

    /// Where vector `q` of row `r` starts in slot `slot` of a `[S, D, B, H]` tensor, `dbh`
    /// floats a slot.
    fn at(&self, slot: usize, dbh: usize, r: usize, q: usize) -> usize {
        slot * dbh
            + (self.d * self.bn + self.b0 + r) * self.hidden
            + (self.u * self.vecs + q) * self.width
    }
}

/// `v` with every lane zero.
#[cube]
fn zero_vectors<N: Size>(v: &mut Array<Vector<f32, N>>, #[comptime] len: usize) {
    #[unroll]
    for q in 0..len {
        v[q] = Vector::new(f32::new(0.0));
    }
}

/// Adds unit `u`'s share of the cube's rows times a weight matrix to `acc`: `acc[(g·rows +
/// r)·V + v][e] += Σ_k src[r, k] · W[d][g·H + (u·V + v)·N + e, k]` (`V` = `vecs`), reading
/// the rows from `src: [rows, K / N]` (`k_vecs` = `K / N` vectors a row: the rows' `h`, or
/// their inputs) and `Wᵀ: [D, K, G·H]` from `w_t` from vector `base` on.
#[cube]
fn products<N: Size>(
    w_t: &Tensor<Vector<f32, N>>,
    src: &Shared<[Vector<f32, N>]>,
    acc: &mut Array<Vector<f32, N>>,
    base: usize,
    u: usize,
    k_vecs: usize,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] gates: usize,
    #[comptime] rows: usize,
    #[comptime] vecs: usize,
) {
    let per_gate = comptime!(hidden / width);
    let mut sv = Array::<Vector<f32, N>>::new(rows);
    for k4 in 0..k_vecs {
        #[unroll]
        for r in 0..rows {
            sv[r] = src[r * k_vecs + k4];
        }
        #[unroll]
        for e in 0..width {
            let w_row = base + (k4 * width + e) * gates * per_gate + u * vecs;
            #[unroll]
            for g in 0..gates {
                #[unroll]
                for v in 0..vecs {
                    let w = w_t[w_row + g * per_gate + v];
                    #[unroll]
                    for r in 0..rows {
                        acc[(g * rows + r) * vecs + v] += Vector::new(sv[r].extract(e)) * w;
                    }
                }
            }
        }
    }
}

/// Step `s`'s inputs of the cube's rows, `[rows, I / N]` (`in_vecs` = `I / N`), from `xs:
/// [D, T, B, I]` (step order) into `x_sh`, the cube's units taking every `units`-th vector;
/// zeros past the batch.
#[cube]
fn stage_inputs<N: Size>(
    xs: &Tensor<Vector<f32, N>>,
    x_sh: &mut Shared<[Vector<f32, N>]>,
    s: usize,
    t_len: usize,
    in_vecs: usize,
    blk: &Block,
) {
    let count = blk.rows * in_vecs;
    let units = CUBE_DIM as usize;
    for i in 0..count.div_ceil(units) {
        let at = i * units + blk.u;
        if at < count {
            let r = at / in_vecs;
            let mut x = Vector::new(f32::new(0.0));
            if blk.b0 + r < blk.bn {
                x = xs[((blk.d * t_len + s) * blk.bn + blk.b0 + r) * in_vecs + at % in_vecs];
            }
            x_sh[at] = x;
        }
    }
}

/// Unit `u`'s share of the step's recurrent gradient for the cube's rows: `acc[r·V + v][e] =
/// Σ_m dg[r, m] · W_hh[d][m, (u·V + v)·N + e]` over the `G·H` gate columns (`V` = `vecs`),
/// reading `dg` from `dg_sh: [rows, G·H / N]` and `W_hh` from `w` from vector `base` on.
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
    #[comptime] vecs: usize,
) {
    let per_row = comptime!(hidden / width);
    let row_len = comptime!(gates * hidden / width);
    zero_vectors::<N>(acc, comptime!(rows * vecs));
    let mut dv = Array::<Vector<f32, N>>::new(rows);
    for m4 in 0..row_len {
        #[unroll]
        for r in 0..rows {
            dv[r] = dg_sh[r * row_len + m4];
        }
        #[unroll]
        for e in 0..width {
            #[unroll]
            for v in 0..vecs {
                let wm = w[base + (m4 * width + e) * per_row + u * vecs + v];
                #[unroll]
                for r in 0..rows {
                    acc[r * vecs + v] += Vector::new(dv[r].extract(e)) * wm;
                }
            }
        }
    }
}

/// Stores feature `e`'s gate gradients `q` (four blocks, `h` apart from `a` on) in `dg` and
/// the first `gates` of them — the recurrent side's — into lane `e` of `gv[k·V + v]`.
#[cube]
fn keep_gate_grads<N: Size>(
    dg: &mut Tensor<f32>,
    gv: &mut Array<Vector<f32, N>>,
    q: Vector<f32, Const<4>>,
    a: usize,
    h: usize,
    #[comptime] e: usize,
    #[comptime] v: usize,
    #[comptime] gates: usize,
    #[comptime] vecs: usize,
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
        let mut g = gv[k * vecs + v];
        g.insert(e, q.extract(k));
        gv[k * vecs + v] = g;
    }
}

/// The block's features in slot `slot` of `t: [S, D, B, H]`, `vecs` vectors a row (`v[r·V +
/// v]`; zero past the batch).
#[cube]
fn load_rows<N: Size>(
    t: &Tensor<f32>,
    v: &mut Array<Vector<f32, N>>,
    slot: usize,
    dbh: usize,
    blk: &Block,
) {
    #[unroll]
    for r in 0..blk.rows {
        #[unroll]
        for q in 0..blk.vecs {
            let mut row = Vector::new(f32::new(0.0));
            if blk.b0 + r < blk.bn {
                let at = blk.at(slot, dbh, r, q);
                #[unroll]
                for e in 0..blk.width {
                    row.insert(e, t[at + e]);
                }
            }
            v[r * blk.vecs + q] = row;
        }
    }
}

/// Writes the block's features (`v[r·V + v]`) into slot `slot` of `t: [S, D, B, H]`.
#[cube]
fn store_rows<N: Size>(
    t: &mut Tensor<f32>,
    v: &Array<Vector<f32, N>>,
    slot: usize,
    dbh: usize,
    blk: &Block,
) {
    #[unroll]
    for r in 0..blk.rows {
        if blk.b0 + r < blk.bn {
            #[unroll]
            for q in 0..blk.vecs {
                let at = blk.at(slot, dbh, r, q);
                #[unroll]
                for e in 0..blk.width {
                    t[at + e] = v[r * blk.vecs + q].extract(e);
                }
            }
        }
    }
}

/// Writes step `s`'s new state of the block's features into the packed output `out: [B, T,
/// D·H]` (`dn` directions) at the time the step read, or zeros at time `s` once a row is past
/// its length (so every time is written once over the loop).
#[cube]
fn emit_rows<N: Size>(
    packed: &mut Tensor<f32>,
    v: &Array<Vector<f32, N>>,
    len: &Array<u32>,
    s: usize,
    t_len: usize,
    dn: usize,
    blk: &Block,
) {
    #[unroll]
    for r in 0..blk.rows {
        let b = blk.b0 + r;
        if b < blk.bn {
            let l = len[r] as usize;
            let running = s < l;
            let mut t = s;
            if running {
                t = time_of(blk.d, s, l);
            }
            #[unroll]
            for q in 0..blk.vecs {
                let at = ((b * t_len + t) * dn + blk.d) * blk.hidden
                    + (blk.u * blk.vecs + q) * blk.width;
                #[unroll]
                for e in 0..blk.width {
                    let mut x = f32::new(0.0);
                    if running {
                        x = v[r * blk.vecs + q].extract(e);
                    }
                    packed[at + e] = x;
                }
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
/// [`super::kernels::gru_step`]'s without the step and `hh`. The input side: every step's
/// projection `xp: [D, T·B, G·H]` (biases added, `in_vecs` = 0); or the inputs in step order
/// `xs: [D, T·B, I]` (`in_vecs` = `I / N`), `w_ih_t: [D, I, G·H]` (`W_ihᵀ`, contiguous) and
/// in `xp` the input side's bias `[D, G·H]` (`b_ih + b_hh`, GRU's `b_hn` left out), from
/// which the loop projects each step itself; the side not read may be placeholders. LSTM
/// reads and writes `cs` and never reads `b_hn`; GRU reads `b_hn` and never touches `cs`
/// (either may be a placeholder). Also writes what [`super::kernels::emit_output`] would:
/// `packed` holds the output `[B, T, D·H]` (zero past each length), then `h_n` and, for
/// LSTM, `c_n`.
#[cube(launch)]
pub fn gated_sequence<N: Size>(
    xp: &Tensor<f32>,
    xs: &Tensor<Vector<f32, N>>,
    w_ih_t: &Tensor<Vector<f32, N>>,
    w_t: &Tensor<Vector<f32, N>>,
    b_hn: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    cs: &mut Tensor<f32>,
    acts: &mut Tensor<f32>,
    packed: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
    #[comptime] vecs: usize,
    #[comptime] save: bool,
    #[comptime] lstm: bool,
    #[comptime] in_vecs: usize,
) {
    let in_loop = comptime!(in_vecs > 0);
    let gates = comptime!(if lstm { 4usize } else { 3usize });
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let blk = Block::new(bn, hidden, width, rows, vecs);
    let (d, b0) = (blk.d, blk.b0);
    let dbh = hs.len() / (t_len + 1);
    let dn = dbh / (bn * h);
    let per = comptime!(hidden / width);
    let mut h_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * hidden / width));
    let mut x_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * in_vecs.max(1)));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    let mut hv = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    let mut c = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    // GRU's input side of `n`, which its reset gate leaves out.
    let mut xn = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    load_rows::<N>(&*hs, &mut hv, 0usize, dbh, &blk);
    zero_vectors::<N>(&mut c, comptime!(rows * vecs));
    if lstm {
        load_rows::<N>(&*cs, &mut c, 0usize, dbh, &blk);
    }
    #[unroll]
    for r in 0..rows {
        #[unroll]
        for v in 0..vecs {
            h_sh[r * per + u * vecs + v] = hv[r * vecs + v];
        }
    }
    if in_loop {
        stage_inputs::<N>(xs, &mut x_sh, 0usize, t_len, in_vecs, &blk);
    }
    let mut acc = Array::<Vector<f32, N>>::new(comptime!(gates * rows * vecs));
    let base = d * h * gates * per;
    let base_x = d * comptime!(in_vecs * width * gates * per);
    sync_cube();
    for s in 0..t_len {
        zero_vectors::<N>(&mut acc, comptime!(gates * rows * vecs));
        if in_loop {
            products::<N>(
                w_ih_t, &x_sh, &mut acc, base_x, u, in_vecs, hidden, width, gates, rows, vecs,
            );
            if !lstm {
                #[unroll]
                for k in 0..comptime!(rows * vecs) {
                    xn[k] = acc[comptime!(2 * rows * vecs) + k];
                    acc[comptime!(2 * rows * vecs) + k] = Vector::new(f32::new(0.0));
                }
            }
        }
        products::<N>(
            w_t, &h_sh, &mut acc, base, u, per, hidden, width, gates, rows, vecs,
        );
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if s < len[r] as usize {
                #[unroll]
                for v in 0..vecs {
                    let k = r * vecs + v;
                    let mut hr = hv[k];
                    let mut cr = c[k];
                    #[unroll]
                    for e in 0..width {
                        let j = (u * vecs + v) * width + e;
                        let a = (s * dbh + (d * bn + b) * h) * 4 + j;
                        // The input side of each gate: the bias, the projection added in
                        // `acc` (GRU's `n`: in `xn`); or the projection made before the loop.
                        let at = if in_loop {
                            d * gates * h + j
                        } else {
                            ((d * t_len + s) * bn + b) * gates * h + j
                        };
                        let x0 = xp[at];
                        let x1 = xp[at + h];
                        let mut x2 = xp[at + 2 * h];
                        let mut x3 = f32::new(0.0);
                        if lstm {
                            x3 = xp[at + 3 * h];
                        } else if in_loop {
                            x2 += xn[k].extract(e);
                        }
                        let p0 = acc[k].extract(e);
                        let p1 = acc[comptime!(rows * vecs) + k].extract(e);
                        let p2 = acc[comptime!(2 * rows * vecs) + k].extract(e);
                        if lstm {
                            let p3 = acc[comptime!(3 * rows * vecs) + k].extract(e);
                            let ig = sigmoid(x0 + p0);
                            let fg = sigmoid(x1 + p1);
                            let gg = (x2 + p2).tanh();
                            let og = sigmoid(x3 + p3);
                            let ce = fg * cr.extract(e) + ig * gg;
                            cr.insert(e, ce);
                            hr.insert(e, og * ce.tanh());
                            if save {
                                save_four(acts, a, h, ig, fg, gg, og);
                            }
                        } else {
                            let rg = sigmoid(x0 + p0);
                            let z = sigmoid(x1 + p1);
                            let hn = p2 + b_hn[d * h + j];
                            let n = (x2 + rg * hn).tanh();
                            hr.insert(e, (f32::new(1.0) - z) * n + z * hr.extract(e));
                            if save {
                                save_four(acts, a, h, rg, z, n, hn);
                            }
                        }
                    }
                    hv[k] = hr;
                    c[k] = cr;
                    h_sh[r * per + u * vecs + v] = hr;
                }
            }
        }
        if in_loop && s + 1 < t_len {
            stage_inputs::<N>(xs, &mut x_sh, s + 1, t_len, in_vecs, &blk);
        }
        store_rows::<N>(hs, &hv, s + 1, dbh, &blk);
        emit_rows::<N>(packed, &hv, &len, s, t_len, dn, &blk);
        if lstm && save {
            store_rows::<N>(cs, &c, s + 1, dbh, &blk);
        }
        sync_cube();
    }
    // `h_n` and `c_n` follow the output in `packed`.
    store_rows::<N>(packed, &hv, t_len, dbh, &blk);
    if lstm {
        store_rows::<N>(packed, &c, t_len + 1, dbh, &blk);
    }
    if lstm && !save {
        // Inference keeps two cell-state slots; the last step's is `T mod 2`.
        store_rows::<N>(cs, &c, t_len % 2, dbh, &blk);
    }
}

/// Every Elman step, tanh or (`relu`) ReLU; arguments as [`super::kernels::rnn_step`]'s
/// without the step and `hh`, the input side as [`gated_sequence`]'s (`xp`, `xs`, `w_ih_t`,
/// `in_vecs`); writes `packed` as [`gated_sequence`] does (no `c_n`).
#[cube(launch)]
pub fn rnn_sequence<N: Size>(
    xp: &Tensor<f32>,
    xs: &Tensor<Vector<f32, N>>,
    w_ih_t: &Tensor<Vector<f32, N>>,
    w_t: &Tensor<Vector<f32, N>>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    packed: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    #[comptime] hidden: usize,
    #[comptime] width: usize,
    #[comptime] rows: usize,
    #[comptime] vecs: usize,
    #[comptime] relu: bool,
    #[comptime] in_vecs: usize,
) {
    let in_loop = comptime!(in_vecs > 0);
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let blk = Block::new(bn, hidden, width, rows, vecs);
    let (d, b0) = (blk.d, blk.b0);
    let dbh = hs.len() / (t_len + 1);
    let dn = dbh / (bn * h);
    let per = comptime!(hidden / width);
    let mut h_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * hidden / width));
    let mut x_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * in_vecs.max(1)));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    let mut hv = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    load_rows::<N>(&*hs, &mut hv, 0usize, dbh, &blk);
    #[unroll]
    for r in 0..rows {
        #[unroll]
        for v in 0..vecs {
            h_sh[r * per + u * vecs + v] = hv[r * vecs + v];
        }
    }
    if in_loop {
        stage_inputs::<N>(xs, &mut x_sh, 0usize, t_len, in_vecs, &blk);
    }
    let mut acc = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    let base = d * h * per;
    let base_x = d * comptime!(in_vecs * width * per);
    sync_cube();
    for s in 0..t_len {
        zero_vectors::<N>(&mut acc, comptime!(rows * vecs));
        if in_loop {
            products::<N>(
                w_ih_t, &x_sh, &mut acc, base_x, u, in_vecs, hidden, width, 1usize, rows, vecs,
            );
        }
        products::<N>(
            w_t, &h_sh, &mut acc, base, u, per, hidden, width, 1usize, rows, vecs,
        );
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if s < len[r] as usize {
                #[unroll]
                for v in 0..vecs {
                    let k = r * vecs + v;
                    let mut hr = hv[k];
                    #[unroll]
                    for e in 0..width {
                        let j = (u * vecs + v) * width + e;
                        // The input side: the bias, the projection added in `acc`; or the
                        // projection made before the loop.
                        let at = if in_loop {
                            d * h + j
                        } else {
                            ((d * t_len + s) * bn + b) * h + j
                        };
                        let x = xp[at];
                        let pre = x + acc[k].extract(e);
                        let mut out = pre.tanh();
                        if relu {
                            out = f32::new(0.0);
                            if pre > f32::new(0.0) {
                                out = pre;
                            }
                        }
                        hr.insert(e, out);
                    }
                    hv[k] = hr;
                    h_sh[r * per + u * vecs + v] = hr;
                }
            }
        }
        if in_loop && s + 1 < t_len {
            stage_inputs::<N>(xs, &mut x_sh, s + 1, t_len, in_vecs, &blk);
        }
        store_rows::<N>(hs, &hv, s + 1, dbh, &blk);
        emit_rows::<N>(packed, &hv, &len, s, t_len, dn, &blk);
        sync_cube();
    }
    // `h_n` follows the output in `packed`.
    store_rows::<N>(packed, &hv, t_len, dbh, &blk);
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
    #[comptime] vecs: usize,
    #[comptime] lstm: bool,
) {
    let gates = comptime!(if lstm { 4usize } else { 3usize });
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let blk = Block::new(bn, hidden, width, rows, vecs);
    let (d, b0) = (blk.d, blk.b0);
    let dbh = dstate.len() / comptime!(if lstm { 2usize } else { 1usize });
    let per = comptime!(hidden / width);
    let mut dg_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * gates * hidden / width));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    // The carried `dh` and, for LSTM, `dc`.
    let mut dh = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    let mut dc = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    load_rows::<N>(&*dstate, &mut dh, 0usize, dbh, &blk);
    zero_vectors::<N>(&mut dc, comptime!(rows * vecs));
    if lstm {
        load_rows::<N>(&*dstate, &mut dc, 1usize, dbh, &blk);
    }
    let mut rec = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    zero_vectors::<N>(&mut rec, comptime!(rows * vecs));
    let mut gv = Array::<Vector<f32, N>>::new(comptime!(gates * vecs));
    let one = f32::new(1.0);
    let base = d * gates * h * per;
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            zero_vectors::<N>(&mut gv, comptime!(gates * vecs));
            if b < bn {
                #[unroll]
                for v in 0..vecs {
                    let k = r * vecs + v;
                    let mut dhr = dh[k];
                    let mut dcr = dc[k];
                    #[unroll]
                    for e in 0..width {
                        let j = (u * vecs + v) * width + e;
                        let i = (d * bn + b) * h + j;
                        let g = rec[k].extract(e)
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
                        keep_gate_grads::<N>(dg, &mut gv, q, a, h, e, v, gates, vecs);
                    }
                    dh[k] = dhr;
                    dc[k] = dcr;
                }
            }
            #[unroll]
            for g in 0..gates {
                #[unroll]
                for v in 0..vecs {
                    dg_sh[(r * gates + g) * per + u * vecs + v] = gv[g * vecs + v];
                }
            }
        }
        sync_cube();
        recurrent_grads::<N>(
            w, &dg_sh, &mut rec, base, u, hidden, width, gates, rows, vecs,
        );
        sync_cube();
    }
    #[unroll]
    for k in 0..comptime!(rows * vecs) {
        rec[k] += dh[k];
    }
    store_rows::<N>(dstate, &rec, 0usize, dbh, &blk);
    if lstm {
        store_rows::<N>(dstate, &dc, 1usize, dbh, &blk);
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
    #[comptime] vecs: usize,
    #[comptime] relu: bool,
) {
    let (t_len, bn, h, u) = (seq as usize, batch as usize, hidden, UNIT_POS as usize);
    let blk = Block::new(bn, hidden, width, rows, vecs);
    let (d, b0) = (blk.d, blk.b0);
    let dbh = dh.len();
    let per = comptime!(hidden / width);
    let mut dg_sh = Shared::<[Vector<f32, N>]>::new_slice(comptime!(rows * hidden / width));
    let mut len = Array::<u32>::new(rows);
    row_lengths(lengths, &mut len, b0, bn, rows);
    let mut carried = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    load_rows::<N>(&*dh, &mut carried, 0usize, dbh, &blk);
    let mut rec = Array::<Vector<f32, N>>::new(comptime!(rows * vecs));
    zero_vectors::<N>(&mut rec, comptime!(rows * vecs));
    let zero = f32::new(0.0);
    let base = d * h * per;
    for step in 0..t_len {
        let s = t_len - 1 - step;
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            #[unroll]
            for v in 0..vecs {
                let k = r * vecs + v;
                let mut gv = Vector::<f32, N>::new(zero);
                if b < bn {
                    let mut dhr = carried[k];
                    #[unroll]
                    for e in 0..width {
                        let j = (u * vecs + v) * width + e;
                        let i = (d * bn + b) * h + j;
                        let g = rec[k].extract(e)
                            + dhr.extract(e)
                            + d_out[((d * t_len + s) * bn + b) * h + j];
                        let mut x = zero;
                        if s < len[r] as usize {
                            let ht = hs[(s + 1) * dbh + i];
                            x = g * (f32::new(1.0) - ht * ht);
                            if relu {
                                x = zero;
                                if ht > zero {
                                    x = g;
                                }
                            }
                            dhr.insert(e, zero);
                        } else {
                            dhr.insert(e, g);
                        }
                        dg[s * dbh + i] = x;
                        gv.insert(e, x);
                    }
                    carried[k] = dhr;
                }
                dg_sh[r * per + u * vecs + v] = gv;
            }
        }
        sync_cube();
        recurrent_grads::<N>(
            w, &dg_sh, &mut rec, base, u, hidden, width, 1usize, rows, vecs,
        );
        sync_cube();
    }
    #[unroll]
    for k in 0..comptime!(rows * vecs) {
        rec[k] += carried[k];
    }
    store_rows::<N>(dh, &rec, 0usize, dbh, &blk);
}
