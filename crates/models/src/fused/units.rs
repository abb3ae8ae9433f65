//! The time loops split by hidden units instead of batch rows: each thread owns a group of
//! hidden units of one direction, over the whole batch, and the threads of a direction meet
//! at one barrier per step.
//!
//! Why: splitting the batch ([`super::parallel`]'s default) needs no synchronization, but a
//! slice under 8 rows leaves the micro-kernel's tiles mostly empty, so a small batch keeps
//! only a few threads busy (batch 8: one thread; batch 64 on 16 threads: 8 of them). Split
//! by units, every thread works on all rows: its per-step GEMMs read only its groups'
//! columns of `W_ihᵀ` and `W_hhᵀ`, and since a unit's gates need only that unit's
//! pre-activations, the gate pass stays in the thread. What crosses threads is the state:
//! step `t`'s GEMM reads every unit of `h_{t-1}` (forward) or every gate gradient of step `t`
//! (backward), hence the barrier after each step's writes. [`super::parallel::Split`] says
//! when that pays.
//!
//! Threads: the jobs run on Rayon's pool through [`rayon::broadcast`], one job per worker, and
//! they wait for each other, so they must all run at once: only as many jobs as the pool has
//! threads, and one unit-split call at a time per process (a second concurrent call would
//! wait for workers that are spinning in the first one's barrier — [`claim`] refuses it
//! instead, and the caller splits by rows).
//!
//! Buffers shared between the threads are reached through [`Shared`]: each thread writes only
//! its own units' columns (disjoint ranges), and reads what others wrote only after the
//! barrier that follows those writes.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use super::cpu::isa_dispatch;
use super::gemm::as_split_job;
use super::kernel::{
    Blocks, BlocksRef, Dims, GradRow, Input, Params, Saved, SavedRow, Schedule, StepRow,
    finish_dh_prev,
};
use super::packed::PackedB;
use super::pool::Buf;
use crate::CellKind;

/// Held while a unit-split call runs (see the module docs).
static RUNNING: Mutex<()> = Mutex::new(());

/// The right to run `jobs` unit-split jobs now: `None` when the pool has fewer threads or
/// another unit-split call is running.
pub(crate) fn claim(jobs: usize) -> Option<MutexGuard<'static, ()>> {
    if jobs > rayon::current_num_threads() {
        return None;
    }
    match RUNNING.try_lock() {
        Ok(guard) => Some(guard),
        // A panic in another call poisoned it; the lock itself guards no data.
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Runs `work(dir, group, barrier)` for every group of every direction, each on its own worker
/// of the current Rayon pool, all at once (the caller holds [`claim`]'s guard); the groups of a
/// direction share its barrier.
fn run_groups(directions: usize, groups: usize, work: impl Fn(usize, usize, &SpinBarrier) + Sync) {
    let barriers: Vec<SpinBarrier> = (0..directions).map(|_| SpinBarrier::new(groups)).collect();
    rayon::broadcast(|ctx| {
        let job = ctx.index();
        if job < directions * groups {
            let (dir, group) = (job / groups, job % groups);
            let barrier = &barriers[dir];
            let _poison = PoisonOnPanic(barrier);
            as_split_job(|| work(dir, group, barrier));
        }
    });
}

/// `groups` nearly equal ranges of `0..hidden`.
pub(crate) fn unit_ranges(hidden: usize, groups: usize) -> Vec<Range<usize>> {
    (0..groups)
        .map(|g| (g * hidden / groups)..((g + 1) * hidden / groups))
        .collect()
}

/// A barrier for the `n` threads of one direction that spins (then yields) instead of
/// sleeping: a step's wait is microseconds, less than a futex wake-up. If a thread panics, the
/// others panic at their next wait instead of waiting forever.
struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        Self {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Returns once all `n` threads have called `wait` as often as this one; every write a
    /// thread made before its call is visible to every thread after it.
    fn wait(&self) {
        const SPINS: u32 = 2_000;
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.poisoned.load(Ordering::Relaxed),
                "a thread of the unit-split recurrence panicked"
            );
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Marks its barrier poisoned if dropped while its thread panics.
struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A buffer several threads write in disjoint ranges.
#[derive(Clone, Copy)]
struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: PhantomData<&'a mut [f32]>,
}

// SAFETY: `Shared` only hands out slices through its unsafe methods, whose callers guarantee
// that no two threads touch overlapping ranges unless both only read.
unsafe impl Send for Shared<'_> {}
// SAFETY: as above.
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    fn new(buf: &'a mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buffer: PhantomData,
        }
    }

    /// Elements `start..start + len`, to write (empty for an empty buffer).
    ///
    /// # Safety
    /// While the slice lives, no other thread reads or writes these elements and this thread
    /// holds no other reference to them.
    #[allow(clippy::mut_from_ref)]
    unsafe fn at(&self, start: usize, len: usize) -> &'a mut [f32] {
        if self.len == 0 {
            return &mut [];
        }
        assert!(start + len <= self.len, "unit split: range out of bounds");
        // SAFETY: in bounds (just checked); exclusive as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// Elements `start..start + len`, to read (empty for an empty buffer).
    ///
    /// # Safety
    /// While the slice lives, no thread writes these elements.
    unsafe fn read(&self, start: usize, len: usize) -> &'a [f32] {
        if self.len == 0 {
            return &[];
        }
        assert!(start + len <= self.len, "unit split: range out of bounds");
        // SAFETY: in bounds (just checked); nobody writes them, as the caller promises.
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), len) }
    }

    /// The gate blocks of row `row` (`act_width` wide, blocks `hidden` apart) restricted to
    /// `units`.
    ///
    /// # Safety
    /// As for [`Shared::at`], for each block.
    unsafe fn blocks(
        &self,
        row: usize,
        width: usize,
        hidden: usize,
        units: &Range<usize>,
    ) -> Blocks<'a> {
        let mut blocks = Blocks::default();
        if self.len > 0 {
            for (slot, start) in blocks
                .iter_mut()
                .zip(block_starts(row, width, hidden, units))
            {
                // SAFETY: as the caller promises.
                *slot = unsafe { self.at(start, units.len()) };
            }
        }
        blocks
    }
}

