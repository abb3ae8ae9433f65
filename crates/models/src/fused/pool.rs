//! Large scratch buffers, reused between calls.
//!
//! Why by hand: a training step allocates and frees the same few multi-megabyte buffers (input
//! projections, saved activations, gate gradients) every call. glibc serves such sizes with
//! fresh `mmap`s, so each call paid for page faults, kernel page clearing and `munmap` — about
//! a tenth of a step in profiles. Keeping the freed buffers in a small process-wide pool
//! removes that. The pool is bounded ([`MAX_BYTES`]) and only holds buffers of at least
//! [`MIN_ELEMENTS`]; smaller ones go straight back to the allocator.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers smaller than this (64 KiB of `f32`) are not pooled.
const MIN_ELEMENTS: usize = 16 * 1024;

/// The most memory the pool keeps while nothing uses it.
const MAX_BYTES: usize = 256 << 20;

/// Free buffers, and the bytes they hold.
struct Pool {
    free: Vec<Vec<f32>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    bytes: 0,
});

/// The pool, even if a thread panicked while holding it (its list stays consistent: every
/// operation on it is a single push or remove).
fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An `f32` buffer of `len` elements that returns to the pool when dropped. The vector
/// underneath may be longer (a reused buffer keeps its whole length, so that it can serve a
/// larger request later); only the first `len` elements are visible.
#[derive(Debug, Default)]
pub(crate) struct Buf {
    data: Vec<f32>,
    len: usize,
}

impl Buf {
    /// `len` elements whose values are unspecified (left over from an earlier use): for
    /// buffers the caller overwrites completely before reading them.
    pub fn dirty(len: usize) -> Self {
        let data = take(len).unwrap_or_else(|| vec![0.0; len]);
        Self { data, len }
    }

    /// An empty buffer (for the parts a cell kind does not use).
    pub fn empty() -> Self {
        Self::default()
    }
}

impl Deref for Buf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.data[..self.len]
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.data));
    }
}

/// Empties the pool; returns the bytes it held.
pub(crate) fn release() -> usize {
    let mut pool = pool();
    let bytes = pool.bytes;
    pool.free.clear();
    pool.bytes = 0;
    bytes
}

/// The smallest free buffer holding at least `len` elements.
fn take(len: usize) -> Option<Vec<f32>> {
    if len < MIN_ELEMENTS {
        return None;
    }
    let mut pool = pool();
    let (index, _) = pool
        .free
        .iter()
        .enumerate()
        .filter(|(_, b)| b.len() >= len)
        .min_by_key(|(_, b)| b.len())?;
    let data = pool.free.swap_remove(index);
    pool.bytes -= data.capacity() * size_of::<f32>();
    Some(data)
}

/// Keeps `data` for a later [`take`], if it is large enough and the pool has room.
fn give(data: Vec<f32>) {
    if data.len() < MIN_ELEMENTS {
        return;
    }
    let bytes = data.capacity() * size_of::<f32>();
    let mut pool = pool();
    if pool.bytes + bytes > MAX_BYTES {
        return;
    }
    pool.bytes += bytes;
    pool.free.push(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_the_asked_length_and_are_reused() {
        let n = MIN_ELEMENTS * 3;
        {
            let mut a = Buf::dirty(n);
            a.fill(7.0);
        }
        // The freed buffer serves a smaller request: its old values show through.
        let b = Buf::dirty(n - 5);
        assert_eq!(b.len(), n - 5);
        assert!(b.iter().all(|&v| v == 7.0));
        let c = Buf::dirty(10);
        assert_eq!(c.len(), 10);
        assert!(Buf::empty().is_empty());
        drop(b);
        assert!(release() >= n * size_of::<f32>());
    }
}
