//! One layer over the whole batch: the time loops in parallel over directions and slices of the
//! batch, the weight-gradient GEMMs once.
//!
//! Batch rows never interact in a recurrence, so each thread runs the whole sequence for its
//! own slice of the batch with serial per-step GEMMs — no synchronization per time step, which
//! on a few cores costs more than the small per-step GEMMs it would split. The buffers are
//! batch-major ([`kernel`]), so a slice of the batch is one contiguous block of each of them:
//! threads get disjoint `&mut` sub-slices of the full buffers, nothing is gathered or scattered.
//! A forward job projects each step's input just before the step, so the projection stays in
//! cache; the input and weight gradients after BPTT run once, on all threads, over the whole
//! batch.

use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::gemm::{View, as_split_job, matmul, matmul_side_by_side};
use super::kernel::{
    Backward, Dims, Forward, Input, Params, RecurrentWeights, Saved, SavedMut, SavedRef, Schedule,
};
use super::layout::PackedLayout;
use super::packed::PackedB;
use super::pool::Buf;
use super::units::{self, BackwardDirection, ForwardDirection};

/// Rows per slice below which splitting the batch does not pay.
const MIN_CHUNK_ROWS: usize = 8;

/// Hidden units per group below which a unit split does not pay (8 units are 32 columns of
/// LSTM gates: two 16-column panels).
const MIN_GROUP_UNITS: usize = 8;

/// `RNN_CPU_SPLIT=rows|units` overrides [`Layer::default_split`] (for measuring one against
/// the other and for running the test suite through both); read once per process, an unknown
/// value is ignored.
fn forced_split() -> Option<&'static str> {
    static FORCED: OnceLock<Option<&'static str>> = OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("RNN_CPU_SPLIT").as_deref() {
        Ok("rows") => Some("rows"),
        Ok("units") => Some("units"),
        _ => None,
    })
}

/// How a layer's time loops are spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Each direction's batch in this many slices of rows, no synchronization between them.
    Rows(usize),
    /// Each direction's hidden units in this many groups over the whole batch, one barrier per
    /// step ([`units`]). Falls back to [`Split::Rows`] when the pool cannot run the groups at
    /// once.
    Units(usize),
}

#[cfg(test)]
thread_local! {
    /// The split the last [`forward`] or [`backward`] on this thread ran (after fallbacks).
    pub(crate) static LAST_SPLIT: std::cell::Cell<Option<Split>> = const { std::cell::Cell::new(None) };
}

/// Records the split that ran (tests read it).
fn ran(_split: Split) {
    #[cfg(test)]
    LAST_SPLIT.with(|last| last.set(Some(_split)));
}

/// How many slices to split `batch` rows into, per direction, on this thread pool.
fn chunk_count(batch: usize, directions: usize) -> usize {
    chunks_for(batch, directions, rayon::current_num_threads())
}

/// [`chunk_count`] on `threads` threads.
fn chunks_for(batch: usize, directions: usize, threads: usize) -> usize {
    threads
        .div_ceil(directions)
        .min(batch / MIN_CHUNK_ROWS)
        .max(1)
}

/// A unit group's GEMM work per step (multiply-adds) below which its barrier costs more than
/// the extra thread saves: on the 2-core EPYC, hidden 256 at batch 8 (≈ 1.3 M per group)
/// trained ≈ 1.2× faster split by units than on one thread, hidden 128 at batch 8 (≈ 0.3 M)
/// was as often slower (a preempted thread stalls the others at the barrier).
const MIN_GROUP_STEP_WORK: usize = 1 << 20;

/// How to spread a layer over `threads` threads: by hidden units where that keeps more
/// threads busy than slices of the batch can (slices under 8 rows do not pay) and each
/// group's per-step work amortizes the barrier; else by batch rows, which needs no
/// synchronization. `forced` is `RNN_CPU_SPLIT`'s value, if any.
fn choose_split(d: &Dims, directions: usize, threads: usize, forced: Option<&str>) -> Split {
    let chunks = chunks_for(d.batch, directions, threads);
    let per_direction = (threads / directions).max(1);
    let groups = per_direction.min(d.hidden / MIN_GROUP_UNITS).max(1);
    let group_work = d.batch * d.gate_width() * (d.input + d.hidden) / groups;
    match forced {
        Some("rows") => Split::Rows(chunks),
        // Forced (tests): as many groups as threads, however small.
        Some(_) => Split::Units(per_direction.min(d.hidden).max(1)),
        None if groups > chunks && group_work >= MIN_GROUP_STEP_WORK => Split::Units(groups),
        None => Split::Rows(chunks),
    }
}

