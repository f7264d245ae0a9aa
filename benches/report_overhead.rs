//! What recording the memory timeline and the task stream costs, on W1 at a small size.
//!
//! W1 is `((x * 2.5).mean(axis 1)).std()` for `x[i, j] = sin(i * 0.001 + j * 0.0007)`; here
//! 5_000 × 10_000 f64 (400 MB, never materialised) in 500-row chunks. Each round runs it once
//! in a fresh session with `record_timeline(true)` and once with `record_timeline(false)`,
//! alternating which goes first; the medians of the wall times are compared.
//!
//! These figures are printed, because on a shared 2-core machine the wall-clock difference of
//! two medians is mostly noise at this size:
//! - the difference of the medians, on vs off, in % of off; and the median of the paired
//!   differences (each round's on minus off, run back to back), in % of the median off time,
//!   for wall time and for the process's CPU time (user + sys);
//! - a bottom-up estimate: the samples and task records one recorded run made, times the
//!   cost of one sample (timed here as `Session::memory_report()`, which reads the same OS
//!   figure and store counters and a little more) and of one task record (a `TaskRecord`
//!   built and pushed), in % of the median wall time.
//!
//! ```text
//! cargo bench --bench report_overhead [-- --rows 5000 --cols 10000 --chunk-rows 500 --runs 9]
//! ```

use std::time::Instant;

use spillway::{Session, TaskRecord};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// CPU seconds (user + sys) the process has used so far.
fn cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// What one run measured.
struct Run {
    wall_s: f64,
    cpu_s: f64,
    samples: usize,
    records: usize,
    result: f64,
}

/// One W1 run in a fresh session.
fn w1(rows: usize, cols: usize, chunk_rows: usize, record: bool) -> Run {
    let s = Session::builder()
        .memory_limit("1GiB")
        .record_timeline(record)
        .build()
        .expect("session");
    let i = s
        .arange(rows, [chunk_rows])
        .unwrap()
        .insert_axis(1)
        .unwrap();
    let j = s.arange(cols, [cols]).unwrap().insert_axis(0).unwrap();
    let x = ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap();
    let y = (&x * 2.5).mean(1).unwrap().std(None, 0.0).unwrap();
    let (t0, c0) = (Instant::now(), cpu_s());
    let result: f64 = y.compute_scalar().unwrap();
    let (wall_s, cpu_s) = (t0.elapsed().as_secs_f64(), cpu_s() - c0);
    let r = s.last_run_report().expect("a report");
    Run {
        wall_s,
        cpu_s,
        samples: r.stats.samples.len(),
        records: r.stats.task_records.len(),
        result,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let rows = arg("--rows", 5_000);
    let cols = arg("--cols", 10_000);
    let chunk_rows = arg("--chunk-rows", 500);
    let runs = arg("--runs", 9).max(1);
    println!(
        "W1 {rows} × {cols} in {chunk_rows}-row chunks, {runs} runs each with the timeline recorded and not"
    );

    // Warm-up: page cache, allocator, thread start-up.
    let expect = w1(rows, cols, chunk_rows, true).result;
    w1(rows, cols, chunk_rows, false);

    let (mut on, mut off) = (Vec::new(), Vec::new());
    let (mut cpu_on, mut cpu_off) = (Vec::new(), Vec::new());
    let (mut samples, mut records) = (0, 0);
    for k in 0..runs {
        let order = if k % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for record in order {
            let r = w1(rows, cols, chunk_rows, record);
            assert_eq!(
                r.result.to_bits(),
                expect.to_bits(),
                "same result either way"
            );
            if record {
                on.push(r.wall_s);
                cpu_on.push(r.cpu_s);
                samples = samples.max(r.samples);
                records = records.max(r.records);
            } else {
                assert_eq!(r.samples + r.records, 0, "nothing recorded when off");
                off.push(r.wall_s);
                cpu_off.push(r.cpu_s);
            }
        }
    }
    let paired = |a: &[f64], b: &[f64]| {
        let mut d: Vec<f64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
        median(&mut d)
    };
    let (d_wall, d_cpu) = (paired(&on, &off), paired(&cpu_on, &cpu_off));
    let med_cpu_off = median(&mut cpu_off.clone());
    let (med_on, med_off) = (median(&mut on), median(&mut off));
    let spread = |v: &[f64]| (v[v.len() - 1] - v[0]) / median(&mut v.to_vec()) * 100.0;

    // The cost of one sample and one task record, measured in isolation.
    let s = Session::builder().memory_limit("1GiB").build().unwrap();
    let reps = 2_000;
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(s.memory_report());
    }
    let per_sample = t.elapsed().as_secs_f64() / reps as f64;
    let label = "((x * 2.5)) mean(axes=[1]) partial [0..500, 0..10000]".to_string();
    let stage = "mean(axes=[1])".to_string();
    let mut sink = Vec::with_capacity(reps);
    let t = Instant::now();
    for k in 0..reps {
        sink.push(TaskRecord {
            label: label.clone(),
            stage: stage.clone(),
            thread: k % 2,
            start_s: k as f64,
            end_s: k as f64 + 1.0,
            reserved_bytes: 1 << 20,
        });
    }
    let per_record = t.elapsed().as_secs_f64() / reps as f64;
    std::hint::black_box(&sink);
    let estimate = samples as f64 * per_sample + records as f64 * per_record;

    println!(
        "recording on:  median {med_on:.3} s (spread {:.1}%), {samples} samples, {records} task records",
        spread(&on)
    );
    println!(
        "recording off: median {med_off:.3} s (spread {:.1}%)",
        spread(&off)
    );
    println!(
        "measured overhead: {:+.2}% of wall time (difference of the medians); paired: {:+.2}% of wall time, {:+.2}% of CPU time (median of the rounds' differences)",
        (med_on - med_off) / med_off * 100.0,
        d_wall / med_off * 100.0,
        d_cpu / med_cpu_off * 100.0
    );
    println!(
        "bottom-up estimate: {samples} samples × {:.1} µs + {records} records × {:.2} µs = {:.3} ms = {:.3}% of wall time",
        per_sample * 1e6,
        per_record * 1e6,
        estimate * 1e3,
        estimate / med_off * 100.0
    );
}
