//! One direction of one layer over the whole batch: the large GEMMs once, the time loops in
//! parallel over slices of the batch.
//!
//! Batch rows never interact in a recurrence, so each thread runs the whole sequence for its
//! own slice of the batch with serial per-step GEMMs — no synchronization per time step, which
//! on a few cores costs more than the small per-step GEMMs it would split. The buffers are
//! batch-major ([`kernel`]), so a slice of the batch is one contiguous block of each of them:
//! threads get disjoint `&mut` sub-slices of the full buffers, nothing is gathered or scattered,
//! and the GEMMs that span all steps (the input projection before the loop; the input gradient
//! and the weight gradients after BPTT) run once, on all threads, over the whole batch.

use std::ops::Range;

use rayon::prelude::*;

use super::gemm::{View, matmul};
use super::kernel::{Backward, Dims, Forward, Params, Saved, SavedMut, SavedRef, Schedule};
use super::packed::PackedB;
use super::pool::Buf;

/// Rows per slice below which splitting the batch does not pay.
const MIN_CHUNK_ROWS: usize = 8;

/// How many slices to split `batch` rows into on this thread pool.
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

/// [`split`] for shared buffers.
fn split_ref<'a>(buf: &'a [f32], part: &Range<usize>, per_row: usize) -> &'a [f32] {
    if buf.is_empty() {
        return buf;
    }
    &buf[part.start * per_row..part.end * per_row]
}

/// Runs `work` for every slice: inline for one, on Rayon's threads for several.
fn for_each_slice<T: Send>(jobs: Vec<T>, work: impl Fn(T) + Sync + Send) {
    if jobs.len() == 1 {
        jobs.into_iter().for_each(work);
    } else {
        jobs.into_par_iter().for_each(work);
    }
}

/// The forward pass: returns the packed `out ++ h_n (++ c_n)` (`out: [batch, seq, hidden]`)
/// and, with `save`, what [`backward`] needs.
pub(crate) fn forward(
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Vec<f32>, Option<Saved>) {
    forward_in(chunk_count(d.batch), d, schedule, p, x, h0, c0, save)
}

/// [`forward`] with an explicit number of slices (tests split tiny batches this way).
#[allow(clippy::too_many_arguments)] // the op's tensors plus the slice count
pub(crate) fn forward_in(
    chunks: usize,
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
    save: bool,
) -> (Vec<f32>, Option<Saved>) {
    let (hid, gh, seq) = (d.hidden, d.gates(), d.seq);
    // Every step's input projection in one GEMM over the whole batch (biases are added by the
    // gate pass).
    let mut xp = Buf::dirty(d.rows() * gh);
    matmul(
        &mut xp,
        View::rows(x, d.rows(), d.input),
        View::transposed(p.w_ih, d.input, gh),
        false,
    );
    let (bias, b_hn) = p.biases(&d);
    // W_hhᵀ laid out row-major once, then packed for the per-step GEMMs of every slice.
    let mut w_hh_t = Buf::dirty(hid * gh);
    for (g, row) in p.w_hh.chunks_exact(hid).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            w_hh_t[k * gh + g] = v;
        }
    }
    let w_hh_t = PackedB::new(&w_hh_t, hid, gh);

    let mut packed = vec![0.0; d.packed_len()];
    let (out, states) = packed.split_at_mut(d.rows() * hid);
    let (h, c) = states.split_at_mut(d.batch * hid);
    h.copy_from_slice(h0);
    if d.is_lstm() {
        c.copy_from_slice(c0);
    }
    let mut saved = save.then(|| Saved::new(&d));

    let parts = ranges(d.batch, chunks.max(1));
    let saved_parts: Vec<Option<SavedMut<'_>>> = match saved.as_mut() {
        None => parts.iter().map(|_| None).collect(),
        Some(s) => {
            let acts = split(&mut s.acts, &parts, seq * d.act_width());
            let h_prev = split(&mut s.h_prev, &parts, seq * hid);
            let aux = split(&mut s.aux, &parts, seq * hid);
            let tanh_c = split(&mut s.tanh_c, &parts, seq * hid);
            acts.into_iter()
                .zip(h_prev)
                .zip(aux.into_iter().zip(tanh_c))
                .map(|((acts, h_prev), (aux, tanh_c))| {
                    Some(SavedMut {
                        acts,
                        h_prev,
                        aux,
                        tanh_c,
                    })
                })
                .collect()
        }
    };
    let jobs: Vec<_> = parts
        .iter()
        .cloned()
        .zip(split(out, &parts, seq * hid))
        .zip(split(h, &parts, hid).into_iter().zip(split(c, &parts, hid)))
        .zip(saved_parts)
        .map(|(((part, out), (h, c)), saved)| (part, out, h, c, saved))
        .collect();
    for_each_slice(jobs, |(part, out, h, c, saved)| {
        let schedule = schedule.slice(part.clone());
        Forward {
            d: Dims {
                batch: part.len(),
                ..d
            },
            schedule: &schedule,
            w_hh_t: &w_hh_t,
            bias: &bias,
            b_hn: &b_hn,
            xp: split_ref(&xp, &part, seq * gh),
            h,
            c,
            out,
            saved,
        }
        .run();
    });
    (packed, saved)
}

