//! The workload runner: the seed article's workloads W1–W5 on the deterministic formula
//! `x[i, j] = sin(i * 0.001 + j * 0.0007)`, the same data the Dask and Cubed scripts of
//! `shared/peers/` compute, so that results compare by checksum and not only by speed.
//!
//! ```text
//! cargo run --release --example bench -- <w1|w2|w3|w4|w5> [options]
//!
//!   --scale S             multiplies the rows (1 = the seed size)
//!   --chunk-rows N        rows per chunk (default: the workload's)
//!   --memory-limit L      the session's memory limit (default: the workload's)
//!   --threads N           worker threads (default: all cores)
//!   --out-dir D           where w3 writes D/w3.zarr (or D/w3.parquet) and w5 its stores
//!                         (default: a temporary folder); removed afterwards unless --keep
//!   --format zarr|parquet w3's output format (default zarr)
//!   --keep                keep what was written
//!   --no-optimize         run the unoptimised plan (one task per operation and chunk)
//!   --no-compressed-tier  spill straight to disk instead of compressing in RAM first
//!   --report FILE         also write the run's memory timeline and task stream as JSON
//!   --no-verify           skip reading the output back for its checksum (profiling)
//! ```
//!
//! | workload | computation | seed size | default limit |
//! |---|---|---|---|
//! | w1 | `((x * 2.5).mean(axis 1)).std()` | 50_000 × 10_000 in 5_000-row chunks | 1 GiB |
//! | w2 | `x.persist()`, then `(x² + 3x).mean(axis 0) + x.mean(axis 0)` | 100_000 × 5_000 in 10_000-row chunks | 1 GiB |
//! | w3 | `(x - x.mean(0)) / x.std(0)` written to Zarr v3 (zstd 3) or Parquet | 40_000 × 10_000 in 5_000-row chunks | 1 GiB |
//! | w4 | `x.sum(axis 0)` on 32 GB | 400_000 × 10_000 in 10_000-row chunks | 256 MiB |
//! | w5 | Zarr in 5_000 × 10_000 chunks, rechunked to 50_000 × 500 into a new Zarr | 50_000 × 10_000 | 512 MiB |
//!
//! The last line printed is one JSON object with the fields of the peers' scripts
//! (`workload`, `engine`, `scale`, `shape`, `chunks`, `config`, `wall_s`, `completed`,
//! `error`, `checksum`, `peak_rss_bytes`) plus spillway's `projected_peak_bytes` and
//! `memory_report`. `peak_rss_bytes` is the process's `ru_maxrss` right after the timed part;
//! the checksum is taken afterwards, from what was written, under the same memory limit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use spillway::io::ChunkSink;
use spillway::io::parquet::{ParquetReadOptions, ParquetWriteOptions};
use spillway::io::zarr::ZarrWriteOptions;
use spillway::{Array, ChunkData, ChunkGrid, DType, Session, peak_rss_bytes};

const USAGE: &str = "usage: bench <w1|w2|w3|w4|w5> [--scale S] [--chunk-rows N] [--memory-limit L] \
[--threads N] [--out-dir D] [--format zarr|parquet] [--keep] [--no-optimize] \
[--no-compressed-tier] [--no-verify] [--report FILE]";

/// One workload's fixed sizes (at scale 1) and default limit.
struct Workload {
    name: &'static str,
    title: &'static str,
    rows: usize,
    cols: usize,
    chunk_rows: usize,
    limit: &'static str,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "w1",
        title: "W1 mean-std",
        rows: 50_000,
        cols: 10_000,
        chunk_rows: 5_000,
        limit: "1GiB",
    },
    Workload {
        name: "w2",
        title: "W2 persist-reuse",
        rows: 100_000,
        cols: 5_000,
        chunk_rows: 10_000,
        limit: "1GiB",
    },
    Workload {
        name: "w3",
        title: "W3 to-zarr",
        rows: 40_000,
        cols: 10_000,
        chunk_rows: 5_000,
        limit: "1GiB",
    },
    Workload {
        name: "w4",
        title: "W4 larger-than-ram",
        rows: 400_000,
        cols: 10_000,
        chunk_rows: 10_000,
        limit: "256MiB",
    },
    Workload {
        name: "w5",
        title: "W5 rechunk",
        rows: 50_000,
        cols: 10_000,
        chunk_rows: 5_000,
        limit: "512MiB",
    },
];

