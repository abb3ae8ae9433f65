//! [`FusedKernels`] for Burn's CubeCL backend (wgpu, CUDA): the whole layer stays on the device.
//!
//! The shape of cuDNN's standard algorithm (Appleyard et al., arXiv 1604.01946). Forward: the
//! inputs are gathered into each direction's reading order and one batched matmul projects
//! every step of both directions; then the time loop, which also packs the output (the
//! persistent one as it goes, the per-step one with one more kernel).
//! Backward: the time loop, then `dW_ih`, `dW_hh`, the biases and `dx` as whole-sequence
//! matmuls and sums. Nothing returns to the host inside the time loops; variable lengths are
//! masked on the device.
//!
//! Each time loop has two forms ([`TimeLoop`]): **persistent** ([`sequence`]), one launch for
//! every step, each cube running a slice of the batch of one direction with the rows' state
//! or gate gradients exchanged through shared memory — the default where the layer fits it
//! (`H ≤ 256`), measured faster on lavapipe; and **per step** ([`kernels`]), per step one
//! batched matmul (`h_s · W_hhᵀ` forward, `dG_s · W_hh` backward, both directions) and one
//! gate kernel. `RNN_GPU_LOOP` forces either. On a device that is no card (lavapipe) the
//! persistent forward projects each step's inputs itself instead of after one matmul
//! ([`Projection`]; `RNN_GPU_INPUT=matmul|in-loop` forces either), and backward sums each
//! side's weight and bias gradients in one kernel of its own ([`products`]) instead of Burn's
//! matmuls and sums ([`WeightGrads`]; `RNN_GPU_WEIGHT_GRADS=matmul|kernel` forces either).
//! [`plan`] makes these choices.

#[cfg(feature = "fusion")]
mod fusion;
mod kernels;
mod plan;
mod products;
mod sequence;

use std::cell::OnceCell;

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Shape, Slice, TensorData};
use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, zeros_client};
use burn_cubecl::tensor::CubeTensor;

use cubecl::prelude::*;

use self::plan::{
    Grant, Projection, Tiling, TimeLoop, WeightGrads, forced_loop, forced_projection,
    forced_weight_grads,
};
use super::op::{Biases, FusedKernels, InitialCell, InputGrads, RecurrentInputs, Spec};
use crate::CellKind;

type B = CubeBackend;

/// Units per cube of the element-wise launches.
const UNITS: u32 = 256;

/// What forward keeps for backward, all on the device.
#[derive(Debug)]
pub(crate) struct GpuSaved {
    /// Inputs in step order, `[D, T·B, I]`.
    xs: CubeTensor,
    /// `[D, G·H, I]`.
    w_ih: CubeTensor,
    /// `[D, G·H, H]`.
    w_hh: CubeTensor,
    /// `[B]`, as `f32`.
    lengths: CubeTensor,
    /// `[T + 1, D, B, H]`.
    hs: CubeTensor,
    /// `[T + 1, D, B, H]` (LSTM; a placeholder otherwise).
    cs: CubeTensor,
    /// `[T, D, B, W]`: LSTM `i, f, g, o`; GRU `r, z, n, W_hn h + b_hn` (empty for RNN).
    acts: CubeTensor,
    has_biases: bool,
}

/// The sizes every launch takes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    kind: CellKind,
    dirs: usize,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
}

impl Sizes {
    fn new(spec: &Spec) -> Self {
        let d = spec.dims;
        Self {
            kind: d.kind,
            dirs: spec.directions,
            seq: d.seq,
            batch: d.batch,
            input: d.input,
            hidden: d.hidden,
        }
    }

    /// `G·H`.
    fn gates(&self) -> usize {
        self.kind.gate_count() * self.hidden
    }

    /// `D·B·H`: one state.
    fn state(&self) -> usize {
        self.dirs * self.batch * self.hidden
    }

    /// Width of a step's saved activations and of its gate gradients: GRU keeps a fourth
    /// block (`W_hn h + b_hn` forward, the input side's `dn` backward).
    fn act_width(&self) -> usize {
        match self.kind {
            CellKind::Lstm | CellKind::Gru => 4 * self.hidden,
            CellKind::RnnTanh | CellKind::RnnRelu => self.hidden,
        }
    }

