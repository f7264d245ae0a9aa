//! The compute floor: plain Rust that evaluates the seed formula for every element and reduces
//! it on the fly (rayon over rows, glibc `sin`, nothing stored). Whatever spillway takes
//! beyond this, in time or memory, is the engine's own cost.
//!
//! ```text
//! cargo bench --bench compute_floor -- [w1|w4] [--scale S]
//! ```
//!
//! Prints one JSON line per workload: wall seconds, the result's checksum fields and the
//! process's peak RSS (`ru_maxrss`).

use std::time::Instant;

use rayon::prelude::*;

fn x(i: usize, j: usize) -> f64 {
    (i as f64 * 0.001 + j as f64 * 0.0007).sin()
}

fn peak_rss() -> u64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss as u64 * 1024
    }
}

/// W1: `((x * 2.5).mean(axis 1)).std()` on rows × 10_000.
fn w1(rows: usize) -> f64 {
    let cols = 10_000;
    let means: Vec<f64> = (0..rows)
        .into_par_iter()
        .map(|i| (0..cols).map(|j| x(i, j) * 2.5).sum::<f64>() / cols as f64)
        .collect();
    let mu = means.iter().sum::<f64>() / rows as f64;
    (means.iter().map(|m| (m - mu) * (m - mu)).sum::<f64>() / rows as f64).sqrt()
}

/// W4: `x.sum(axis 0)` on rows × 10_000 (blocks of 1_000 rows per rayon task).
fn w4(rows: usize) -> Vec<f64> {
    let cols = 10_000;
    (0..rows.div_ceil(1_000))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0.0f64; cols];
            for i in b * 1_000..((b + 1) * 1_000).min(rows) {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += x(i, j);
                }
            }
            acc
        })
        .reduce(
            || vec![0.0; cols],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale: f64 = args
        .iter()
        .position(|a| a == "--scale")
        .and_then(|i| args.get(i + 1))
        .map_or(1.0, |v| v.parse().expect("--scale S"));
    let which: Vec<&str> = args
        .iter()
        .filter(|a| *a == "w1" || *a == "w4")
        .map(String::as_str)
        .collect();
    let which = if which.is_empty() {
        vec!["w1", "w4"]
    } else {
        which
    };
    for w in which {
        let t0 = Instant::now();
        let checksum = match w {
            "w1" => format!("{{\"value\": {}}}", w1((50_000.0 * scale) as usize)),
            _ => {
                let r = w4((400_000.0 * scale) as usize);
                format!(
                    "{{\"n\": {}, \"sum\": {}, \"first\": {}, \"last\": {}}}",
                    r.len(),
                    r.iter().sum::<f64>(),
                    r[0],
                    r[r.len() - 1]
                )
            }
        };
        println!(
            "{{\"workload\": \"{w}\", \"engine\": \"plain rust\", \"scale\": {scale}, \"threads\": {}, \"wall_s\": {:.2}, \"checksum\": {checksum}, \"peak_rss_bytes\": {}}}",
            rayon::current_num_threads(),
            t0.elapsed().as_secs_f64(),
            peak_rss()
        );
    }
}
