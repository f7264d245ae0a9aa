//! Reading a Zarr store back: spillway's `from_zarr(...).sum()` in GB/s of decoded data, next
//! to the limit on this machine, raw zstd decompression of the same chunk files (read whole,
//! decompressed with `zstd::bulk`, on as many threads), in the same run, alternating.
//!
//! ```text
//! cargo run --release --example bench -- w3 --keep --out-dir D     # writes D/w3.zarr
//! cargo bench --bench zarr_read -- D/w3.zarr [--runs 5] [--memory-limit 1GiB]
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use spillway::Session;

fn chunk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable store").flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            chunk_files(&p, out);
        } else if !name.starts_with('.') && name != "zarr.json" {
            out.push(p);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = PathBuf::from(
        args.iter()
            .find(|a| !a.starts_with('-') && a.contains("zarr"))
            .expect("usage: zarr_read PATH.zarr [--runs N] [--memory-limit L]"),
    );
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = arg("--runs").map_or(5, |v| v.parse().expect("--runs N"));
    let limit = arg("--memory-limit").unwrap_or_else(|| "1GiB".into());
    let s = Session::builder()
        .memory_limit(limit.as_str())
        .build()
        .expect("session");
    let threads = s.threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut files = Vec::new();
    chunk_files(&path, &mut files);
    let x = s.from_zarr(&path, "/").expect("a zarr array");
    let bytes = x.nbytes() as f64;
    let chunk_bytes = x.chunk_bytes() as usize;
    let stored: u64 = files
        .iter()
        .map(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let (mut ours, mut raw) = (vec![], vec![]);
    for _ in 0..runs {
        let t0 = Instant::now();
        let total: f64 = x
            .sum(None)
            .and_then(|y| y.compute_scalar())
            .expect("reads back");
        ours.push(bytes / t0.elapsed().as_secs_f64() / 1e9);
        std::hint::black_box(total);

        let t0 = Instant::now();
        let decoded: usize = pool.install(|| {
            files
                .par_iter()
                .map(|f| {
                    let enc = std::fs::read(f).expect("chunk file");
                    zstd::bulk::decompress(&enc, chunk_bytes)
                        .expect("zstd")
                        .len()
                })
                .sum()
        });
        raw.push(decoded as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    println!(
        "{} ({:.2} GB decoded, {:.2} GB stored, {} chunk files), {threads} threads, median of {runs}:",
        path.display(),
        bytes / 1e9,
        stored as f64 / 1e9,
        files.len()
    );
    println!(
        "  spillway from_zarr().sum():          {:.2} GB/s",
        median(ours.clone())
    );
    println!(
        "  raw read + zstd::bulk::decompress:   {:.2} GB/s",
        median(raw.clone())
    );
    println!(
        "  spillway / raw:                      {:.0}%",
        100.0 * median(ours) / median(raw)
    );
    println!("  peak RSS: {} MiB", spillway::peak_rss_bytes() >> 20);
}
