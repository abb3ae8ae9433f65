//! [`FusedKernels`] for Burn's CubeCL backend (wgpu, CUDA): the whole layer stays on the device.
//!
//! The shape of cuDNN's standard algorithm (Appleyard et al., arXiv 1604.01946). Forward: the
//! inputs are gathered into each direction's reading order and one batched matmul projects
//! every step of both directions; then the time loop; one more kernel packs the output.
//! Backward: the time loop, then `dW_ih`, `dW_hh`, the biases and `dx` as whole-sequence
//! matmuls and sums. Nothing returns to the host inside the time loops; variable lengths are
//! masked on the device.
//!
//! Each time loop has two forms ([`TimeLoop`]): **persistent** ([`sequence`]), one launch for
//! every step, each cube running a slice of the batch of one direction with the rows' state
//! or gate gradients exchanged through shared memory — the default where the layer fits it
//! (`H ≤ 256`), measured faster on lavapipe; and **per step** ([`kernels`]), per step one
//! batched matmul (`h_s · W_hhᵀ` forward, `dG_s · W_hh` backward, both directions) and one
//! gate kernel. `RNN_GPU_LOOP` forces either.

#[cfg(feature = "fusion")]
mod fusion;
mod kernels;
mod sequence;

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Shape, Slice, TensorData};
use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, zeros_client};
use burn_cubecl::tensor::CubeTensor;
use std::sync::OnceLock;

use cubecl::prelude::*;

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

/// How the forward runs its time loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeLoop {
    /// Per step, one batched recurrent matmul and one gate kernel ([`kernels`]).
    PerStep,
    /// One launch for every step, `rows` batch rows per cube ([`sequence`]).
    Persistent {
        /// Batch rows per cube.
        rows: usize,
    },
}

/// Hidden sizes the persistent loops take.
const PERSISTENT_MAX_HIDDEN: usize = 256;

/// Shared memory a persistent loop may use per cube (the rows' `h` forward, their gate
/// gradients backward): WebGPU's default limit, which every wgpu adapter grants. Lavapipe
/// grants more, and case A's backward with 16 rows per cube instead of 8 was no faster there.
const PERSISTENT_SHARED_BYTES: usize = 16 * 1024;

/// Batch rows per cube of the persistent loops unless `RNN_GPU_LOOP` names another count:
/// the best of 4, 8, 16 and 32 for case A's inference on lavapipe (few cubes for few cores;
/// a real GPU with many more cores than cubes may want fewer rows).
const PERSISTENT_ROWS: usize = 16;

/// Features per unit of the persistent loops (the vector width of their loads).
fn vector_width(hidden: usize) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|w| hidden.is_multiple_of(*w))
        .unwrap_or(1)
}

/// `RNN_GPU_LOOP`'s value: `per-step`, `persistent` ([`PERSISTENT_ROWS`] rows per cube) or
/// `persistent:R` (`R ≥ 1` rows per cube); `None` for anything else.
fn parse_loop(value: &str) -> Option<TimeLoop> {
    match value.split_once(':') {
        None if value == "per-step" => Some(TimeLoop::PerStep),
        None if value == "persistent" => Some(TimeLoop::Persistent {
            rows: PERSISTENT_ROWS,
        }),
        Some(("persistent", rows)) => match rows.parse() {
            Ok(rows) if rows >= 1 => Some(TimeLoop::Persistent { rows }),
            _ => None,
        },
        _ => None,
    }
}

/// `RNN_GPU_LOOP` ([`parse_loop`]) overrides [`TimeLoop::for_layer`]'s choice, for measuring
/// one loop against the other and for running the test suite through both; read once per
/// process, an unknown value is ignored.
fn forced_loop() -> Option<TimeLoop> {
    static FORCED: OnceLock<Option<TimeLoop>> = OnceLock::new();
    *FORCED.get_or_init(|| {
        std::env::var("RNN_GPU_LOOP")
            .ok()
            .as_deref()
            .and_then(parse_loop)
    })
}

impl TimeLoop {
    /// The loop for a layer of these sizes, forward or backward: the persistent one where the
    /// layer fits it (`H ≤ 256`) unless `forced` asks for the per-step one; its rows
    /// ([`PERSISTENT_ROWS`] unless `forced` names a count) are capped by the batch and by
    /// [`PERSISTENT_SHARED_BYTES`] for `per_row` floats of shared memory a row (forward: `H`,
    /// the state; backward: `G·H`, the gate gradients).
    fn for_layer(z: &Sizes, forced: Option<TimeLoop>, per_row: usize) -> Self {
        let rows = match forced {
            Some(Self::PerStep) => return Self::PerStep,
            Some(Self::Persistent { rows }) => rows,
            None => PERSISTENT_ROWS,
        };
        if z.hidden > PERSISTENT_MAX_HIDDEN {
            return Self::PerStep;
        }
        let fit = PERSISTENT_SHARED_BYTES / (4 * per_row.max(1));
        Self::Persistent {
            rows: rows.min(z.batch).min(fit).max(1),
        }
    }
}

