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
//! What each tier's put and get do, and the physical reference it is set against (the sum of
//! the separately timed steps it cannot avoid, each measured on the same bytes in this run):
//! - hot: put and get move an `Arc` (no copy). Shown as time per call; memcpy for scale.
//! - compressed: put = `demote_chunk` (sample, shuffle, zstd-1 into a new buffer that the
//!   tier keeps); reference = whole-chunk shuffle + zstd-1 compress into a fresh buffer.
//!   get = decompress + unshuffle into a new chunk (then kept hot); reference = zstd-1
//!   decompress into a fresh buffer + whole-chunk unshuffle between warm buffers.
//! - disk: put = `demote_chunk` with the compressed tier off (crc32c + pwrite of the raw
//!   bytes into the store's page-cached spill file, reused in place after the previous
//!   run's record was removed); reference = crc32c + overwriting a page-cached file.
//!   get = pread into a new chunk + crc32c; reference = pread of a page-cached file into a
//!   fresh buffer + crc32c.
//!
//! A fresh buffer pays its page faults (see "memcpy into a fresh allocation"): every chunk a
//! lower tier decodes is a new allocation, so that, not a warm memcpy, bounds their gets.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spillway::codec::{checksum, chunk_bytes, sample_ratio, shuffle, unshuffle};
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

/// Median time of each measured step.
struct Refs {
    memcpy: Duration,
    memcpy_fresh: Duration,
    shuffle: Duration,
    unshuffle: Duration,
    crc: Duration,
    zstd_plain: (Duration, Duration, f64),
    zstd_shuf: (Duration, Duration, f64),
    zstd_shuf_fresh: (Duration, Duration),
    write_overwrite: Duration,
    write_truncated: Duration,
    read_warm: Duration,
    read_fresh: Duration,
}

fn references(raw: &[u8], runs: usize, dir: &std::path::Path) -> Refs {
    let n = raw.len();
    let mut dst = vec![0u8; n];
    let memcpy = time(
        runs,
        || (),
        |()| dst.copy_from_slice(std::hint::black_box(raw)),
    );
    let memcpy_fresh = time(runs, || (), |()| drop(std::hint::black_box(raw.to_vec())));
    let mut shuffled = vec![0u8; n];
    let shuffle_t = time(runs, || (), |()| shuffle(raw, 8, &mut shuffled));
    let unshuffle_t = time(runs, || (), |()| unshuffle(&shuffled, 8, &mut dst));
    assert_eq!(dst, raw);
    let crc = time(
        runs,
        || (),
        |()| {
            std::hint::black_box(checksum(raw));
        },
    );

    let zstd = |input: &[u8]| {
        let mut cctx = zstd::bulk::Compressor::new(1).unwrap();
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(n));
        let c = time(
            runs,
            || (),
            |()| {
                out.clear();
                cctx.compress_to_buffer(input, &mut out).unwrap();
            },
        );
        let mut dctx = zstd::bulk::Decompressor::new().unwrap();
        let mut back = vec![0u8; n];
        let d = time(
            runs,
            || (),
            |()| {
                dctx.decompress_to_buffer(&out, &mut back).unwrap();
            },
        );
        assert_eq!(back, input);
        (c, d, n as f64 / out.len() as f64, out)
    };
    let (pc, pd, pr, _) = zstd(raw);
    let (sc, sd, sr, packed) = zstd(&shuffled);
    let mut cctx = zstd::bulk::Compressor::new(1).unwrap();
    let sc_fresh = time(
        runs,
        || (),
        |()| {
            let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(n));
            cctx.compress_to_buffer(shuffled.as_slice(), &mut out)
                .unwrap();
            out.shrink_to_fit();
            std::hint::black_box(out);
        },
    );
    let mut dctx = zstd::bulk::Decompressor::new().unwrap();
    let sd_fresh = time(
        runs,
        || (),
        |()| {
            let mut back = vec![0u8; n];
            dctx.decompress_to_buffer(&packed, &mut back).unwrap();
            std::hint::black_box(back);
        },
    );

    let path = dir.join("reference.bin");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    // `&File` reads, writes and seeks, so the setup and timed closures can share it.
    let mut f = &file;
    f.write_all(raw).unwrap();
    let write_overwrite = time(runs, || (), |()| f.write_all_at(raw, 0).unwrap());
    let write_truncated = time(
        runs,
        || file.set_len(0).unwrap(),
        |()| f.write_all_at(raw, 0).unwrap(),
    );
    let mut buf = vec![0u8; n];
    f.read_exact_at(&mut buf, 0).unwrap(); // warm the page cache
    let read_warm = time(
        runs,
        || (),
        |()| {
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_exact(&mut buf).unwrap();
        },
    );
    let read_fresh = time(
        runs,
        || (),
        |()| {
            let mut b = vec![0u8; n];
            f.read_exact_at(&mut b, 0).unwrap();
            std::hint::black_box(b);
        },
    );
    drop(file);
    std::fs::remove_file(&path).unwrap();
    Refs {
        memcpy,
        memcpy_fresh,
        shuffle: shuffle_t,
        unshuffle: unshuffle_t,
        crc,
        zstd_plain: (pc, pd, pr),
        zstd_shuf: (sc, sd, sr),
        zstd_shuf_fresh: (sc_fresh, sd_fresh),
        write_overwrite,
        write_truncated,
        read_warm,
        read_fresh,
    }
}

