//! The CubeCL kernels of the GPU op. Each launch covers one time step of every direction and
//! batch row (one unit per hidden feature), or a whole-sequence reordering.
//!
//! Layouts (all dense, row-major; `D` directions, `T` steps, `B` batch, `H` hidden, `S` the step
//! index, counted in each direction's own reading order):
//! - step-ordered inputs `[D, T, B, F]`: row `(d, s, b)` holds what direction `d` reads at step
//!   `s` — time `s` forwards, `len_b − 1 − s` backwards — and zeros once `s ≥ len_b`;
//! - states `[T + 1, D, B, H]`: entry `s` is the state step `s` starts from;
//! - per-step saves `[T, D, B, W]`: gate activations (`W` wide) or their gradients.
//!
//! Lengths arrive as an `f32` tensor `[B]` (exact below 2²⁴ steps).

use cubecl::prelude::*;

#[cube]
pub(super) fn sigmoid(x: f32) -> f32 {
    f32::new(1.0) / (f32::new(1.0) + (-x).exp())
}

/// `acts[a + k·h] = v_k` for the four blocks of a step's saved activations.
#[cube]
pub(super) fn save_four(
    acts: &mut Tensor<f32>,
    a: usize,
    h: usize,
    v0: f32,
    v1: f32,
    v2: f32,
    v3: f32,
) {
    acts[a] = v0;
    acts[a + h] = v1;
    acts[a + 2 * h] = v2;
    acts[a + 3 * h] = v3;
}

/// The time direction `d` reads at step `s` of a sequence of length `len` (`s < len`).
#[cube]
pub(super) fn time_of(d: usize, s: usize, len: usize) -> usize {
    if d == 0 { s } else { len - 1 - s }
}

/// `dst[d, s, b, f] = src[b, time_of(d, s), d·dir_offset + f]` (zero past the length), for
/// `src` read as rows of `row` values, `[B, T, row]`.
#[cube(launch)]
pub fn gather_steps(
    src: &Tensor<f32>,
    lengths: &Tensor<f32>,
    dst: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    width: u32,
    row: u32,
    dir_offset: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= dst.len() {
        terminate!();
    }
    let t_len = seq as usize;
    let bn = batch as usize;
    let w = width as usize;
    let f = i % w;
    let b = (i / w) % bn;
    let s = (i / (w * bn)) % t_len;
    let d = i / (w * bn * t_len);
    let len = u32::cast_from(lengths[b]) as usize;
    if s < len {
        let t = time_of(d, s, len);
        dst[i] = src[(b * t_len + t) * (row as usize) + d * (dir_offset as usize) + f];
    } else {
        dst[i] = f32::new(0.0);
    }
}

/// `dst[dst_offset + k] = src[src_offset + k]` for `k < count`.
#[cube(launch)]
pub fn copy_range(
    src: &Tensor<f32>,
    dst: &mut Tensor<f32>,
    src_offset: u32,
    dst_offset: u32,
    count: u32,
) {
    let k = ABSOLUTE_POS;
    if k >= count as usize {
        terminate!();
    }
    dst[dst_offset as usize + k] = src[src_offset as usize + k];
}

/// The element of a `[D, B, W]` tensor of any strides (a matmul's output).
#[cube]
fn at3(t: &Tensor<f32>, d: usize, b: usize, k: usize) -> f32 {
    t[d * t.stride(0) + b * t.stride(1) + k * t.stride(2)]
}