/// Where the gate blocks of row `row` of a `[·, width]` buffer (blocks `hidden` apart) start,
/// restricted to `units`.
fn block_starts(
    row: usize,
    width: usize,
    hidden: usize,
    units: &Range<usize>,
) -> impl Iterator<Item = usize> {
    let first = row * width + units.start;
    (0..width / hidden).map(move |q| first + q * hidden)
}

/// The gate blocks of row `row` of a `[·, width]` buffer (blocks `hidden` apart) restricted to
/// `units`.
fn unit_blocks<'a>(
    buf: &'a [f32],
    row: usize,
    width: usize,
    hidden: usize,
    units: &Range<usize>,
) -> BlocksRef<'a> {
    let mut blocks = BlocksRef::default();
    for (slot, start) in blocks
        .iter_mut()
        .zip(block_starts(row, width, hidden, units))
    {
        *slot = &buf[start..][..units.len()];
    }
    blocks
}

/// The rows of a `[G·H, width]` weight matrix that feed `units`: gate block by gate
/// block, `[G·units, width]`.
fn unit_rows(m: &[f32], width: usize, d: &Dims, units: &Range<usize>) -> Vec<f32> {
    let mut out = Vec::with_capacity(d.kind.gate_count() * units.len() * width);
    for q in 0..d.kind.gate_count() {
        let first = q * d.hidden + units.start;
        out.extend_from_slice(&m[first * width..(first + units.len()) * width]);
    }
    out
}

/// One group's forward weights: `W_ihᵀ` and `W_hhᵀ` restricted to the group's gate columns
/// (gate block by gate block, `[·, G·units]`), and the biases of those columns.
struct GroupWeights {
    units: Range<usize>,
    w_ih_t: PackedB,
    w_hh_t: PackedB,
    bias: Vec<f32>,
    b_hn: Vec<f32>,
}

impl GroupWeights {
    fn new(p: &Params<'_>, d: &Dims, units: Range<usize>) -> Self {
        let gw = d.kind.gate_count() * units.len();
        let w_ih = unit_rows(p.w_ih, d.input, d, &units);
        let w_hh = unit_rows(p.w_hh, d.hidden, d, &units);
        let (bias, b_hn) = p.biases(d);
        Self {
            w_ih_t: PackedB::from_strided(&w_ih, d.input, gw, 1, d.input),
            w_hh_t: PackedB::from_strided(&w_hh, d.hidden, gw, 1, d.hidden),
            bias: unit_rows(&bias, 1, d, &units),
            b_hn: b_hn[units.clone()].to_vec(),
            units,
        }
    }
}

