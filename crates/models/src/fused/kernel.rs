//! The fused recurrences on host buffers, for one slice of the batch: the time loop of the
//! forward pass (optionally keeping what backward needs) and of backpropagation through time.
//!
//! All buffers are row-major `f32` and **batch-major**: `x: [batch, seq, input]`, `out:
//! [batch, seq, hidden]`, saved activations `[batch, seq, ·]`, states `[batch, hidden]`; the
//! row of step `t` of sequence `b` is `b·seq + t`. A slice of the batch is then one contiguous
//! block of every buffer, so [`super::parallel`] hands each thread plain `&mut` sub-slices and
//! the large GEMMs (input projection, weight gradients) run once over the whole batch.
//! Weights are in PyTorch's layout (`w_ih: [G·H, input]`, `w_hh: [G·H, hidden]`, gate blocks
//! in PyTorch's order).
//!
//! Here: each step's one recurrent GEMM (against weights packed once, [`PackedB`]) and one
//! pass over the gates, forward and backward.

use super::cpu::isa_dispatch;
use super::gemm::View;
use super::math::{sigmoid, tanh};
use super::packed::PackedB;
use super::pool::Buf;
use crate::CellKind;

/// The sizes of one direction of one layer (or of a slice of its batch).
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
    pub fn gate_width(&self) -> usize {
        self.kind.gate_count() * self.hidden
    }

    /// `batch · seq`.
    pub fn rows(&self) -> usize {
        self.seq * self.batch
    }

    /// Whether the cell has a cell state `c` (LSTM).
    pub fn is_lstm(&self) -> bool {
        self.kind == CellKind::Lstm
    }

    /// Width of the saved activations per row: `G·H` (LSTM `i, f, g, o`; GRU `r, z, n`), or
    /// `H` for the RNN, whose only activation is `h_t`.
    pub fn act_width(&self) -> usize {
        if self.kind.gate_count() == 1 {
            self.hidden
        } else {
            self.gate_width()
        }
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
    pub fn step(&self, i: usize, seq: usize) -> usize {
        if self.reverse { seq - 1 - i } else { i }
    }

    /// Whether sequence `b` runs at step `t`.
    pub fn active(&self, t: usize, b: usize) -> bool {
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

impl<'a> Params<'a> {
    /// Direction `dir`'s weights out of weights stacked by direction (`w_ih: [D·G·H, input]`
    /// and so on).
    pub fn direction(&self, dir: usize, d: &Dims) -> Params<'a> {
        let gh = d.gate_width();
        let block = |m: &'a [f32], width: usize| &m[dir * gh * width..][..gh * width];
        Params {
            w_ih: block(self.w_ih, d.input),
            w_hh: block(self.w_hh, d.hidden),
            b_ih: self.b_ih.map(|b| block(b, 1)),
            b_hh: self.b_hh.map(|b| block(b, 1)),
        }
    }

    /// The biases the gate pass adds to each row's input projection: `b_ih + b_hh`, except
    /// GRU's `b_hn`, which sits inside `r ⊙ (W_hn h + b_hn)` and stays on the recurrent side.
    /// Returns `(folded [G·H], b_hn [H], zeros for non-GRU)`.
    pub fn biases(&self, d: &Dims) -> (Vec<f32>, Vec<f32>) {
        let (gh, hid) = (d.gate_width(), d.hidden);
        let is_gru = d.kind == CellKind::Gru;
        let folded_hh = if is_gru { 2 * hid } else { gh };
        let mut folded = self.b_ih.map_or_else(|| vec![0.0; gh], <[f32]>::to_vec);
        if let Some(b_hh) = self.b_hh {
            for (acc, v) in folded[..folded_hh].iter_mut().zip(b_hh) {
                *acc += v;
            }
        }
        let b_hn = match self.b_hh {
            Some(b) if is_gru => b[2 * hid..].to_vec(),
            _ => vec![0.0; hid],
        };
        (folded, b_hn)
    }
}

/// What the forward pass keeps for backward, for the whole batch (all `[batch, seq, ·]`).
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// [`Dims::act_width`] wide: LSTM `i, f, g, o`, GRU `r, z, n`, RNN `h_t`.
    pub acts: Buf,
    /// The state each step started from.
    pub h_prev: Buf,
    /// LSTM: the cell state each step started from (empty otherwise).
    pub c_prev: Buf,
    /// GRU: `W_hn h + b_hn`, the recurrent part of the candidate (empty otherwise).
    pub hn: Buf,
    /// LSTM: `tanh(c_t)`.
    pub tanh_c: Buf,
}

impl Saved {
    /// Buffers for a whole batch of `d`. Their contents are unspecified until the forward
    /// pass writes them: `h_prev` for every row, the rest for the rows of running sequences,
    /// which are the only rows backward reads.
    pub fn new(d: &Dims) -> Self {
        let (rows, hid) = (d.rows(), d.hidden);
        let kind_only = |kind| {
            if d.kind == kind {
                Buf::dirty(rows * hid)
            } else {
                Buf::empty()
            }
        };
        Self {
            acts: Buf::dirty(rows * d.act_width()),
            h_prev: Buf::dirty(rows * hid),
            c_prev: kind_only(CellKind::Lstm),
            hn: kind_only(CellKind::Gru),
            tanh_c: if d.is_lstm() {
                Buf::dirty(rows * hid)
            } else {
                Buf::empty()
            },
        }
    }
}