/// One LSTM step. `xp: [D, T, B, 4H]` (input projection plus both biases, step-ordered),
/// `hh: [D, B, 4H]` (`h_s · W_hhᵀ`); writes `hs[s + 1]`, the cell state and — when `save`
/// (training) — the activations `i, f, g, o` into `acts: [T, D, B, 4H]`. Training keeps every
/// cell state (`cs: [T + 1, D, B, H]`); inference keeps two (`cs: [2, D, B, H]`, step `s` in
/// slot `s mod 2`) and leaves `acts` alone. Finished rows carry their state.
#[cube(launch)]
pub fn lstm_step(
    xp: &Tensor<f32>,
    hh: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    cs: &mut Tensor<f32>,
    acts: &mut Tensor<f32>,
    step: u32,
    seq: u32,
    batch: u32,
    hidden: u32,
    #[comptime] save: bool,
) {
    let s = step as usize;
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    let dbh = hs.len() / (t_len + 1);
    if i >= dbh {
        terminate!();
    }
    let j = i % h;
    let b = (i / h) % bn;
    let d = i / (h * bn);
    let prev = s * dbh + i;
    let next = (s + 1) * dbh + i;
    let mut c_prev = prev;
    let mut c_next = next;
    if !save {
        c_prev = (s % 2) * dbh + i;
        c_next = ((s + 1) % 2) * dbh + i;
    }
    let len = u32::cast_from(lengths[b]) as usize;
    if s < len {
        let x = ((d * t_len + s) * bn + b) * 4 * h + j;
        let ig = sigmoid(xp[x] + at3(hh, d, b, j));
        let fg = sigmoid(xp[x + h] + at3(hh, d, b, h + j));
        let gg = (xp[x + 2 * h] + at3(hh, d, b, 2 * h + j)).tanh();
        let og = sigmoid(xp[x + 3 * h] + at3(hh, d, b, 3 * h + j));
        let c = fg * cs[c_prev] + ig * gg;
        cs[c_next] = c;
        hs[next] = og * c.tanh();
        if save {
            let a = (s * dbh + d * bn * h + b * h) * 4 + j;
            save_four(acts, a, h, ig, fg, gg, og);
        }
    } else {
        hs[next] = hs[prev];
        cs[c_next] = cs[c_prev];
    }
}

/// One GRU step. `xp: [D, T, B, 3H]` (input projection plus `b_ih` and `b_hr`, `b_hz`),
/// `hh: [D, B, 3H]`, `b_hn: [D·H]`; writes `hs[s + 1]` and, when `save` (training),
/// `r, z, n, W_hn h + b_hn` into `acts: [T, D, B, 4H]`.
#[cube(launch)]
pub fn gru_step(
    xp: &Tensor<f32>,
    hh: &Tensor<f32>,
    b_hn: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    acts: &mut Tensor<f32>,
    step: u32,
    seq: u32,
    batch: u32,
    hidden: u32,
    #[comptime] save: bool,
) {
    let s = step as usize;
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    let dbh = hs.len() / (t_len + 1);
    if i >= dbh {
        terminate!();
    }
    let j = i % h;
    let b = (i / h) % bn;
    let d = i / (h * bn);
    let prev = s * dbh + i;
    let next = (s + 1) * dbh + i;
    let len = u32::cast_from(lengths[b]) as usize;
    if s < len {
        let x = ((d * t_len + s) * bn + b) * 3 * h + j;
        let r = sigmoid(xp[x] + at3(hh, d, b, j));
        let z = sigmoid(xp[x + h] + at3(hh, d, b, h + j));
        let hn = at3(hh, d, b, 2 * h + j) + b_hn[d * h + j];
        let n = (xp[x + 2 * h] + r * hn).tanh();
        hs[next] = (f32::new(1.0) - z) * n + z * hs[prev];
        if save {
            let a = (s * dbh + d * bn * h + b * h) * 4 + j;
            save_four(acts, a, h, r, z, n, hn);
        }
    } else {
        hs[next] = hs[prev];
    }
}

/// One Elman step, tanh or (`relu`) ReLU. `xp: [D, T, B, H]`, `hh: [D, B, H]`; writes
/// `hs[s + 1]`, which is also what backward differentiates through.
#[cube(launch)]
pub fn rnn_step(
    xp: &Tensor<f32>,
    hh: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    step: u32,
    seq: u32,
    batch: u32,
    hidden: u32,
    #[comptime] relu: bool,
) {
    let s = step as usize;
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    let dbh = hs.len() / (t_len + 1);
    if i >= dbh {
        terminate!();
    }
    let j = i % h;
    let b = (i / h) % bn;
    let d = i / (h * bn);
    let prev = s * dbh + i;
    let next = (s + 1) * dbh + i;
    let len = u32::cast_from(lengths[b]) as usize;
    if s < len {
        let pre = xp[((d * t_len + s) * bn + b) * h + j] + at3(hh, d, b, j);
        let mut out = pre.tanh();
        if relu {
            out = f32::new(0.0);
            if pre > f32::new(0.0) {
                out = pre;
            }
        }
        hs[next] = out;
    } else {
        hs[next] = hs[prev];
    }
}