/// W5's target chunk columns.
const W5_TARGET_COLS: usize = 500;
/// zstd level of the Zarr outputs, as in the peers' scripts.
const ZSTD_LEVEL: i32 = 3;

struct Options {
    workload: &'static Workload,
    scale: f64,
    chunk_rows: Option<usize>,
    memory_limit: Option<String>,
    threads: Option<usize>,
    out_dir: Option<PathBuf>,
    parquet: bool,
    keep: bool,
    optimize: bool,
    compressed_tier: bool,
    report: Option<PathBuf>,
    /// Skip the read-back checksum (for profiling the timed part alone).
    no_verify: bool,
    /// Internal: write W5's source store and exit (run as a child process, so that the
    /// untimed setup does not count in the measured process's peak RSS).
    setup_w5: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let mut o = Options {
        workload: &WORKLOADS[0],
        scale: 1.0,
        chunk_rows: None,
        memory_limit: None,
        threads: None,
        out_dir: None,
        parquet: false,
        keep: false,
        optimize: true,
        compressed_tier: true,
        report: None,
        no_verify: false,
        setup_w5: None,
    };
    let mut workload = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--scale" => {
                o.scale = value(a)?.parse().map_err(|e| format!("--scale: {e}"))?;
                if o.scale.is_nan() || o.scale <= 0.0 {
                    return Err("--scale must be positive".into());
                }
            }
            "--chunk-rows" => {
                o.chunk_rows = Some(
                    value(a)?
                        .parse()
                        .map_err(|e| format!("--chunk-rows: {e}"))?,
                )
            }
            "--memory-limit" => o.memory_limit = Some(value(a)?),
            "--threads" => {
                o.threads = Some(value(a)?.parse().map_err(|e| format!("--threads: {e}"))?)
            }
            "--out-dir" => o.out_dir = Some(PathBuf::from(value(a)?)),
            "--format" => match value(a)?.as_str() {
                "zarr" => o.parquet = false,
                "parquet" => o.parquet = true,
                f => return Err(format!("--format takes zarr or parquet, not {f}")),
            },
            "--keep" => o.keep = true,
            "--no-optimize" => o.optimize = false,
            "--no-compressed-tier" => o.compressed_tier = false,
            "--no-verify" => o.no_verify = true,
            "--report" => o.report = Some(PathBuf::from(value(a)?)),
            "--setup-w5" => o.setup_w5 = Some(PathBuf::from(value(a)?)),
            "-h" | "--help" => return Err(USAGE.into()),
            w if !w.starts_with('-') && workload.is_none() => {
                workload = Some(
                    WORKLOADS
                        .iter()
                        .find(|x| x.name == w)
                        .ok_or_else(|| format!("unknown workload {w}\n{USAGE}"))?,
                )
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    o.workload = workload.ok_or_else(|| USAGE.to_string())?;
    if o.parquet && o.workload.name != "w3" {
        return Err("--format parquet applies to w3 only".into());
    }
    Ok(o)
}

impl Options {
    fn rows(&self) -> usize {
        ((self.workload.rows as f64 * self.scale).round() as usize).max(1)
    }

    fn chunk_rows(&self) -> usize {
        self.chunk_rows
            .unwrap_or(self.workload.chunk_rows)
            .min(self.rows())
            .max(1)
    }

    fn limit(&self) -> String {
        self.memory_limit
            .clone()
            .unwrap_or_else(|| self.workload.limit.to_string())
    }

    fn session(&self) -> spillway::Result<Session> {
        let mut b = Session::builder()
            .memory_limit(self.limit())
            .optimize(self.optimize)
            .compressed_tier(self.compressed_tier);
        if let Some(t) = self.threads {
            b = b.threads(t);
        }
        b.build()
    }
}

/// `x[i, j] = sin(i * 0.001 + j * 0.0007)`, rows × cols in (chunk_rows × chunk_cols) chunks.
fn formula(
    s: &Session,
    rows: usize,
    cols: usize,
    chunk_rows: usize,
    chunk_cols: usize,
) -> spillway::Result<Array> {
    let i = s.arange(rows, [chunk_rows])?.insert_axis(1)?;
    let j = s.arange(cols, [chunk_cols])?.insert_axis(0)?;
    ((&i * 0.001) + (&j * 0.0007))?.sin()
}

