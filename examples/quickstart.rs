//! The seed computation: `((x * 2.5).mean(axis 1)).std()` on a 50_000 × 10_000 f64 array
//! (4 GB) in 5_000 × 10_000 chunks, where `x[i, j] = sin(i * 0.001 + j * 0.0007)`.
//!
//! Prints the array's size, the plan's projected peak memory, the result, the wall time and
//! the process's peak RSS as the OS measured it.
//!
//! ```text
//! cargo run --release --example quickstart [-- --rows 50000 --memory-limit 1GiB]
//! ```

use std::time::Instant;

use spillway::{Session, peak_rss_bytes};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> spillway::Result<()> {
    let rows: usize = arg("--rows").map_or(50_000, |v| v.parse().expect("--rows takes a number"));
    let limit = arg("--memory-limit").unwrap_or_else(|| "1GiB".into());
    let (cols, chunk_rows) = (10_000, 5_000);

    let session = Session::builder().memory_limit(limit.as_str()).build()?;
    let i = session.arange(rows, [chunk_rows])?.insert_axis(1)?;
    let j = session.arange(cols, [cols])?.insert_axis(0)?;
    let x = ((&i * 0.001) + (&j * 0.0007))?.sin()?;
    let y = (&x * 2.5).mean(1)?.std(None, 0.0)?;

    println!(
        "x: {:?} f64 in chunks of {:?}: {:.2} GB, {} chunks of {:.0} MB",
        x.shape(),
        x.chunk_shape(),
        x.nbytes() as f64 / 1e9,
        x.num_chunks(),
        x.chunk_bytes() as f64 / 1e6
    );
    let plan = y.plan()?;
    println!("{}", plan.explain());

    let t0 = Instant::now();
    let v: f64 = y.compute_scalar()?;
    let wall = t0.elapsed().as_secs_f64();
    println!("result: ((x * 2.5).mean(axis 1)).std() = {v:.17}");
    println!("wall time: {wall:.2} s");
    println!(
        "peak memory: {:.1} MiB RSS (OS), {:.1} MiB reserved by the engine, memory limit {}",
        peak_rss_bytes() as f64 / (1 << 20) as f64,
        session.memory_report().peak_reserved_bytes as f64 / (1 << 20) as f64,
        limit
    );
    Ok(())
}