/// A slice of the batch's rows of [`Saved`], being written by the forward pass.
pub(crate) struct SavedMut<'a> {
    pub acts: &'a mut [f32],
    pub h_prev: &'a mut [f32],
    pub c_prev: &'a mut [f32],
    pub hn: &'a mut [f32],
    pub tanh_c: &'a mut [f32],
}

impl SavedMut<'_> {
    /// Row `row`'s part of each buffer (empty for the buffers this kind does not use).
    fn row(&mut self, row: usize, hid: usize, aw: usize) -> SavedRow<'_> {
        fn at(buf: &mut [f32], row: usize, width: usize) -> &mut [f32] {
            if buf.is_empty() {
                buf
            } else {
                &mut buf[row * width..][..width]
            }
        }
        SavedRow {
            acts: gate_blocks(at(self.acts, row, aw), hid),
            h_prev: at(self.h_prev, row, hid),
            c_prev: at(self.c_prev, row, hid),
            hn: at(self.hn, row, hid),
            tanh_c: at(self.tanh_c, row, hid),
        }
    }
}

/// Up to four gate blocks of one row (`i, f, g, o`; `r, z, n`; or the RNN's one), each
/// `hidden` wide — or, when a thread owns only some hidden units ([`super::units`]), each that
/// thread's columns of its block. Unused blocks are empty.
pub(crate) type Blocks<'a> = [&'a mut [f32]; 4];

/// [`Blocks`] read-only.
pub(crate) type BlocksRef<'a> = [&'a [f32]; 4];

/// A row of gate blocks `width` wide cut into its blocks.
pub(crate) fn gate_blocks(row: &mut [f32], width: usize) -> Blocks<'_> {
    let mut blocks = Blocks::default();
    if width > 0 {
        for (slot, block) in blocks.iter_mut().zip(row.chunks_exact_mut(width)) {
            *slot = block;
        }
    }
    blocks
}

/// [`gate_blocks`] read-only.
pub(crate) fn gate_blocks_ref(row: &[f32], width: usize) -> BlocksRef<'_> {
    let mut blocks = BlocksRef::default();
    if width > 0 {
        for (slot, block) in blocks.iter_mut().zip(row.chunks_exact(width)) {
            *slot = block;
        }
    }
    blocks
}

/// One row of [`SavedMut`]: what one step of one sequence keeps for backward (of the hidden
/// units the running thread owns).
#[derive(Default)]
pub(crate) struct SavedRow<'a> {
    /// [`Dims::act_width`]'s blocks.
    pub acts: Blocks<'a>,
    pub h_prev: &'a mut [f32],
    pub c_prev: &'a mut [f32],
    pub hn: &'a mut [f32],
    pub tanh_c: &'a mut [f32],
}

/// A slice of the batch's rows of [`Saved`], read by backward.
#[derive(Clone, Copy)]
pub(crate) struct SavedRef<'a> {
    pub acts: &'a [f32],
    pub h_prev: &'a [f32],
    pub c_prev: &'a [f32],
    pub hn: &'a [f32],
    pub tanh_c: &'a [f32],
}

/// A layer's input as the forward time loops read it.
#[derive(Clone, Copy)]
pub(crate) struct Input<'a> {
    /// `[batch, seq, input]`.
    pub x: &'a [f32],
    /// Whether every step of each sequence holds the same vector (Keras' `RepeatVector`, a
    /// seq2seq decoder's input): the loops then project the first step taken once and reuse
    /// it, instead of the same product at every step, and `W_ih`'s gradient is one product
    /// with the steps' summed gate gradients.
    pub repeated: bool,
}

impl<'a> Input<'a> {
    /// `x: [batch, seq, input]`, checked for repeated steps (the check stops at the first
    /// element that differs from its sequence's first step, so it costs next to nothing on
    /// inputs that do not repeat).
    pub fn new(x: &'a [f32], d: &Dims) -> Self {
        let width = d.seq * d.input;
        let repeated = width > 0
            && x.chunks_exact(width).all(|row| {
                let (first, rest) = row.split_at(d.input);
                rest.chunks_exact(d.input).all(|step| step == first)
            });
        Self { x, repeated }
    }

    /// Puts the `i`-th step taken (time `t`) of the rows' input through `w_ih_t` into `xs:
    /// [batch, ·]` — except for a repeated input after its first step, whose projection `xs`
    /// still holds (the loops do not write `xs` otherwise).
    pub fn project(&self, w_ih_t: &PackedB, xs: &mut [f32], i: usize, t: usize, d: &Dims) {
        if self.repeated && i > 0 {
            return;
        }
        let (batch, seq, input) = (d.batch, d.seq, d.input);
        // Step t's rows of x lie `seq · input` apart.
        w_ih_t.matmul_view(
            xs,
            View::strided_rows(&self.x[t * input..], batch, input, seq * input),
            false,
        );
    }
}

