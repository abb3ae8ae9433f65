//! Timing statistics and heap accounting.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Median, min and max of one measurement, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median time per iteration.
    pub median_ms: f64,
    /// Fastest iteration.
    pub min_ms: f64,
    /// Slowest iteration.
    pub max_ms: f64,
    /// Timed iterations (after warm-up).
    pub iters: usize,
}

impl Stats {
    /// Summarizes per-iteration times in milliseconds; `None` for no samples.
    pub fn from_samples(mut samples: Vec<f64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Some(Self {
            median_ms: median,
            min_ms: samples[0],
            max_ms: samples[n - 1],
            iters: n,
        })
    }
}

/// How long to measure: warm-up iterations, then at least `min_iters` and until `budget` has
/// passed, at most `max_iters`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Untimed iterations first (allocator, caches, lazy initialization).
    pub warmup: usize,
    /// Timed iterations at least.
    pub min_iters: usize,
    /// Timed iterations at most.
    pub max_iters: usize,
    /// Keep timing until this much time has passed (subject to the bounds above).
    pub budget: Duration,
}

/// Runs `step` under `budget`; `step` must wait for its own results (read a value back).
pub fn time<E>(budget: Budget, mut step: impl FnMut() -> Result<(), E>) -> Result<Stats, E> {
    for _ in 0..budget.warmup {
        step()?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < budget.min_iters
        || (samples.len() < budget.max_iters && start.elapsed() < budget.budget)
    {
        let t = Instant::now();
        step()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // `min_iters ≥ 1` is enforced by the callers' budgets; an empty run reports zeros.
    Ok(Stats::from_samples(samples).unwrap_or(Stats {
        median_ms: 0.0,
        min_ms: 0.0,
        max_ms: 0.0,
        iters: 0,
    }))
}

/// A global allocator that counts live heap bytes and their high-water mark.
///
/// Why by hand: the CPU backends allocate every tensor through the global allocator, so its
/// peak is exactly the memory a step needs; no maintained crate reports a resettable peak.
/// Install it in a binary with `#[global_allocator]`; without it [`peak_bytes`] reports `None`.
/// Underneath it allocates through mimalloc, as the example programs do: with glibc's malloc
/// each call faulted in fresh pages for its multi-megabyte buffers (the README has the numbers).
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Counts a successful allocation of `size` bytes at `ptr`; returns `ptr`.
fn counted(ptr: *mut u8, size: usize) -> *mut u8 {
    if !ptr.is_null() {
        INSTALLED.store(true, Ordering::Relaxed);
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
    ptr
}

// SAFETY: every call forwards to `MiMalloc` with the caller's layout; the counters are only
// statistics and never affect allocation.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        counted(unsafe { MiMalloc.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (fresh pages need no clearing).
        counted(unsafe { MiMalloc.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let new = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        new
    }
}

/// Starts a new high-water mark at the current live size.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Bytes above `baseline` at the high-water mark since [`reset_peak`]; `None` when
/// [`CountingAlloc`] is not the global allocator.
pub fn peak_bytes(baseline: usize) -> Option<usize> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| PEAK.load(Ordering::Relaxed).saturating_sub(baseline))
}

/// Bytes live now (0 without [`CountingAlloc`]).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_summarize_samples() {
        let s = Stats::from_samples(vec![3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(
            (s.median_ms, s.min_ms, s.max_ms, s.iters),
            (2.5, 1.0, 10.0, 4)
        );
        assert!(Stats::from_samples(vec![]).is_none());
    }

    #[test]
    fn time_respects_the_iteration_bounds() {
        let budget = Budget {
            warmup: 2,
            min_iters: 3,
            max_iters: 5,
            budget: Duration::from_secs(60),
        };
        let mut calls = 0;
        let stats = time(budget, || {
            calls += 1;
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!((calls, stats.iters), (7, 5));
    }
}