struct Tiers {
    hot: (Duration, Duration),
    compressed: (Duration, Duration, f64, f64),
    disk: (Duration, Duration),
}

/// put → get of the chunk through one tier, `runs` times; medians of put and get.
fn through(
    store: &ChunkStore,
    chunk: &Arc<ChunkData>,
    runs: usize,
    tier: Tier,
) -> (Duration, Duration) {
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for _ in 0..runs {
        let k = ChunkKey::fresh();
        let t = Instant::now();
        assert_eq!(store.put(k, Arc::clone(chunk)).unwrap(), Tier::Hot);
        if tier != Tier::Hot {
            assert_eq!(store.demote_chunk(k).unwrap(), tier);
        }
        puts.push(t.elapsed());
        let t = Instant::now();
        let c = store.get(k).unwrap();
        gets.push(t.elapsed());
        assert!(*c == **chunk);
        drop(c);
        store.remove(k);
    }
    (median(puts), median(gets))
}

fn tiers(chunk: &Arc<ChunkData>, runs: usize, dir: &std::path::Path) -> Tiers {
    let budget = MemoryBudget::new(4 << 30);
    let cfg = |c: StoreConfig| StoreConfig {
        spill_dir: Some(dir.to_path_buf()),
        ..c
    };
    let hot_store = ChunkStore::new(budget.clone(), cfg(StoreConfig::default())).unwrap();
    let hot = through(&hot_store, chunk, runs, Tier::Hot);
    drop(hot_store);
    // Forced into the compressed tier whatever the sample says, to measure it.
    let comp = ChunkStore::new(
        budget.clone(),
        cfg(StoreConfig {
            min_compression_ratio: 0.0,
            ..Default::default()
        }),
    )
    .unwrap();
    let (cp, cg) = through(&comp, chunk, runs, Tier::Compressed);
    let ratio = comp.stats().compression_ratio();
    drop(comp);
    let disk_store = ChunkStore::new(
        budget,
        cfg(StoreConfig {
            compressed_tier: false,
            ..Default::default()
        }),
    )
    .unwrap();
    let disk = through(&disk_store, chunk, runs, Tier::Disk);
    Tiers {
        hot,
        compressed: (cp, cg, ratio, sample_ratio(&chunk_bytes(chunk), 8, 1)),
        disk,
    }
}

