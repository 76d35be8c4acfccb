//! The IDX reader never allocates more than its input can justify.
//!
//! A counting global allocator (this test binary only) records the peak of
//! the bytes the current thread holds while the reader runs, for arbitrary
//! bytes and for headers that announce far more data than follows.
//! Run: `cargo test -p netdsl-runtime --test idx_alloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use netdsl_runtime::data::{parse_idx_images, parse_idx_labels, read_idx_images};
use proptest::prelude::*;

/// Deflate's maximum expansion (zlib's technical details): the reader's bound.
const MAX_INFLATE_RATIO: usize = 1032;
/// Fixed working memory: the gzip decoder's state and window, a read buffer.
const SLACK: usize = 256 * 1024;

struct Counting;

thread_local! {
    /// Bytes this thread holds now, and the most it has held since the last reset.
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let _ = HELD.try_with(|held| {
        let now = held.get() + delta;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged;
// the bookkeeping only touches const-initialised thread-locals (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes `f` held at once beyond what the thread held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(dims.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

/// Parses `bytes` as images and labels; each may hold at most what the input justifies.
fn check(bytes: &[u8]) {
    let gz = bytes.starts_with(&[0x1f, 0x8b]);
    let bound = if gz {
        2 * MAX_INFLATE_RATIO * bytes.len()
    } else {
        2 * bytes.len()
    } + SLACK;
    let (_, peak) = peak_during(|| parse_idx_images(Path::new("mem"), bytes));
    assert!(
        peak <= bound,
        "images: {peak} bytes held for a {}-byte input",
        bytes.len()
    );
    let (_, peak) = peak_during(|| parse_idx_labels(Path::new("mem"), bytes));
    assert!(
        peak <= bound,
        "labels: {peak} bytes held for a {}-byte input",
        bytes.len()
    );
}

#[test]
fn four_billion_images_in_100_bytes() {
    let mut bytes = header(2051, &[4_000_000_000, 28, 28]);
    bytes.resize(100, 0);
    let (result, peak) = peak_during(|| parse_idx_images(Path::new("mem"), &bytes));
    assert!(result.is_err());
    assert!(peak < 4096, "{peak} bytes held");
    let gz = gzip(&bytes);
    let (result, peak) = peak_during(|| parse_idx_images(Path::new("mem.gz"), &gz));
    assert!(result.is_err());
    assert!(peak < SLACK, "{peak} bytes held");
    // Through a file too: nothing beyond the read buffer.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-idx3-ubyte");
    std::fs::write(&path, &bytes).unwrap();
    let (result, peak) = peak_during(|| read_idx_images(&path));
    assert!(result.is_err());
    assert!(peak < 64 * 1024, "{peak} bytes held");
}

#[test]
fn real_sized_header_holds_about_the_data() {
    // 1,000 images: the reader holds the pixels once, not a multiple.
    let mut bytes = header(2051, &[1000, 28, 28]);
    bytes.resize(16 + 1000 * 784, 3);
    let (result, peak) = peak_during(|| parse_idx_images(Path::new("mem"), &bytes));
    assert_eq!(result.unwrap().pixels.len(), 784_000);
    assert!(
        (784_000..=784_000 + 4096).contains(&peak),
        "{peak} bytes held"
    );
    let gz = gzip(&bytes);
    let (result, peak) = peak_during(|| parse_idx_images(Path::new("mem.gz"), &gz));
    assert_eq!(result.unwrap().pixels.len(), 784_000);
    assert!(
        (784_000..=2 * 784_000 + SLACK).contains(&peak),
        "{peak} bytes held"
    );
    eprintln!("1,000 gzip images: {peak} bytes held at most");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        gz.extend_from_slice(&bytes);
        check(&gz);
    }

    #[test]
    fn arbitrary_headers_with_small_bodies(
        magic in prop_oneof![Just(2051u32), Just(2049u32)],
        dims in proptest::collection::vec(prop_oneof![0u32..30, any::<u32>()], 3),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        compress in any::<bool>(),
    ) {
        let mut bytes = header(magic, &dims);
        bytes.extend_from_slice(&body);
        check(&if compress { gzip(&bytes) } else { bytes });
    }
}
