//! Persist an array larger than the memory limit and reuse it in two reductions.
//!
//! `x[i, j] = sin(i * 0.001 + j * 0.0007)` (40_000 × 5_000 f64, 1.6 GB, in 2_000-row chunks)
//! is persisted under a 256 MiB limit, so most of its chunks leave RAM: to the compressed tier
//! when the budget has room for the compressed copy while it is built, otherwise straight to
//! disk (the memory report and the HTML page show which). Two reductions then read it back from the store instead of recomputing it:
//! `x.mean(axis 0)` and `(x² + 3x).mean()`. Both are checked against a plain loop over the
//! formula. The example prints each run's figures and the session's memory report, and writes
//! the persist run's report (an HTML page with the memory per tier over time and the task
//! stream, and its JSON) to the output folder.
//!
//! ```text
//! cargo run --release --example persist [-- --rows 40000 --cols 5000 --chunk-rows 2000
//!     --memory-limit 256MiB --threads N --out-dir DIR --progress]
//! ```
//!
//! The output folder defaults to `spillway-examples/` in the system's temp dir.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use spillway::{ProgressMode, Session, peak_rss_bytes};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(name: &str, default: usize) -> usize {
    arg(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
    })
}

const MIB: f64 = (1u64 << 20) as f64;

fn main() -> spillway::Result<()> {
    let rows = number("--rows", 40_000);
    let cols = number("--cols", 5_000);
    let chunk_rows = number("--chunk-rows", 2_000);
    let limit = arg("--memory-limit").unwrap_or_else(|| "256MiB".into());
    let out_dir = arg("--out-dir").map_or_else(
        || std::env::temp_dir().join("spillway-examples"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out_dir)?;

    let mut builder = Session::builder()
        .memory_limit(limit.as_str())
        .with_progress(if std::env::args().any(|a| a == "--progress") {
            ProgressMode::Always
        } else {
            ProgressMode::Auto
        });
    if let Some(t) = arg("--threads") {
        builder = builder.threads(t.parse().expect("--threads takes a number"));
    }
    let s = builder.build()?;

    let i = s.arange(rows, [chunk_rows])?.insert_axis(1)?;
    let j = s.arange(cols, [cols])?.insert_axis(0)?;
    let x = ((&i * 0.001) + (&j * 0.0007))?.sin()?;
    println!(
        "x: {rows} × {cols} f64 = {:.0} MiB in {} chunks of {:.0} MiB, memory limit {limit} ({} threads)",
        x.nbytes() as f64 / MIB,
        x.num_chunks(),
        x.chunk_bytes() as f64 / MIB,
        s.threads()
    );

    // 1. Persist: the chunks go to the store, spilling past the limit.
    let t0 = Instant::now();
    let kept = x.persist()?;
    let persisted = s.last_run_report().expect("persist ran");
    println!("\npersisted in {:.2} s", t0.elapsed().as_secs_f64());
    print!("{persisted}");

    // 2. Two reductions that read the persisted chunks back (through the tiers).
    let t1 = Instant::now();
    let col_means = kept.mean(0)?.compute::<f64>()?;
    let poly: f64 = ((&kept * &kept)? + (&kept * 3.0))?
        .mean(None)?
        .compute_scalar()?;
    let reused = s.last_run_report().expect("reductions ran");
    println!(
        "\nx.mean(axis 0) and (x² + 3x).mean() from the store in {:.2} s",
        t1.elapsed().as_secs_f64()
    );

    // 3. The same from a plain loop over the formula (rayon over rows, nothing stored).
    let t2 = Instant::now();
    let (plain_sums, plain_poly) = (0..rows)
        .into_par_iter()
        .fold(
            || (vec![0.0f64; cols], 0.0f64),
            |(mut sums, mut poly), i| {
                for (j, s) in sums.iter_mut().enumerate() {
                    let v = (i as f64 * 0.001 + j as f64 * 0.0007).sin();
                    *s += v;
                    poly += v * v + 3.0 * v;
                }
                (sums, poly)
            },
        )
        .reduce(
            || (vec![0.0f64; cols], 0.0f64),
            |(mut a, pa), (b, pb)| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                (a, pa + pb)
            },
        );
    let n = (rows * cols) as f64;
    let worst = col_means
        .iter()
        .zip(&plain_sums)
        .map(|(m, s)| (m - s / rows as f64).abs())
        .fold(0.0f64, f64::max);
    let poly_err = (poly - plain_poly / n).abs();
    println!(
        "plain loop: {:.2} s; largest difference of the column means {worst:.1e}, of (x² + 3x).mean() {poly_err:.1e}",
        t2.elapsed().as_secs_f64()
    );
    assert!(
        worst < 1e-9 && poly_err < 1e-9,
        "spillway and the plain loop disagree"
    );
    println!("(x² + 3x).mean() = {poly:.15}; checked against the plain loop");

    // 4. What the session holds and held.
    let m = s.memory_report();
    println!("\nmemory report:");
    println!(
        "  limit {:.0} MiB; reserved now {:.1} MiB, at most {:.1} MiB",
        m.limit_bytes as f64 / MIB,
        m.reserved_bytes as f64 / MIB,
        m.peak_reserved_bytes as f64 / MIB
    );
    println!(
        "  store: {} chunks; hot {:.1} MiB, compressed {:.1} MiB ({} chunks), on disk {:.1} MiB ({} chunks)",
        m.store.chunks,
        m.store.hot_bytes as f64 / MIB,
        m.store.compressed_bytes as f64 / MIB,
        m.store.compressed_chunks,
        m.store.disk_bytes as f64 / MIB,
        m.store.disk_chunks
    );
    println!(
        "  compression ratio {:.2}; spilled {:.1} MiB, read back {:.1} MiB",
        m.store.compression_ratio(),
        m.store.bytes_spilled as f64 / MIB,
        m.store.bytes_read_back as f64 / MIB
    );
    println!(
        "  RSS now {:.1} MiB, peak {:.1} MiB (OS)",
        m.rss_bytes as f64 / MIB,
        peak_rss_bytes() as f64 / MIB
    );
    drop(kept);

    // 5. The reports, as a page to look at and as data.
    let html = out_dir.join("persist-report.html");
    persisted.write_html(&html)?;
    persisted.write_json(out_dir.join("persist-report.json"))?;
    let reuse_html = out_dir.join("persist-reuse-report.html");
    reused.write_html(&reuse_html)?;
    println!("\nreport of the persist run: {}", html.display());
    println!("report of the second reduction: {}", reuse_html.display());
    Ok(())
}