/// `n` nearly equal contiguous ranges covering `0..batch`.
fn ranges(batch: usize, n: usize) -> Vec<Range<usize>> {
    (0..n)
        .map(|i| (i * batch / n)..((i + 1) * batch / n))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Splits `buf` into consecutive blocks of `part.len() · per_row` elements, one per part.
/// An empty `buf` (a buffer this cell kind does not use) gives empty blocks.
fn split<'a, T>(buf: &'a mut [T], parts: &[Range<usize>], per_row: usize) -> Vec<&'a mut [T]> {
    if buf.is_empty() {
        return parts.iter().map(|_| <&mut [T]>::default()).collect();
    }
    let mut rest = buf;
    parts
        .iter()
        .map(|part| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(part.len() * per_row);
            rest = tail;
            head
        })
        .collect()
}

/// A `[D, batch, hidden]` state buffer cut into its `directions` blocks (empty blocks for an
/// empty buffer: the cell state of a kind without one).
fn state_blocks(buf: &mut [f32], directions: usize) -> Vec<&mut [f32]> {
    if buf.is_empty() {
        return (0..directions).map(|_| <&mut [f32]>::default()).collect();
    }
    let block = buf.len() / directions;
    buf.chunks_mut(block).collect()
}

/// [`split`] for shared buffers.
fn split_ref<'a>(buf: &'a [f32], part: &Range<usize>, per_row: usize) -> &'a [f32] {
    if buf.is_empty() {
        return buf;
    }
    &buf[part.start * per_row..part.end * per_row]
}

/// Runs `work` for every slice: inline for one, on Rayon's threads for several (each a split
/// job, whose GEMMs stay serial).
fn for_each_slice<T: Send>(jobs: Vec<T>, work: impl Fn(T) + Sync + Send) {
    if jobs.len() == 1 {
        jobs.into_iter().for_each(work);
    } else {
        jobs.into_par_iter()
            .for_each(|job| as_split_job(|| work(job)));
    }
}

/// One thread's share of the forward pass: direction `dir` over batch rows `part`, with that
/// slice's blocks of the direction's output, states and saved activations.
struct ForwardJob<'a> {
    dir: usize,
    part: Range<usize>,
    /// `[part, seq, hidden]`.
    out: &'a mut [f32],
    /// `[part, hidden]`: `h0` in, `h_n` out.
    h: &'a mut [f32],
    /// `[part, hidden]`: `c0` in, `c_n` out (LSTM; empty otherwise).
    c: &'a mut [f32],
    saved: Option<SavedMut<'a>>,
}

impl<'a> ForwardJob<'a> {
    /// Cuts direction `dir`'s buffers into one job per slice of the batch.
    #[allow(clippy::too_many_arguments)]
    fn slices(
        dir: usize,
        parts: &[Range<usize>],
        d: &Dims,
        out: &'a mut [f32],
        h: &'a mut [f32],
        c: &'a mut [f32],
        saved: Option<&'a mut Saved>,
    ) -> Vec<Self> {
        let outs = split(out, parts, d.seq * d.hidden);
        let hs = split(h, parts, d.hidden);
        let cs = split(c, parts, d.hidden);
        let saved = split_saved(saved, parts, d);
        outs.into_iter()
            .zip(hs)
            .zip(cs)
            .zip(saved)
            .zip(parts)
            .map(|((((out, h), c), saved), part)| ForwardJob {
                dir,
                part: part.clone(),
                out,
                h,
                c,
                saved,
            })
            .collect()
    }
}

