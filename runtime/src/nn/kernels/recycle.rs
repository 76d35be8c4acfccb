//! Buffers the Cpu kernels keep from a forward pass for its backward pass
//! (copies of the input and of the parameters, pooling offsets, dropout's
//! mask) or need for one call (per-task partial gradients, transformed
//! weights), taken from a free list and given back on drop instead of being
//! allocated and freed at every step.
//!
//! A training step of CNN3a at batch 100 allocated ~7 MB of them, in blocks
//! of up to 2.2 MB (the copy of the second layer's input). glibc's `malloc`
//! serves blocks that large with `mmap` (its threshold rises only to the
//! largest block freed so far, and a block of exactly that size is mapped
//! again), so every step faulted their pages in afresh and the kernel
//! zeroed them; mimalloc, which the benchmarks used to install, returns
//! freed memory to the system too, a little later. A library cannot choose
//! its users' allocator, but it can keep its own buffers. (The outputs and
//! gradients handed to dfdx are dfdx's to allocate and free.)
//!
//! The free list keeps at most [`KEEP`] buffers per element type, the
//! largest; a buffer taken is the smallest one that fits. Memory held is
//! what one training step of the largest network used at once.
//!
//! Every buffer starts on a cache line ([`aligned`]): glibc returns large
//! blocks 16 bytes past a page boundary, so half of the 32-byte AVX loads
//! and stores on them straddled two cache lines; mimalloc returns them
//! 64-byte aligned. (The thread-local scratch buffers of `gemm.rs` are
//! aligned the same way.)
//!
//! Run the tests: `cargo test -p netdsl-runtime --lib nn::kernels::recycle`.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Buffers kept per element type, at most: a CNN4a step holds ~20 at once
/// (four per convolution, three per dense layer, a few in backward).
const KEEP: usize = 64;

/// The element types with a free list.
pub trait Recyclable: Copy + Default + Send + 'static {
    /// This type's free list.
    fn free_list() -> &'static Mutex<Vec<Vec<Self>>>;
}

macro_rules! recyclable {
    ($($T:ty),+) => {$(
        impl Recyclable for $T {
            fn free_list() -> &'static Mutex<Vec<Vec<$T>>> {
                static FREE: Mutex<Vec<Vec<$T>>> = Mutex::new(Vec::new());
                &FREE
            }
        }
    )+};
}
recyclable!(f32, f64, u8, bool);

/// The free list, also after a panic elsewhere (it holds plain buffers).
fn free_list<T: Recyclable>() -> MutexGuard<'static, Vec<Vec<T>>> {
    T::free_list()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Bytes to which buffers are aligned: a cache line.
const ALIGN: usize = 64;

/// Elements a buffer needs beyond `len` so that `len` of them can start on
/// an [`ALIGN`]-byte boundary.
fn slack<T>() -> usize {
    (ALIGN / std::mem::size_of::<T>().max(1)).saturating_sub(1)
}

/// `len` elements of `buf` that start on a 64-byte boundary, growing `buf`
/// (with `T::default()`) as needed; the other elements keep their values.
pub fn aligned<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    let need = len + slack::<T>();
    if buf.len() < need {
        buf.resize(need, T::default());
    }
    let start = offset(buf);
    &mut buf[start..start + len]
}

/// Where the first 64-byte aligned element of `buf` is (0 if the platform
/// cannot say: then only the speed suffers).
fn offset<T>(buf: &[T]) -> usize {
    let start = buf.as_ptr().align_offset(ALIGN);
    if start <= slack::<T>() {
        start
    } else {
        0
    }
}