/// The peers' checksum (`shared/peers/peers_common.py`): with `k` the flat C-order index,
/// n, Σ R, Σ |R|, Σ R², Σ R·((k mod 997)/997), the first and the last element.
#[derive(Default)]
struct Checksum {
    n: u64,
    sum: f64,
    sum_abs: f64,
    sum_sq: f64,
    wsum: f64,
    first: Option<(u64, f64)>,
    last: Option<(u64, f64)>,
}

impl Checksum {
    /// Adds a block of a 1-d or 2-d array, given its start and the array's column count.
    fn add_block(&mut self, data: &ChunkData, start: &[usize], ncols: usize) {
        let owned;
        let v: &[f64] = match data {
            ChunkData::F64(a) if a.is_standard_layout() => {
                a.as_slice().expect("standard layout is contiguous")
            }
            other => {
                owned = other.to_f64_vec();
                &owned
            }
        };
        let shape = data.shape();
        let (rows, cols) = match shape.len() {
            1 => (1, shape[0]),
            _ => (shape[0], shape[1]),
        };
        let (r0, c0) = match start.len() {
            1 => (0, start[0]),
            _ => (start[0], start[1]),
        };
        let mut part = Checksum::default();
        for r in 0..rows {
            let row = &v[r * cols..(r + 1) * cols];
            let k0 = ((r0 + r) * ncols + c0) as u64;
            let mut m = k0 % 997;
            for &x in row {
                part.sum += x;
                part.sum_abs += x.abs();
                part.sum_sq += x * x;
                part.wsum += x * (m as f64 / 997.0);
                m += 1;
                if m == 997 {
                    m = 0;
                }
            }
            if let (Some(&a), Some(&b)) = (row.first(), row.last()) {
                part.merge_ends(k0, a, k0 + cols as u64 - 1, b);
            }
        }
        part.n = v.len() as u64;
        self.merge(&part);
    }

    fn merge_ends(&mut self, k_first: u64, first: f64, k_last: u64, last: f64) {
        if self.first.is_none_or(|(k, _)| k_first < k) {
            self.first = Some((k_first, first));
        }
        if self.last.is_none_or(|(k, _)| k_last > k) {
            self.last = Some((k_last, last));
        }
    }

    fn merge(&mut self, o: &Checksum) {
        self.n += o.n;
        self.sum += o.sum;
        self.sum_abs += o.sum_abs;
        self.sum_sq += o.sum_sq;
        self.wsum += o.wsum;
        if let (Some(f), Some(l)) = (o.first, o.last) {
            self.merge_ends(f.0, f.1, l.0, l.1);
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "n": self.n, "sum": self.sum, "sum_abs": self.sum_abs, "sum_sq": self.sum_sq,
            "wsum": self.wsum, "first": self.first.map(|f| f.1), "last": self.last.map(|l| l.1),
        })
    }
}

/// A sink that folds every chunk it receives into a checksum: the read-back of a written
/// store streams through it under the session's memory limit, never whole in RAM.
struct ChecksumSink {
    grid: ChunkGrid,
    ncols: usize,
    acc: Mutex<Checksum>,
    /// Columns whose elements must equal the formula exactly, and whether they all did.
    exact_cols: Option<std::ops::Range<usize>>,
    exact: std::sync::atomic::AtomicBool,
}