/// The forward time loop over a slice of the batch.
pub(crate) struct Forward<'a> {
    /// The slice's sizes (`batch` = its rows).
    pub d: Dims,
    /// The slice's schedule.
    pub schedule: &'a Schedule,
    /// `W_hhᵀ` packed: `[hidden, G·H]`.
    pub w_hh_t: &'a PackedB,
    /// From [`Params::biases`].
    pub bias: &'a [f32],
    pub b_hn: &'a [f32],
    /// `W_ihᵀ` packed: `[input, G·H]`.
    pub w_ih_t: &'a PackedB,
    /// The slice's input: each step's rows are projected just before the step (the
    /// projection of the whole sequence would not stay in cache).
    pub x: Input<'a>,
    /// In: `h0`; out: `h_n` (`[batch, hidden]`).
    pub h: &'a mut [f32],
    /// In: `c0`; out: `c_n` (LSTM; empty otherwise).
    pub c: &'a mut [f32],
    /// `[batch, seq, hidden]`.
    pub out: &'a mut [f32],
    pub saved: Option<SavedMut<'a>>,
}

/// Backpropagation through time over a slice of the batch.
pub(crate) struct Backward<'a> {
    pub d: Dims,
    pub schedule: &'a Schedule,
    pub w_hh: &'a RecurrentWeights,
    pub saved: SavedRef<'a>,
    /// `[batch, seq, ·]`: this direction's `hidden` columns first in rows `d_out_stride`
    /// apart (a bidirectional layer's output interleaves both directions).
    pub d_out: &'a [f32],
    pub d_out_stride: usize,
    /// In: `dL/dh_n`; out: `dL/dh0`.
    pub dh: &'a mut [f32],
    /// In: `dL/dc_n`; out: `dL/dc0` (LSTM; empty otherwise).
    pub dc: &'a mut [f32],
    /// Out: `dL/d(pre-activation)` as the input projection sees it, `[batch, seq, G·H]`.
    pub dg: &'a mut [f32],
    /// Out (GRU only, where `r` scales the recurrent part of `n`): the candidate's gradient
    /// as the recurrent projection sees it, `r ⊙ dL/da_n`, `[batch, seq, hidden]`; empty
    /// otherwise. (The reset and update gates' are `dg`'s.)
    pub dhn: &'a mut [f32],
}

/// `W_hh` packed for BPTT's per-step `dh_prev` products.
pub(crate) struct RecurrentWeights {
    /// The rows of `W_hh` that multiply `dg`'s blocks: all of them (`[G·H, hidden]`), or
    /// GRU's reset and update rows (`[2H, hidden]`).
    pub shared: PackedB,
    /// GRU's candidate rows (`[H, hidden]`), which multiply `dhn`.
    pub candidate: Option<PackedB>,
}

impl RecurrentWeights {
    /// `w_hh: [G·H, hidden]`, PyTorch's layout.
    pub fn new(w_hh: &[f32], d: &Dims) -> Self {
        let (hid, gh) = (d.hidden, d.gate_width());
        if d.kind == CellKind::Gru {
            let (rz, n) = w_hh.split_at(2 * hid * hid);
            Self {
                shared: PackedB::new(rz, 2 * hid, hid),
                candidate: Some(PackedB::new(n, hid, hid)),
            }
        } else {
            Self {
                shared: PackedB::new(w_hh, gh, hid),
                candidate: None,
            }
        }
    }
}

impl Forward<'_> {
    /// Runs the time loop.
    pub fn run(self) {
        forward(self)
    }
}

impl Backward<'_> {
    /// Runs BPTT.
    pub fn run(self) {
        backward(self)
    }
}