/// One thread's share of BPTT: direction `dir` over batch rows `part`, with that slice's
/// blocks of the gate gradients and of the state gradients.
struct BackwardJob<'a> {
    dir: usize,
    part: Range<usize>,
    /// `[part, seq, G·H]`: gate pre-activation gradients.
    dg: &'a mut [f32],
    /// `[part, seq, hidden]`: GRU's candidate gradient on the recurrent side (empty
    /// otherwise).
    dhn: &'a mut [f32],
    /// `[part, hidden]`: `dL/dh_n` in, `dL/dh0` out.
    dh: &'a mut [f32],
    /// `[part, hidden]`: `dL/dc_n` in, `dL/dc0` out (LSTM; empty otherwise).
    dc: &'a mut [f32],
}

impl<'a> BackwardJob<'a> {
    /// Cuts direction `dir`'s buffers into one job per slice of the batch.
    #[allow(clippy::too_many_arguments)]
    fn slices(
        dir: usize,
        parts: &[Range<usize>],
        d: &Dims,
        dg: &'a mut [f32],
        dhn: &'a mut [f32],
        dh: &'a mut [f32],
        dc: &'a mut [f32],
    ) -> Vec<Self> {
        let dgs = split(dg, parts, d.seq * d.gate_width());
        let dhns = split(dhn, parts, d.seq * d.hidden);
        let dhs = split(dh, parts, d.hidden);
        let dcs = split(dc, parts, d.hidden);
        dgs.into_iter()
            .zip(dhns)
            .zip(dhs)
            .zip(dcs)
            .zip(parts)
            .map(|((((dg, dhn), dh), dc), part)| BackwardJob {
                dir,
                part: part.clone(),
                dg,
                dhn,
                dh,
                dc,
            })
            .collect()
    }
}

/// One layer's problem: its sizes per direction, lengths, and how many directions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layer<'a> {
    /// Sizes of one direction over the whole batch.
    pub d: Dims,
    /// Per-sequence lengths (packed-sequence semantics), or `None` for full length.
    pub lengths: Option<&'a [usize]>,
    /// 1, or 2 for a bidirectional layer (direction 1 runs in reverse).
    pub directions: usize,
}

impl Layer<'_> {
    /// Direction `dir`'s schedule for batch rows `part`.
    fn schedule(&self, dir: usize, part: &Range<usize>) -> Schedule {
        Schedule {
            reverse: dir == 1,
            lengths: self.lengths.map(|l| l[part.clone()].to_vec()),
        }
    }

    /// As many slices of the batch per direction as pay on this thread pool (fewer when the
    /// directions already keep the threads busy).
    pub fn default_chunks(&self) -> usize {
        chunk_count(self.d.batch, self.directions)
    }

    /// The split for this shape on this thread pool ([`choose_split`]), unless
    /// `RNN_CPU_SPLIT` forces one.
    pub fn default_split(&self) -> Split {
        choose_split(
            &self.d,
            self.directions,
            rayon::current_num_threads(),
            forced_split(),
        )
    }

    /// The schedule of direction `dir` over the whole batch.
    fn full_schedules(&self) -> Vec<Schedule> {
        (0..self.directions)
            .map(|dir| self.schedule(dir, &(0..self.d.batch)))
            .collect()
    }

    /// The groups to run a [`Split::Units`] with now and the right to run them, or `None`
    /// to split by rows.
    fn claim_units(&self, split: Split) -> Option<(usize, std::sync::MutexGuard<'static, ()>)> {
        match split {
            Split::Units(groups) if groups >= 1 && groups <= self.d.hidden => {
                units::claim(self.directions * groups).map(|guard| (groups, guard))
            }
            _ => None,
        }
    }

    /// The row slices of `split` (the default ones when it asked for units).
    fn row_chunks(&self, split: Split) -> usize {
        match split {
            Split::Rows(chunks) => chunks,
            Split::Units(_) => self.default_chunks(),
        }
    }

    /// The slices of the batch.
    fn parts(&self, chunks: usize) -> Vec<Range<usize>> {
        ranges(self.d.batch, chunks.max(1))
    }
}