    fn u32(n: usize) -> u32 {
        u32::try_from(n).expect("the GPU kernels index with 32-bit sizes")
    }
}

fn dense(like: &CubeTensor, dims: &[usize]) -> CubeTensor {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::from(dims.to_vec()),
        DType::F32,
    )
}

fn zeros(like: &CubeTensor, dims: &[usize]) -> CubeTensor {
    zeros_client(
        like.client.clone(),
        like.device.clone(),
        Shape::from(dims.to_vec()),
        DType::F32,
    )
}

/// One unit per element of `n`.
fn elementwise(t: &CubeTensor, n: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new_1d(UNITS);
    (
        cubecl::calculate_cube_count_elemwise(&t.client, n, dim),
        dim,
    )
}

fn reshape(t: CubeTensor, dims: &[usize]) -> CubeTensor {
    B::float_reshape(t, Shape::from(dims.to_vec()))
}

/// Entries `range` of `t`'s first axis.
fn rows(t: CubeTensor, range: std::ops::Range<usize>) -> CubeTensor {
    B::float_slice(t, &[Slice::from(range)])
}

/// Columns `range` of the last axis of a rank-3 tensor.
fn columns(t: CubeTensor, range: std::ops::Range<usize>) -> CubeTensor {
    B::float_slice(t, &[Slice::from(..), Slice::from(..), Slice::from(range)])
}

/// `dst[dst_offset..][..count] = src[src_offset..][..count]`; `src` dense.
fn copy_range(
    src: &CubeTensor,
    dst: &CubeTensor,
    src_offset: usize,
    dst_offset: usize,
    count: usize,
) {
    let (cubes, dim) = elementwise(dst, count);
    kernels::copy_range::launch(
        &dst.client,
        cubes,
        dim,
        src.clone().into_tensor_arg(),
        dst.clone().into_tensor_arg(),
        Sizes::u32(src_offset),
        Sizes::u32(dst_offset),
        Sizes::u32(count),
    );
}

/// `src: [B, T, row]` (dense) into step order `[D, T, B, width]`, direction `d` reading
/// columns `d·dir_offset ..` of each row.
fn gather(
    z: &Sizes,
    src: &CubeTensor,
    lengths: &CubeTensor,
    width: usize,
    row: usize,
    dir_offset: usize,
) -> CubeTensor {
    let dst = dense(src, &[z.dirs, z.seq, z.batch, width]);
    let (cubes, dim) = elementwise(src, z.dirs * z.seq * z.batch * width);
    kernels::gather_steps::launch(
        &src.client,
        cubes,
        dim,
        src.clone().into_tensor_arg(),
        lengths.clone().into_tensor_arg(),
        dst.clone().into_tensor_arg(),
        Sizes::u32(z.seq),
        Sizes::u32(z.batch),
        Sizes::u32(width),
        Sizes::u32(row),
        Sizes::u32(dir_offset),
    );
    dst
}

/// The lengths as an `f32` device tensor (every sequence full when `None`).
fn lengths_tensor(spec: &Spec, device: &burn_cubecl::CubeDevice) -> CubeTensor {
    let d = spec.dims;
    let values: Vec<f32> = match &spec.lengths {
        Some(lengths) => lengths.iter().map(|&l| l as f32).collect(),
        None => vec![d.seq as f32; d.batch],
    };
    B::float_from_data(TensorData::new(values, [d.batch]), device)
}

/// The bias added to the input projection, `[D, 1, G·H]`: `b_ih + b_hh`, except that GRU's
/// `b_hn` stays on the recurrent side (returned second, `[D·H]`).
fn input_bias(z: &Sizes, b_ih: CubeTensor, b_hh: CubeTensor) -> (CubeTensor, Option<CubeTensor>) {
    let (d, gh, h) = (z.dirs, z.gates(), z.hidden);
    if z.kind != CellKind::Gru {
        return (reshape(B::float_add(b_ih, b_hh), &[d, 1, gh]), None);
    }
    let b_hh = reshape(b_hh, &[d, 1, gh]);
    let b_rz = columns(b_hh.clone(), 0..2 * h);
    let b_hn = into_contiguous(columns(b_hh, 2 * h..gh));
    let no_n = zeros(&b_hn, &[d, 1, h]);
    let b_x = B::float_add(
        reshape(b_ih, &[d, 1, gh]),
        B::float_cat(vec![b_rz, no_n], 2),
    );
    (b_x, Some(reshape(b_hn, &[d * h])))
}