isa_dispatch!(
    /// [`forward_impl`] in the widest build the CPU runs.
    fn forward(f: Forward<'_>) => forward_impl
);

isa_dispatch!(
    /// [`backward_impl`] in the widest build the CPU runs.
    fn backward(b: Backward<'_>) => backward_impl
);

#[inline(always)]
fn forward_impl(f: Forward<'_>) {
    let Forward {
        d,
        schedule,
        w_hh_t,
        bias,
        b_hn,
        w_ih_t,
        x,
        h,
        c,
        out,
        mut saved,
    } = f;
    let (hid, gh, batch, seq) = (d.hidden, d.gate_width(), d.batch, d.seq);
    let aw = d.act_width();
    // Written by the steps' GEMMs alone: the input and the recurrent projection.
    let mut xs = Buf::dirty(batch * gh);
    let mut hh = Buf::dirty(batch * gh);

    for i in 0..seq {
        let t = schedule.step(i, seq);
        x.project(w_ih_t, &mut xs, i, t, &d);
        w_hh_t.matmul(&mut hh, h, batch);
        for b in 0..batch {
            let row = b * seq + t;
            let h_b = &mut h[b * hid..][..hid];
            let out_b = &mut out[row * hid..][..hid];
            let mut saved_row = saved.as_mut().map(|s| s.row(row, hid, aw));
            if let Some(s) = saved_row.as_mut() {
                // Every row, so that backward's weight-gradient GEMMs never read stale values.
                s.h_prev.copy_from_slice(h_b);
            }
            if !schedule.active(t, b) {
                out_b.fill(0.0);
                continue;
            }
            let c_b = if d.is_lstm() {
                &mut c[b * hid..][..hid]
            } else {
                &mut []
            };
            let row_in = StepRow {
                a: &hh[b * gh..][..gh],
                xr: &xs[b * gh..][..gh],
                bias,
                b_hn,
            };
            row_in.run(d.kind, c_b, h_b, out_b, saved_row);
        }
    }
}

/// One row of one step's pre-activations, for the hidden units the running thread owns (all
/// of them, or a [`super::units`] group: every gate block then `units` wide).
pub(crate) struct StepRow<'a> {
    /// The recurrent projection `h·W_hhᵀ` (`[G·units]`).
    pub a: &'a [f32],
    /// The input projection `x·W_ihᵀ` (`[G·units]`).
    pub xr: &'a [f32],
    /// From [`Params::biases`], the same units.
    pub bias: &'a [f32],
    pub b_hn: &'a [f32],
}

impl StepRow<'_> {
    /// Applies the gates: updates `h` (and LSTM's `c`) in place, writes the new `h` to `out`
    /// and keeps what backward needs in `saved`.
    ///
    /// Why one loop per kind: the pre-activation sums, the nonlinearities, the state update
    /// and the saved copies in separate passes went through each row's buffers six to ten
    /// times; fused, each value is loaded and stored once, in registers in between.
    #[inline(always)]
    pub fn run(
        self,
        kind: CellKind,
        c: &mut [f32],
        h: &mut [f32],
        out: &mut [f32],
        saved: Option<SavedRow<'_>>,
    ) {
        match (kind, saved) {
            (CellKind::Lstm, Some(s)) => self.lstm::<true>(c, h, out, s),
            (CellKind::Lstm, None) => self.lstm::<false>(c, h, out, SavedRow::default()),
            (CellKind::Gru, Some(s)) => self.gru::<true>(h, out, s),
            (CellKind::Gru, None) => self.gru::<false>(h, out, SavedRow::default()),
            (_, Some(s)) => self.elman::<true>(kind, h, out, s),
            (_, None) => self.elman::<false>(kind, h, out, SavedRow::default()),
        }
    }

    /// LSTM: `[i, f, g, o] = σσtσ(a + x + b)`, `c' = f·c + i·g`, `h' = o·tanh(c')`; with
    /// `SAVE`, the gates, `c` and `tanh(c')` go to `s`.
    #[inline(always)]
    fn lstm<const SAVE: bool>(
        self,
        c: &mut [f32],
        h: &mut [f32],
        out: &mut [f32],
        s: SavedRow<'_>,
    ) {
        let hid = h.len();
        let (a, x, b) = (self.a, self.xr, self.bias);
        let (a0, a1, a2, a3) = (
            &a[..hid],
            &a[hid..][..hid],
            &a[2 * hid..][..hid],
            &a[3 * hid..][..hid],
        );
        let (x0, x1, x2, x3) = (
            &x[..hid],
            &x[hid..][..hid],
            &x[2 * hid..][..hid],
            &x[3 * hid..][..hid],
        );
        let (b0, b1, b2, b3) = (
            &b[..hid],
            &b[hid..][..hid],
            &b[2 * hid..][..hid],
            &b[3 * hid..][..hid],
        );
        let (c, out) = (&mut c[..hid], &mut out[..hid]);
        let SavedRow {
            acts: [s0, s1, s2, s3],
            c_prev,
            tanh_c,
            ..
        } = s;
        let n = if SAVE { hid } else { 0 };
        let (s0, s1, s2, s3) = (&mut s0[..n], &mut s1[..n], &mut s2[..n], &mut s3[..n]);
        let (c_prev, tanh_c) = (&mut c_prev[..n], &mut tanh_c[..n]);
        for j in 0..hid {
            let ig = sigmoid(a0[j] + (x0[j] + b0[j]));
            let fg = sigmoid(a1[j] + (x1[j] + b1[j]));
            let gg = tanh(a2[j] + (x2[j] + b2[j]));
            let og = sigmoid(a3[j] + (x3[j] + b3[j]));
            let c_old = c[j];
            let c_new = fg * c_old + ig * gg;
            let tc = tanh(c_new);
            let h_new = og * tc;
            if SAVE {
                (s0[j], s1[j], s2[j], s3[j]) = (ig, fg, gg, og);
                (c_prev[j], tanh_c[j]) = (c_old, tc);
            }
            c[j] = c_new;
            h[j] = h_new;
            out[j] = h_new;
        }
    }

    /// GRU: `r, z = σ(a + x + b)`, `n = tanh(x_n + b_in + r·(a_n + b_hn))`, `h' = n + z·(h − n)`;
    /// with `SAVE`, `r, z, n` and `a_n + b_hn` go to `s`.
    #[inline(always)]
    fn gru<const SAVE: bool>(self, h: &mut [f32], out: &mut [f32], s: SavedRow<'_>) {
        let hid = h.len();
        let (a, x, b) = (self.a, self.xr, self.bias);
        let (a0, a1, a2) = (&a[..hid], &a[hid..][..hid], &a[2 * hid..][..hid]);
        let (x0, x1, x2) = (&x[..hid], &x[hid..][..hid], &x[2 * hid..][..hid]);
        let (b0, b1, b2) = (&b[..hid], &b[hid..][..hid], &b[2 * hid..][..hid]);
        let (b_hn, out) = (&self.b_hn[..hid], &mut out[..hid]);
        let SavedRow {
            acts: [s0, s1, s2, _],
            hn,
            ..
        } = s;
        let n = if SAVE { hid } else { 0 };
        let (s0, s1, s2, hn) = (&mut s0[..n], &mut s1[..n], &mut s2[..n], &mut hn[..n]);
        for j in 0..hid {
            let r = sigmoid(a0[j] + (x0[j] + b0[j]));
            let z = sigmoid(a1[j] + (x1[j] + b1[j]));
            let rec = a2[j] + b_hn[j];
            let cand = tanh(x2[j] + b2[j] + r * rec);
            let h_new = cand + z * (h[j] - cand);
            if SAVE {
                (s0[j], s1[j], s2[j], hn[j]) = (r, z, cand, rec);
            }
            h[j] = h_new;
            out[j] = h_new;
        }
    }

    /// Elman: `h' = tanh(a + x + b)` or ReLU; with `SAVE`, `h'` goes to `s`.
    #[inline(always)]
    fn elman<const SAVE: bool>(
        self,
        kind: CellKind,
        h: &mut [f32],
        out: &mut [f32],
        s: SavedRow<'_>,
    ) {
        let hid = h.len();
        let (a, x, b) = (&self.a[..hid], &self.xr[..hid], &self.bias[..hid]);
        let out = &mut out[..hid];
        let [s0, ..] = s.acts;
        let s0 = &mut s0[..if SAVE { hid } else { 0 }];
        let relu = kind == CellKind::RnnRelu;
        for j in 0..hid {
            let pre = a[j] + (x[j] + b[j]);
            let h_new = if relu { pre.max(0.0) } else { tanh(pre) };
            if SAVE {
                s0[j] = h_new;
            }
            h[j] = h_new;
            out[j] = h_new;
        }
    }
}

