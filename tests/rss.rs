//! Peak RSS as the OS measures it, in a child process: the engine's budget must bound the
//! process's real memory, not only its own accounting (DataFusion learned this the hard way).
//!
//! Each test re-runs this test binary as a child with `SPILLWAY_RSS_CHILD` naming the
//! workload, waits for it with `wait4`, and compares the child's `ru_maxrss` with the bar:
//! memory limit + 64 MiB of fixed overhead (binary, allocator, thread stacks).

use std::process::Command;

use spillway::Session;

const OVERHEAD: u64 = 64 << 20;

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

/// The seed computation on 2_000 × 8_000 f64 (128 MB) with a 32 MiB limit: four times
/// smaller than the data.
fn seed_workload() {
    let s = Session::builder()
        .memory_limit("32MiB")
        .threads(2)
        .build()
        .unwrap();
    let i = s.arange(2_000, [250]).unwrap().insert_axis(1).unwrap();
    let j = s.arange(8_000, [8_000]).unwrap().insert_axis(0).unwrap();
    let x = ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap();
    let v: f64 = (&x * 2.5)
        .mean(1)
        .unwrap()
        .std(None, 0.0)
        .unwrap()
        .compute_scalar()
        .unwrap();
    let check = {
        let m: Vec<f64> = (0..2_000)
            .map(|i| (0..8_000).map(|j| formula(i, j) * 2.5).sum::<f64>() / 8_000.0)
            .collect();
        let mu = m.iter().sum::<f64>() / m.len() as f64;
        (m.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / m.len() as f64).sqrt()
    };
    assert!((v - check).abs() <= 1e-9 * check, "{v} vs {check}");
}

#[test]
fn seed_computation_stays_within_the_bar() {
    if std::env::var("SPILLWAY_RSS_CHILD").as_deref() == Ok("seed") {
        seed_workload();
        return;
    }
    let peak = child_peak_rss("seed_computation_stays_within_the_bar", "seed");
    eprintln!(
        "seed workload: child peak RSS {:.1} MiB (limit 32 MiB + 64 MiB)",
        peak as f64 / (1 << 20) as f64
    );
    assert!(
        peak <= (32 << 20) + OVERHEAD,
        "peak RSS {peak} over the bar"
    );
}

/// A persisted array twice the size of the limit, reused by two reductions (W2's pattern):
/// the persisted chunks must spill, and the process must stay within the bar.
fn persist_workload() {
    let (rows, cols) = (4_000, 2_000); // 64 MB of f64
    let s = Session::builder()
        .memory_limit("32MiB")
        .threads(2)
        .build()
        .unwrap();
    let x = s
        .from_fn(&[rows, cols], [500, cols], |ix| formula(ix[0], ix[1]))
        .unwrap()
        .persist()
        .unwrap();
    let report = s.memory_report();
    assert!(
        report.store.disk_chunks + report.store.compressed_chunks > 0,
        "the persisted array spilled: {report:?}"
    );
    let a = (&(x.powi(2).unwrap()) + &(&x * 3.0))
        .unwrap()
        .mean(0)
        .unwrap();
    let z = (&a + &x.mean(0).unwrap())
        .unwrap()
        .compute::<f64>()
        .unwrap();
    for j in [0, 7, cols - 1] {
        let col: Vec<f64> = (0..rows).map(|i| formula(i, j)).collect();
        let want = col.iter().map(|v| v * v + 3.0 * v).sum::<f64>() / rows as f64
            + col.iter().sum::<f64>() / rows as f64;
        assert!(
            (z[[j]] - want).abs() <= 1e-9 * want.abs().max(1.0),
            "column {j}: {} vs {want}",
            z[[j]]
        );
    }
    let r = s.memory_report();
    assert!(r.peak_reserved_bytes <= r.limit_bytes);
    eprintln!("store after reuse: {:?}", r.store);
}

#[test]
fn persisted_array_twice_the_limit_stays_within_the_bar() {
    if std::env::var("SPILLWAY_RSS_CHILD").as_deref() == Ok("persist") {
        persist_workload();
        return;
    }
    let peak = child_peak_rss(
        "persisted_array_twice_the_limit_stays_within_the_bar",
        "persist",
    );
    eprintln!(
        "persist workload: child peak RSS {:.1} MiB (limit 32 MiB + 64 MiB)",
        peak as f64 / (1 << 20) as f64
    );
    assert!(
        peak <= (32 << 20) + OVERHEAD,
        "peak RSS {peak} over the bar"
    );
}