/// Gradients of the loss with respect to every input of [`forward`].
#[derive(Debug)]
pub(crate) struct Grads {
    /// `[batch, seq, input]`.
    pub x: Vec<f32>,
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
    pub h0: Vec<f32>,
    /// Empty unless LSTM.
    pub c0: Vec<f32>,
}

/// Backpropagation through time: BPTT in parallel over slices of the batch, then the input
/// and weight gradients as GEMMs over all rows. `d_out: [batch, seq, hidden]`, `d_hn`, `d_cn:
/// [batch, hidden]` (`d_cn` read for LSTM only) are the gradients of the loss with respect to
/// [`forward`]'s outputs.
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
    backward_in(
        chunk_count(d.batch),
        d,
        schedule,
        p,
        x,
        saved,
        d_out,
        d_hn,
        d_cn,
    )
}

/// [`backward`] with an explicit number of slices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_in(
    chunks: usize,
    d: Dims,
    schedule: &Schedule,
    p: &Params<'_>,
    x: &[f32],
    saved: &Saved,
    d_out: &[f32],
    d_hn: &[f32],
    d_cn: &[f32],
) -> Grads {
    let (hid, gh, seq, rows) = (d.hidden, d.gates(), d.seq, d.rows());
    let is_gru = d.kind == crate::CellKind::Gru;
    let w_hh = PackedB::new(p.w_hh, gh, hid);
    // Every row is written by BPTT (zeros for the steps of ended sequences).
    let mut dg = Buf::dirty(rows * gh);
    let mut dhh = if is_gru {
        Buf::dirty(rows * gh)
    } else {
        Buf::empty()
    };
    let mut dh0 = d_hn.to_vec();
    let mut dc0 = if d.is_lstm() {
        d_cn.to_vec()
    } else {
        Vec::new()
    };

    let parts = ranges(d.batch, chunks.max(1));
    let jobs: Vec<_> = parts
        .iter()
        .cloned()
        .zip(split(&mut dg, &parts, seq * gh))
        .zip(split(&mut dhh, &parts, seq * gh))
        .zip(
            split(&mut dh0, &parts, hid)
                .into_iter()
                .zip(split(&mut dc0, &parts, hid)),
        )
        .map(|(((part, dg), dhh), (dh, dc))| (part, dg, dhh, dh, dc))
        .collect();
    let aw = d.act_width();
    for_each_slice(jobs, |(part, dg, dhh, dh, dc)| {
        let schedule = schedule.slice(part.clone());
        Backward {
            d: Dims {
                batch: part.len(),
                ..d
            },
            schedule: &schedule,
            w_hh: &w_hh,
            saved: SavedRef {
                acts: split_ref(&saved.acts, &part, seq * aw),
                h_prev: split_ref(&saved.h_prev, &part, seq * hid),
                aux: split_ref(&saved.aux, &part, seq * hid),
                tanh_c: split_ref(&saved.tanh_c, &part, seq * hid),
            },
            d_out: split_ref(d_out, &part, seq * hid),
            dh,
            dc,
            dg,
            dhh,
        }
        .run();
    });

    let rec = if is_gru { &dhh } else { &dg };
    let mut w_hh = vec![0.0; gh * hid];
    matmul(
        &mut w_hh,
        View::transposed(rec, gh, rows),
        View::rows(&saved.h_prev, rows, hid),
        false,
    );
    let mut w_ih = vec![0.0; gh * d.input];
    matmul(
        &mut w_ih,
        View::transposed(&dg, gh, rows),
        View::rows(x, rows, d.input),
        false,
    );
    let mut dx = vec![0.0; rows * d.input];
    matmul(
        &mut dx,
        View::rows(&dg, rows, gh),
        View::rows(p.w_ih, gh, d.input),
        false,
    );
    Grads {
        x: dx,
        w_ih,
        w_hh,
        b_ih: column_sums(&dg, gh),
        b_hh: column_sums(rec, gh),
        h0: dh0,
        c0: dc0,
    }
}

/// Sums of the columns of a row-major `[·, width]` matrix, blocks of rows in parallel.
fn column_sums(m: &[f32], width: usize) -> Vec<f32> {
    const BLOCK_ROWS: usize = 256;
    let add = |mut acc: Vec<f32>, row: &[f32]| {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
        acc
    };
    m.par_chunks(BLOCK_ROWS * width)
        .map(|block| block.chunks_exact(width).fold(vec![0.0; width], add))
        .reduce(|| vec![0.0; width], |a, b| add(a, &b))
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
    fn column_sums_add_every_row() {
        let width = 3;
        let m: Vec<f32> = (0..1000 * width).map(|v| (v % 7) as f32).collect();
        let want: Vec<f32> = (0..width)
            .map(|j| (0..1000).map(|i| m[i * width + j]).sum())
            .collect();
        assert_eq!(column_sums(&m, width), want);
    }
}