/// One direction's buffers in a forward pass, shared by its groups.
pub(crate) struct ForwardDirection<'a> {
    /// `[batch, seq, hidden]`.
    pub out: &'a mut [f32],
    /// `h0` in, `h_n` out: `[batch, hidden]`.
    pub h: &'a mut [f32],
    /// `c0` in, `c_n` out (LSTM; empty otherwise).
    pub c: &'a mut [f32],
    pub saved: Option<&'a mut Saved>,
}

/// [`ForwardDirection`] as the threads see it.
#[derive(Clone, Copy)]
struct SharedDirection<'a> {
    out: Shared<'a>,
    h: Shared<'a>,
    /// The other half of `h`'s double buffer.
    h_next: Shared<'a>,
    c: Shared<'a>,
    acts: Shared<'a>,
    h_prev: Shared<'a>,
    c_prev: Shared<'a>,
    hn: Shared<'a>,
    tanh_c: Shared<'a>,
    save: bool,
}

/// The forward time loops of all directions, each split into `groups` groups of hidden units
/// (the caller holds [`claim`]`(directions · groups)`).
pub(crate) fn forward(
    groups: usize,
    d: &Dims,
    schedules: &[Schedule],
    p: &Params<'_>,
    x: Input<'_>,
    directions: Vec<ForwardDirection<'_>>,
) {
    let (hid, batch) = (d.hidden, d.batch);
    let weights: Vec<Vec<GroupWeights>> = (0..directions.len())
        .map(|dir| {
            let p = p.direction(dir, d);
            unit_ranges(hid, groups)
                .into_iter()
                .map(|units| GroupWeights::new(&p, d, units))
                .collect()
        })
        .collect();
    let mut h_next: Vec<Buf> = directions.iter().map(|_| Buf::dirty(batch * hid)).collect();
    let shared: Vec<SharedDirection<'_>> = directions
        .into_iter()
        .zip(h_next.iter_mut())
        .map(|(dir, next)| {
            let empty = || Shared::new(&mut []);
            let (acts, h_prev, c_prev, hn, tanh_c, save) = match dir.saved {
                Some(s) => (
                    Shared::new(&mut s.acts),
                    Shared::new(&mut s.h_prev),
                    Shared::new(&mut s.c_prev),
                    Shared::new(&mut s.hn),
                    Shared::new(&mut s.tanh_c),
                    true,
                ),
                None => (empty(), empty(), empty(), empty(), empty(), false),
            };
            SharedDirection {
                out: Shared::new(dir.out),
                h: Shared::new(dir.h),
                h_next: Shared::new(next),
                c: Shared::new(dir.c),
                acts,
                h_prev,
                c_prev,
                hn,
                tanh_c,
                save,
            }
        })
        .collect();
    run_groups(shared.len(), groups, |dir, group, barrier| {
        forward_group(
            d,
            &schedules[dir],
            &weights[dir][group],
            x,
            shared[dir],
            barrier,
        );
    });
}

isa_dispatch!(
    /// One group's forward time loop, in the widest build the CPU runs.
    fn forward_group(
        d: &Dims,
        schedule: &Schedule,
        w: &GroupWeights,
        x: Input<'_>,
        s: SharedDirection<'_>,
        barrier: &SpinBarrier,
    ) => forward_group_impl
);

