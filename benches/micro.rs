//! Criterion micro-benchmarks: the kernels (through the public API, next to the same work in
//! plain `ndarray`), the codec steps the store and the spill files use, and a put → get round
//! trip through each tier of the chunk store.
//!
//! `cargo bench --bench micro` (all groups) or `cargo bench --bench micro -- codec` (one).
//! Sizes are small (8–16 MB) so that each figure measures the code, not fresh-page faults of
//! gigabytes; the whole-process figures are the workload runner's (`BENCHMARKS.md`).
//! Kernel benchmarks use a one-thread session, so that they compare with one-thread `ndarray`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, ArrayD, Axis};
use spillway::codec::{checksum, chunk_bytes, compress, decompress_into, shuffle, unshuffle};
use spillway::store::{ChunkKey, ChunkStore, StoreConfig, Tier};
use spillway::{Array, ChunkData, MemoryBudget, Session};

const ROWS: usize = 2048;
const COLS: usize = 1024; // 2048 × 1024 f64 = 16 MiB

/// The workloads' formula, `sin(i * 0.001 + j * 0.0007)`, as a plain ndarray.
fn formula_nd(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        (i as f64 * 0.001 + j as f64 * 0.0007).sin()
    })
}

/// The same formula as a lazy spillway array in `chunk_rows`-row chunks.
fn formula(s: &Session, rows: usize, cols: usize, chunk_rows: usize) -> Array {
    let i = s
        .arange(rows, [chunk_rows])
        .unwrap()
        .insert_axis(1)
        .unwrap();
    let j = s.arange(cols, [cols]).unwrap().insert_axis(0).unwrap();
    ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap()
}

fn one_thread_session() -> Session {
    Session::builder()
        .memory_limit("1GiB")
        .threads(1)
        .build()
        .unwrap()
}

fn kernels(c: &mut Criterion) {
    let s = one_thread_session();
    let bytes = (ROWS * COLS * 8) as u64;
    let mut g = c.benchmark_group("kernels");
    g.throughput(Throughput::Bytes(bytes));

    // W1's pipeline: the formula is fused into the reduction and walked in tiles.
    let x = formula(&s, ROWS, COLS, 512);
    let seed = (&x * 2.5).mean(1).unwrap().std(None, 0.0).unwrap();
    g.bench_function("seed_mean_std/spillway", |b| {
        b.iter(|| black_box(seed.compute_scalar::<f64>().unwrap()))
    });
    g.bench_function("seed_mean_std/ndarray", |b| {
        b.iter(|| {
            let x = formula_nd(ROWS, COLS);
            let m = (&x * 2.5).mean_axis(Axis(1)).unwrap();
            black_box(m.std(0.0))
        })
    });

    // Element-wise work over an in-memory operand, into an in-memory result.
    let a = formula_nd(ROWS, COLS).into_dyn();
    let xa = s.from_ndarray(a.clone(), [512, COLS]).unwrap();
    let chain = ((&xa * 2.5) + 1.0).abs().unwrap().sqrt().unwrap();
    g.bench_function("elementwise_chain/spillway", |b| {
        b.iter(|| black_box(chain.compute::<f64>().unwrap()))
    });
    g.bench_function("elementwise_chain/ndarray", |b| {
        b.iter(|| black_box(a.mapv(|v| (v * 2.5 + 1.0).abs().sqrt())))
    });

    // A reduction over the chunked axis: per-chunk partials combined in a tree.
    let sum0 = xa.sum(0).unwrap();
    g.bench_function("sum_axis0/spillway", |b| {
        b.iter(|| black_box(sum0.compute::<f64>().unwrap()))
    });
    g.bench_function("sum_axis0/ndarray", |b| {
        b.iter(|| black_box(a.sum_axis(Axis(0))))
    });
    g.finish();
}

fn smooth_bytes() -> Vec<u8> {
    let x: ArrayD<f64> = formula_nd(ROWS / 2, COLS).into_dyn(); // 8 MiB
    chunk_bytes(&ChunkData::from(x)).into_owned()
}

fn codec(c: &mut Criterion) {
    let raw = smooth_bytes();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    let mut dst = vec![0u8; raw.len()];
    g.bench_function("shuffle", |b| b.iter(|| shuffle(&raw, 8, &mut dst)));
    let shuffled = dst.clone();
    g.bench_function("unshuffle", |b| {
        b.iter(|| unshuffle(&shuffled, 8, &mut dst))
    });
    g.bench_function("checksum_crc32c", |b| b.iter(|| black_box(checksum(&raw))));
    g.bench_function("compress_shuffle_zstd1", |b| {
        b.iter(|| black_box(compress(&raw, 8, 1).unwrap()))
    });
    let packed = compress(&raw, 8, 1).unwrap();
    g.bench_function("decompress_unshuffle_zstd1", |b| {
        b.iter(|| decompress_into(&packed[..], 8, &mut dst).unwrap())
    });
    assert_eq!(dst, raw, "the codec must give back the bytes it was given");
    g.finish();
}

/// put → (demote to `tier`) → get → remove of one chunk, on a store configured for `tier`.
fn round_trip(store: &ChunkStore, chunk: &Arc<ChunkData>, tier: Tier) {
    let k = ChunkKey::fresh();
    store.put(k, Arc::clone(chunk)).unwrap();
    if tier != Tier::Hot {
        assert_eq!(store.demote_chunk(k).unwrap(), tier);
    }
    black_box(store.get(k).unwrap());
    store.remove(k);
}

fn tiers(c: &mut Criterion) {
    let x: ArrayD<f64> = formula_nd(ROWS / 2, COLS).into_dyn(); // 8 MiB
    let chunk = Arc::new(ChunkData::from(x));
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(1 << 30);
    let store = |cfg: StoreConfig| {
        ChunkStore::new(
            budget.clone(),
            StoreConfig {
                spill_dir: Some(dir.path().to_path_buf()),
                ..cfg
            },
        )
        .unwrap()
    };
    let mut g = c.benchmark_group("tiers");
    g.throughput(Throughput::Bytes((ROWS / 2 * COLS * 8) as u64));
    let hot = store(StoreConfig::default());
    g.bench_function("hot_put_get", |b| {
        b.iter(|| round_trip(&hot, &chunk, Tier::Hot))
    });
    // Forced into the compressed tier whatever the sample says, to measure it.
    let compressed = store(StoreConfig {
        min_compression_ratio: 0.0,
        ..Default::default()
    });
    g.bench_function("compressed_put_get", |b| {
        b.iter(|| round_trip(&compressed, &chunk, Tier::Compressed))
    });
    let disk = store(StoreConfig {
        compressed_tier: false,
        ..Default::default()
    });
    g.bench_function("disk_put_get", |b| {
        b.iter(|| round_trip(&disk, &chunk, Tier::Disk))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = micro;
    config = config();
    targets = kernels, codec, tiers
}
criterion_main!(micro);
