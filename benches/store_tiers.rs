//! put → get through each tier of the chunk store on a 64 MiB f64 chunk, next to the physical
//! references measured in the same run on the same bytes.
//!
//! `cargo bench --bench store_tiers` (add `-- --runs N` for more than 5 runs per figure).
//! Prints a Markdown table; each figure is the median of the runs, in MB/s of the chunk's
//! uncompressed bytes (1 MB = 10^6 bytes).
//!
//! Data: "smooth" is W3-like — `sin(i·0.001 + j·0.0007)` standardised per column, which
//! breaks the formula's exact repetition the way real float output does (raw, the formula
//! repeats every 7 rows and 10 columns and compresses unrealistically well). "random" is
//! uniform [0, 1).
//!
//! What each tier's put and get do, and the reference it is set against:
//! - hot: put and get move an `Arc` (no copy); reference: memcpy of the chunk.
//! - compressed: put = `demote_chunk` (shuffle + zstd-1 into RAM); get = decompress +
//!   unshuffle into a fresh chunk (then kept hot). References: zstd-1 on the same bytes with
//!   and without a prior shuffle (the shuffle not timed), compressing into / decompressing
//!   from a reused buffer.
//! - disk: put = `demote_chunk` with the compressed tier off (crc32c + pwrite of the raw
//!   bytes into a page-cached spill file); get = pread into a fresh chunk + crc32c check.
//!   References: write of the same bytes to a file, and a sequential read of a page-cached
//!   file, into a reused buffer and into a freshly allocated one (a fresh allocation pays its
//!   page faults, which every decoded chunk does).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spillway::codec::{chunk_bytes, sample_ratio, shuffle};
use spillway::store::{ChunkKey, ChunkStore, StoreConfig, Tier};
use spillway::{ChunkData, MemoryBudget};

const ROWS: usize = 8192;
const COLS: usize = 1024; // 8192 × 1024 f64 = 64 MiB

fn smooth() -> ChunkData {
    let mut x = ndarray::Array2::<f64>::from_shape_fn((ROWS, COLS), |(i, j)| {
        (i as f64 * 0.001 + j as f64 * 0.0007).sin()
    });
    let mean = x.mean_axis(ndarray::Axis(0)).unwrap();
    let std = x.std_axis(ndarray::Axis(0), 0.0);
    for mut row in x.rows_mut() {
        for ((v, m), s) in row.iter_mut().zip(&mean).zip(&std) {
            *v = (*v - m) / s;
        }
    }
    ChunkData::from(x.into_dyn())
}

fn random() -> ChunkData {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let x = ndarray::Array2::<f64>::from_shape_simple_fn((ROWS, COLS), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    });
    ChunkData::from(x.into_dyn())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Times `f` `runs` times after `setup` each time (setup not timed).
fn time<S>(runs: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(S)) -> Duration {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = setup();
        let start = Instant::now();
        f(s);
        t.push(start.elapsed());
    }
    median(t)
}

struct Row {
    what: String,
    put: Option<f64>,
    get: Option<f64>,
    note: String,
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100_000.0 => format!("{:.0}k", x / 1000.0),
        Some(x) => format!("{x:.0}"),
        None => "–".into(),
    }
}