/// What the forward's time loop reads and writes (layouts in [`kernels`]).
struct Recurrence<'a> {
    z: Sizes,
    /// The inputs in step order, `[D, T·B, I]`.
    xs: &'a CubeTensor,
    /// `[D, G·H, I]`.
    w_ih: &'a CubeTensor,
    /// The input side's bias, `[D, 1, G·H]` ([`input_bias`]); `None` without biases.
    b_x: Option<&'a CubeTensor>,
    /// `[D, G·H, H]`.
    w_hh: &'a CubeTensor,
    /// GRU's `[D·H]`; unread by the other kinds.
    b_hn: &'a CubeTensor,
    lengths: &'a CubeTensor,
    hs: &'a CubeTensor,
    cs: &'a CubeTensor,
    acts: &'a CubeTensor,
    /// The op's packed output ([`Spec::layout`]): written by the persistent loop itself, by
    /// [`kernels::emit_output`] after the per-step one.
    packed: &'a CubeTensor,
    save: bool,
}

impl Recurrence<'_> {
    /// Every step's input projection, `[D, T·B, G·H]`, biases added: one batched matmul.
    fn projection(&self) -> CubeTensor {
        let xp = B::float_matmul(self.xs.clone(), B::float_transpose(self.w_ih.clone()));
        into_contiguous(match self.b_x {
            Some(b_x) => B::float_add(xp, b_x.clone()),
            None => xp,
        })
    }

    /// The input projection ([`Self::projection`]); then per step a batched matmul `h_s ·
    /// W_hhᵀ` (both directions) and a gate kernel; then one kernel packs the output.
    fn per_step(&self) {
        let xp = &self.projection();
        let Self {
            z,
            w_hh,
            b_hn,
            lengths,
            hs,
            cs,
            acts,
            packed,
            save,
            ..
        } = *self;
        let (dn, t, bn, h) = (z.dirs, z.seq, z.batch, z.hidden);
        let w_hh_t = B::float_transpose(w_hh.clone());
        let (cubes, dim) = elementwise(xp, z.state());
        let client = &xp.client;
        let sizes = |s: usize| (Sizes::u32(s), Sizes::u32(t), Sizes::u32(bn), Sizes::u32(h));
        for s in 0..t {
            let h_s = reshape(rows(hs.clone(), s..s + 1), &[dn, bn, h]);
            let hh = B::float_matmul(h_s, w_hh_t.clone());
            let (step, seq, batch, hidden) = sizes(s);
            match z.kind {
                CellKind::Lstm => kernels::lstm_step::launch(
                    client,
                    cubes.clone(),
                    dim,
                    xp.clone().into_tensor_arg(),
                    hh.into_tensor_arg(),
                    lengths.clone().into_tensor_arg(),
                    hs.clone().into_tensor_arg(),
                    cs.clone().into_tensor_arg(),
                    acts.clone().into_tensor_arg(),
                    step,
                    seq,
                    batch,
                    hidden,
                    save,
                ),
                CellKind::Gru => kernels::gru_step::launch(
                    client,
                    cubes.clone(),
                    dim,
                    xp.clone().into_tensor_arg(),
                    hh.into_tensor_arg(),
                    b_hn.clone().into_tensor_arg(),
                    lengths.clone().into_tensor_arg(),
                    hs.clone().into_tensor_arg(),
                    acts.clone().into_tensor_arg(),
                    step,
                    seq,
                    batch,
                    hidden,
                    save,
                ),
                CellKind::RnnTanh | CellKind::RnnRelu => kernels::rnn_step::launch(
                    client,
                    cubes.clone(),
                    dim,
                    xp.clone().into_tensor_arg(),
                    hh.into_tensor_arg(),
                    lengths.clone().into_tensor_arg(),
                    hs.clone().into_tensor_arg(),
                    step,
                    seq,
                    batch,
                    hidden,
                    z.kind == CellKind::RnnRelu,
                ),
            }
        }
        // The output (`T` states' worth), `h_n` and, for LSTM, `c_n`.
        let lstm = z.kind == CellKind::Lstm;
        let (cubes, dim) = elementwise(xp, (t + 1 + usize::from(lstm)) * z.state());
        kernels::emit_output::launch(
            client,
            cubes,
            dim,
            hs.clone().into_tensor_arg(),
            cs.clone().into_tensor_arg(),
            lengths.clone().into_tensor_arg(),
            packed.clone().into_tensor_arg(),
            Sizes::u32(t),
            Sizes::u32(bn),
            Sizes::u32(dn),
            Sizes::u32(h),
            Sizes::u32(if save { t } else { t % 2 }),
            lstm,
        );
    }

    /// Every step in one launch, tiled as `tiling` says, the input projected where
    /// `projection` says: before the loop ([`Self::projection`]) or in it.
    fn persistent(&self, tiling: Tiling, projection: Projection) {
        let z = self.z;
        let w_t = into_contiguous(B::float_transpose(self.w_hh.clone()));
        let (cubes, dim) = tiling.grid(&z);
        let Tiling { rows, width, vecs } = tiling;
        let client = &self.xs.client;
        let (seq, batch) = (Sizes::u32(z.seq), Sizes::u32(z.batch));
        // `xp` holds the projection, or in the loop's case the input side's bias.
        let (xp, xs, w_ih_t, in_vecs) = match projection {
            Projection::Matmul => {
                let none = dense(self.xs, &[width]);
                (self.projection(), none.clone(), none, 0)
            }
            Projection::InLoop => {
                let bias = match self.b_x {
                    Some(b_x) => into_contiguous(b_x.clone()),
                    None => zeros(self.xs, &[z.dirs, 1, z.gates()]),
                };
                let w_ih_t = into_contiguous(B::float_transpose(self.w_ih.clone()));
                (bias, self.xs.clone(), w_ih_t, z.input / width)
            }
        };
        match z.kind {
            CellKind::Lstm | CellKind::Gru => sequence::gated_sequence::launch(
                client,
                cubes,
                dim,
                width,
                xp.into_tensor_arg(),
                xs.into_tensor_arg(),
                w_ih_t.into_tensor_arg(),
                w_t.into_tensor_arg(),
                self.b_hn.clone().into_tensor_arg(),
                self.lengths.clone().into_tensor_arg(),
                self.hs.clone().into_tensor_arg(),
                self.cs.clone().into_tensor_arg(),
                self.acts.clone().into_tensor_arg(),
                self.packed.clone().into_tensor_arg(),
                seq,
                batch,
                z.hidden,
                width,
                rows,
                vecs,
                self.save,
                z.kind == CellKind::Lstm,
                in_vecs,
            ),
            CellKind::RnnTanh | CellKind::RnnRelu => sequence::rnn_sequence::launch(
                client,
                cubes,
                dim,
                width,
                xp.into_tensor_arg(),
                xs.into_tensor_arg(),
                w_ih_t.into_tensor_arg(),
                w_t.into_tensor_arg(),
                self.lengths.clone().into_tensor_arg(),
                self.hs.clone().into_tensor_arg(),
                self.packed.clone().into_tensor_arg(),
                seq,
                batch,
                z.hidden,
                width,
                rows,
                vecs,
                z.kind == CellKind::RnnRelu,
                in_vecs,
            ),
        }
    }
}

