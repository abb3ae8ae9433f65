//! The persistent forward: one launch runs every step of a layer. Cube `(d, slice)` owns
//! `rows` batch rows of direction `d`; unit `j` owns hidden feature `j` of those rows (a cube
//! is `hidden` units wide, so `hidden ≤ 256`). The rows' `h` lives in shared memory and each
//! unit's cell states in registers; every step streams `W_hhᵀ` from global memory (the cache)
//! into the recurrent products, applies the gates and writes the same `hs`, `cs` and `acts`
//! as the per-step kernels of [`super::kernels`], so backward is shared. Two cube barriers
//! per step and none across cubes: the rows of a slice depend only on each other.
//!
//! Layouts as in [`super::kernels`]; `w_t: [D, H, G·H]` is `W_hhᵀ` made contiguous.

use cubecl::prelude::*;

use super::kernels::sigmoid;

/// Unit `j`'s recurrent products for the cube's rows: `acc[g·rows + r] = Σ_k h[r, k] ·
/// W_hh[d][g·H + j, k]`, reading `h` from `h_sh: [rows, H]` and `W_hhᵀ` from `w_t` at `base`.
#[cube]
fn recurrent_products(
    w_t: &Tensor<f32>,
    h_sh: &Shared<[f32]>,
    acc: &mut Array<f32>,
    base: usize,
    j: usize,
    #[comptime] hidden: usize,
    #[comptime] gates: usize,
    #[comptime] rows: usize,
) {
    #[unroll]
    for q in 0..comptime!(gates * rows) {
        acc[q] = f32::new(0.0);
    }
    let mut hk = Array::<f32>::new(rows);
    for k in 0..hidden {
        #[unroll]
        for r in 0..rows {
            hk[r] = h_sh[r * hidden + k];
        }
        let w_row = base + k * gates * hidden + j;
        #[unroll]
        for g in 0..gates {
            let w = w_t[w_row + g * hidden];
            #[unroll]
            for r in 0..rows {
                acc[g * rows + r] += hk[r] * w;
            }
        }
    }
}

/// Fills `h_sh` with the cube's rows of `h_0` (`hs[0]`) and `len` with their lengths; rows
/// past the batch get length 0 and never write.
#[cube]
fn start_rows(
    hs: &Tensor<f32>,
    lengths: &Tensor<f32>,
    h_sh: &mut Shared<[f32]>,
    len: &mut Array<u32>,
    d: usize,
    b0: usize,
    bn: usize,
    j: usize,
    #[comptime] hidden: usize,
    #[comptime] rows: usize,
) {
    #[unroll]
    for r in 0..rows {
        let b = b0 + r;
        len[r] = 0;
        h_sh[r * hidden + j] = f32::new(0.0);
        if b < bn {
            len[r] = u32::cast_from(lengths[b]);
            h_sh[r * hidden + j] = hs[(d * bn + b) * hidden + j];
        }
    }
}

/// Every LSTM step; arguments as [`super::kernels::lstm_step`]'s without the step and `hh`.
#[cube(launch)]
pub fn lstm_sequence(
    xp: &Tensor<f32>,
    w_t: &Tensor<f32>,
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
    let j = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = hs.len() / (t_len + 1);
    let mut h_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut len = Array::<u32>::new(rows);
    start_rows(
        &*hs, lengths, &mut h_sh, &mut len, d, b0, bn, j, hidden, rows,
    );
    let mut c = Array::<f32>::new(rows);
    #[unroll]
    for r in 0..rows {
        c[r] = f32::new(0.0);
        if b0 + r < bn {
            c[r] = cs[(d * bn + b0 + r) * h + j];
        }
    }
    let mut acc = Array::<f32>::new(comptime!(4 * rows));
    sync_cube();
    for s in 0..t_len {
        recurrent_products(w_t, &h_sh, &mut acc, d * h * 4 * h, j, hidden, 4usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if b < bn {
                let i = (d * bn + b) * h + j;
                if s < len[r] as usize {
                    let x = ((d * t_len + s) * bn + b) * 4 * h + j;
                    let ig = sigmoid(xp[x] + acc[r]);
                    let fg = sigmoid(xp[x + h] + acc[rows + r]);
                    let gg = (xp[x + 2 * h] + acc[2 * rows + r]).tanh();
                    let og = sigmoid(xp[x + 3 * h] + acc[3 * rows + r]);
                    c[r] = fg * c[r] + ig * gg;
                    h_sh[r * h + j] = og * c[r].tanh();
                    if save {
                        let a = (s * dbh + i - j) * 4 + j;
                        acts[a] = ig;
                        acts[a + h] = fg;
                        acts[a + 2 * h] = gg;
                        acts[a + 3 * h] = og;
                    }
                }
                hs[(s + 1) * dbh + i] = h_sh[r * h + j];
                if save {
                    cs[(s + 1) * dbh + i] = c[r];
                }
            }
        }
        sync_cube();
    }
    if !save {
        // Inference keeps two cell-state slots; the last step's is `T mod 2`.
        #[unroll]
        for r in 0..rows {
            if b0 + r < bn {
                cs[(t_len % 2) * dbh + (d * bn + b0 + r) * h + j] = c[r];
            }
        }
    }
}