/// The packed output from the states: `out: [B, T, D·H]` (zero past each length), then `h_n`
/// (`hs[T]`) and, for LSTM (`has_c`), `c_n` (`cs[c_last]`).
#[cube(launch)]
pub fn emit_output(
    hs: &Tensor<f32>,
    cs: &Tensor<f32>,
    lengths: &Tensor<f32>,
    packed: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    dirs: u32,
    hidden: u32,
    c_last: u32,
    #[comptime] has_c: bool,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let dn = dirs as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    if i >= packed.len() {
        terminate!();
    }
    let dbh = dn * bn * h;
    let n_out = bn * t_len * dn * h;
    if i < n_out {
        let j = i % h;
        let d = (i / h) % dn;
        let t = (i / (h * dn)) % t_len;
        let b = i / (h * dn * t_len);
        let len = u32::cast_from(lengths[b]) as usize;
        if t < len {
            let s = time_of(d, t, len);
            packed[i] = hs[(s + 1) * dbh + (d * bn + b) * h + j];
        } else {
            packed[i] = f32::new(0.0);
        }
    } else if i < n_out + dbh {
        packed[i] = hs[t_len * dbh + i - n_out];
    } else {
        if has_c {
            packed[i] = cs[(c_last as usize) * dbh + i - n_out - dbh];
        }
    }
}

/// BPTT through one LSTM step. `rec: [D, B, H]` is the recurrent gradient from step `s + 1`
/// (`dG_{s+1} · W_hh`), `dstate: [2, D, B, H]` holds the carried `dh` (consumed) and `dc`,
/// `d_out: [D, T, B, H]` step-ordered; writes the pre-activation gradients into `dg[s]`.
#[cube(launch)]
pub fn lstm_back(
    rec: &Tensor<f32>,
    dstate: &mut Tensor<f32>,
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    acts: &Tensor<f32>,
    cs: &Tensor<f32>,
    dg: &mut Tensor<f32>,
    step: u32,
    seq: u32,
    batch: u32,
    hidden: u32,
) {
    let s = step as usize;
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    let dbh = dstate.len() / 2;
    if i >= dbh {
        terminate!();
    }
    let j = i % h;
    let b = (i / h) % bn;
    let d = i / (h * bn);
    let g = at3(rec, d, b, j) + dstate[i] + d_out[((d * t_len + s) * bn + b) * h + j];
    let a = (s * dbh + d * bn * h + b * h) * 4 + j;
    let len = u32::cast_from(lengths[b]) as usize;
    let one = f32::new(1.0);
    if s < len {
        let ig = acts[a];
        let fg = acts[a + h];
        let gg = acts[a + 2 * h];
        let og = acts[a + 3 * h];
        let tc = cs[(s + 1) * dbh + i].tanh();
        let dct = dstate[dbh + i] + g * og * (one - tc * tc);
        dg[a] = dct * gg * ig * (one - ig);
        dg[a + h] = dct * cs[s * dbh + i] * fg * (one - fg);
        dg[a + 2 * h] = dct * ig * (one - gg * gg);
        dg[a + 3 * h] = g * tc * og * (one - og);
        dstate[i] = f32::new(0.0);
        dstate[dbh + i] = dct * fg;
    } else {
        dstate[i] = g;
        dg[a] = f32::new(0.0);
        dg[a + h] = f32::new(0.0);
        dg[a + 2 * h] = f32::new(0.0);
        dg[a + 3 * h] = f32::new(0.0);
    }
}