/// What backward's time loop reads and writes (layouts in [`kernels`]).
struct Bptt<'a> {
    z: Sizes,
    /// The output's gradient in step order, `[D, T, B, H]`.
    d_out: &'a CubeTensor,
    lengths: &'a CubeTensor,
    acts: &'a CubeTensor,
    cs: &'a CubeTensor,
    hs: &'a CubeTensor,
    /// `[D, G·H, H]`.
    w_hh: &'a CubeTensor,
    /// The carried `dh` (and `dc`), `[S, D, B, H]`, seeded with the final states' gradients.
    dstate: &'a CubeTensor,
    /// Every step's gate gradients, `[T, D, B, W]`.
    dg: &'a CubeTensor,
}

impl Bptt<'_> {
    /// Per step a gate-gradient kernel and a batched matmul `dG_s · W_hh`; returns the last
    /// one, `[D, B, H]` (the recurrent part of `h_0`'s gradient). `dstate` ends with the
    /// carried `dh` and `dc`.
    fn per_step(&self) -> CubeTensor {
        let Self {
            z,
            d_out,
            lengths,
            acts,
            cs,
            hs,
            w_hh,
            dstate,
            dg,
        } = *self;
        let (dn, t, bn, h, gh) = (z.dirs, z.seq, z.batch, z.hidden, z.gates());
        let aw = z.act_width();
        let mut rec = zeros(d_out, &[dn, bn, h]);
        let (cubes, dim) = elementwise(d_out, z.state());
        let client = &d_out.client;
        for s in (0..t).rev() {
            let (step, seq, batch, hidden) =
                (Sizes::u32(s), Sizes::u32(t), Sizes::u32(bn), Sizes::u32(h));
            match z.kind {
                CellKind::Lstm => kernels::lstm_back::launch(
                    client,
                    cubes.clone(),
                    dim,
                    rec.into_tensor_arg(),
                    dstate.clone().into_tensor_arg(),
                    d_out.clone().into_tensor_arg(),
                    lengths.clone().into_tensor_arg(),
                    acts.clone().into_tensor_arg(),
                    cs.clone().into_tensor_arg(),
                    dg.clone().into_tensor_arg(),
                    step,
                    seq,
                    batch,
                    hidden,
                ),
                CellKind::Gru => kernels::gru_back::launch(
                    client,
                    cubes.clone(),
                    dim,
                    rec.into_tensor_arg(),
                    dstate.clone().into_tensor_arg(),
                    d_out.clone().into_tensor_arg(),
                    lengths.clone().into_tensor_arg(),
                    acts.clone().into_tensor_arg(),
                    hs.clone().into_tensor_arg(),
                    dg.clone().into_tensor_arg(),
                    step,
                    seq,
                    batch,
                    hidden,
                ),
                CellKind::RnnTanh | CellKind::RnnRelu => kernels::rnn_back::launch(
                    client,
                    cubes.clone(),
                    dim,
                    rec.into_tensor_arg(),
                    dstate.clone().into_tensor_arg(),
                    d_out.clone().into_tensor_arg(),
                    lengths.clone().into_tensor_arg(),
                    hs.clone().into_tensor_arg(),
                    dg.clone().into_tensor_arg(),
                    step,
                    seq,
                    batch,
                    hidden,
                    z.kind == CellKind::RnnRelu,
                ),
            }
            // The recurrent side's gate gradients of this step times W_hh: [D, B, H].
            let dg_s = reshape(rows(dg.clone(), s..s + 1), &[dn, bn, aw]);
            rec = B::float_matmul(columns(dg_s, 0..gh), w_hh.clone());
        }
        rec
    }

    /// Every step in one launch, tiled as `tiling` says; `dstate` ends with the gradients of
    /// `h_0` (the recurrent product included) and `c_0`.
    fn persistent(&self, tiling: Tiling) {
        let z = self.z;
        let w = into_contiguous(self.w_hh.clone());
        let (cubes, dim) = tiling.grid(&z);
        let Tiling { rows, width, vecs } = tiling;
        let client = &self.d_out.client;
        let (seq, batch) = (Sizes::u32(z.seq), Sizes::u32(z.batch));
        let (d_out, lengths) = (self.d_out.clone(), self.lengths.clone());
        let (dstate, dg) = (self.dstate.clone(), self.dg.clone());
        match z.kind {
            CellKind::Lstm | CellKind::Gru => {
                let lstm = z.kind == CellKind::Lstm;
                let states = if lstm { self.cs } else { self.hs };
                sequence::gated_sequence_back::launch(
                    client,
                    cubes,
                    dim,
                    width,
                    d_out.into_tensor_arg(),
                    lengths.into_tensor_arg(),
                    self.acts.clone().into_tensor_arg(),
                    states.clone().into_tensor_arg(),
                    w.into_tensor_arg(),
                    dstate.into_tensor_arg(),
                    dg.into_tensor_arg(),
                    seq,
                    batch,
                    z.hidden,
                    width,
                    rows,
                    vecs,
                    lstm,
                )
            }
            CellKind::RnnTanh | CellKind::RnnRelu => sequence::rnn_sequence_back::launch(
                client,
                cubes,
                dim,
                width,
                d_out.into_tensor_arg(),
                lengths.into_tensor_arg(),
                self.hs.clone().into_tensor_arg(),
                w.into_tensor_arg(),
                dstate.into_tensor_arg(),
                dg.into_tensor_arg(),
                seq,
                batch,
                z.hidden,
                width,
                rows,
                vecs,
                z.kind == CellKind::RnnRelu,
            ),
        }
    }
}

