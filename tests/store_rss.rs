//! Spilling through the disk tier does not inflate the process's peak RSS.
//!
//! The test re-runs its own binary as a child process (selected by an environment variable),
//! so the peak the OS reports (`ru_maxrss` from `wait4`) belongs to that workload alone. A
//! child spills 256 MiB of chunks through a 64 MiB budget and reads every chunk back; a
//! baseline child starts the same binary and makes an empty store. Their difference must stay
//! within the budget plus a fixed overhead of two chunks (the one the test is filling before
//! `put`, and the one `get` has just decoded, which the caller owns) plus 8 MiB of allocator
//! and buffer slack.
//!
//! Both read modes are run; the figures printed (`--nocapture`) are the ones quoted in
//! `SpillRead`'s documentation.

use std::process::Command;
use std::sync::Arc;

use spillway::store::{ChunkKey, ChunkStore, SpillRead, StoreConfig};
use spillway::{ChunkData, MemoryBudget};

const ROLE: &str = "SPILLWAY_STORE_RSS_ROLE";
const TEST: &str = "spilling_through_the_disk_tier_keeps_peak_rss_within_the_budget";
const MIB: u64 = 1 << 20;
const BUDGET: u64 = 64 * MIB;
const CHUNK_ELEMS: usize = (8 * MIB / 8) as usize;
const CHUNKS: u64 = 32;

/// The values of chunk `i`, generated on the fly so checking a chunk needs no second copy.
fn values(i: u64) -> impl Iterator<Item = i64> {
    let mut s = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..CHUNK_ELEMS).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s as i64
    })
}

fn chunk(i: u64) -> ChunkData {
    ChunkData::from(ndarray::Array1::from(values(i).collect::<Vec<_>>()).into_dyn())
}

fn child(role: &str) {
    let mode = match role {
        "mmap" => SpillRead::Mmap,
        _ => SpillRead::Pread,
    };
    // The compressed tier is off: this random data would skip it anyway, and the test is
    // about the disk tier's reads.
    let cfg = StoreConfig {
        compressed_tier: false,
        spill_read: mode,
        ..Default::default()
    };
    let store = ChunkStore::new(MemoryBudget::new(BUDGET), cfg).unwrap();
    if role == "baseline" {
        return;
    }
    let keys: Vec<ChunkKey> = (0..CHUNKS).map(|_| ChunkKey::fresh()).collect();
    for (i, &k) in keys.iter().enumerate() {
        store.put(k, Arc::new(chunk(i as u64))).unwrap();
    }
    let s = store.stats();
    assert!(s.disk_chunks >= CHUNKS - BUDGET / (8 * MIB), "{s:?}");
    for (i, &k) in keys.iter().enumerate() {
        let got = store.get(k).unwrap();
        let ChunkData::I64(a) = &*got else {
            panic!("chunk {i} changed dtype")
        };
        let a = a.as_slice().expect("decoded chunks are in standard layout");
        assert!(
            a.len() == CHUNK_ELEMS && a.iter().copied().eq(values(i as u64)),
            "chunk {i} read back wrong"
        );
        drop(got);
        store.remove(k);
    }
    assert!(store.stats().bytes_read_back >= (CHUNKS - 8) * 8 * MIB);
}

/// Runs this test as a child in `role`; returns its peak RSS in bytes.
///
/// With `fixed_mmap_threshold`, glibc serves every allocation above 1 MiB with its own mapping
/// and unmaps it on free. By default it raises that threshold after the first large free, so
/// later chunk-sized buffers come from the heap, whose freed holes stay resident: that costs
/// about one chunk of peak RSS that is the allocator's, not the store's.
fn run_child(role: &str, fixed_mmap_threshold: bool) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, role);
    if fixed_mmap_threshold {
        cmd.env("MALLOC_MMAP_THRESHOLD_", "1048576");
    } else {
        cmd.env_remove("MALLOC_MMAP_THRESHOLD_");
    }
    // Reaped by the wait4 below, which std's Child does not know about.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we just spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {role} failed: status {status}"
    );
    usage.ru_maxrss as u64 * 1024 // KiB on Linux
}

#[test]
fn spilling_through_the_disk_tier_keeps_peak_rss_within_the_budget() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let mib = |b: u64| b as f64 / MIB as f64;
    let overhead = 2 * 8 * MIB + 8 * MIB;
    for fixed in [false, true] {
        let base = run_child("baseline", fixed);
        let pread = run_child("pread", fixed).saturating_sub(base);
        // The two read modes are compared where allocator slack does not blur them.
        let mmap = fixed.then(|| run_child("mmap", fixed).saturating_sub(base));
        println!(
            "peak RSS over a {:.1} MiB baseline (malloc mmap threshold {}): pread +{:.1} MiB, mmap {}; \
             budget {} MiB, chunk 8 MiB, {} MiB spilled",
            mib(base),
            if fixed {
                "fixed at 1 MiB"
            } else {
                "glibc default"
            },
            mib(pread),
            mmap.map_or("not run".to_string(), |m| format!("+{:.1} MiB", mib(m))),
            BUDGET / MIB,
            CHUNKS * 8,
        );
        assert!(
            pread <= BUDGET + overhead,
            "pread: peak RSS {} MiB over the baseline",
            mib(pread)
        );
        if let Some(m) = mmap {
            assert!(
                m <= BUDGET + overhead,
                "mmap: peak RSS {} MiB over the baseline",
                mib(m)
            );
        }
        if fixed {
            // Without allocator slack the store's own share is visible: the budget plus the
            // one decoded chunk the reader holds, and nothing for the disk tier's reads.
            assert!(
                pread <= BUDGET + 8 * MIB + 4 * MIB,
                "pread: peak RSS {} MiB over the baseline",
                mib(pread)
            );
        }
    }
}