#[inline(always)]
fn forward_group_impl(
    d: &Dims,
    schedule: &Schedule,
    w: &GroupWeights,
    x: Input<'_>,
    s: SharedDirection<'_>,
    barrier: &SpinBarrier,
) {
    let (hid, batch, seq) = (d.hidden, d.batch, d.seq);
    let (units, aw) = (&w.units, d.act_width());
    let (u0, hw) = (units.start, units.len());
    let gw = d.kind.gate_count() * hw;
    let mut xs = Buf::dirty(batch * gw);
    let mut hh = Buf::dirty(batch * gw);
    let (mut cur, mut next) = (s.h, s.h_next);
    for i in 0..seq {
        let t = schedule.step(i, seq);
        x.project(&w.w_ih_t, &mut xs, i, t, d);
        // SAFETY: during a step every thread only reads `cur` (the barrier after the previous
        // step ordered all writes to it before); writes go to `next`, own units only, and to
        // the own units' columns of the output, states and saved rows.
        unsafe {
            w.w_hh_t.matmul(&mut hh, cur.read(0, batch * hid), batch);
            for b in 0..batch {
                let row = b * seq + t;
                let h_old = cur.read(b * hid + u0, hw);
                let h_b = next.at(b * hid + u0, hw);
                h_b.copy_from_slice(h_old);
                let out_b = s.out.at(row * hid + u0, hw);
                let mut saved = s.save.then(|| SavedRow {
                    acts: s.acts.blocks(row, aw, hid, units),
                    h_prev: s.h_prev.at(row * hid + u0, hw),
                    c_prev: s.c_prev.at(row * hid + u0, hw),
                    hn: s.hn.at(row * hid + u0, hw),
                    tanh_c: s.tanh_c.at(row * hid + u0, hw),
                });
                if let Some(saved) = &mut saved {
                    saved.h_prev.copy_from_slice(h_old);
                }
                if !schedule.active(t, b) {
                    out_b.fill(0.0);
                    continue;
                }
                StepRow {
                    a: &hh[b * gw..][..gw],
                    xr: &xs[b * gw..][..gw],
                    bias: &w.bias,
                    b_hn: &w.b_hn,
                }
                .run(d.kind, s.c.at(b * hid + u0, hw), h_b, out_b, saved);
            }
        }
        barrier.wait();
        std::mem::swap(&mut cur, &mut next);
    }
    if seq % 2 == 1 {
        // The last step wrote the other buffer: bring the own units of h_n home.
        for b in 0..batch {
            // SAFETY: after the last barrier nobody reads `h` or writes `cur`; own units only.
            unsafe {
                s.h.at(b * hid + u0, hw)
                    .copy_from_slice(cur.read(b * hid + u0, hw));
            }
        }
    }
}

/// One direction's buffers in BPTT, shared by its groups.
pub(crate) struct BackwardDirection<'a> {
    pub saved: &'a Saved,
    /// `[batch, seq, ·]`: this direction's `hidden` columns first in rows `d_out_stride` apart.
    pub d_out: &'a [f32],
    pub d_out_stride: usize,
    /// In: `dL/dh_n`; out: `dL/dh0` (`[batch, hidden]`).
    pub dh: &'a mut [f32],
    /// In: `dL/dc_n`; out: `dL/dc0` (LSTM; empty otherwise).
    pub dc: &'a mut [f32],
    /// Out: `[batch, seq, G·H]`.
    pub dg: &'a mut [f32],
    /// Out (GRU): the candidate's recurrent-side gradient, `[batch, seq, hidden]`; empty
    /// otherwise.
    pub dhn: &'a mut [f32],
}

/// [`BackwardDirection`] as the threads see it.
#[derive(Clone, Copy)]
struct SharedGrads<'a> {
    saved: &'a Saved,
    d_out: &'a [f32],
    d_out_stride: usize,
    dh: Shared<'a>,
    dc: Shared<'a>,
    dg: Shared<'a>,
    dhn: Shared<'a>,
    /// Two `[batch, G·H]` buffers, by the parity of the step: the gradients the recurrent
    /// GEMM reads (`dg`'s blocks, GRU's candidate from `dhn`), gathered per step so the GEMM
    /// reads one block.
    step: [Shared<'a>; 2],
}

/// BPTT of all directions, each split into `groups` groups of hidden units (the caller holds
/// [`claim`]`(directions · groups)`). `w_hh` per direction, PyTorch layout `[G·H, H]`.
pub(crate) fn backward(
    groups: usize,
    d: &Dims,
    schedules: &[Schedule],
    w_hh: &[&[f32]],
    directions: Vec<BackwardDirection<'_>>,
) {
    let (hid, gh, batch) = (d.hidden, d.gate_width(), d.batch);
    let ranges = unit_ranges(hid, groups);
    // W_hh's columns of each group: `dh_prev[:, units] = rec · W_hh[:, units]`.
    let packed: Vec<Vec<PackedB>> = w_hh
        .iter()
        .map(|w| {
            ranges
                .iter()
                .map(|u| PackedB::from_strided(&w[u.start..], gh, u.len(), hid, 1))
                .collect()
        })
        .collect();
    let mut steps: Vec<[Buf; 2]> = directions
        .iter()
        .map(|_| [Buf::dirty(batch * gh), Buf::dirty(batch * gh)])
        .collect();
    let shared: Vec<SharedGrads<'_>> = directions
        .into_iter()
        .zip(steps.iter_mut())
        .map(|(dir, [even, odd])| SharedGrads {
            saved: dir.saved,
            d_out: dir.d_out,
            d_out_stride: dir.d_out_stride,
            dh: Shared::new(dir.dh),
            dc: Shared::new(dir.dc),
            dg: Shared::new(dir.dg),
            dhn: Shared::new(dir.dhn),
            step: [Shared::new(even), Shared::new(odd)],
        })
        .collect();
    run_groups(shared.len(), groups, |dir, group, barrier| {
        backward_group(
            d,
            &schedules[dir],
            &packed[dir][group],
            &ranges[group],
            shared[dir],
            barrier,
        );
    });
}