fn main() {
    let mut runs = 5;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5);
    }
    let dir = tempfile::tempdir().unwrap();
    let data = [
        ("smooth", Arc::new(smooth())),
        ("random", Arc::new(random())),
    ];
    let n = chunk_bytes(&data[0].1).len();
    let mut refs = Vec::new();
    let mut tier = Vec::new();
    for (_, chunk) in &data {
        refs.push(references(&chunk_bytes(chunk), runs, dir.path()));
        tier.push(tiers(chunk, runs, dir.path()));
    }
    let r = |d: Duration| format!("{:.0}", mbps(n, d));
    let pct = |reference: Duration, measured: Duration| {
        format!(
            "{:.0}%",
            100.0 * reference.as_secs_f64() / measured.as_secs_f64()
        )
    };

    println!(
        "64 MiB f64 chunk (8192 × 1024), median of {runs} runs, one thread, MB/s of uncompressed bytes (10^6 B/s).\n"
    );
    println!(
        "| tier | data | put MB/s | reference | put vs ref | get MB/s | reference | get vs ref | note |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for (((name, _), f), t) in data.iter().zip(&refs).zip(&tier) {
        let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
        println!(
            "| hot | {name} | {} per put | memcpy {} | – | {} per get | memcpy {} | – | an `Arc` moves, nothing is copied |",
            us(t.hot.0),
            r(f.memcpy),
            us(t.hot.1),
            r(f.memcpy)
        );
        let (cp, cg, ratio, sampled) = t.compressed;
        let cref_put = f.shuffle + f.zstd_shuf_fresh.0;
        let cref_get = f.zstd_shuf_fresh.1 + f.unshuffle;
        println!(
            "| compressed | {name} | {} | {} | {} | {} | {} | {} | ratio {ratio:.3}; sample {sampled:.3}: the default policy (≥ 1.3) {} |",
            r(cp),
            r(cref_put),
            pct(cref_put, cp),
            r(cg),
            r(cref_get),
            pct(cref_get, cg),
            if sampled >= 1.3 {
                "keeps it compressed"
            } else {
                "sends it to disk"
            }
        );
        let (dp, dg) = t.disk;
        let dref_put = f.crc + f.write_overwrite;
        let dref_get = f.read_fresh + f.crc;
        println!(
            "| disk | {name} | {} | {} | {} | {} | {} | {} | raw record, pread, crc32c both ways |",
            r(dp),
            r(dref_put),
            pct(dref_put, dp),
            r(dg),
            r(dref_get),
            pct(dref_get, dg)
        );
    }
    println!("\nReferences measured in the same run (MB/s):\n");
    println!("| step | smooth | random |");
    println!("|---|---:|---:|");
    let row = |label: &str, f: &dyn Fn(&Refs) -> String| {
        println!("| {label} | {} | {} |", f(&refs[0]), f(&refs[1]))
    };
    row("memcpy, warm buffer", &|x| r(x.memcpy));
    row("memcpy into a fresh allocation", &|x| r(x.memcpy_fresh));
    row("byte shuffle / unshuffle (whole chunk)", &|x| {
        format!("{} / {}", r(x.shuffle), r(x.unshuffle))
    });
    row("crc32c", &|x| r(x.crc));
    row(
        "zstd-1 compress / decompress, no shuffle, warm buffers",
        &|x| {
            format!(
                "{} / {} (ratio {:.3})",
                r(x.zstd_plain.0),
                r(x.zstd_plain.1),
                x.zstd_plain.2
            )
        },
    );
    row(
        "zstd-1 compress / decompress of shuffled bytes, warm buffers",
        &|x| {
            format!(
                "{} / {} (ratio {:.3})",
                r(x.zstd_shuf.0),
                r(x.zstd_shuf.1),
                x.zstd_shuf.2
            )
        },
    );
    row(
        "zstd-1 compress / decompress of shuffled bytes, fresh buffers",
        &|x| format!("{} / {}", r(x.zstd_shuf_fresh.0), r(x.zstd_shuf_fresh.1)),
    );
    row(
        "file write: overwrite cached pages / into a truncated file",
        &|x| format!("{} / {}", r(x.write_overwrite), r(x.write_truncated)),
    );
    row("page-cached file read: warm buffer / fresh buffer", &|x| {
        format!("{} / {}", r(x.read_warm), r(x.read_fresh))
    });
}