/// What backward's whole-sequence sums read: the gate gradients `dg: [T, D, B, W]`, the
/// states `hs: [T + 1, D, B, H]` and the step-ordered inputs `xs: [D, T·B, I]`.
struct Sums<'a> {
    z: Sizes,
    dg: &'a CubeTensor,
    hs: &'a CubeTensor,
    xs: &'a CubeTensor,
    has_biases: bool,
    /// `dg` direction-major, `[D, T·B, W]`, copied once ([`Self::gate_grads`]).
    gate_grads: OnceCell<CubeTensor>,
    /// [`Self::input_side`], made once (the weight and the input gradients read it).
    input_side: OnceCell<CubeTensor>,
}

/// `dW_ih: [D, G·H, I]`, `dW_hh: [D, G·H, H]` and, with biases, `(db_ih, db_hh)` (`[D·G·H]`
/// each).
type WeightAndBiasGrads = (CubeTensor, CubeTensor, Option<(CubeTensor, CubeTensor)>);

impl Sums<'_> {
    /// `t4: [T, D, B, width]` direction-major, `[D, T·B, width]`.
    fn by_direction(&self, t4: CubeTensor, width: usize) -> CubeTensor {
        let z = self.z;
        reshape(
            into_contiguous(B::float_swap_dims(t4, 0, 1)),
            &[z.dirs, z.seq * z.batch, width],
        )
    }

    /// `dg` direction-major, `[D, T·B, W]` (one copy, however many sides read it).
    fn gate_grads(&self) -> CubeTensor {
        let make = || self.by_direction(self.dg.clone(), self.z.act_width());
        self.gate_grads.get_or_init(make).clone()
    }

    /// The gate gradients of the recurrent side, `[D, T·B, G·H]`.
    fn recurrent_side(&self) -> CubeTensor {
        columns(self.gate_grads(), 0..self.z.gates())
    }

    /// The gate gradients of the input side, `[D, T·B, G·H]`: GRU's candidate gradient on
    /// that side is `dn`, the fourth block.
    fn input_side(&self) -> CubeTensor {
        let h = self.z.hidden;
        let make = || match self.z.kind {
            CellKind::Gru => {
                let all = self.gate_grads();
                B::float_cat(
                    vec![columns(all.clone(), 0..2 * h), columns(all, 3 * h..4 * h)],
                    2,
                )
            }
            _ => self.recurrent_side(),
        };
        self.input_side.get_or_init(make).clone()
    }

    /// Burn's matmuls and sums over direction-major copies ([`WeightGrads::Matmul`]).
    fn matmuls(&self) -> WeightAndBiasGrads {
        let z = self.z;
        let dg_ih = self.input_side();
        let dg_hh = match z.kind {
            CellKind::Gru => self.recurrent_side(),
            _ => dg_ih.clone(),
        };
        let h_prev = self.by_direction(rows(self.hs.clone(), 0..z.seq), z.hidden);
        let w_hh = B::float_matmul(B::float_transpose(dg_hh.clone()), h_prev);
        let w_ih = B::float_matmul(B::float_transpose(dg_ih.clone()), self.xs.clone());
        let bias = |g: CubeTensor| reshape(B::float_sum_dim(g, 1), &[z.dirs * z.gates()]);
        let biases = self.has_biases.then(|| {
            let b_hh = bias(dg_hh);
            // LSTM and Elman layers hand both biases the same gate gradients: one sum.
            let b_ih = match z.kind {
                CellKind::Gru => bias(dg_ih),
                _ => b_hh.clone(),
            };
            (b_ih, b_hh)
        });
        (w_ih, w_hh, biases)
    }

    /// One [`products::weight_grads`] launch a side, reading `dg`, `hs` and `xs` in place
    /// ([`WeightGrads::Kernel`]).
    fn kernels(&self) -> WeightAndBiasGrads {
        let z = self.z;
        let (h, i) = (z.hidden, z.input);
        let gru = z.kind == CellKind::Gru;
        let hh_strides = (z.dirs * z.batch * h, z.batch * h);
        let (w_hh, b_hh) =
            products::weight_grads_of(&z, self.dg, self.hs, h, hh_strides, false, self.has_biases);
        let ih_strides = (z.batch * i, z.seq * z.batch * i);
        let (w_ih, b_ih) = products::weight_grads_of(
            &z,
            self.dg,
            self.xs,
            i,
            ih_strides,
            gru,
            self.has_biases && gru,
        );
        // LSTM and Elman layers hand both biases the same gate gradients: one sum.
        let biases = b_hh.map(|b_hh| (b_ih.unwrap_or_else(|| b_hh.clone()), b_hh));
        (w_ih, w_hh, biases)
    }
}