/// The forward pass of a layer, its time loops spread over threads as `split` says.
///
/// Weights are stacked by direction (`w_ih: [D·G·H, input]`, …), `x: [batch, seq, input]`,
/// `h0`, `c0: [D, batch, hidden]`. Returns the packed `out ++ h_n (++ c_n)` — `out: [batch,
/// seq, D·hidden]` with the directions side by side, `h_n`, `c_n: [D, batch, hidden]` — and,
/// with `save`, what [`backward`] needs, per direction.
pub(crate) fn forward(
    split: Split,
    layer: Layer<'_>,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Vec<f32>, Option<Vec<Saved>>) {
    let Layer { d, directions, .. } = layer;
    let (hid, rows) = (d.hidden, d.rows());
    let layout = PackedLayout::new(&d, directions);
    let mut packed = vec![0.0; layout.len()];
    let (out, h, c) = layout.split_mut(&mut packed);
    h.copy_from_slice(h0);
    if d.is_lstm() {
        c.copy_from_slice(c0);
    }
    let mut saved: Option<Vec<Saved>> =
        save.then(|| (0..directions).map(|_| Saved::new(&d)).collect());
    // One direction writes its output in place; two write their own and are interleaved after.
    let mut own_outputs: Vec<Buf> = if directions == 1 {
        Vec::new()
    } else {
        (0..directions).map(|_| Buf::dirty(rows * hid)).collect()
    };

    let outs: Vec<&mut [f32]> = if directions == 1 {
        vec![&mut *out]
    } else {
        own_outputs.iter_mut().map(|b| &mut b[..]).collect()
    };
    let saved_dirs: Vec<Option<&mut Saved>> = match saved.as_mut() {
        Some(v) => v.iter_mut().map(Some).collect(),
        None => (0..directions).map(|_| None).collect(),
    };
    let h_dirs = state_blocks(h, directions);
    let c_dirs = state_blocks(c, directions);
    let x = Input::new(x, &d);
    if let Some((groups, _running)) = layer.claim_units(split) {
        let dirs = outs
            .into_iter()
            .zip(h_dirs)
            .zip(c_dirs)
            .zip(saved_dirs)
            .map(|(((out, h), c), saved)| ForwardDirection { out, h, c, saved })
            .collect();
        units::forward(groups, &d, &layer.full_schedules(), p, x, dirs);
        ran(Split::Units(groups));
    } else {
        let chunks = layer.row_chunks(split);
        forward_rows(chunks, &layer, p, x, outs, h_dirs, c_dirs, saved_dirs);
        ran(Split::Rows(chunks));
    }
    if directions > 1 {
        interleave(out, &own_outputs, hid);
    }
    (packed, saved)
}

/// [`forward`]'s time loops split by batch rows: `chunks` slices per direction.
#[allow(clippy::too_many_arguments)]
fn forward_rows(
    chunks: usize,
    layer: &Layer<'_>,
    p: &Params<'_>,
    x: Input<'_>,
    outs: Vec<&mut [f32]>,
    h_dirs: Vec<&mut [f32]>,
    c_dirs: Vec<&mut [f32]>,
    saved_dirs: Vec<Option<&mut Saved>>,
) {
    let d = layer.d;
    let per_direction: Vec<_> = (0..layer.directions)
        .map(|dir| StepWeights::new(&p.direction(dir, &d), &d))
        .collect();
    let parts = layer.parts(chunks);
    let mut jobs = Vec::new();
    for (dir, (((out, h), c), saved)) in outs
        .into_iter()
        .zip(h_dirs)
        .zip(c_dirs)
        .zip(saved_dirs)
        .enumerate()
    {
        jobs.extend(ForwardJob::slices(dir, &parts, &d, out, h, c, saved));
    }
    for_each_slice(jobs, |job| {
        let ForwardJob {
            dir,
            part,
            out,
            h,
            c,
            saved,
        } = job;
        let StepWeights {
            bias,
            b_hn,
            w_hh_t,
            w_ih_t,
        } = &per_direction[dir];
        Forward {
            d: Dims {
                batch: part.len(),
                ..d
            },
            schedule: &layer.schedule(dir, &part),
            w_hh_t,
            bias,
            b_hn,
            w_ih_t,
            x: Input {
                x: split_ref(x.x, &part, d.seq * d.input),
                ..x
            },
            h,
            c,
            out,
            saved,
        }
        .run();
    });
}