isa_dispatch!(
    /// One group's BPTT, in the widest build the CPU runs.
    fn backward_group(
        d: &Dims,
        schedule: &Schedule,
        w_hh: &PackedB,
        units: &Range<usize>,
        s: SharedGrads<'_>,
        barrier: &SpinBarrier,
    ) => backward_group_impl
);

#[inline(always)]
fn backward_group_impl<'a>(
    d: &Dims,
    schedule: &Schedule,
    w_hh: &PackedB,
    units: &Range<usize>,
    s: SharedGrads<'a>,
    barrier: &SpinBarrier,
) {
    let (hid, gh, batch, seq) = (d.hidden, d.gate_width(), d.batch, d.seq);
    let (u0, hw, aw) = (units.start, units.len(), d.act_width());
    let is_gru = d.kind == CellKind::Gru;
    // This group's columns of dh, of dh_prev and (GRU) of `z ⊙ dh`.
    let mut dh = vec![0.0; batch * hw];
    for b in 0..batch {
        // SAFETY: own units; nobody else touches them.
        dh[b * hw..][..hw].copy_from_slice(unsafe { s.dh.read(b * hid + u0, hw) });
    }
    let mut dh_prev = vec![0.0; batch * hw];
    let mut direct = if is_gru {
        vec![0.0; batch * hw]
    } else {
        Vec::new()
    };
    let saved = s.saved;
    let own = |buf: &'a [f32], row: usize| -> &'a [f32] {
        if buf.is_empty() {
            buf
        } else {
            &buf[row * hid + u0..][..hw]
        }
    };
    for i in (0..seq).rev() {
        let t = schedule.step(i, seq);
        let step = s.step[i % 2];
        // SAFETY: this group writes only its units' columns of `dg`, `dhn`, `dc` and the step
        // buffer; the saved activations and `d_out` are only read.
        unsafe {
            for b in 0..batch {
                let row = b * seq + t;
                let dg = s.dg.blocks(row, gh, hid, units);
                let dhn = if is_gru {
                    s.dhn.at(row * hid + u0, hw)
                } else {
                    &mut []
                };
                let rec = step.blocks(b, gh, hid, units);
                if !schedule.active(t, b) {
                    // Zero rows keep ended steps out of the weight-gradient GEMMs.
                    dg.into_iter()
                        .chain([dhn])
                        .chain(rec)
                        .for_each(|v| v.fill(0.0));
                    continue;
                }
                let grads = GradRow {
                    dg,
                    dhn,
                    direct: if is_gru {
                        &mut direct[b * hw..][..hw]
                    } else {
                        &mut []
                    },
                    dh: &dh[b * hw..][..hw],
                    d_out: &s.d_out[row * s.d_out_stride + u0..][..hw],
                    acts: unit_blocks(&saved.acts, row, aw, hid, units),
                    tanh_c: own(&saved.tanh_c, row),
                    c_prev: own(&saved.c_prev, row),
                    hn: own(&saved.hn, row),
                    h_prev: own(&saved.h_prev, row),
                    dc: s.dc.at(b * hid + u0, hw),
                };
                grads.run(d.kind);
                // The recurrent GEMM's operand of this row: `dg`, but GRU's candidate from `dhn`.
                let mut src = s.dg.blocks(row, gh, hid, units);
                if is_gru {
                    src[2] = s.dhn.at(row * hid + u0, hw);
                }
                for (dst, src) in rec.into_iter().zip(src) {
                    dst.copy_from_slice(src);
                }
            }
        }
        barrier.wait();
        // SAFETY: every group wrote its columns of this step's buffer before the barrier; no
        // group writes it again before the next barrier but one (it alternates by parity).
        let rec = unsafe { step.read(0, batch * gh) };
        w_hh.matmul(&mut dh_prev, rec, batch);
        finish_dh_prev(&mut dh_prev, &dh, &direct, hw, schedule, t);
        std::mem::swap(&mut dh, &mut dh_prev);
    }
    for b in 0..batch {
        // SAFETY: own units.
        unsafe { s.dh.at(b * hid + u0, hw) }.copy_from_slice(&dh[b * hw..][..hw]);
    }
}
