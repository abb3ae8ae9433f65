//! Parallelism for the fused recurrences: split the batch.
//!
//! Batch rows never interact in a recurrence, so each thread runs the whole sequence for its
//! own slice of the batch with serial GEMMs — no synchronization per time step, which on a few
//! cores costs more than the small per-step GEMMs it would split. Only the weight gradients
//! are shared: each chunk computes its own with large GEMMs and the chunks' sums are added.

use std::ops::Range;

use rayon::prelude::*;

use super::kernel::{self, Dims, Grads, Outputs, Params, Schedule};

/// Rows per chunk below which splitting the batch does not pay.
const MIN_CHUNK_ROWS: usize = 8;

/// What the forward pass keeps for backward: per batch chunk, its rows, the kernel's saved
/// activations and (when split) the chunk's copy of the input.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    chunks: Vec<(Range<usize>, kernel::Saved, Option<Vec<f32>>)>,
}

/// How many chunks to split `batch` rows into on this thread pool.
fn chunk_count(batch: usize) -> usize {
    rayon::current_num_threads()
        .min(batch / MIN_CHUNK_ROWS)
        .max(1)
}

/// `n` nearly equal contiguous ranges covering `0..batch`.
fn ranges(batch: usize, n: usize) -> Vec<Range<usize>> {
    (0..n)
        .map(|i| (i * batch / n)..((i + 1) * batch / n))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Rows `range` of every step of a time-major `[seq, batch, width]` buffer, as
/// `[seq, range.len(), width]`.
fn gather(src: &[f32], seq: usize, batch: usize, width: usize, range: &Range<usize>) -> Vec<f32> {
    let mut out = Vec::with_capacity(seq * range.len() * width);
    for t in 0..seq {
        out.extend_from_slice(
            &src[(t * batch + range.start) * width..(t * batch + range.end) * width],
        );
    }
    out
}

/// The inverse of [`gather`]: writes a chunk back into the full buffer.
fn scatter(
    dst: &mut [f32],
    chunk: &[f32],
    seq: usize,
    batch: usize,
    width: usize,
    range: &Range<usize>,
) {
    let rows = range.len() * width;
    for t in 0..seq {
        dst[(t * batch + range.start) * width..(t * batch + range.end) * width]
            .copy_from_slice(&chunk[t * rows..(t + 1) * rows]);
    }
}

/// A chunk's own dimensions and schedule.
fn chunk_problem(d: Dims, schedule: &Schedule, range: &Range<usize>) -> (Dims, Schedule) {
    let dims = Dims {
        batch: range.len(),
        ..d
    };
    let schedule = Schedule {
        reverse: schedule.reverse,
        lengths: schedule.lengths.as_ref().map(|l| l[range.clone()].to_vec()),
    };
    (dims, schedule)
}

/// [`kernel::forward_chunk`] over the batch split across Rayon's threads.
pub(crate) fn forward(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Outputs, Option<Saved>) {
    forward_in(chunk_count(d.batch), d, schedule, p, x, h0, c0, save)
}

/// [`forward`] with an explicit number of chunks (tests split tiny batches this way).
#[allow(clippy::too_many_arguments)] // the op's tensors plus the chunk count
pub(crate) fn forward_in(
    chunks: usize,
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Outputs, Option<Saved>) {
    let is_lstm = !c0.is_empty() && d.kind == crate::CellKind::Lstm;
    let parts = ranges(d.batch, chunks.max(1));
    if parts.len() <= 1 {
        let (outputs, saved) = kernel::forward_chunk(d, schedule, p, x, h0, c0, save);
        let saved = saved.map(|s| Saved {
            chunks: vec![(0..d.batch, s, None)],
        });
        return (outputs, saved);
    }
    let hid = d.hidden;
    let results: Vec<_> = parts
        .par_iter()
        .map(|range| {
            let (dims, sched) = chunk_problem(d, schedule, range);
            let xc = gather(x, d.seq, d.batch, d.input, range);
            let state = range.start * hid..range.end * hid;
            let c0c = if is_lstm { &c0[state.clone()] } else { c0 };
            let (outputs, saved) =
                kernel::forward_chunk(dims, &sched, p, &xc, &h0[state], c0c, save);
            (outputs, saved, save.then_some(xc))
        })
        .collect();
    let mut out = vec![0.0; d.rows() * hid];
    let mut h_n = vec![0.0; d.batch * hid];
    let mut c_n = if is_lstm {
        vec![0.0; d.batch * hid]
    } else {
        Vec::new()
    };
    let mut saved = Saved::default();
    for (range, (outputs, chunk_saved, xc)) in parts.into_iter().zip(results) {
        scatter(&mut out, &outputs.out, d.seq, d.batch, hid, &range);
        let state = range.start * hid..range.end * hid;
        h_n[state.clone()].copy_from_slice(&outputs.h_n);
        if is_lstm {
            c_n[state].copy_from_slice(&outputs.c_n);
        }
        if let Some(s) = chunk_saved {
            saved.chunks.push((range, s, xc));
        }
    }
    (Outputs { out, h_n, c_n }, save.then_some(saved))
}

/// [`kernel::backward_chunk`] for each chunk of [`forward`], in parallel; weight gradients
/// are summed over chunks.
#[allow(clippy::too_many_arguments)] // one argument per tensor of the op
pub(crate) fn backward(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    saved: &Saved,
    d_out: &[f32],
    d_hn: &[f32],
    d_cn: &[f32],
) -> Grads {
    let hid = d.hidden;
    let is_lstm = d.kind == crate::CellKind::Lstm;
    if let [(range, s, None)] = saved.chunks.as_slice()
        && range.len() == d.batch
    {
        return kernel::backward_chunk(d, schedule, p, x, s, d_out, d_hn, d_cn);
    }
    let grads: Vec<Grads> = saved
        .chunks
        .par_iter()
        .map(|(range, s, xc)| {
            let (dims, sched) = chunk_problem(d, schedule, range);
            // The chunk's input was kept by forward; gather it only if it was not.
            let gathered;
            let xc: &[f32] = match xc {
                Some(v) => v,
                None => {
                    gathered = gather(x, d.seq, d.batch, d.input, range);
                    &gathered
                }
            };
            let dout = gather(d_out, d.seq, d.batch, hid, range);
            let state = range.start * hid..range.end * hid;
            let dcn = if is_lstm { &d_cn[state.clone()] } else { d_cn };
            kernel::backward_chunk(dims, &sched, p, xc, s, &dout, &d_hn[state], dcn)
        })
        .collect();
    let gh = d.gates();
    let mut total = Grads {
        x: vec![0.0; d.rows() * d.input],
        w_ih: vec![0.0; gh * d.input],
        w_hh: vec![0.0; gh * hid],
        b_ih: vec![0.0; gh],
        b_hh: vec![0.0; gh],
        h0: vec![0.0; d.batch * hid],
        c0: if is_lstm {
            vec![0.0; d.batch * hid]
        } else {
            Vec::new()
        },
    };
    let add = |acc: &mut [f32], part: &[f32]| {
        for (a, v) in acc.iter_mut().zip(part) {
            *a += v;
        }
    };
    for ((range, _, _), g) in saved.chunks.iter().zip(grads) {
        scatter(&mut total.x, &g.x, d.seq, d.batch, d.input, range);
        add(&mut total.w_ih, &g.w_ih);
        add(&mut total.w_hh, &g.w_hh);
        add(&mut total.b_ih, &g.b_ih);
        add(&mut total.b_hh, &g.b_hh);
        let state = range.start * hid..range.end * hid;
        total.h0[state.clone()].copy_from_slice(&g.h0);
        if is_lstm {
            total.c0[state].copy_from_slice(&g.c0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_batch() {
        assert_eq!(ranges(64, 2), vec![0..32, 32..64]);
        assert_eq!(ranges(3, 2), vec![0..1, 1..3]);
        assert_eq!(ranges(1, 4), vec![0..1]);
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect(); // [2, 4, 3]
        let part = gather(&x, 2, 4, 3, &(1..3));
        assert_eq!(
            part,
            vec![3., 4., 5., 6., 7., 8., 15., 16., 17., 18., 19., 20.]
        );
        let mut back = vec![0.0; 24];
        scatter(&mut back, &part, 2, 4, 3, &(1..3));
        assert_eq!(back[3..9], x[3..9]);
        assert_eq!(back[15..21], x[15..21]);
        assert!(back[..3].iter().all(|&v| v == 0.0));
    }
}