/// The launch shape of a persistent loop with `rows` batch rows per cube: one cube per
/// direction and slice, one unit per vector of features; and the vector width.
fn persistent_grid(z: &Sizes, rows: usize) -> (CubeCount, CubeDim, usize) {
    let width = vector_width(z.hidden);
    let cubes = CubeCount::Static(Sizes::u32(z.dirs * z.batch.div_ceil(rows)), 1, 1);
    (cubes, CubeDim::new_1d(Sizes::u32(z.hidden / width)), width)
}

/// What the forward's time loop reads and writes (layouts in [`kernels`]).
struct Recurrence<'a> {
    z: Sizes,
    /// `[D, T·B, G·H]`, biases added.
    xp: &'a CubeTensor,
    /// `[D, G·H, H]`.
    w_hh: &'a CubeTensor,
    /// GRU's `[D·H]`; unread by the other kinds.
    b_hn: &'a CubeTensor,
    lengths: &'a CubeTensor,
    hs: &'a CubeTensor,
    cs: &'a CubeTensor,
    acts: &'a CubeTensor,
    save: bool,
}

impl Recurrence<'_> {
    /// Per step a batched matmul `h_s · W_hhᵀ` (both directions) and a gate kernel.
    fn per_step(&self) {
        let Self {
            z,
            xp,
            w_hh,
            b_hn,
            lengths,
            hs,
            cs,
            acts,
            save,
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
    }

    /// Every step in one launch: cube `(d, slice)` runs `rows` batch rows of direction `d`.
    fn persistent(&self, rows: usize) {
        let z = self.z;
        let w_t = into_contiguous(B::float_transpose(self.w_hh.clone()));
        let (cubes, dim, width) = persistent_grid(&z, rows);
        let client = &self.xp.client;
        let (seq, batch) = (Sizes::u32(z.seq), Sizes::u32(z.batch));
        match z.kind {
            CellKind::Lstm | CellKind::Gru => sequence::gated_sequence::launch(
                client,
                cubes,
                dim,
                width,
                self.xp.clone().into_tensor_arg(),
                w_t.into_tensor_arg(),
                self.b_hn.clone().into_tensor_arg(),
                self.lengths.clone().into_tensor_arg(),
                self.hs.clone().into_tensor_arg(),
                self.cs.clone().into_tensor_arg(),
                self.acts.clone().into_tensor_arg(),
                seq,
                batch,
                z.hidden,
                width,
                rows,
                self.save,
                z.kind == CellKind::Lstm,
            ),
            CellKind::RnnTanh | CellKind::RnnRelu => sequence::rnn_sequence::launch(
                client,
                cubes,
                dim,
                width,
                self.xp.clone().into_tensor_arg(),
                w_t.into_tensor_arg(),
                self.lengths.clone().into_tensor_arg(),
                self.hs.clone().into_tensor_arg(),
                seq,
                batch,
                z.hidden,
                width,
                rows,
                z.kind == CellKind::RnnRelu,
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

    /// Every step in one launch, `rows` batch rows per cube; `dstate` ends with the gradients
    /// of `h_0` (the recurrent product included) and `c_0`.
    fn persistent(&self, rows: usize) {
        let z = self.z;
        let w = into_contiguous(self.w_hh.clone());
        let (cubes, dim, width) = persistent_grid(&z, rows);
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
                z.kind == CellKind::RnnRelu,
            ),
        }
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

        // Every step's input projection, both directions: [D, T·B, G·H].
        let mut xp = B::float_matmul(xs.clone(), B::float_transpose(w_ih.clone()));
        let (has_biases, b_hn) = match inputs.biases {
            Biases::Both(b_ih, b_hh) => {
                let (b_x, b_hn) = input_bias(&z, b_ih, b_hh);
                xp = B::float_add(xp, b_x);
                (true, b_hn)
            }
            Biases::Absent => (false, None),
        };
        let xp = into_contiguous(xp);
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
        let recurrence = Recurrence {
            z,
            xp: &xp,
            w_hh: &w_hh,
            b_hn: &b_hn,
            lengths: &lengths,
            hs: &hs,
            cs: &cs,
            acts: &acts,
            save,
        };
        match TimeLoop::for_layer(&z, forced_loop(), z.hidden) {
            TimeLoop::PerStep => recurrence.per_step(),
            TimeLoop::Persistent { rows } => recurrence.persistent(rows),
        }

        let packed = dense(&x, &[spec.layout().len()]);
        let (cubes, dim) = elementwise(&x, spec.layout().len());
        kernels::emit_output::launch(
            &x.client,
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
            z.kind == CellKind::Lstm,
        );
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
        let h0 = match TimeLoop::for_layer(&z, forced_loop(), gh) {
            TimeLoop::PerStep => B::float_add(bptt.per_step(), dh()),
            TimeLoop::Persistent { rows } => {
                bptt.persistent(rows);
                into_contiguous(dh())
            }
        };
        let c0 = lstm.then(|| into_contiguous(reshape(rows(dstate.clone(), 1..2), &state_shape)));

        // Whole-sequence products, per direction: [D, T·B, ·].
        let by_direction = |t4: CubeTensor, width: usize| {
            reshape(
                into_contiguous(B::float_swap_dims(t4, 0, 1)),
                &[dn, t * bn, width],
            )
        };
        let dg_all = by_direction(dg.clone(), aw);
        let dg_hh = columns(dg_all.clone(), 0..gh);
        let dg_ih = match z.kind {
            // The input side's candidate gradient is `dn`, the fourth block.
            CellKind::Gru => B::float_cat(
                vec![
                    columns(dg_all.clone(), 0..2 * h),
                    columns(dg_all, 3 * h..4 * h),
                ],
                2,
            ),
            _ => dg_hh.clone(),
        };
        let h_prev = by_direction(rows(hs.clone(), 0..t), h);
        let w_hh_grad = B::float_matmul(B::float_transpose(dg_hh.clone()), h_prev);
        let w_ih_grad = B::float_matmul(B::float_transpose(dg_ih.clone()), xs.clone());
        let bias_grad = |g: CubeTensor| reshape(B::float_sum_dim(g, 1), &[dn * gh]);
        let biases = has_biases.then(|| {
            let b_hh = bias_grad(dg_hh);
            // LSTM and Elman layers hand both biases the same gate gradients: one sum.
            let b_ih = match z.kind {
                CellKind::Gru => bias_grad(dg_ih.clone()),
                _ => b_hh.clone(),
            };
            (b_ih, b_hh)
        });
        let x = need_x.then(|| {
            let dxs = B::float_matmul(dg_ih, w_ih.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(batch: usize, hidden: usize) -> Sizes {
        Sizes {
            kind: CellKind::Lstm,
            dirs: 1,
            seq: 28,
            batch,
            input: 28,
            hidden,
        }
    }

    #[test]
    fn rnn_gpu_loop_values_parse_and_others_are_ignored() {
        assert_eq!(parse_loop("per-step"), Some(TimeLoop::PerStep));
        assert_eq!(
            parse_loop("persistent"),
            Some(TimeLoop::Persistent {
                rows: PERSISTENT_ROWS
            })
        );
        assert_eq!(
            parse_loop("persistent:2"),
            Some(TimeLoop::Persistent { rows: 2 })
        );
        for bad in [
            "",
            "Persistent",
            "persistent:0",
            "persistent:x",
            "per-step:1",
            "rows",
        ] {
            assert_eq!(parse_loop(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_persistent_loop_runs_where_it_fits_unless_told_otherwise() {
        let asked = Some(TimeLoop::Persistent { rows: 16 });
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 128), None, 128),
            TimeLoop::Persistent {
                rows: PERSISTENT_ROWS
            }
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 128), Some(TimeLoop::PerStep), 128),
            TimeLoop::PerStep
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 257), None, 257),
            TimeLoop::PerStep
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 128), asked, 128),
            TimeLoop::Persistent { rows: 16 }
        );
        // Never more rows than the batch, nor than 16 KiB of shared memory hold.
        assert_eq!(
            TimeLoop::for_layer(&sizes(3, 128), asked, 128),
            TimeLoop::Persistent { rows: 3 }
        );
        assert_eq!(
            TimeLoop::for_layer(
                &sizes(64, 256),
                Some(TimeLoop::Persistent { rows: 64 }),
                256
            ),
            TimeLoop::Persistent { rows: 16 }
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 257), asked, 257),
            TimeLoop::PerStep
        );
        // Backward keeps 4H gate gradients a row: 8 rows of an LSTM(128).
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 128), asked, 512),
            TimeLoop::Persistent { rows: 8 }
        );
    }

    #[test]
    fn the_vector_width_divides_the_hidden_size() {
        assert_eq!(vector_width(128), 4);
        assert_eq!(vector_width(6), 2);
        assert_eq!(vector_width(7), 1);
    }
}