/// Completes `dh_prev: [batch, width]` after step `t`'s recurrent GEMM: ended sequences carry
/// `dh` through unchanged, running ones add GRU's `direct` (`z ⊙ dh`; empty otherwise).
#[inline(always)]
pub(crate) fn finish_dh_prev(
    dh_prev: &mut [f32],
    dh: &[f32],
    direct: &[f32],
    width: usize,
    schedule: &Schedule,
    t: usize,
) {
    for (b, (prev, dh)) in dh_prev
        .chunks_exact_mut(width)
        .zip(dh.chunks_exact(width))
        .enumerate()
    {
        if !schedule.active(t, b) {
            prev.copy_from_slice(dh);
        } else if !direct.is_empty() {
            add_assign(prev, &direct[b * width..][..width]);
        }
    }
}

/// Row `row` of a `[rows, width]` buffer.
#[inline(always)]
fn row_of(buf: &[f32], row: usize, width: usize) -> &[f32] {
    &buf[row * width..][..width]
}

/// [`row_of`], or the empty buffer of a kind that does not use it.
#[inline(always)]
fn row_or_empty(buf: &[f32], row: usize, width: usize) -> &[f32] {
    if buf.is_empty() {
        buf
    } else {
        row_of(buf, row, width)
    }
}

/// One row of one step of BPTT, for the hidden units the running thread owns (all of them,
/// or a [`super::units`] group: every block then `units` wide).
pub(crate) struct GradRow<'a> {
    /// Out: `dL/d(pre-activation)` as the input projection sees it.
    pub dg: Blocks<'a>,
    /// Out (GRU): the candidate's gradient as the recurrent projection sees it (`r ⊙
    /// dL/da_n`); empty otherwise.
    pub dhn: &'a mut [f32],
    /// Out (GRU): `z ⊙ grad`, the part of `dh_prev` that bypasses `W_hh`.
    pub direct: &'a mut [f32],
    /// `dL/dh_t` from the later steps and from the output.
    pub dh: &'a [f32],
    pub d_out: &'a [f32],
    /// The saved activations' blocks, and the saved rows of these units.
    pub acts: BlocksRef<'a>,
    pub tanh_c: &'a [f32],
    pub c_prev: &'a [f32],
    pub hn: &'a [f32],
    pub h_prev: &'a [f32],
    /// LSTM: `dL/dc_t` in, `dL/dc_{t-1}` out.
    pub dc: &'a mut [f32],
}

