//! The weight and bias gradients as one kernel each, for devices that are no card: `dW[d] =
//! Σ_{s,b} dG[s, d, b]ᵀ · src[s, d, b]` summed over every step `s` and batch row `b`, read
//! straight from the layouts the time loop leaves (no transposed copies).
//!
//! Each unit owns a register block of the output, `rm` vectors of gate columns by `rn`
//! vectors of source features, and runs the whole sum, `(rm + rn)` vector loads per
//! `rm · N · rn` vector products (`N` the vector width). llvmpipe executes each load one lane
//! at a time, so there the number of loads per product sets the speed; a large register
//! block divides it.
//!
//! Layouts (vectors of `N`): `dg: [T, D, B, W]` (the gate gradients, `W` wide); the source
//! `[.., D, B, F]` of any step and direction strides (the states `hs` or the inputs `xs`);
//! the output `[D, M, F]`.

use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::plan::vector_width;
use super::{Sizes, dense};

/// Most gate-column vectors of a unit's register block (`rm`): 8 by 4 feature vectors took
/// case A's training step to 259–265 ms against 278–288 with 4 by 4 and 359–362 with 2 by 2
/// (lavapipe, dev profile, 2026-12-07; 8 by 8 and 16 by 4 were no faster).
const MAX_ROW_VECS: usize = 8;

/// Most source-feature vectors of a unit's register block (`rn`).
const MAX_FEATURE_VECS: usize = 4;

/// Units per cube: small cubes spread a few hundred units over every core (8, 16 and 64
/// measured alike).
const UNITS: u32 = 16;

/// One side of a layer's weight gradient: `src` (`[.., D, B, F]`, `F = features` a row,
/// `strides` = its step and direction strides in floats) against the gate gradients `dg:
/// [T, D, B, W]`. `input_side` reads GRU's input-side candidate gradient (the fourth block)
/// in place of the recurrent one (the third). Returns `dW: [D·G·H, F]` and, with `bias`,
/// the bias gradient `[D·G·H]`: one launch of [`weight_grads`].
pub(super) fn weight_grads_of(
    z: &Sizes,
    dg: &CubeTensor,
    src: &CubeTensor,
    features: usize,
    strides: (usize, usize),
    input_side: bool,
    bias: bool,
) -> (CubeTensor, Option<CubeTensor>) {
    let (dn, gh) = (z.dirs, z.gates());
    let width = vector_width(&[z.hidden, features]);
    // A block of gate columns stays inside one gate (GRU's input side skips a whole one).
    let per_gate = z.hidden / width;
    let rm = (1..=MAX_ROW_VECS)
        .rev()
        .find(|r| per_gate.is_multiple_of(*r))
        .unwrap_or(1);
    let f_vecs = features / width;
    let rn = MAX_FEATURE_VECS.min(f_vecs);
    let out = dense(dg, &[dn * gh, features]);
    let db = dense(dg, &[if bias { dn * gh } else { width }]);
    let dim = CubeDim::new_1d(UNITS);
    let units = dn * (gh / width / rm) * f_vecs.div_ceil(rn);
    let cubes = cubecl::calculate_cube_count_elemwise(&dg.client, units, dim);
    let (split, skip) = if input_side {
        (2 * per_gate, per_gate)
    } else {
        (gh / width, 0)
    };
    weight_grads::launch(
        &dg.client,
        cubes,
        dim,
        width,
        dg.clone().into_tensor_arg(),
        src.clone().into_tensor_arg(),
        out.clone().into_tensor_arg(),
        db.clone().into_tensor_arg(),
        Sizes::u32(z.seq),
        Sizes::u32(z.batch),
        Sizes::u32(strides.0 / width),
        Sizes::u32(strides.1 / width),
        dn,
        z.act_width() / width,
        gh / width,
        f_vecs,
        split,
        skip,
        width,
        rm,
        rn,
        bias,
    );
    (out, bias.then_some(db))
}