fn bench(name: &str, chunk: &Arc<ChunkData>, runs: usize, spill_dir: &std::path::Path) -> Vec<Row> {
    let raw = chunk_bytes(chunk).into_owned();
    let n = raw.len();
    let mut rows = Vec::new();

    // --- references ---
    let mut dst = vec![0u8; n];
    let memcpy = time(
        runs,
        || (),
        |()| dst.copy_from_slice(std::hint::black_box(&raw)),
    );
    rows.push(Row {
        what: format!("{name}: memcpy (reused buffer)"),
        put: None,
        get: Some(mbps(n, memcpy)),
        note: String::new(),
    });
    let fresh_copy = time(
        runs,
        || (),
        |()| {
            let v = std::hint::black_box(raw.to_vec());
            drop(v);
        },
    );
    rows.push(Row {
        what: format!("{name}: memcpy into a fresh allocation"),
        put: None,
        get: Some(mbps(n, fresh_copy)),
        note: String::new(),
    });

    let mut shuffled = vec![0u8; n];
    let shuf = time(runs, || (), |()| shuffle(&raw, 8, &mut shuffled));
    rows.push(Row {
        what: format!("{name}: byte shuffle (whole chunk)"),
        put: Some(mbps(n, shuf)),
        get: None,
        note: String::new(),
    });
    for (label, input) in [
        ("zstd-1, no shuffle", &raw),
        ("zstd-1 on shuffled bytes", &shuffled),
    ] {
        let mut cctx = zstd::bulk::Compressor::new(1).unwrap();
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(n));
        let c = time(
            runs,
            || (),
            |()| {
                out.clear();
                cctx.compress_to_buffer(input.as_slice(), &mut out).unwrap();
            },
        );
        let ratio = n as f64 / out.len() as f64;
        let mut dctx = zstd::bulk::Decompressor::new().unwrap();
        let mut back = vec![0u8; n];
        let d = time(
            runs,
            || (),
            |()| {
                dctx.decompress_to_buffer(&out, &mut back).unwrap();
            },
        );
        assert_eq!(&back, input);
        rows.push(Row {
            what: format!("{name}: {label} (reference)"),
            put: Some(mbps(n, c)),
            get: Some(mbps(n, d)),
            note: format!("ratio {ratio:.3}"),
        });
    }

    let path = spill_dir.join(format!("reference-{name}.bin"));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    // `&File` reads, writes and seeks, so the setup and timed closures can share it.
    let mut f = &file;
    let w = time(
        runs,
        || file.set_len(0).unwrap(),
        |()| {
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(&raw).unwrap();
        },
    );
    let mut buf = vec![0u8; n];
    f.read_exact_at(&mut buf, 0).unwrap(); // warm the page cache
    let r = time(
        runs,
        || (),
        |()| {
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_exact(&mut buf).unwrap();
        },
    );
    let r_fresh = time(
        runs,
        || (),
        |()| {
            let mut b = vec![0u8; n];
            f.read_exact_at(&mut b, 0).unwrap();
            std::hint::black_box(&b);
        },
    );
    rows.push(Row {
        what: format!("{name}: file write / page-cached read, reused buffer (reference)"),
        put: Some(mbps(n, w)),
        get: Some(mbps(n, r)),
        note: String::new(),
    });
    rows.push(Row {
        what: format!("{name}: page-cached read into a fresh buffer (reference)"),
        put: None,
        get: Some(mbps(n, r_fresh)),
        note: String::new(),
    });
    drop(file);
    std::fs::remove_file(&path).unwrap();

    // --- tiers ---
    let budget = MemoryBudget::new(4 << 30);
    let spill = Some(spill_dir.to_path_buf());
    let hot = ChunkStore::new(
        budget.clone(),
        StoreConfig {
            spill_dir: spill.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let k = ChunkKey::fresh();
    let put = time(
        runs,
        || hot.remove(k),
        |_| assert_eq!(hot.put(k, Arc::clone(chunk)).unwrap(), Tier::Hot),
    );
    let get = time(
        runs,
        || (),
        |()| {
            std::hint::black_box(hot.get(k).unwrap());
        },
    );
    rows.push(Row {
        what: format!("{name}: **hot tier**"),
        put: Some(mbps(n, put)),
        get: Some(mbps(n, get)),
        note: "Arc moves, no copy".into(),
    });
    drop(hot);

    let policy_ratio = sample_ratio(&raw, 8, 1);
    let comp = ChunkStore::new(
        budget.clone(),
        StoreConfig {
            min_compression_ratio: 0.0,
            spill_dir: spill.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for _ in 0..runs {
        let k = ChunkKey::fresh();
        comp.put(k, Arc::clone(chunk)).unwrap();
        let t = Instant::now();
        assert_eq!(comp.demote_chunk(k).unwrap(), Tier::Compressed);
        puts.push(t.elapsed());
        let t = Instant::now();
        let c = comp.get(k).unwrap();
        gets.push(t.elapsed());
        assert!(*c == **chunk);
        comp.remove(k);
    }
    let st = comp.stats();
    rows.push(Row {
        what: format!("{name}: **compressed tier**"),
        put: Some(mbps(n, median(puts))),
        get: Some(mbps(n, median(gets))),
        note: format!(
            "ratio {:.3}; sampled ratio {policy_ratio:.3} → the default policy (≥ 1.3) {}",
            st.compression_ratio(),
            if policy_ratio >= 1.3 {
                "keeps it compressed"
            } else {
                "sends it to disk"
            }
        ),
    });
    drop(comp);

    let disk = ChunkStore::new(
        budget.clone(),
        StoreConfig {
            compressed_tier: false,
            spill_dir: spill.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for _ in 0..runs {
        let k = ChunkKey::fresh();
        disk.put(k, Arc::clone(chunk)).unwrap();
        let t = Instant::now();
        assert_eq!(disk.demote_chunk(k).unwrap(), Tier::Disk);
        puts.push(t.elapsed());
        let t = Instant::now();
        let c = disk.get(k).unwrap();
        gets.push(t.elapsed());
        assert!(*c == **chunk);
        disk.remove(k);
    }
    rows.push(Row {
        what: format!("{name}: **disk tier** (raw record, pread)"),
        put: Some(mbps(n, median(puts))),
        get: Some(mbps(n, median(gets))),
        note: "crc32c both ways".into(),
    });
    rows
}

fn main() {
    let mut runs = 5;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5);
    }
    let dir = tempfile::tempdir().unwrap();
    println!("## Store tiers\n");
    println!(
        "64 MiB f64 chunk (8192 × 1024), median of {runs} runs, single thread, MB/s of uncompressed bytes.\n"
    );
    println!("| what | put MB/s | get MB/s | note |");
    println!("|---|---:|---:|---|");
    for (name, chunk) in [("smooth", smooth()), ("random", random())] {
        let chunk = Arc::new(chunk);
        for r in bench(name, &chunk, runs, dir.path()) {
            println!(
                "| {} | {} | {} | {} |",
                r.what,
                fmt(r.put),
                fmt(r.get),
                r.note
            );
        }
    }
}