impl FusedKernels for CubeBackend {
    type Saved = GpuSaved;

    fn forward(
        inputs: RecurrentInputs<Self>,
        spec: &Spec,
        save: bool,
    ) -> (FloatTensor<Self>, Option<Self::Saved>) {
        let z = Sizes::new(spec);
        let (dn, t, bn, h, gh) = (z.dirs, z.seq, z.batch, z.hidden, z.gates());
        let x = into_contiguous(inputs.x);
        let lengths = lengths_tensor(spec, &x.device);
        let xs = reshape(
            gather(&z, &x, &lengths, z.input, z.input, 0),
            &[dn, t * bn, z.input],
        );
        let w_ih = reshape(inputs.w_ih, &[dn, gh, z.input]);
        let w_hh = reshape(inputs.w_hh, &[dn, gh, h]);

        let (has_biases, b_x, b_hn) = match inputs.biases {
            Biases::Both(b_ih, b_hh) => {
                let (b_x, b_hn) = input_bias(&z, b_ih, b_hh);
                (true, Some(b_x), b_hn)
            }
            Biases::Absent => (false, None, None),
        };
        // GRU's `b_hn` (zero without biases); the other kinds never read it.
        let b_hn =
            b_hn.unwrap_or_else(|| zeros(&x, &[if z.kind == CellKind::Gru { dn * h } else { 1 }]));

        let states = [t + 1, dn, bn, h];
        let hs = dense(&x, &states);
        copy_range(&into_contiguous(inputs.h0), &hs, 0, 0, z.state());
        // Inference keeps the cell state of two steps only, and no activations.
        let cell_slots = if save { t + 1 } else { 2 };
        let cs = match inputs.c0 {
            InitialCell::Lstm(c0) => {
                let cs = dense(&x, &[cell_slots, dn, bn, h]);
                copy_range(&into_contiguous(c0), &cs, 0, 0, z.state());
                cs
            }
            InitialCell::Absent => dense(&x, &[1]),
        };
        // An Elman step's backward reads only the states; inference keeps nothing.
        let acts = if z.kind.is_elman() || !save {
            dense(&x, &[1])
        } else {
            dense(&x, &[t, dn, bn, z.act_width()])
        };
        let packed = dense(&x, &[spec.layout().len()]);
        let recurrence = Recurrence {
            z,
            xs: &xs,
            w_ih: &w_ih,
            b_x: b_x.as_ref(),
            w_hh: &w_hh,
            b_hn: &b_hn,
            lengths: &lengths,
            hs: &hs,
            cs: &cs,
            acts: &acts,
            packed: &packed,
            save,
        };
        let grant = Grant::of(&x.client);
        match TimeLoop::for_layer(&z, forced_loop(), z.hidden, grant) {
            TimeLoop::PerStep => recurrence.per_step(),
            TimeLoop::Persistent(tiling) => {
                let projection = tiling.projection(&z, grant, forced_projection());
                recurrence.persistent(tiling, projection);
            }
        }
        let saved = save.then(|| GpuSaved {
            xs,
            w_ih,
            w_hh,
            lengths,
            hs,
            cs,
            acts,
            has_biases,
        });
        (packed, saved)
    }