/// Every GRU step; arguments as [`super::kernels::gru_step`]'s without the step and `hh`.
#[cube(launch)]
pub fn gru_sequence(
    xp: &Tensor<f32>,
    w_t: &Tensor<f32>,
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
    let j = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = hs.len() / (t_len + 1);
    let mut h_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut len = Array::<u32>::new(rows);
    start_rows(
        &*hs, lengths, &mut h_sh, &mut len, d, b0, bn, j, hidden, rows,
    );
    let bias_n = b_hn[d * h + j];
    let mut acc = Array::<f32>::new(comptime!(3 * rows));
    sync_cube();
    for s in 0..t_len {
        recurrent_products(w_t, &h_sh, &mut acc, d * h * 3 * h, j, hidden, 3usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if b < bn {
                let i = (d * bn + b) * h + j;
                if s < len[r] as usize {
                    let x = ((d * t_len + s) * bn + b) * 3 * h + j;
                    let rg = sigmoid(xp[x] + acc[r]);
                    let z = sigmoid(xp[x + h] + acc[rows + r]);
                    let hn = acc[2 * rows + r] + bias_n;
                    let n = (xp[x + 2 * h] + rg * hn).tanh();
                    h_sh[r * h + j] = (f32::new(1.0) - z) * n + z * h_sh[r * h + j];
                    if save {
                        let a = (s * dbh + i - j) * 4 + j;
                        acts[a] = rg;
                        acts[a + h] = z;
                        acts[a + 2 * h] = n;
                        acts[a + 3 * h] = hn;
                    }
                }
                hs[(s + 1) * dbh + i] = h_sh[r * h + j];
            }
        }
        sync_cube();
    }
}

/// Every Elman step, tanh or (`relu`) ReLU; arguments as [`super::kernels::rnn_step`]'s
/// without the step and `hh`.
#[cube(launch)]
pub fn rnn_sequence(
    xp: &Tensor<f32>,
    w_t: &Tensor<f32>,
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
    let j = UNIT_POS as usize;
    let slices = bn.div_ceil(rows);
    let d = CUBE_POS / slices;
    let b0 = (CUBE_POS % slices) * rows;
    let dbh = hs.len() / (t_len + 1);
    let mut h_sh = Shared::<[f32]>::new_slice(comptime!(rows * hidden));
    let mut len = Array::<u32>::new(rows);
    start_rows(
        &*hs, lengths, &mut h_sh, &mut len, d, b0, bn, j, hidden, rows,
    );
    let mut acc = Array::<f32>::new(rows);
    sync_cube();
    for s in 0..t_len {
        recurrent_products(w_t, &h_sh, &mut acc, d * h * h, j, hidden, 1usize, rows);
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let b = b0 + r;
            if b < bn {
                let i = (d * bn + b) * h + j;
                if s < len[r] as usize {
                    let pre = xp[((d * t_len + s) * bn + b) * h + j] + acc[r];
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
        sync_cube();
    }
}