/// One direction's weights as the forward time loop reads them.
struct StepWeights {
    /// `b_ih + b_hh` folded (GRU: but `b_hn`), `[G·H]`.
    bias: Vec<f32>,
    /// GRU's `b_hn`, `[H]`.
    b_hn: Vec<f32>,
    /// `W_hhᵀ` packed for the per-step GEMMs.
    w_hh_t: PackedB,
    /// `W_ihᵀ` packed for the per-step input projections.
    w_ih_t: PackedB,
}

impl StepWeights {
    fn new(p: &Params<'_>, d: &Dims) -> Self {
        let (hid, gh) = (d.hidden, d.gate_width());
        let (bias, b_hn) = p.biases(d);
        Self {
            bias,
            b_hn,
            // W_hhᵀ (`[hidden, G·H]`), packed straight from W_hh's rows.
            w_hh_t: PackedB::from_strided(p.w_hh, hid, gh, 1, hid),
            // W_ihᵀ (`[input, G·H]`) likewise from W_ih's rows.
            w_ih_t: PackedB::from_strided(p.w_ih, d.input, gh, 1, d.input),
        }
    }
}

/// Writes row `r` of every direction's `[rows, hidden]` output side by side into row `r` of
/// `out: [rows, D·hidden]`, blocks of rows in parallel.
fn interleave(out: &mut [f32], parts: &[Buf], hid: usize) {
    const BLOCK_ROWS: usize = 256;
    let width = parts.len() * hid;
    out.par_chunks_mut(BLOCK_ROWS * width)
        .enumerate()
        .for_each(|(block, rows)| {
            for (i, row) in rows.chunks_exact_mut(width).enumerate() {
                let r = block * BLOCK_ROWS + i;
                for (dst, part) in row.chunks_exact_mut(hid).zip(parts) {
                    dst.copy_from_slice(&part[r * hid..][..hid]);
                }
            }
        });
}

/// A direction's saved buffers cut into the batch slices (`None`s when nothing is saved).
fn split_saved<'a>(
    saved: Option<&'a mut Saved>,
    parts: &[Range<usize>],
    d: &Dims,
) -> Vec<Option<SavedMut<'a>>> {
    let Some(s) = saved else {
        return parts.iter().map(|_| None).collect();
    };
    let (seq, hid) = (d.seq, d.hidden);
    let acts = split(&mut s.acts, parts, seq * d.act_width());
    let h_prev = split(&mut s.h_prev, parts, seq * hid);
    let c_prev = split(&mut s.c_prev, parts, seq * hid);
    let hn = split(&mut s.hn, parts, seq * hid);
    let tanh_c = split(&mut s.tanh_c, parts, seq * hid);
    acts.into_iter()
        .zip(h_prev)
        .zip(c_prev.into_iter().zip(hn))
        .zip(tanh_c)
        .map(|(((acts, h_prev), (c_prev, hn)), tanh_c)| {
            Some(SavedMut {
                acts,
                h_prev,
                c_prev,
                hn,
                tanh_c,
            })
        })
        .collect()
}

/// Gradients of the loss with respect to every input of [`forward`] (weights stacked by
/// direction, states `[D, batch, hidden]`).
#[derive(Debug)]
pub(crate) struct Grads {
    /// `[batch, seq, input]`; empty when not asked for.
    pub x: Vec<f32>,
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
    pub h0: Vec<f32>,
    /// Empty unless LSTM.
    pub c0: Vec<f32>,
}

