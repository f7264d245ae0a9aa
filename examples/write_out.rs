//! Stream a result to Zarr and to Parquet instead of computing it into RAM.
//!
//! W3 of the seed article, smaller: `y = (x - x.mean(axis 0)) / x.std(axis 0)` for
//! `x[i, j] = sin(i * 0.001 + j * 0.0007)` (20_000 × 2_000 f64, 320 MB, in 2_500-row chunks)
//! under a 128 MiB limit. The column means and deviations are reduced first, then `y` is
//! computed chunk by chunk and each chunk goes straight to the file: a Zarr v3 array (zstd) and
//! a Parquet file (one column per array column, one row group per chunk). The example prints
//! what it wrote and writes each run's report (an HTML page with the memory per tier over time
//! and the task stream) next to the output.
//!
//! ```text
//! cargo run --release --example write_out [-- --rows 20000 --cols 2000 --chunk-rows 2500
//!     --memory-limit 128MiB --threads N --out-dir DIR --keep --progress]
//! ```
//!
//! Without `--out-dir`, everything goes to `spillway-examples/write_out/` in the system's
//! temp dir, and the Zarr store and the Parquet file are removed at the end unless `--keep`
//! is given (the reports stay). With `--out-dir`, nothing is removed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use spillway::io::parquet::ParquetWriteOptions;
use spillway::io::zarr::ZarrWriteOptions;
use spillway::{ProgressMode, Session, peak_rss_bytes};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn number(name: &str, default: usize) -> usize {
    arg(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
    })
}

const MIB: f64 = (1u64 << 20) as f64;

/// Bytes of a file, or of every file under a folder.
fn size_on_disk(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| size_on_disk(&e.path()))
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn main() -> spillway::Result<()> {
    let rows = number("--rows", 20_000);
    let cols = number("--cols", 2_000);
    let chunk_rows = number("--chunk-rows", 2_500);
    let limit = arg("--memory-limit").unwrap_or_else(|| "128MiB".into());
    let (out_dir, temporary) = match arg("--out-dir") {
        Some(d) => (PathBuf::from(d), false),
        None => (
            std::env::temp_dir()
                .join("spillway-examples")
                .join("write_out"),
            !flag("--keep"),
        ),
    };
    std::fs::create_dir_all(&out_dir)?;

    let mut builder = Session::builder()
        .memory_limit(limit.as_str())
        .with_progress(if flag("--progress") {
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
    let y = ((&x - &x.mean(0)?)? / &x.std(0, 0.0)?)?;
    println!(
        "y = (x - x.mean(0)) / x.std(0): {rows} × {cols} f64 = {:.0} MiB in {} chunks, memory limit {limit}",
        y.nbytes() as f64 / MIB,
        y.num_chunks()
    );
    println!("{}", y.plan()?.explain());

    let zarr = out_dir.join("y.zarr");
    let parquet = out_dir.join("y.parquet");
    let t0 = Instant::now();
    y.to_zarr(&zarr, &ZarrWriteOptions::default().overwrite(true))?;
    let zarr_report = s.last_run_report().expect("the Zarr write ran");
    println!(
        "wrote {} ({:.1} MiB on disk) in {:.2} s",
        zarr.display(),
        size_on_disk(&zarr) as f64 / MIB,
        t0.elapsed().as_secs_f64()
    );
    print!("{zarr_report}");

    let t1 = Instant::now();
    y.to_parquet(&parquet, &ParquetWriteOptions::default().overwrite(true))?;
    let parquet_report = s.last_run_report().expect("the Parquet write ran");
    println!(
        "wrote {} ({:.1} MiB) in {:.2} s",
        parquet.display(),
        size_on_disk(&parquet) as f64 / MIB,
        t1.elapsed().as_secs_f64()
    );
    print!("{parquet_report}");

    // A spot check that the Zarr store holds y: read it back lazily, compare one column mean.
    let back = s.from_zarr(&zarr, "/")?;
    let m: f64 = back.mean(None)?.compute_scalar()?;
    println!("mean of y read back from Zarr: {m:.2e} (0 up to rounding)");
    assert!(m.abs() < 1e-9, "a standardised array has mean 0");

    let zarr_html = out_dir.join("y.zarr-report.html");
    let parquet_html = out_dir.join("y.parquet-report.html");
    zarr_report.write_html(&zarr_html)?;
    parquet_report.write_html(&parquet_html)?;
    println!(
        "\npeak RSS {:.1} MiB (OS) under a memory limit of {limit}",
        peak_rss_bytes() as f64 / MIB
    );
    println!("report of the Zarr write: {}", zarr_html.display());
    println!("report of the Parquet write: {}", parquet_html.display());
    if temporary {
        std::fs::remove_dir_all(&zarr)?;
        std::fs::remove_file(&parquet)?;
        println!(
            "removed {} and {} (pass --keep or --out-dir to keep them)",
            zarr.display(),
            parquet.display()
        );
    }
    Ok(())
}
