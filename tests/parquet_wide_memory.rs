//! A wide Parquet write (thousands of columns) holds no more than the sink declares in
//! `buffer_bytes_per_chunk`, and a wide read no more than its result plus what the source
//! declares in `read_overhead_bytes`, a bounded scratch whatever the width.
//!
//! Much of a Parquet writer's memory is allocated by C code (zstd's contexts: 101 KB per
//! column writer), which a counting Rust allocator does not see. So the global allocator here
//! also samples glibc's `mallinfo2` (bytes in use by `malloc`, Rust's and C's alike) on every
//! allocation while a measurement runs, and keeps the peak. This file is its own test binary
//! with a single test: other tests running in parallel would disturb the figures.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use spillway::io::parquet::{ParquetSink, ParquetSource, ParquetWriteOptions};
use spillway::io::{ChunkSink, ChunkSource};
use spillway::{ChunkData, DType, Region};

struct Sampling;

/// Peak of `malloc`'s bytes in use, sampled while `SAMPLING` is on.
static PEAK: AtomicI64 = AtomicI64::new(0);
static SAMPLING: AtomicBool = AtomicBool::new(false);

/// Bytes `malloc` has handed out and not taken back, in every arena and mapping.
fn in_use() -> i64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as i64
}

fn sample() {
    if SAMPLING.load(Ordering::Relaxed) {
        PEAK.fetch_max(in_use(), Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Sampling {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        sample();
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        sample();
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // Before freeing: a buffer that lives only between two allocations still counts.
        sample();
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        sample();
        q
    }
}

#[global_allocator]
static GLOBAL: Sampling = Sampling;

/// Runs `f` and returns its result with the peak bytes in use above those in use before.
fn peak_above_start<R>(f: impl FnOnce() -> R) -> (R, i64) {
    let start = in_use();
    PEAK.store(start, Ordering::Relaxed);
    SAMPLING.store(true, Ordering::Relaxed);
    let r = f();
    SAMPLING.store(false, Ordering::Relaxed);
    (r, PEAK.load(Ordering::Relaxed) - start)
}

const MB: f64 = 1e6;

fn formula(i: usize, j: usize) -> f64 {
    (i as f64 * 0.001 + j as f64 * 0.0007).sin()
}

#[test]
fn wide_writes_stay_within_the_declared_buffer_and_wide_reads_within_a_fixed_scratch() {
    let (cols, rg_rows, groups) = (2_500usize, 400usize, 5usize);
    let rows = rg_rows * groups;
    let chunks: Vec<ChunkData> = (0..groups)
        .map(|g| {
            ChunkData::from(
                ndarray::Array2::from_shape_fn((rg_rows, cols), |(i, j)| {
                    formula(g * rg_rows + i, j)
                })
                .into_dyn(),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();

    // Row groups delivered in order (each streams into the file) and in reverse (all but the
    // first wait: in RAM up to the sink's allowance, then in the spill file).
    for order in ["in order", "reverse"] {
        let path = dir.path().join(format!("{order}.parquet"));
        let opts = ParquetWriteOptions::default();
        let sink = ParquetSink::create(&path, &[rows, cols], DType::F64, rg_rows, &opts).unwrap();
        let declared = sink.buffer_bytes_per_chunk() as i64;
        let ks: Vec<usize> = match order {
            "in order" => (0..groups).collect(),
            _ => (0..groups).rev().collect(),
        };
        // Everything the sink holds counts, from the first row group to the closed file:
        // waiting row groups and metadata outlive the call that made them.
        let ((), peak) = peak_above_start(|| {
            for &k in &ks {
                sink.write_chunk(&[k, 0], &chunks[k]).unwrap();
            }
            sink.finish().unwrap();
        });
        eprintln!(
            "{order}: peak {:.1} MB above the start, declared {:.1} MB per chunk (chunk {:.1} MB); \
             spilled {:.1} MB",
            peak as f64 / MB,
            declared as f64 / MB,
            chunks[0].nbytes() as f64 / MB,
            sink.spilled_bytes() as f64 / MB
        );
        assert!(
            peak <= declared,
            "{order}: {peak} bytes in use beyond the chunks, {declared} declared"
        );
        if order == "reverse" {
            assert!(
                sink.spilled_bytes() > 0,
                "four waiting row groups of {} MB exceed the RAM allowance",
                chunks[0].nbytes() / 1_000_000
            );
        }
        // Yet it is no blanket figure: footer metadata (~1 KB per column chunk), one row
        // group's worth of waiting pages and at most 8 live column writers, far below one
        // codec per column (2_500 x 101 KB = 253 MB, what arrow-rs' factory creates).
        assert!(declared < 40 << 20, "declared {declared}");

        let src = ParquetSource::open(&path, None).unwrap();
        assert_eq!(src.row_group_rows(), vec![rg_rows; groups]);
        for g in [0, groups - 1] {
            let region = Region::new(vec![g * rg_rows, 0], vec![rg_rows, cols]);
            let (back, peak) = peak_above_start(|| src.read_region(&region).unwrap());
            assert_eq!(back, chunks[g], "{order}: row group {g} reads back exactly");
            let out = back.nbytes() as i64;
            let overhead = src.read_overhead_bytes(&region) as i64;
            eprintln!(
                "{order}: read of row group {g}: peak {:.1} MB above the start for {:.1} MB \
                 out, declared overhead {:.1} MB",
                peak as f64 / MB,
                out as f64 / MB,
                overhead as f64 / MB
            );
            // The result plus the declared scratch: about 8 MiB of columns and codecs,
            // whatever the width (one codec per column would be 2_500 x 101 KB = 253 MB).
            assert!(
                peak <= out + overhead,
                "{order}: a read of {out} bytes peaked {peak} bytes above the start, \
                 {overhead} declared besides the result"
            );
            assert!(overhead <= 8 << 20);
        }
        // A slice of rows and columns inside a row group.
        let region = Region::new(vec![rg_rows + 7, 100], vec![50, 1_000]);
        let part = src.read_region(&region).unwrap().to_f64_vec();
        for (n, v) in part.iter().enumerate() {
            let (i, j) = (rg_rows + 7 + n / 1_000, 100 + n % 1_000);
            assert_eq!(*v, formula(i, j));
        }
    }
}
