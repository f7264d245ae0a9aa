//! Evicted and removed chunks are really freed, and spill files disappear with the store.
//!
//! A counting global allocator measures the bytes the process holds, so this file is its own
//! test binary with a single test: other tests running in parallel would disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use spillway::store::{ChunkKey, ChunkStore, StoreConfig, Tier};
use spillway::{ChunkData, Error, MemoryBudget};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

const MIB: usize = 1 << 20;

fn noise(n: usize, seed: u64) -> ChunkData {
    let mut s = seed | 1;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as f64
        })
        .collect();
    ChunkData::from(ndarray::Array1::from(v).into_dyn())
}

fn steps(n: usize) -> ChunkData {
    ChunkData::from(ndarray::Array1::from_iter((0..n).map(|i| (i / 100) as f64)).into_dyn())
}

#[test]
fn evicted_and_removed_chunks_are_freed_and_spill_files_go_with_the_store() {
    let parent = tempfile::tempdir().unwrap();
    let spill_dir = Some(parent.path().to_path_buf());

    // 1. Nothing the store demoted or removed stays alive: weak handles cannot upgrade.
    for compressed_tier in [true, false] {
        let store = ChunkStore::new(
            MemoryBudget::new(4 * MIB as u64),
            StoreConfig {
                compressed_tier,
                spill_dir: spill_dir.clone(),
                ..Default::default()
            },
        )
        .unwrap();
        let mut weak = Vec::new();
        for i in 0..12 {
            let c = Arc::new(if i % 2 == 0 {
                steps(MIB / 8)
            } else {
                noise(MIB / 8, i)
            });
            weak.push((ChunkKey::fresh(), Arc::downgrade(&c)));
            store.put(weak[i as usize].0, c).unwrap();
        }
        for (k, w) in &weak {
            assert_eq!(
                w.upgrade().is_some(),
                store.tier_of(*k) == Some(Tier::Hot),
                "only hot chunks stay decoded"
            );
        }
        for (k, _) in &weak {
            assert!(store.remove(*k));
        }
        assert!(weak.iter().all(|(_, w)| w.upgrade().is_none()));
        assert_eq!(store.budget().reserved_bytes(), 0);
    }

    // 2. The bytes the process holds follow what the store holds: after spilling 24 MiB
    //    through a 4.5 MiB budget, heap in use stays near the budget; after removing
    //    everything it returns to where it was. The half MiB above the four hot chunks is the
    //    headroom a compressed copy needs while it is built next to its hot original.
    let before = live();
    let budget = 4 * MIB as u64 + MIB as u64 / 2;
    let store = ChunkStore::new(
        MemoryBudget::new(budget),
        StoreConfig {
            spill_dir: spill_dir.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let keys: Vec<ChunkKey> = (0..24).map(|_| ChunkKey::fresh()).collect();
    for (i, &k) in keys.iter().enumerate() {
        let c = if i % 2 == 0 {
            steps(MIB / 8)
        } else {
            noise(MIB / 8, i as u64)
        };
        store.put(k, Arc::new(c)).unwrap();
    }
    let held = live() - before;
    let st = store.stats();
    assert!(st.disk_chunks > 0 && st.compressed_chunks > 0, "{st:?}");
    // Budget plus the index, the LRU nodes and shapes: far below one chunk of slack.
    assert!(
        held <= budget as i64 + MIB as i64 / 4,
        "heap held {held} bytes for a {budget}-byte budget"
    );
    for &k in &keys {
        assert!(store.remove(k));
    }
    let after_remove = live() - before;
    assert!(
        after_remove < 64 * 1024,
        "{after_remove} bytes still held after removing every chunk"
    );

    // 3. Spill files are gone after the store drops ...
    let path = store.spill_path().to_path_buf();
    assert!(path.exists());
    drop(store);
    assert!(!path.exists(), "spill folder left behind");

    // ... also when the work around it failed: a spill cap error, then a panic.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let store = ChunkStore::new(
            MemoryBudget::new(MIB as u64),
            StoreConfig {
                spill_dir: spill_dir.clone(),
                max_spill_bytes: Some(3 * MIB as u64),
                ..Default::default()
            },
        )
        .unwrap();
        let path = store.spill_path().to_path_buf();
        let mut kept = Vec::new();
        for i in 0..10u64 {
            let k = ChunkKey::fresh();
            match store.put(k, Arc::new(noise(MIB / 8, i))) {
                Ok(_) => kept.push((k, i)),
                Err(Error::SpillLimitExceeded { max, .. }) => {
                    assert_eq!(max, 3 * MIB as u64);
                    // Everything stored before the error reads back.
                    for (k, i) in &kept {
                        assert_eq!(*store.get(*k).unwrap(), noise(MIB / 8, *i));
                    }
                    std::panic::panic_any(path);
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        unreachable!("the spill cap was never reached");
    }));
    let path = *result
        .unwrap_err()
        .downcast::<std::path::PathBuf>()
        .unwrap();
    assert!(!path.exists(), "spill folder left behind after a failure");
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}