/// BPTT through one GRU step. `dh: [D, B, H]` carries `z ⊙ dh` (and the whole `dh` past a
/// sequence's end); writes `dg[s]: [D, B, 4H]` as `dr, dz, dn ⊙ r` (the recurrent side's
/// pre-activation gradients) and `dn` (the input side's candidate gradient).
#[cube(launch)]
pub fn gru_back(
    rec: &Tensor<f32>,
    dh: &mut Tensor<f32>,
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    acts: &Tensor<f32>,
    hs: &Tensor<f32>,
    dg: &mut Tensor<f32>,
    step: u32,
    seq: u32,
    batch: u32,
    hidden: u32,
) {
    let s = step as usize;
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    let dbh = dh.len();
    if i >= dbh {
        terminate!();
    }
    let j = i % h;
    let b = (i / h) % bn;
    let d = i / (h * bn);
    let g = at3(rec, d, b, j) + dh[i] + d_out[((d * t_len + s) * bn + b) * h + j];
    let a = (s * dbh + d * bn * h + b * h) * 4 + j;
    let len = u32::cast_from(lengths[b]) as usize;
    let one = f32::new(1.0);
    if s < len {
        let r = acts[a];
        let z = acts[a + h];
        let n = acts[a + 2 * h];
        let hn = acts[a + 3 * h];
        let dn = g * (one - z) * (one - n * n);
        let dz = g * (hs[s * dbh + i] - n) * z * (one - z);
        let dr = dn * hn * r * (one - r);
        dg[a] = dr;
        dg[a + h] = dz;
        dg[a + 2 * h] = dn * r;
        dg[a + 3 * h] = dn;
        dh[i] = g * z;
    } else {
        dh[i] = g;
        dg[a] = f32::new(0.0);
        dg[a + h] = f32::new(0.0);
        dg[a + 2 * h] = f32::new(0.0);
        dg[a + 3 * h] = f32::new(0.0);
    }
}

/// BPTT through one Elman step: `dg[s]: [D, B, H]` from `h_{s+1}` in `hs`.
#[cube(launch)]
pub fn rnn_back(
    rec: &Tensor<f32>,
    dh: &mut Tensor<f32>,
    d_out: &Tensor<f32>,
    lengths: &Tensor<f32>,
    hs: &Tensor<f32>,
    dg: &mut Tensor<f32>,
    step: u32,
    seq: u32,
    batch: u32,
    hidden: u32,
    #[comptime] relu: bool,
) {
    let s = step as usize;
    let t_len = seq as usize;
    let bn = batch as usize;
    let h = hidden as usize;
    let i = ABSOLUTE_POS;
    let dbh = dh.len();
    if i >= dbh {
        terminate!();
    }
    let j = i % h;
    let b = (i / h) % bn;
    let d = i / (h * bn);
    let g = at3(rec, d, b, j) + dh[i] + d_out[((d * t_len + s) * bn + b) * h + j];
    let len = u32::cast_from(lengths[b]) as usize;
    if s < len {
        let ht = hs[(s + 1) * dbh + i];
        if relu {
            if ht > f32::new(0.0) {
                dg[s * dbh + i] = g;
            } else {
                dg[s * dbh + i] = f32::new(0.0);
            }
        } else {
            dg[s * dbh + i] = g * (f32::new(1.0) - ht * ht);
        }
        dh[i] = f32::new(0.0);
    } else {
        dh[i] = g;
        dg[s * dbh + i] = f32::new(0.0);
    }
}

/// `dx[b, t, :] = Σ_d dxs[d, s_d(t), b, :]` for `t` below the length, zero after; `dxs:
/// [D, T, B, I]` step-ordered, of any strides along its flattened `[D, T·B, I]` view.
#[cube(launch)]
pub fn scatter_steps(
    dxs: &Tensor<f32>,
    lengths: &Tensor<f32>,
    dx: &mut Tensor<f32>,
    seq: u32,
    batch: u32,
    dirs: u32,
    width: u32,
) {
    let t_len = seq as usize;
    let bn = batch as usize;
    let dn = dirs as usize;
    let w = width as usize;
    let i = ABSOLUTE_POS;
    if i >= dx.len() {
        terminate!();
    }
    let f = i % w;
    let t = (i / w) % t_len;
    let b = i / (w * t_len);
    let len = u32::cast_from(lengths[b]) as usize;
    let mut sum = f32::new(0.0);
    if t < len {
        for d in 0..dn {
            let s = time_of(d, t, len);
            sum += at3(dxs, d, s * bn + b, f);
        }
    }
    dx[i] = sum;
}