impl ChunkSink for ChecksumSink {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn write_chunk(&self, index: &[usize], data: &ChunkData) -> spillway::Result<()> {
        let region = self.grid.chunk_region(index);
        let mut part = Checksum::default();
        part.add_block(data, region.start(), self.ncols);
        self.acc.lock().unwrap().merge(&part);
        if let (Some(cols), ChunkData::F64(a)) = (&self.exact_cols, data)
            && let Ok(a) = a.view().into_dimensionality::<ndarray::Ix2>()
        {
            let (r0, c0) = (region.start()[0], region.start()[1]);
            let (lo, hi) = (cols.start.max(c0), cols.end.min(c0 + a.ncols()));
            let ok = (lo..hi).all(|j| {
                a.column(j - c0)
                    .iter()
                    .enumerate()
                    .all(|(i, v)| *v == ((r0 + i) as f64 * 0.001 + j as f64 * 0.0007).sin())
            });
            if !ok {
                self.exact
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }
    fn finish(&self) -> spillway::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "checksum".into()
    }
}

/// Streams an array through a [`ChecksumSink`].
fn checksum_of(a: &Array) -> spillway::Result<Value> {
    Ok(checksum_and_check(a, None)?.0)
}

/// Streams an array through a [`ChecksumSink`], also checking the columns `exact_cols`
/// against the formula.
fn checksum_and_check(
    a: &Array,
    exact_cols: Option<std::ops::Range<usize>>,
) -> spillway::Result<(Value, bool)> {
    let ncols = if a.ndim() == 2 { a.shape()[1] } else { 0 };
    let sink = Arc::new(ChecksumSink {
        grid: a.chunk_grid().clone(),
        ncols,
        acc: Mutex::new(Checksum::default()),
        exact_cols,
        exact: std::sync::atomic::AtomicBool::new(true),
    });
    a.write_to(sink.clone())?;
    let v = sink.acc.lock().unwrap().to_json();
    Ok((v, sink.exact.load(std::sync::atomic::Ordering::Relaxed)))
}

fn dir_bytes(p: &Path) -> u64 {
    if p.is_file() {
        return p.metadata().map(|m| m.len()).unwrap_or(0);
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// What a workload reports besides its timing.
#[derive(Default)]
struct Outcome {
    checksum: Value,
    extra: serde_json::Map<String, Value>,
    projected_peak_bytes: u64,
    peak_rss_after_timed: u64,
    wall_s: f64,
}

fn run(o: &Options, s: &Session, out_dir: &Path) -> spillway::Result<Outcome> {
    let (n, m, cr) = (o.rows(), o.workload.cols, o.chunk_rows());
    let mut out = Outcome::default();
    match o.workload.name {
        "w1" => {
            let x = formula(s, n, m, cr, m)?;
            let y = (&x * 2.5).mean(1)?.std(None, 0.0)?;
            out.projected_peak_bytes = y.plan()?.projected_peak_bytes();
            let t0 = Instant::now();
            let v: f64 = y.compute_scalar()?;
            out.wall_s = t0.elapsed().as_secs_f64();
            out.peak_rss_after_timed = peak_rss_bytes();
            out.checksum = json!({ "value": v });
        }
        "w2" => {
            let t0 = Instant::now();
            let x = formula(s, n, m, cr, m)?.persist()?;
            let persist_s = t0.elapsed().as_secs_f64();
            let after_persist = s.memory_report();
            if let (Some(path), Some(run)) = (&o.report, s.last_run()) {
                let p = path.with_extension("persist.json");
                if let Err(e) = serde_json::to_vec(&run).map(|b| std::fs::write(&p, b)) {
                    eprintln!("--report {}: {e}", p.display());
                }
            }
            let z = ((((&x * &x)? + (&x * 3.0))?.mean(0)?) + &x.mean(0)?)?;
            out.projected_peak_bytes = z.plan()?.projected_peak_bytes();
            let r = z.compute::<f64>()?;
            out.wall_s = t0.elapsed().as_secs_f64();
            out.peak_rss_after_timed = peak_rss_bytes();
            let mut c = Checksum::default();
            c.add_block(&ChunkData::from(r.clone()), &[0], 0);
            out.checksum = c.to_json();
            out.extra.insert("persist_s".into(), json!(persist_s));
            out.extra.insert(
                "after_persist".into(),
                json!({
                    "hot_bytes": after_persist.store.hot_bytes,
                    "compressed_bytes": after_persist.store.compressed_bytes,
                    "disk_bytes": after_persist.store.disk_bytes,
                    "compression_ratio": after_persist.store.compression_ratio(),
                }),
            );
            out.extra.insert(
                "result_head".into(),
                json!(r.iter().take(3).collect::<Vec<_>>()),
            );
        }
        "w3" => {
            let x = formula(s, n, m, cr, m)?;
            let y = ((&x - &x.mean(0)?)? / &x.std(0, 0.0)?)?;
            let t0 = Instant::now();
            let path;
            let back = if o.parquet {
                path = out_dir.join("w3.parquet");
                y.to_parquet(&path, &ParquetWriteOptions::default().overwrite(true))?;
                out.wall_s = t0.elapsed().as_secs_f64();
                out.peak_rss_after_timed = peak_rss_bytes();
                out.extra.insert(
                    "parquet".into(),
                    json!(format!("zstd(1), one row group per {cr}-row chunk")),
                );
                s.from_parquet(&path, None, &ParquetReadOptions::default())?
            } else {
                path = out_dir.join("w3.zarr");
                y.to_zarr(
                    &path,
                    &ZarrWriteOptions::default().zstd(ZSTD_LEVEL).overwrite(true),
                )?;
                out.wall_s = t0.elapsed().as_secs_f64();
                out.peak_rss_after_timed = peak_rss_bytes();
                out.extra.insert(
                    "zarr".into(),
                    json!(format!(
                        "v3, codecs bytes(little) + zstd(level={ZSTD_LEVEL}), chunks=({cr},{m})"
                    )),
                );
                s.from_zarr(&path, "/")?
            };
            out.projected_peak_bytes = s.last_run().map_or(0, |r| r.projected_peak_bytes);
            let bytes = dir_bytes(&path);
            out.extra.insert("bytes_on_disk".into(), json!(bytes));
            out.extra.insert(
                "compression_ratio".into(),
                json!((n * m * 8) as f64 / bytes.max(1) as f64),
            );
            let t1 = Instant::now();
            if !o.no_verify {
                out.checksum = checksum_of(&back)?;
            }
            out.extra
                .insert("verify_s".into(), json!(t1.elapsed().as_secs_f64()));
        }
        "w4" => {
            let x = formula(s, n, m, cr, m)?;
            let y = x.sum(0)?;
            out.projected_peak_bytes = y.plan()?.projected_peak_bytes();
            let t0 = Instant::now();
            let r = y.compute::<f64>()?;
            out.wall_s = t0.elapsed().as_secs_f64();
            out.peak_rss_after_timed = peak_rss_bytes();
            let mut c = Checksum::default();
            c.add_block(&ChunkData::from(r.clone()), &[0], 0);
            out.checksum = c.to_json();
            out.extra.insert(
                "result_head".into(),
                json!(r.iter().take(3).collect::<Vec<_>>()),
            );
        }
        "w5" => {
            let src = out_dir.join("w5-src.zarr");
            let dst = out_dir.join("w5.zarr");
            // The source is written by a child process: untimed, and outside this process's
            // peak RSS.
            let exe = std::env::current_exe().map_err(spillway::Error::from)?;
            let mut cmd = std::process::Command::new(exe);
            cmd.arg("w5")
                .arg("--setup-w5")
                .arg(&src)
                .arg("--scale")
                .arg(o.scale.to_string())
                .arg("--chunk-rows")
                .arg(cr.to_string())
                // Untimed and in its own process: it may use more than the measured limit.
                .arg("--memory-limit")
                .arg("4GiB");
            let status = cmd.status().map_err(spillway::Error::from)?;
            if !status.success() {
                return Err(spillway::Error::InvalidArgument(format!(
                    "writing the W5 source store failed: {status}"
                )));
            }
            let tc = W5_TARGET_COLS.min(m);
            let t0 = Instant::now();
            let x = s.from_zarr(&src, "/")?;
            let y = x.rechunk([n, tc])?;
            out.projected_peak_bytes = y.plan()?.projected_peak_bytes();
            y.to_zarr(
                &dst,
                &ZarrWriteOptions::default().zstd(ZSTD_LEVEL).overwrite(true),
            )?;
            out.wall_s = t0.elapsed().as_secs_f64();
            out.peak_rss_after_timed = peak_rss_bytes();
            let written = s.from_zarr(&dst, "/")?;
            out.extra
                .insert("chunks_written".into(), json!(written.chunk_shape()));
            out.extra
                .insert("bytes_on_disk".into(), json!(dir_bytes(&dst)));
            if let Some(r) = s.last_run() {
                out.extra.insert(
                    "spilled_bytes".into(),
                    json!(s.memory_report().store.bytes_spilled),
                );
                out.extra.insert("tasks".into(), json!(r.tasks));
            }
            // The peers' check: column block 7 equals the formula exactly (checked while
            // the checksum streams the store back).
            let j0 = (7 * tc).min(m.saturating_sub(tc));
            if !o.no_verify {
                let (checksum, exact) = checksum_and_check(&written, Some(j0..j0 + tc))?;
                out.extra.insert("exact".into(), json!(exact));
                out.checksum = checksum;
            }
        }
        _ => unreachable!("workloads are checked when parsing"),
    }
    Ok(out)
}

fn setup_w5(o: &Options, path: &Path) -> spillway::Result<()> {
    let s = o.session()?;
    let (n, m, cr) = (o.rows(), o.workload.cols, o.chunk_rows());
    formula(&s, n, m, cr, m)?.to_zarr(
        path,
        &ZarrWriteOptions::default().zstd(ZSTD_LEVEL).overwrite(true),
    )?;
    Ok(())
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(p) = &o.setup_w5 {
        if let Err(e) = setup_w5(&o, p) {
            eprintln!("w5 setup: {e}");
            std::process::exit(1);
        }
        return;
    }
    let (n, m, cr) = (o.rows(), o.workload.cols, o.chunk_rows());
    let chunks = match o.workload.name {
        "w5" => json!([[cr, m], [n, W5_TARGET_COLS.min(m)]]),
        _ => json!([cr, m]),
    };
    let mut res = serde_json::Map::new();
    res.insert(
        "workload".into(),
        json!(if o.parquet {
            "W3 to-parquet"
        } else {
            o.workload.title
        }),
    );
    res.insert("engine".into(), json!("spillway"));
    res.insert("scale".into(), json!(o.scale));
    res.insert("shape".into(), json!([n, m]));
    res.insert("chunks".into(), chunks);
    res.insert("array_bytes".into(), json!(n * m * 8));
    res.insert("completed".into(), json!(false));
    res.insert("error".into(), Value::Null);

    let scratch;
    let out_dir = match &o.out_dir {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("--out-dir {}: {e}", d.display());
                std::process::exit(2);
            }
            d.clone()
        }
        None => {
            let mut dir = tempfile::tempdir().expect("a temporary folder");
            dir.disable_cleanup(o.keep);
            scratch = dir;
            scratch.path().to_path_buf()
        }
    };

    let started = Instant::now();
    let session = o.session();
    let result = session
        .as_ref()
        .map_err(|e| spillway::Error::InvalidArgument(e.to_string()))
        .and_then(|s| run(&o, s, &out_dir));
    match &session {
        Ok(s) => {
            res.insert(
                "config".into(),
                json!(format!(
                    "memory_limit={} threads={} optimize={} compressed_tier={}",
                    o.limit(),
                    s.threads(),
                    o.optimize,
                    o.compressed_tier
                )),
            );
        }
        Err(_) => {
            res.insert(
                "config".into(),
                json!(format!("memory_limit={}", o.limit())),
            );
        }
    }
    match result {
        Ok(out) => {
            res.insert("wall_s".into(), json!((out.wall_s * 100.0).round() / 100.0));
            res.insert("completed".into(), json!(true));
            res.insert("checksum".into(), out.checksum);
            res.insert("peak_rss_bytes".into(), json!(out.peak_rss_after_timed));
            res.insert(
                "projected_peak_bytes".into(),
                json!(out.projected_peak_bytes),
            );
            for (k, v) in out.extra {
                res.insert(k, v);
            }
        }
        Err(e) => {
            res.insert(
                "wall_s".into(),
                json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0),
            );
            res.insert("error".into(), json!(e.to_string()));
            res.insert("peak_rss_bytes".into(), json!(peak_rss_bytes()));
        }
    }
    if let Ok(s) = &session {
        res.insert(
            "memory_report".into(),
            serde_json::to_value(s.memory_report()).unwrap_or(Value::Null),
        );
        if let (Some(path), Some(run)) = (&o.report, s.last_run()) {
            match serde_json::to_vec(&run).map(|b| std::fs::write(path, b)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("--report {}: {e}", path.display()),
                Err(e) => eprintln!("--report: {e}"),
            }
        }
    }
    res.insert("peak_rss_with_verify_bytes".into(), json!(peak_rss_bytes()));
    if o.keep {
        eprintln!("kept {}", out_dir.display());
    } else if o.out_dir.is_some() {
        for name in ["w3.zarr", "w3.parquet", "w5-src.zarr", "w5.zarr"] {
            let p = out_dir.join(name);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
    let completed = res["completed"] == json!(true);
    println!("{}", Value::Object(res));
    if !completed {
        std::process::exit(1);
    }
}
