//! The comparison driver: runs each workload of `examples/bench.rs` in its own child process,
//! takes the child's peak RSS from the kernel (`wait4`), checks its checksum against the
//! reference values, and — when a Python with the peers' packages is given in `PEERS_PY` —
//! runs the same workload with Dask and Cubed from `shared/peers/`, alternating engines
//! within each repetition, then prints a markdown table of medians.
//!
//! ```text
//! cargo bench --bench peak_rss -- [--runs N] [--workloads w1,w2,w3,w3p,w4,w5] [--scale S]
//!                                  [--no-peers] [--out FILE.md] [--jsonl FILE] [--timeout S]
//!
//!   --timeout S   SIGTERM a run after S seconds (default 600); it counts as not completed
//!
//!   PEERS_PY=/path/to/venv/bin/python   the peers' interpreter (see shared/peers/README.md)
//!   PEERS_DIR=/path/to/shared/peers     default: ../shared/peers next to this crate
//! ```
//!
//! `w3p` is W3 written to Parquet (`bench w3 --format parquet`, and Dask's
//! `to_dask_dataframe().to_parquet` from `benches/peers/w3_parquet_dask.py`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

/// Relative tolerance of the peers' checksum definition (`peers_common.py`).
const REL_TOL: f64 = 1e-9;

/// Reference checksums from `shared/peers/RESULTS.md` (Dask, Cubed and NumPy agree on them).
fn reference(workload: &str) -> Option<Value> {
    let v = match workload {
        "w1" => serde_json::json!({"value": 0.17759020119630292}),
        "w2" => serde_json::json!({
            "n": 5000, "sum": 2442.462366259775, "sum_abs": 2442.462366259775,
            "sum_sq": 1193.5793777379715, "wsum": 1215.9885894768647,
            "first": 0.5076993324468533, "last": 0.5044119509368481}),
        "w3" | "w3p" => serde_json::json!({
            "n": 400000000u64, "sum": 0.0, "sum_abs": 360066188.3389534,
            "sum_sq": 400000000.00000006, "wsum": 92.18579170899466,
            "first": -0.058660415584285516, "last": 0.11471607018799262}),
        "w4" => serde_json::json!({
            "n": 10000, "sum": 1133548.4752038969, "sum_abs": 11114089.479496624,
            "sum_sq": 15021990721.408875, "wsum": 481999.8122701242,
            "first": 1525.721671214355, "last": 592.8536622974293}),
        _ => return None,
    };
    Some(v)
}

/// Whether a checksum agrees with the reference under the peers' tolerances.
fn agrees(got: &Value, want: &Value) -> bool {
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    if let Some(w) = f(want, "value") {
        return f(got, "value").is_some_and(|g| (g - w).abs() <= REL_TOL * w.abs());
    }
    let Some(sum_abs) = f(want, "sum_abs") else {
        return false;
    };
    let rel = ["sum_abs", "sum_sq", "first", "last"].iter().all(|k| {
        matches!((f(got, k), f(want, k)), (Some(g), Some(w)) if (g - w).abs() <= REL_TOL * w.abs())
    });
    let abs = ["sum", "wsum"].iter().all(|k| {
        matches!((f(got, k), f(want, k)), (Some(g), Some(w)) if (g - w).abs() <= REL_TOL * sum_abs)
    });
    rel && abs && got.get("n") == want.get("n")
}

/// One way to run a workload.
struct Runner {
    workload: &'static str,
    engine: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// Run in the first repetition only (slow peers whose figures do not vary much).
    once: bool,
}

struct Measured {
    workload: &'static str,
    engine: &'static str,
    config: String,
    completed: bool,
    error: Option<String>,
    wall_s: f64,
    /// `ru_maxrss` of the child process (and its waited-for children) from `wait4`.
    os_peak_rss: u64,
    /// The engine's own figure (spillway: `ru_maxrss` after the timed part; peers: the
    /// sampled peak of their process tree).
    reported_peak_rss: Option<u64>,
    checksum_ok: Option<bool>,
}

#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives the rusage
fn run_child(
    program: &Path,
    args: &[String],
    cwd: Option<&Path>,
    timeout: std::time::Duration,
) -> (String, u64, f64) {
    let t0 = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (format!("spawn {}: {e}", program.display()), 0, 0.0),
    };
    // A run that hangs (dask.distributed after repeated worker restarts does) gets SIGTERM
    // after `timeout`; the peers' scripts turn it into an error and still print their line.
    let pid = child.id() as libc::pid_t;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    });
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        let _ = so.read_to_string(&mut out);
    }
    let mut status = 0;
    // SAFETY: wait4 on our own child; the kernel fills the rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let _ = done_tx.send(());
    let _ = watchdog.join();
    (
        out,
        usage.ru_maxrss as u64 * 1024,
        t0.elapsed().as_secs_f64(),
    )
}

