//! Peak RSS as the OS measures it, in a child process, for a wide array (2_500 columns)
//! standardised into Parquet and read back under a memory limit smaller than the array: the
//! engine's budget must bound the process, C allocations (zstd's contexts) included.
//!
//! The test re-runs this test binary as a child with `SPILLWAY_RSS_CHILD` set, waits for it
//! with `wait4`, and compares the child's `ru_maxrss` with the bar: the memory limit plus
//! 64 MiB of fixed overhead (binary, allocator, thread stacks), as `tests/rss.rs` does.

use std::process::Command;

use spillway::Session;
use spillway::io::parquet::{ParquetReadOptions, ParquetWriteOptions};

const OVERHEAD: u64 = 64 << 20;
const LIMIT: u64 = 64 << 20;

/// Runs `workload` in a child process and returns its peak RSS in bytes.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also gives its rusage
fn child_peak_rss(test_name: &str, workload: &str) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env("SPILLWAY_RSS_CHILD", workload)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {workload} failed: status {status}"
    );
    usage.ru_maxrss as u64 * 1024
}

fn formula(i: usize, j: usize) -> f64 {
    (i as f64 * 0.001 + j as f64 * 0.0007).sin()
}

/// W3 on 2_400 × 2_500 f64 (48 MB) in 400-row chunks under a 64 MiB limit: written to
/// Parquet (2_500 columns, 6 row groups), then read back and checked.
fn wide_workload() {
    let (rows, cols, chunk) = (2_400, 2_500, 400);
    let s = Session::builder()
        .memory_limit(LIMIT)
        .threads(2)
        .build()
        .unwrap();
    let i = s.arange(rows, [chunk]).unwrap().insert_axis(1).unwrap();
    let j = s.arange(cols, [cols]).unwrap().insert_axis(0).unwrap();
    let x = ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap();
    let y = ((&x - &x.mean(0).unwrap()).unwrap() / &x.std(0, 0.0).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.parquet");
    y.to_parquet(&path, &ParquetWriteOptions::default())
        .unwrap();

    let back = s
        .from_parquet(&path, None, &ParquetReadOptions::default())
        .unwrap();
    assert_eq!(back.shape(), &[rows, cols]);
    // Standardised columns: each sums to ~0 and its squares to `rows`.
    let sq: f64 = back
        .powi(2)
        .unwrap()
        .sum(None)
        .unwrap()
        .compute_scalar()
        .unwrap();
    assert!(
        (sq - (rows * cols) as f64).abs() < 1e-6 * sq,
        "sum of squares {sq}"
    );
    for j in [0, 1_234, cols - 1] {
        let name = format!("c{j}");
        let col = s
            .from_parquet(
                &path,
                Some(&[name.as_str()]),
                &ParquetReadOptions::default(),
            )
            .unwrap()
            .compute::<f64>()
            .unwrap();
        let x: Vec<f64> = (0..rows).map(|i| formula(i, j)).collect();
        let mean = x.iter().sum::<f64>() / rows as f64;
        let std = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / rows as f64).sqrt();
        for (i, v) in col.iter().enumerate() {
            let want = (x[i] - mean) / std;
            assert!(
                (v - want).abs() <= 1e-9,
                "column {j} row {i}: {v} vs {want}"
            );
        }
    }
}

#[test]
fn wide_parquet_write_and_read_stay_within_the_bar() {
    if std::env::var("SPILLWAY_RSS_CHILD").as_deref() == Ok("wide") {
        wide_workload();
        return;
    }
    let peak = child_peak_rss("wide_parquet_write_and_read_stay_within_the_bar", "wide");
    eprintln!(
        "wide parquet workload: child peak RSS {:.1} MiB (limit 64 MiB + 64 MiB)",
        peak as f64 / (1 << 20) as f64
    );
    assert!(peak <= LIMIT + OVERHEAD, "peak RSS {peak} over the bar");
}