    fn backward(
        saved: &Self::Saved,
        spec: &Spec,
        grad: FloatTensor<Self>,
        need_x: bool,
    ) -> InputGrads<Self> {
        let z = Sizes::new(spec);
        let (dn, t, bn, h, gh) = (z.dirs, z.seq, z.batch, z.hidden, z.gates());
        let layout = spec.layout();
        let grad = into_contiguous(grad);
        let GpuSaved {
            xs,
            w_ih,
            w_hh,
            lengths,
            hs,
            cs,
            acts,
            has_biases,
        } = saved;

        // The output's gradient in step order, [D, T, B, H]; the final states' gradients seed
        // the carried ones.
        let d_out = gather(&z, &grad, lengths, h, dn * h, h);
        let lstm = z.kind == CellKind::Lstm;
        let dstate = dense(&grad, &[if lstm { 2 } else { 1 }, dn, bn, h]);
        copy_range(&grad, &dstate, layout.h_n().start, 0, z.state());
        if let Some(c_n) = layout.c_n() {
            copy_range(&grad, &dstate, c_n.start, z.state(), z.state());
        }
        let aw = z.act_width();
        let dg = dense(&grad, &[t, dn, bn, aw]);
        let bptt = Bptt {
            z,
            d_out: &d_out,
            lengths,
            acts,
            cs,
            hs,
            w_hh,
            dstate: &dstate,
            dg: &dg,
        };
        let state_shape = [dn, bn, h];
        let dh = || reshape(rows(dstate.clone(), 0..1), &state_shape);
        let h0 = match TimeLoop::for_layer(&z, forced_loop(), gh, Grant::of(&grad.client)) {
            TimeLoop::PerStep => B::float_add(bptt.per_step(), dh()),
            TimeLoop::Persistent(tiling) => {
                bptt.persistent(tiling);
                into_contiguous(dh())
            }
        };
        let c0 = lstm.then(|| into_contiguous(reshape(rows(dstate.clone(), 1..2), &state_shape)));

        let sums = Sums {
            z,
            dg: &dg,
            hs,
            xs,
            has_biases: *has_biases,
            gate_grads: OnceCell::new(),
            input_side: OnceCell::new(),
        };
        let (w_ih_grad, w_hh_grad, biases) =
            match WeightGrads::for_device(Grant::of(&grad.client), forced_weight_grads()) {
                WeightGrads::Kernel => sums.kernels(),
                WeightGrads::Matmul => sums.matmuls(),
            };
        let x = need_x.then(|| {
            let dxs = B::float_matmul(sums.input_side(), w_ih.clone());
            let dx = dense(&grad, &[bn, t, z.input]);
            let (cubes, dim) = elementwise(&grad, bn * t * z.input);
            kernels::scatter_steps::launch(
                &grad.client,
                cubes,
                dim,
                dxs.into_tensor_arg(),
                lengths.clone().into_tensor_arg(),
                dx.clone().into_tensor_arg(),
                Sizes::u32(t),
                Sizes::u32(bn),
                Sizes::u32(dn),
                Sizes::u32(z.input),
            );
            dx
        });
        InputGrads {
            x,
            w_ih: reshape(w_ih_grad, &[dn * gh, z.input]),
            w_hh: reshape(w_hh_grad, &[dn * gh, h]),
            biases,
            h0,
            c0,
        }
    }
}