/// A `Vec<T>` that goes back to the free list when dropped; it derefs to
/// `len` of its elements starting on a 64-byte boundary.
#[derive(Debug)]
pub struct Recycled<T: Recyclable> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Recyclable> Recycled<T> {
    /// No buffer at all (nothing to give back).
    pub fn empty() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// `len` elements with whatever values the buffer held before (or
    /// `T::default()`): for a caller that writes every element before it
    /// reads any.
    pub fn stale(len: usize) -> Self {
        if len == 0 {
            return Self::empty();
        }
        let need = len + slack::<T>();
        let mut free = free_list::<T>();
        let mut buf = match best_fit(&free, need) {
            Some(i) => free.swap_remove(i),
            None => Vec::new(),
        };
        drop(free);
        if buf.len() < need {
            buf.resize(need, T::default()); // within capacity when reused
        }
        let start = offset(&buf);
        Self { buf, start, len }
    }

    /// `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> Self {
        let mut b = Self::stale(len);
        b.fill(value);
        b
    }
}

impl<T: Recyclable> Drop for Recycled<T> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.buf);
        if v.capacity() > 0 {
            let evicted = keep(&mut free_list::<T>(), v);
            drop(evicted); // freed outside the lock
        }
    }
}

/// The index of the smallest buffer in `free` with room for `len` elements.
fn best_fit<T>(free: &[Vec<T>], len: usize) -> Option<usize> {
    (free.iter().enumerate())
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i)
}

/// Adds `v` to `free`; returns the smallest buffer, taken out, when that
/// makes more than [`KEEP`].
fn keep<T>(free: &mut Vec<Vec<T>>, v: Vec<T>) -> Option<Vec<T>> {
    free.push(v);
    if free.len() <= KEEP {
        return None;
    }
    let smallest = (free.iter().enumerate())
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i)?;
    Some(free.swap_remove(smallest))
}

impl<T: Recyclable> Deref for Recycled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl<T: Recyclable> DerefMut for Recycled<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type no kernel uses, so that no other test shares its free list.
    impl Recyclable for u16 {
        fn free_list() -> &'static Mutex<Vec<Vec<u16>>> {
            static FREE: Mutex<Vec<Vec<u16>>> = Mutex::new(Vec::new());
            &FREE
        }
    }

    #[test]
    fn buffers_start_on_a_cache_line() {
        for len in [1, 100, 40_000] {
            let b = Recycled::<u16>::filled(len, 3);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.len(), len);
            let mut v = vec![1u16; 3];
            let a = aligned(&mut v, len);
            assert_eq!((a.as_ptr() as usize % ALIGN, a.len()), (0, len));
        }
    }

    #[test]
    fn a_dropped_buffer_is_taken_again() {
        let a = Recycled::<u16>::filled(1000, 7);
        let ptr = a.as_ptr();
        assert!(a.iter().all(|&v| v == 7));
        drop(a);
        let b = Recycled::<u16>::stale(990);
        assert_eq!(b.len(), 990);
        assert_eq!(b.as_ptr(), ptr, "not reused");
        assert!(b.iter().all(|&v| v == 7), "stale keeps the old values");
        let c = Recycled::<u16>::filled(1000, 0); // `b` is taken: a new one
        assert_ne!(c.as_ptr(), ptr);
        assert!(c.iter().all(|&v| v == 0));
        drop((b, c));
        let d = Recycled::<u16>::stale(1005); // longer than either: a new one
        assert_eq!(d.len(), 1005);
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken_and_the_largest_kept() {
        let free: Vec<Vec<u8>> = [30, 10, 20].map(|n| vec![0; n]).into();
        assert_eq!(best_fit(&free, 15), Some(2));
        assert_eq!(best_fit(&free, 10), Some(1));
        assert_eq!(best_fit(&free, 31), None);

        let mut free = Vec::new();
        for n in 1..=KEEP + 3 {
            let evicted = keep(&mut free, vec![0u8; n]);
            let smallest_kept_before = if n > KEEP { Some(n - KEEP) } else { None };
            assert_eq!(evicted.map(|v| v.len()), smallest_kept_before);
        }
        assert_eq!(free.len(), KEEP);
    }

    #[test]
    fn empty_gives_nothing_back() {
        let e = Recycled::<u16>::empty();
        assert!(e.is_empty());
        drop(e);
        assert!(free_list::<u16>().iter().all(|v| v.capacity() > 0));
    }
}