impl GradRow<'_> {
    #[inline(always)]
    pub fn run(self, kind: CellKind) {
        match kind {
            CellKind::Lstm => self.lstm(),
            CellKind::Gru => self.gru(),
            CellKind::RnnTanh | CellKind::RnnRelu => self.elman(kind),
        }
    }

    /// LSTM gate gradients: `dg = dL/d[i, f, g, o]` pre-activations from the incoming
    /// `dh + d_out` and `dc` (updated in place to `dL/dc_prev`).
    #[inline(always)]
    fn lstm(self) {
        let hid = self.dh.len();
        let [d0, d1, d2, d3] = self.dg;
        let (d0, d1, d2, d3) = (
            &mut d0[..hid],
            &mut d1[..hid],
            &mut d2[..hid],
            &mut d3[..hid],
        );
        let [a0, a1, a2, a3] = self.acts;
        let (a0, a1, a2, a3) = (&a0[..hid], &a1[..hid], &a2[..hid], &a3[..hid]);
        let (dh, d_out) = (self.dh, &self.d_out[..hid]);
        let (tanh_c, c_prev, dc) = (
            &self.tanh_c[..hid],
            &self.c_prev[..hid],
            &mut self.dc[..hid],
        );
        for j in 0..hid {
            let grad = dh[j] + d_out[j];
            let (ig, fg, gg, og) = (a0[j], a1[j], a2[j], a3[j]);
            let tc = tanh_c[j];
            let dct = dc[j] + grad * og * (1.0 - tc * tc);
            d0[j] = dct * gg * ig * (1.0 - ig);
            d1[j] = dct * c_prev[j] * fg * (1.0 - fg);
            d2[j] = dct * ig * (1.0 - gg * gg);
            d3[j] = grad * tc * og * (1.0 - og);
            dc[j] = dct * fg;
        }
    }

    /// GRU gate gradients: `dg` for the input side (and the recurrent side's reset and update
    /// gates), `dhn` for the recurrent side's candidate (scaled by `r`), and `direct`.
    #[inline(always)]
    fn gru(self) {
        let hid = self.dh.len();
        let [d0, d1, d2, _] = self.dg;
        let (d0, d1, d2) = (&mut d0[..hid], &mut d1[..hid], &mut d2[..hid]);
        let dhn = &mut self.dhn[..hid];
        let [a0, a1, a2, _] = self.acts;
        let (a0, a1, a2) = (&a0[..hid], &a1[..hid], &a2[..hid]);
        let (dh, d_out, hn, h_prev) = (
            self.dh,
            &self.d_out[..hid],
            &self.hn[..hid],
            &self.h_prev[..hid],
        );
        let direct = &mut self.direct[..hid];
        for j in 0..hid {
            let grad = dh[j] + d_out[j];
            let (r, z, n) = (a0[j], a1[j], a2[j]);
            let da_n = grad * (1.0 - z) * (1.0 - n * n);
            let da_z = grad * (h_prev[j] - n) * z * (1.0 - z);
            let da_r = da_n * hn[j] * r * (1.0 - r);
            d0[j] = da_r;
            d1[j] = da_z;
            d2[j] = da_n;
            dhn[j] = da_n * r;
            direct[j] = grad * z;
        }
    }

    /// Elman pre-activation gradients, from the saved `h_t`.
    #[inline(always)]
    fn elman(self, kind: CellKind) {
        let hid = self.dh.len();
        let relu = kind == CellKind::RnnRelu;
        let [dg, ..] = self.dg;
        let (dg, dh, d_out, h_t) = (
            &mut dg[..hid],
            self.dh,
            &self.d_out[..hid],
            &self.acts[0][..hid],
        );
        for j in 0..hid {
            let grad = dh[j] + d_out[j];
            dg[j] = if relu {
                if h_t[j] > 0.0 { grad } else { 0.0 }
            } else {
                grad * (1.0 - h_t[j] * h_t[j])
            };
        }
    }
}