/// `out[d, m, f] = Σ_{s<T, b<B} dg[s, d, b, col(m)] · src[s·src_step + d·src_dir + b·F + f]`,
/// where `col(m) = m` below `split` and `m + skip` from it on (GRU's input side skips the
/// recurrent candidate's block); with `bias`, also `db[d, m] = Σ_{s,b} dg[s, d, b, col(m)]`
/// (written by the units of the first feature block). All sizes but `seq` and `batch` count
/// vectors of `N`.
#[cube(launch)]
// `comptime!(bias)` decides when the kernel is compiled, `fb == 0` when it runs: not one `if`.
#[allow(clippy::too_many_arguments, clippy::collapsible_if)]
pub fn weight_grads<N: Size>(
    dg: &Tensor<Vector<f32, N>>,
    src: &Tensor<Vector<f32, N>>,
    out: &mut Tensor<Vector<f32, N>>,
    db: &mut Tensor<Vector<f32, N>>,
    seq: u32,
    batch: u32,
    src_step: u32,
    src_dir: u32,
    #[comptime] dirs: usize,
    #[comptime] dg_width: usize,
    #[comptime] m_vecs: usize,
    #[comptime] f_vecs: usize,
    #[comptime] split: usize,
    #[comptime] skip: usize,
    #[comptime] width: usize,
    #[comptime] rm: usize,
    #[comptime] rn: usize,
    #[comptime] bias: bool,
) {
    let m_blocks = comptime!(m_vecs / rm);
    let f_blocks = comptime!(f_vecs.div_ceil(rn));
    let unit = ABSOLUTE_POS;
    if unit >= dirs * m_blocks * f_blocks {
        terminate!();
    }
    let (t_len, bn) = (seq as usize, batch as usize);
    let fb = unit % f_blocks;
    let mb = (unit / f_blocks) % m_blocks;
    let d = unit / (f_blocks * m_blocks);
    let m0 = mb * rm;
    let col0 = if m0 < split { m0 } else { m0 + skip };
    let f0 = fb * rn;
    // Past the last feature vector a block reads the last one again (no branch in the loop)
    // and stores nothing.
    let mut f_at = Array::<usize>::new(rn);
    #[unroll]
    for j in 0..rn {
        f_at[j] = if f0 + j < f_vecs { f0 + j } else { f_vecs - 1 };
    }
    let mut acc = Array::<Vector<f32, N>>::new(comptime!(rm * width * rn));
    #[unroll]
    for i in 0..comptime!(rm * width * rn) {
        acc[i] = Vector::new(f32::new(0.0));
    }
    let mut sum = Array::<Vector<f32, N>>::new(rm);
    #[unroll]
    for i in 0..rm {
        sum[i] = Vector::new(f32::new(0.0));
    }
    let mut gv = Array::<Vector<f32, N>>::new(rm);
    let mut sv = Array::<Vector<f32, N>>::new(rn);
    let (src_step, src_dir) = (src_step as usize, src_dir as usize);
    for s in 0..t_len {
        let g_row = (s * dirs + d) * bn * dg_width + col0;
        let s_row = s * src_step + d * src_dir;
        for b in 0..bn {
            #[unroll]
            for i in 0..rm {
                gv[i] = dg[g_row + b * dg_width + i];
            }
            #[unroll]
            for j in 0..rn {
                sv[j] = src[s_row + b * f_vecs + f_at[j]];
            }
            if comptime!(bias) {
                #[unroll]
                for i in 0..rm {
                    sum[i] += gv[i];
                }
            }
            #[unroll]
            for i in 0..rm {
                #[unroll]
                for e in 0..width {
                    let g = Vector::new(gv[i].extract(e));
                    #[unroll]
                    for j in 0..rn {
                        acc[(i * width + e) * rn + j] += g * sv[j];
                    }
                }
            }
        }
    }
    let o_row = d * m_vecs * width + m0 * width;
    #[unroll]
    for i in 0..rm {
        #[unroll]
        for e in 0..width {
            #[unroll]
            for j in 0..rn {
                if f0 + j < f_vecs {
                    out[(o_row + i * width + e) * f_vecs + f0 + j] = acc[(i * width + e) * rn + j];
                }
            }
        }
    }
    if comptime!(bias) {
        if fb == 0 {
            #[unroll]
            for i in 0..rm {
                db[d * m_vecs + m0 + i] = sum[i];
            }
        }
    }
}