/// Backpropagation through time: BPTT in parallel over directions and slices of the batch,
/// then the input and weight gradients as GEMMs over all rows. `d_out: [batch, seq,
/// D·hidden]`, `d_hn`, `d_cn: [D, batch, hidden]` (`d_cn` read for LSTM only) are the
/// gradients of the loss with respect to [`forward`]'s outputs. Without `need_x` the input's
/// gradient is left empty.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    split: Split,
    layer: Layer<'_>,
    need_x: bool,
    p: &Params<'_>,
    x: Input<'_>,
    saved: &[Saved],
    d_out: &[f32],
    d_hn: &[f32],
    d_cn: &[f32],
) -> Grads {
    let Layer { d, directions, .. } = layer;
    let (hid, gh, seq, rows) = (d.hidden, d.gate_width(), d.seq, d.rows());
    let is_gru = d.kind == crate::CellKind::Gru;
    // Every row is written by BPTT (zeros for the steps of ended sequences).
    let mut dg: Vec<Buf> = (0..directions).map(|_| Buf::dirty(rows * gh)).collect();
    let mut dhn: Vec<Buf> = (0..directions)
        .map(|_| {
            if is_gru {
                Buf::dirty(rows * hid)
            } else {
                Buf::empty()
            }
        })
        .collect();
    let mut dh0 = d_hn.to_vec();
    let mut dc0 = if d.is_lstm() {
        d_cn.to_vec()
    } else {
        Vec::new()
    };

    let dh_dirs = state_blocks(&mut dh0, directions);
    let dc_dirs = state_blocks(&mut dc0, directions);
    let width = directions * hid;
    if let Some((groups, _running)) = layer.claim_units(split) {
        let w_hh: Vec<&[f32]> = (0..directions)
            .map(|dir| p.direction(dir, &d).w_hh)
            .collect();
        let dirs = dg
            .iter_mut()
            .zip(dhn.iter_mut())
            .zip(dh_dirs)
            .zip(dc_dirs)
            .enumerate()
            .map(|(dir, (((dg, dhn), dh), dc))| BackwardDirection {
                saved: &saved[dir],
                d_out: &d_out[dir * hid..],
                d_out_stride: width,
                dh,
                dc,
                dg,
                dhn,
            })
            .collect();
        units::backward(groups, &d, &layer.full_schedules(), &w_hh, dirs);
        ran(Split::Units(groups));
    } else {
        let chunks = layer.row_chunks(split);
        let w_hh: Vec<RecurrentWeights> = (0..directions)
            .map(|dir| RecurrentWeights::new(p.direction(dir, &d).w_hh, &d))
            .collect();
        let parts = layer.parts(chunks);
        let mut jobs = Vec::new();
        for (dir, (((dg, dhn), dh), dc)) in dg
            .iter_mut()
            .zip(dhn.iter_mut())
            .zip(dh_dirs)
            .zip(dc_dirs)
            .enumerate()
        {
            jobs.extend(BackwardJob::slices(dir, &parts, &d, dg, dhn, dh, dc));
        }
        let aw = d.act_width();
        for_each_slice(jobs, |job| {
            let BackwardJob {
                dir,
                part,
                dg,
                dhn,
                dh,
                dc,
            } = job;
            let s = &saved[dir];
            Backward {
                d: Dims {
                    batch: part.len(),
                    ..d
                },
                schedule: &layer.schedule(dir, &part),
                w_hh: &w_hh[dir],
                saved: SavedRef {
                    acts: split_ref(&s.acts, &part, seq * aw),
                    h_prev: split_ref(&s.h_prev, &part, seq * hid),
                    c_prev: split_ref(&s.c_prev, &part, seq * hid),
                    hn: split_ref(&s.hn, &part, seq * hid),
                    tanh_c: split_ref(&s.tanh_c, &part, seq * hid),
                },
                d_out: &d_out[part.start * seq * width + dir * hid..part.end * seq * width],
                d_out_stride: width,
                dh,
                dc,
                dg,
                dhn,
            }
            .run();
        });
        ran(Split::Rows(chunks));
    }

    weight_gradients(&layer, need_x, p, x, saved, &dg, &dhn, dh0, dc0)
}