#[inline(always)]
fn add_assign(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[inline(always)]
fn backward_impl(bw: Backward<'_>) {
    let Backward {
        d,
        schedule,
        w_hh,
        saved,
        d_out,
        d_out_stride,
        dh: dh_out,
        dc,
        dg,
        dhn,
    } = bw;
    let (hid, gh, batch, seq) = (d.hidden, d.gate_width(), d.batch, d.seq);
    let aw = d.act_width();
    let is_gru = d.kind == CellKind::Gru;
    // The columns of `dg` that `w_hh.shared` multiplies.
    let shared_cols = if is_gru { 2 * hid } else { gh };
    let mut dh = dh_out.to_vec();
    let mut dh_prev = vec![0.0; batch * hid];
    // GRU: the part of dh_prev that bypasses W_hh (`z ⊙ dh`).
    let mut direct = if is_gru {
        vec![0.0; batch * hid]
    } else {
        Vec::new()
    };

    for i in (0..seq).rev() {
        let t = schedule.step(i, seq);
        for b in 0..batch {
            let row = b * seq + t;
            let dg_r = &mut dg[row * gh..][..gh];
            if !schedule.active(t, b) {
                // Zero rows keep ended steps out of the weight-gradient GEMMs.
                dg_r.fill(0.0);
                if is_gru {
                    dhn[row * hid..][..hid].fill(0.0);
                }
                continue;
            }
            GradRow {
                dg: gate_blocks(dg_r, hid),
                dhn: if is_gru {
                    &mut dhn[row * hid..][..hid]
                } else {
                    &mut []
                },
                direct: if is_gru {
                    &mut direct[b * hid..][..hid]
                } else {
                    &mut []
                },
                dh: &dh[b * hid..][..hid],
                d_out: &d_out[row * d_out_stride..][..hid],
                acts: gate_blocks_ref(&saved.acts[row * aw..][..aw], hid),
                tanh_c: row_or_empty(saved.tanh_c, row, hid),
                c_prev: row_or_empty(saved.c_prev, row, hid),
                hn: row_or_empty(saved.hn, row, hid),
                h_prev: row_of(saved.h_prev, row, hid),
                dc: if d.is_lstm() {
                    &mut dc[b * hid..][..hid]
                } else {
                    &mut []
                },
            }
            .run(d.kind);
        }
        // dh_prev = dHH_t · W_hh for running sequences (rows of step t lie `seq·G·H` apart):
        // `dg`'s blocks, then GRU's candidate from `dhn`; ended ones carry dh through unchanged.
        let shared = View::strided_rows(&dg[t * gh..], batch, shared_cols, seq * gh);
        w_hh.shared.matmul_view(&mut dh_prev, shared, false);
        if let Some(candidate) = &w_hh.candidate {
            let dhn_t = View::strided_rows(&dhn[t * hid..], batch, hid, seq * hid);
            candidate.matmul_view(&mut dh_prev, dhn_t, true);
        }
        finish_dh_prev(&mut dh_prev, &dh, &direct, hid, schedule, t);
        std::mem::swap(&mut dh, &mut dh_prev);
    }
    dh_out.copy_from_slice(&dh);
}

#[cfg(test)]
mod tests {
    //! The kernels against central finite differences of their own forward pass: every
    //! input's gradient, for every kind, with and without lengths, in both directions, on one
    //! slice of the batch and on two, and split by hidden units into one, two and three groups.
    //! (The PyTorch parity grid checks the same numbers end to end.)
    use super::*;
    use crate::fused::parallel::{self, LAST_SPLIT, Layer, Split};

    struct Case {
        /// How the threads share the work (`Rows(1)`: the serial path).
        split: Split,
        d: Dims,
        /// 1, or 2 (the second direction runs in reverse).
        directions: usize,
        lengths: Option<Vec<usize>>,
        tensors: Vec<Vec<f32>>, // x, w_ih, w_hh, b_ih, b_hh, h0, c0
    }

    impl Case {
        fn layer(&self) -> Layer<'_> {
            Layer {
                d: self.d,
                lengths: self.lengths.as_deref(),
                directions: self.directions,
            }
        }
    }

    fn case(kind: CellKind, directions: usize, lengths: Option<Vec<usize>>, split: Split) -> Case {
        let d = Dims {
            kind,
            seq: 4,
            batch: 3,
            input: 2,
            hidden: 3,
        };
        let gh = directions * d.gate_width();
        let sizes = [
            d.rows() * d.input,
            gh * d.input,
            gh * d.hidden,
            gh,
            gh,
            directions * d.batch * d.hidden,
            directions * d.batch * d.hidden,
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
            split,
            d,
            directions,
            lengths,
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
        let (packed, _) = parallel::forward(
            c.split,
            c.layer(),
            &p,
            &tensors[0],
            &tensors[5],
            &tensors[6],
            false,
        );
        packed
            .iter()
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
        let (packed, saved) = parallel::forward(c.split, c.layer(), &p, &t[0], &t[5], &t[6], true);
        assert_eq!(
            LAST_SPLIT.get(),
            Some(c.split),
            "the forward pass fell back"
        );
        let weights: Vec<f32> = (0..packed.len())
            .map(|i| ((i as f64 * 0.37).sin() + 0.2) as f32)
            .collect();
        let (d_out, states) = weights.split_at(c.directions * c.d.rows() * c.d.hidden);
        let (d_hn, d_cn) = states.split_at(c.directions * c.d.batch * c.d.hidden);
        let saved = saved.expect("saved");
        let x = Input::new(&t[0], &c.d);
        let backward = |need_x, x| {
            parallel::backward(c.split, c.layer(), need_x, &p, x, &saved, d_out, d_hn, d_cn)
        };
        let g = backward(true, x);
        // Without the input's gradient, the others are the same.
        assert_eq!(LAST_SPLIT.get(), Some(c.split), "backward fell back");
        let without_x = backward(false, x);
        assert!(without_x.x.is_empty());
        assert_eq!((&without_x.w_ih, &without_x.w_hh), (&g.w_ih, &g.w_hh));
        assert_eq!((&without_x.h0, &without_x.b_ih), (&g.h0, &g.b_ih));
        if x.repeated {
            // `W_ih`'s gradient from the steps' summed gate gradients is the per-step sum's
            // (up to rounding: the same terms added in another order); the rest is untouched.
            let per_step = backward(
                true,
                Input {
                    repeated: false,
                    ..x
                },
            );
            for (a, b) in g.w_ih.iter().zip(&per_step.w_ih) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "W_ih: {a} against {b}"
                );
            }
            assert_eq!(
                (&g.x, &g.w_hh, &g.b_ih),
                (&per_step.x, &per_step.w_hh, &per_step.b_ih)
            );
        }
        let analytic = [&g.x, &g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh, &g.h0, &g.c0];
        for (which, grad) in analytic.iter().enumerate() {
            if which == 6 && c.d.kind != CellKind::Lstm {
                continue;
            }
            for k in 0..t[which].len() {
                // ReLU has a kink at 0: a smaller step keeps pre-activations on one side of it.
                let eps = if c.d.kind == CellKind::RnnRelu {
                    2e-3f32
                } else {
                    1e-2f32
                };
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

    /// Rows: serial and two slices; units: one, two and three groups (of hidden 3).
    const SPLITS: [Split; 5] = [
        Split::Rows(1),
        Split::Rows(2),
        Split::Units(1),
        Split::Units(2),
        Split::Units(3),
    ];

    /// Runs `f` on a pool with a thread for every unit group of both directions.
    fn with_threads(f: impl FnOnce() + Send) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(6)
            .build()
            .expect("a thread pool")
            .install(f);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for kind in [
            CellKind::Lstm,
            CellKind::Gru,
            CellKind::RnnTanh,
            CellKind::RnnRelu,
        ] {
            for directions in [1, 2] {
                for lengths in [None, Some(vec![4, 2, 1])] {
                    for split in SPLITS {
                        with_threads(|| check(case(kind, directions, lengths.clone(), split)));
                        // A repeated input is projected once; finite differences perturb one
                        // element and so run the loop that projects every step. (Here, not in
                        // a test of its own: a concurrent test would take the unit split's
                        // pool and make this one fall back to rows.)
                        let c = repeating(case(kind, directions, lengths.clone(), split));
                        with_threads(|| check(c));
                    }
                }
            }
        }
    }

    /// A copy of `c` whose every sequence repeats its first step's input.
    fn repeating(mut c: Case) -> Case {
        let (seq, input) = (c.d.seq, c.d.input);
        for row in c.tensors[0].chunks_exact_mut(seq * input) {
            let first = row[..input].to_vec();
            for step in row.chunks_exact_mut(input) {
                step.copy_from_slice(&first);
            }
        }
        assert!(Input::new(&c.tensors[0], &c.d).repeated);
        c
    }

    #[test]
    fn repeated_steps_are_detected_exactly() {
        let c = repeating(case(CellKind::Lstm, 1, None, Split::Rows(1)));
        let (d, mut x) = (c.d, c.tensors[0].clone());
        // The last element of the last step of the last sequence differs.
        *x.last_mut().expect("an input") += 1e-6;
        assert!(!Input::new(&x, &d).repeated);
        // One step repeats trivially.
        let one = Dims { seq: 1, ..d };
        assert!(Input::new(&x[..d.batch * d.input], &one).repeated);
        // Every sequence is checked, not only the first.
        let mut x = c.tensors[0].clone();
        x[d.seq * d.input + d.input] += 1.0;
        assert!(!Input::new(&x, &d).repeated);
    }

    /// A repeated input's step after the first reuses the first step's projection, and that is
    /// the step's own product.
    #[test]
    fn a_repeated_step_keeps_the_first_projection() {
        let c = repeating(case(CellKind::Lstm, 1, None, Split::Rows(1)));
        let d = c.d;
        let w_ih_t = PackedB::from_strided(&c.tensors[1], d.input, d.gate_width(), 1, d.input);
        let repeated = Input::new(&c.tensors[0], &d);
        let plain = Input {
            repeated: false,
            ..repeated
        };
        let mut kept = vec![0.0; d.batch * d.gate_width()];
        for i in 0..d.seq {
            let t = d.seq - 1 - i;
            repeated.project(&w_ih_t, &mut kept, i, t, &d);
            let mut own = vec![f32::NAN; kept.len()];
            plain.project(&w_ih_t, &mut own, i, t, &d);
            assert_eq!(kept, own, "step {t}");
        }
    }

    #[test]
    fn ended_sequences_output_zero_and_hold_their_state() {
        let c = case(CellKind::Lstm, 1, Some(vec![4, 2, 1]), Split::Rows(2));
        let t = &c.tensors;
        let p = Params {
            w_ih: &t[1],
            w_hh: &t[2],
            b_ih: Some(&t[3]),
            b_hh: Some(&t[4]),
        };
        let (packed, _) = parallel::forward(c.split, c.layer(), &p, &t[0], &t[5], &t[6], false);
        let hid = c.d.hidden;
        let (out, h_n) = packed.split_at(c.d.rows() * hid);
        // Sequence 2 has length 1: steps 1.. output zeros, h_n is its step-0 output.
        let row = |b: usize, t: usize| (b * 4 + t) * hid;
        for step in 1..4 {
            assert!(out[row(2, step)..][..hid].iter().all(|&v| v == 0.0));
        }
        assert!(out[row(2, 0)..][..hid].iter().any(|&v| v != 0.0));
        assert_eq!(&h_n[2 * hid..3 * hid], &out[row(2, 0)..][..hid]);
    }
}