fn measure(r: &Runner, peers_dir: Option<&Path>, timeout: std::time::Duration) -> Measured {
    let cwd = if r.engine == "spillway" {
        None
    } else {
        peers_dir
    };
    let (out, os_peak, _) = run_child(&r.program, &r.args, cwd, timeout);
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str::<Value>(l).ok());
    let Some(j) = line else {
        return Measured {
            workload: r.workload,
            engine: r.engine,
            config: r.args.join(" "),
            completed: false,
            error: Some(format!(
                "no JSON line; output ended with: {}",
                out.chars()
                    .rev()
                    .take(300)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            )),
            wall_s: 0.0,
            os_peak_rss: os_peak,
            reported_peak_rss: None,
            checksum_ok: None,
        };
    };
    let completed = j["completed"].as_bool().unwrap_or(false);
    let checksum_ok = if !completed {
        None
    } else if r.workload == "w5" {
        j.get("exact").and_then(Value::as_bool)
    } else {
        reference(r.workload).map(|w| agrees(&j["checksum"], &w))
    };
    Measured {
        workload: r.workload,
        engine: r.engine,
        config: j["config"].as_str().unwrap_or("").to_string(),
        completed,
        error: j["error"].as_str().map(str::to_string),
        wall_s: j["wall_s"].as_f64().unwrap_or(0.0),
        os_peak_rss: os_peak,
        reported_peak_rss: j["peak_rss_bytes"].as_u64(),
        checksum_ok,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn gib(b: f64) -> String {
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; ignore it.
    let runs: usize = arg_value(&args, "--runs").map_or(3, |v| v.parse().expect("--runs N"));
    let scale = arg_value(&args, "--scale").unwrap_or_else(|| "1".into());
    let wanted: Vec<String> = arg_value(&args, "--workloads")
        .unwrap_or_else(|| "w1,w2,w3,w3p,w4,w5".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let use_peers = !args.iter().any(|a| a == "--no-peers");
    let timeout = std::time::Duration::from_secs(
        arg_value(&args, "--timeout").map_or(600, |v| v.parse().expect("--timeout SECONDS")),
    );
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));

    // Build the runner once, in release, and run its binary directly: `cargo run` would add
    // cargo's own process to the measurement.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "--example", "bench"])
        .current_dir(&manifest)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building examples/bench failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("target"));
    let bench = target.join("release/examples/bench");

    let peers_py = std::env::var("PEERS_PY").ok().filter(|_| use_peers);
    let peers_dir = std::env::var("PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../shared/peers"));
    let peers_dir = peers_dir.canonicalize().ok().filter(|d| d.is_dir());
    if use_peers && (peers_py.is_none() || peers_dir.is_none()) {
        eprintln!(
            "peers skipped: set PEERS_PY to a Python with the peers' packages and PEERS_DIR to shared/peers"
        );
    }
    let own_peer_scripts = manifest.join("benches/peers");

    let mut runners = Vec::new();
    for w in &wanted {
        let (workload, own): (&'static str, Vec<&str>) = match w.as_str() {
            "w1" => ("w1", vec!["w1"]),
            "w2" => ("w2", vec!["w2"]),
            "w3" => ("w3", vec!["w3"]),
            "w3p" => ("w3p", vec!["w3", "--format", "parquet"]),
            "w4" => ("w4", vec!["w4"]),
            "w5" => ("w5", vec!["w5"]),
            other => panic!("unknown workload {other}"),
        };
        let mut a: Vec<String> = own.iter().map(|s| s.to_string()).collect();
        a.extend(["--scale".to_string(), scale.clone()]);
        runners.push(Runner {
            workload,
            engine: "spillway",
            program: bench.clone(),
            args: a,
            once: false,
        });
        if let (Some(py), Some(dir)) = (&peers_py, &peers_dir) {
            let script = |name: &str, extra: &[&str]| {
                let mut v = vec![dir.join(name).display().to_string()];
                v.extend(extra.iter().map(|s| s.to_string()));
                v.extend(["--scale".to_string(), scale.clone()]);
                v
            };
            let peers: Vec<(&'static str, Vec<String>, bool)> = match workload {
                "w1" => vec![
                    (
                        "dask",
                        script("w1_mean_std.py", &["--engine", "dask"]),
                        false,
                    ),
                    (
                        "cubed",
                        script(
                            "w1_mean_std.py",
                            &["--engine", "cubed", "--allowed-mem", "2GB"],
                        ),
                        false,
                    ),
                ],
                "w2" => vec![
                    (
                        "dask",
                        script("w2_persist_reuse.py", &["--scheduler", "threads"]),
                        false,
                    ),
                    (
                        "dask-dist 1×2GB",
                        script(
                            "w2_persist_reuse.py",
                            &[
                                "--scheduler",
                                "distributed",
                                "--n-workers",
                                "1",
                                "--threads-per-worker",
                                "2",
                                "--memory-limit",
                                "2GB",
                            ],
                        ),
                        true,
                    ),
                ],
                "w3" => vec![
                    (
                        "dask",
                        script("w3_to_zarr.py", &["--engine", "dask"]),
                        false,
                    ),
                    (
                        "cubed",
                        script(
                            "w3_to_zarr.py",
                            &["--engine", "cubed", "--allowed-mem", "2GB"],
                        ),
                        false,
                    ),
                ],
                "w3p" => {
                    let mut v = vec![
                        own_peer_scripts
                            .join("w3_parquet_dask.py")
                            .display()
                            .to_string(),
                    ];
                    v.extend(["--scale".to_string(), scale.clone()]);
                    vec![("dask", v, true)]
                }
                "w4" => vec![(
                    "dask",
                    script("w4_larger_than_ram.py", &["--mode", "stream"]),
                    true,
                )],
                "w5" => vec![
                    (
                        "dask",
                        script("w5_rechunk.py", &["--engine", "dask"]),
                        false,
                    ),
                    (
                        "cubed",
                        script(
                            "w5_rechunk.py",
                            &["--engine", "cubed", "--allowed-mem", "3GB"],
                        ),
                        true,
                    ),
                ],
                _ => vec![],
            };
            for (engine, a, once) in peers {
                runners.push(Runner {
                    workload,
                    engine,
                    program: PathBuf::from(py),
                    args: a,
                    once,
                });
            }
        }
    }

    let mut results: Vec<Measured> = Vec::new();
    let jsonl = arg_value(&args, "--jsonl");
    for rep in 0..runs {
        for r in &runners {
            if r.once && rep > 0 {
                continue;
            }
            eprintln!("[{}/{}] {} {}", rep + 1, runs, r.workload, r.engine);
            let m = measure(r, peers_dir.as_deref(), timeout);
            eprintln!(
                "    wall {:.2} s, peak RSS {} (OS), completed {}, checksum {:?}{}",
                m.wall_s,
                gib(m.os_peak_rss as f64),
                m.completed,
                m.checksum_ok,
                m.error
                    .as_deref()
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default()
            );
            if let Some(p) = &jsonl {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                {
                    let _ = writeln!(
                        f,
                        "{}",
                        serde_json::json!({
                            "workload": m.workload, "engine": m.engine, "config": m.config,
                            "completed": m.completed, "error": m.error, "wall_s": m.wall_s,
                            "os_peak_rss_bytes": m.os_peak_rss,
                            "reported_peak_rss_bytes": m.reported_peak_rss,
                            "checksum_ok": m.checksum_ok, "scale": scale,
                        })
                    );
                }
            }
            results.push(m);
        }
    }

    // One row per (workload, engine): medians over completed runs.
    let mut table = String::new();
    table.push_str("| workload | engine | runs | peak RSS (OS, median) | wall s (median) | RSS spillway/peer | wall spillway/peer | checksum | config / error |\n");
    table.push_str("|---|---|---:|---:|---:|---:|---:|---|---|\n");
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for m in &results {
        if !keys.contains(&(m.workload, m.engine)) {
            keys.push((m.workload, m.engine));
        }
    }
    let stats = |w: &str, e: &str| {
        let ms: Vec<&Measured> = results
            .iter()
            .filter(|m| m.workload == w && m.engine == e)
            .collect();
        let ok: Vec<&Measured> = ms.iter().copied().filter(|m| m.completed).collect();
        let rss = median(ok.iter().map(|m| m.os_peak_rss as f64).collect());
        let wall = median(ok.iter().map(|m| m.wall_s).collect());
        let n = ok.len();
        (ms, n, rss, wall)
    };
    for (w, e) in &keys {
        let (ms, nok, rss, wall) = stats(w, e);
        let (_, _, srss, swall) = stats(w, "spillway");
        let (ratio_rss, ratio_wall) = if *e == "spillway" || nok == 0 {
            ("–".to_string(), "–".to_string())
        } else {
            (format!("{:.2}", srss / rss), format!("{:.2}", swall / wall))
        };
        let checks: Vec<String> = ms
            .iter()
            .map(|m| match m.checksum_ok {
                Some(true) => "ok".into(),
                Some(false) => "MISMATCH".into(),
                None => "–".into(),
            })
            .collect();
        let note = ms
            .iter()
            .find_map(|m| m.error.clone())
            .map(|e| format!("failed: {}", e.chars().take(160).collect::<String>()))
            .unwrap_or_else(|| ms[0].config.clone());
        table.push_str(&format!(
            "| {w} | {e} | {nok}/{} | {} | {} | {ratio_rss} | {ratio_wall} | {} | {} |\n",
            ms.len(),
            if nok > 0 { gib(rss) } else { "–".into() },
            if nok > 0 {
                format!("{wall:.2}")
            } else {
                "–".into()
            },
            checks.join(" "),
            note.replace('|', "/")
        ));
    }
    println!("{table}");
    if let Some(p) = arg_value(&args, "--out") {
        std::fs::write(&p, &table).expect("writing --out");
        eprintln!("table written to {p}");
    }
}