/// After BPTT: the input and weight gradients as GEMMs over all rows, bias gradients as
/// column sums of the gate gradients `dg` (GRU's recurrent-side candidate from `dhn`).
#[allow(clippy::too_many_arguments)]
fn weight_gradients(
    layer: &Layer<'_>,
    need_x: bool,
    p: &Params<'_>,
    x: Input<'_>,
    saved: &[Saved],
    dg: &[Buf],
    dhn: &[Buf],
    dh0: Vec<f32>,
    dc0: Vec<f32>,
) -> Grads {
    let Layer { d, directions, .. } = *layer;
    let (hid, gh, rows) = (d.hidden, d.gate_width(), d.rows());
    let is_gru = d.kind == crate::CellKind::Gru;
    let mut grads = Grads {
        x: if need_x {
            vec![0.0; rows * d.input]
        } else {
            Vec::new()
        },
        w_ih: vec![0.0; directions * gh * d.input],
        w_hh: vec![0.0; directions * gh * hid],
        b_ih: Vec::with_capacity(directions * gh),
        b_hh: Vec::with_capacity(directions * gh),
        h0: dh0,
        c0: dc0,
    };
    // The gate blocks whose gradients both weights take: all of them, except GRU's candidate
    // (its recurrent side is scaled by `r`, kept apart in `dhn`).
    let shared = if is_gru { 2 * hid } else { gh };
    let width = hid + d.input;
    for dir in 0..directions {
        let w_hh = &mut grads.w_hh[dir * gh * hid..][..gh * hid];
        let w_ih = &mut grads.w_ih[dir * gh * d.input..][..gh * d.input];
        let h_prev = View::rows(&saved[dir].h_prev, rows, hid);
        let dg_shared = View::transposed_columns(&dg[dir], gh, 0..shared, rows);
        // The shared blocks' products; then the rows `W_ih`'s gradient `Σ dgᵀ · x` runs over
        // (`x_rows` of them: `inputs`, and the gate gradients they pair with, `dg_x`).
        let step_sums;
        let (x_rows, dg_x, inputs) = if x.repeated && d.seq > 1 {
            // Every step of a sequence holds its first step's `x₀`: `Σₜ dgₜᵀ · x₀` is
            // `(Σₜ dgₜ)ᵀ · x₀`, a product over the batch instead of batch · seq rows. (A
            // single step repeats trivially and keeps the one shared product.)
            step_sums = sum_over_steps(&dg[dir], &d);
            let first_steps = View::strided_rows(x.x, d.batch, d.input, d.seq * d.input);
            matmul(&mut w_hh[..shared * hid], dg_shared, h_prev, false);
            let sums_shared = View::transposed_columns(&step_sums, gh, 0..shared, d.batch);
            matmul(
                &mut w_ih[..shared * d.input],
                sums_shared,
                first_steps,
                false,
            );
            (d.batch, &step_sums[..], first_steps)
        } else {
            // One product for both weights, `dgᵀ · [h_prev x]`: the transposed gate gradients
            // are copied into rows once.
            let inputs = View::rows(x.x, rows, d.input);
            let mut both = Buf::dirty(shared * width);
            matmul_side_by_side(&mut both, dg_shared, &[h_prev, inputs], false);
            for (r, row) in both.chunks_exact(width).enumerate() {
                w_hh[r * hid..(r + 1) * hid].copy_from_slice(&row[..hid]);
                w_ih[r * d.input..(r + 1) * d.input].copy_from_slice(&row[hid..]);
            }
            (rows, &dg[dir][..], inputs)
        };
        if is_gru {
            // The candidate's block: `dhnᵀ · h_prev` and `dgᵀ · x` apart.
            let dhn_t = View::transposed_columns(&dhn[dir], hid, 0..hid, rows);
            matmul(&mut w_hh[shared * hid..], dhn_t, h_prev, false);
            let dg_n = View::transposed_columns(dg_x, gh, shared..gh, x_rows);
            matmul(&mut w_ih[shared * d.input..], dg_n, inputs, false);
        }
        if need_x {
            matmul(
                &mut grads.x,
                View::rows(&dg[dir], rows, gh),
                View::rows(p.direction(dir, &d).w_ih, gh, d.input),
                dir > 0,
            );
        }
        let b_ih = column_sums(&dg[dir], gh, 0..gh);
        // Both biases take the shared blocks' sums; GRU's candidate sums `dhn` for `b_hh`.
        let mut b_hh = b_ih[..shared].to_vec();
        if is_gru {
            b_hh.extend(column_sums(&dhn[dir], hid, 0..hid));
        }
        grads.b_ih.extend(b_ih);
        grads.b_hh.extend(b_hh);
    }
    grads
}

