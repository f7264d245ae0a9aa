//! Parquet write and read throughput of `ParquetSink` / `ParquetSource`.
//!
//! Run: `cargo bench --bench parquet_io` (or `cargo run --release --bench parquet_io`).
//! Optional arguments: `ROWS COLS ROW_GROUP_ROWS` (default 2_000_000 4 131072).
//!
//! Writes ROWS × COLS f64 (full-precision values, like measured data) with each codec, from
//! one thread and from two threads delivering alternate row groups (as the executor does), and
//! reads the file back whole and one column at a time. Throughput is raw (uncompressed) bytes
//! per second of wall time (including the final fsync) and per CPU-second of the process
//! (all threads; stable when other jobs share the machine); each figure is the median of 3
//! runs.

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use spillway::io::parquet::{ParquetCompression, ParquetSink, ParquetSource, ParquetWriteOptions};
use spillway::io::{ChunkSink, ChunkSource};
use spillway::{ChunkData, DType, Region};

/// CPU seconds used by the whole process so far (all threads): unlike wall time, this does
/// not depend on how many other jobs share the machine.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Wall and CPU seconds (medians of 3) of writing `chunks` with a plain `ArrowWriter`.
fn arrow_writer_seconds(
    chunks: &[ChunkData],
    cols: usize,
    codec: ParquetCompression,
    rg: usize,
    path: &std::path::Path,
) -> (f64, f64) {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    let schema = Arc::new(Schema::new(
        (0..cols)
            .map(|j| Field::new(format!("c{j}"), DataType::Float64, false))
            .collect::<Vec<_>>(),
    ));
    let batches: Vec<RecordBatch> = chunks
        .iter()
        .map(|c| {
            let ChunkData::F64(a) = c else {
                unreachable!("f64 data")
            };
            let arrays: Vec<ArrayRef> = (0..cols)
                .map(|j| {
                    Arc::new(Float64Array::from_iter_values(
                        a.index_axis(ndarray::Axis(1), j).iter().copied(),
                    )) as ArrayRef
                })
                .collect();
            RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap()
        })
        .collect();
    let compression = match codec {
        ParquetCompression::None => Compression::UNCOMPRESSED,
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Zstd(l) => Compression::ZSTD(ZstdLevel::try_new(l).unwrap()),
    };
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(false)
            .set_max_row_group_row_count(Some(rg))
            .build();
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let file = std::fs::File::create(path).unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        let file = w.into_inner().unwrap();
        file.sync_all().unwrap();
        wall.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
    }
    (median(wall), median(cpu))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(2_000_000);
    let cols = args.get(1).copied().unwrap_or(4);
    let rg = args.get(2).copied().unwrap_or(131_072);
    let raw_mb = (rows * cols * 8) as f64 / 1e6;
    println!(
        "parquet_io: {rows} rows x {cols} f64 columns ({raw_mb:.0} MB raw), row groups of {rg} rows"
    );

    // Full-precision values: a smooth signal plus a little noise in the low bits.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let data = ChunkData::from(ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |ix| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (ix[0] as f64 * 1e-4 + ix[1] as f64).sin() * 100.0 + (x >> 40) as f64 * 1e-9
    }));
    // The executor hands the sink finished chunks: cut them before timing.
    let grid = spillway::ChunkGrid::new(vec![rows, cols], vec![rg, cols]).unwrap();
    let chunks: Vec<ChunkData> = grid
        .chunk_indices()
        .iter()
        .map(|idx| data.slice(&grid.chunk_region(idx)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.parquet");

    println!(
        "{:<10} {:>7} {:>10} {:>14} {:>8} {:>14} {:>12}",
        "codec",
        "threads",
        "write MB/s",
        "MB per CPU-s",
        "file MB",
        "buffer est MB",
        "peak wait MB"
    );
    for codec in [
        ParquetCompression::Zstd(1),
        ParquetCompression::Zstd(3),
        ParquetCompression::Snappy,
        ParquetCompression::None,
    ] {
        for threads in [1usize, 2] {
            let (mut times, mut cpu) = (Vec::new(), Vec::new());
            let (mut size, mut est, mut peak) = (0u64, 0u64, 0u64);
            for _ in 0..3 {
                let opts = ParquetWriteOptions::default()
                    .compression(codec)
                    .overwrite(true);
                let (t0, c0) = (Instant::now(), cpu_seconds());
                let sink =
                    ParquetSink::create(&path, &[rows, cols], DType::F64, rg, &opts).unwrap();
                let n = sink.grid().num_chunks();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let (sink, chunks) = (&sink, &chunks);
                        s.spawn(move || {
                            for k in (0..n).filter(|k| k % threads == t) {
                                sink.write_chunk(&[k, 0], &chunks[k]).unwrap();
                            }
                        });
                    }
                });
                sink.finish().unwrap();
                times.push(t0.elapsed().as_secs_f64());
                cpu.push(cpu_seconds() - c0);
                size = std::fs::metadata(&path).unwrap().len();
                est = sink.buffer_bytes_per_chunk();
                peak = sink.peak_buffered_bytes();
            }
            println!(
                "{:<10} {:>7} {:>10.0} {:>14.0} {:>8.1} {:>14.1} {:>12.1}",
                format!("{codec:?}"),
                threads,
                raw_mb / median(times),
                raw_mb / median(cpu),
                size as f64 / 1e6,
                est as f64 / 1e6,
                peak as f64 / 1e6
            );
        }

        // Baseline: arrow-rs' own ArrowWriter on the same data and properties, with the Arrow
        // arrays built before timing (so it measures encoding and writing only).
        if matches!(
            codec,
            ParquetCompression::Zstd(1) | ParquetCompression::None
        ) {
            let t = arrow_writer_seconds(&chunks, cols, codec, rg, &path);
            println!(
                "{:<10} ArrowWriter baseline (arrays prebuilt): {:.0} MB/s wall, {:.0} MB per CPU-s",
                format!("{codec:?}"),
                raw_mb / t.0,
                raw_mb / t.1
            );
        }

        // Read back what the last write made (this codec, 2 threads' file: identical bytes).
        let src = ParquetSource::open(&path, None).unwrap();
        let (mut whole, mut whole_cpu) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (t0, c0) = (Instant::now(), cpu_seconds());
            for idx in src.grid().chunk_indices() {
                let c = src.read_region(&src.grid().chunk_region(&idx)).unwrap();
                assert_eq!(c.shape()[1], cols);
            }
            whole.push(t0.elapsed().as_secs_f64());
            whole_cpu.push(cpu_seconds() - c0);
        }
        let one: Vec<f64> = (0..3)
            .map(|_| {
                let t0 = Instant::now();
                let c = src
                    .read_region(&Region::new(vec![0, 1], vec![rows, 1]))
                    .unwrap();
                assert_eq!(c.len(), rows);
                t0.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "{:<10} read all columns {:.0} MB/s, {:.0} MB per CPU-s; one column of {cols} in {:.3} s vs all in {:.3} s",
            format!("{codec:?}"),
            raw_mb / median(whole.clone()),
            raw_mb / median(whole_cpu),
            median(one),
            median(whole)
        );
    }
}