/// `[batch, G·H]`: each sequence's gate gradients `dg: [batch, seq, G·H]` summed over its
/// steps (steps of ended sequences hold zeros), blocks of sequences in parallel.
fn sum_over_steps(dg: &[f32], d: &Dims) -> Buf {
    const BLOCK_ROWS: usize = 64;
    let gh = d.gate_width();
    let mut sums = Buf::dirty(d.batch * gh);
    // (`max(1)`: chunks of no elements are not allowed; with no gates there is nothing to sum.)
    sums.par_chunks_mut((BLOCK_ROWS * gh).max(1))
        .zip(dg.par_chunks((BLOCK_ROWS * d.seq * gh).max(1)))
        .for_each(|(sums, dg)| {
            for (sum, steps) in sums.chunks_exact_mut(gh).zip(dg.chunks_exact(d.seq * gh)) {
                let (first, rest) = steps.split_at(gh);
                sum.copy_from_slice(first);
                for step in rest.chunks_exact(gh) {
                    for (s, v) in sum.iter_mut().zip(step) {
                        *s += v;
                    }
                }
            }
        });
    sums
}

/// Sums of columns `cols` of a row-major `[·, width]` matrix, blocks of rows in parallel.
///
/// The blocks' sums are added in block order, whichever thread made them: a parallel `reduce`
/// groups them as the threads happen to steal work, which changed the last bits of a training
/// run from one run to the next.
fn column_sums(m: &[f32], width: usize, cols: Range<usize>) -> Vec<f32> {
    const BLOCK_ROWS: usize = 256;
    let add = |acc: &mut [f32], row: &[f32]| {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    };
    let blocks: Vec<Vec<f32>> = m
        .par_chunks(BLOCK_ROWS * width)
        .map(|block| {
            let mut sums = vec![0.0; cols.len()];
            for row in block.chunks_exact(width) {
                add(&mut sums, &row[cols.clone()]);
            }
            sums
        })
        .collect();
    let mut sums = vec![0.0; cols.len()];
    for block in &blocks {
        add(&mut sums, block);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_batch() {
        assert_eq!(ranges(64, 2), vec![0..32, 32..64]);
        assert_eq!(ranges(3, 2), vec![0..1, 1..3]);
        assert_eq!(ranges(1, 4), vec![0..1]);
        let mut buf: Vec<u32> = (0..12).collect(); // 3 rows of 4
        let parts = ranges(3, 2);
        let blocks = split(&mut buf, &parts, 4);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], &[0, 1, 2, 3]);
        assert_eq!(blocks[1], &[4, 5, 6, 7, 8, 9, 10, 11]);
        let mut empty: Vec<u32> = Vec::new();
        assert!(split(&mut empty, &parts, 4).iter().all(|b| b.is_empty()));
    }

    #[test]
    fn units_are_chosen_only_where_they_busy_more_threads_with_enough_work() {
        let dims = |batch, hidden| Dims {
            kind: crate::CellKind::Lstm,
            seq: 10,
            batch,
            input: 64,
            hidden,
        };
        // Batch 64 fills two threads with rows; batch 8 is one slice.
        assert_eq!(choose_split(&dims(64, 256), 1, 2, None), Split::Rows(2));
        assert_eq!(choose_split(&dims(8, 256), 1, 2, None), Split::Units(2));
        // Too little work per group for the barrier.
        assert_eq!(choose_split(&dims(8, 128), 1, 2, None), Split::Rows(1));
        // Two directions on two threads: one each, by rows.
        assert_eq!(choose_split(&dims(8, 256), 2, 2, None), Split::Rows(1));
        // 16 threads, batch 64: 8 row slices of 8; hidden 512 has work for 16 groups.
        assert_eq!(choose_split(&dims(64, 512), 1, 16, None), Split::Units(16));
        assert_eq!(choose_split(&dims(64, 128), 1, 16, None), Split::Rows(8));
        // Forced either way.
        assert_eq!(
            choose_split(&dims(64, 256), 1, 2, Some("units")),
            Split::Units(2)
        );
        assert_eq!(
            choose_split(&dims(4, 3), 2, 6, Some("units")),
            Split::Units(3)
        );
        assert_eq!(
            choose_split(&dims(8, 256), 1, 2, Some("rows")),
            Split::Rows(1)
        );
    }

    #[test]
    fn column_sums_add_every_row() {
        let width = 3;
        let m: Vec<f32> = (0..1000 * width).map(|v| (v % 7) as f32).collect();
        let want: Vec<f32> = (0..width)
            .map(|j| (0..1000).map(|i| m[i * width + j]).sum())
            .collect();
        assert_eq!(column_sums(&m, width, 0..width), want);
        assert_eq!(column_sums(&m, width, 1..3), want[1..3]);
    }
}
