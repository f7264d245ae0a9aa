//! Many rayon workers putting, reading, pinning, demoting and removing at once.

use std::sync::Arc;

use rayon::prelude::*;
use spillway::store::{ChunkKey, ChunkStore, StoreConfig};
use spillway::{ChunkData, MemoryBudget};

fn chunk(i: u64) -> ChunkData {
    // Alternate data that compresses with data that does not, so all three tiers are busy.
    let v: Vec<f64> = (0..4096u64)
        .map(|j| {
            if i.is_multiple_of(2) {
                ((j / 64) + i) as f64
            } else {
                ((j * 0x9E37_79B9 + i * 7919) % 1_000_003) as f64 / 3.0
            }
        })
        .collect();
    ChunkData::from(ndarray::Array1::from(v).into_dyn())
}

#[test]
fn parallel_workers_see_consistent_values_within_the_budget() {
    let limit = 200_000; // about six 32 KiB chunks hot
    let store = ChunkStore::new(MemoryBudget::new(limit), StoreConfig::default()).unwrap();
    let keys: Vec<ChunkKey> = (0..64).map(|_| ChunkKey::fresh()).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    pool.install(|| {
        keys.par_iter().enumerate().for_each(|(i, &k)| {
            store.put(k, Arc::new(chunk(i as u64))).unwrap();
        });
        for round in 0..3u64 {
            keys.par_iter().enumerate().for_each(|(i, &k)| {
                store.pin(k).unwrap();
                assert_eq!(*store.get(k).unwrap(), chunk(i as u64));
                store.unpin(k);
                if (i as u64 + round).is_multiple_of(5) {
                    store.demote(40_000).unwrap();
                }
                assert_eq!(*store.peek(k).unwrap(), chunk(i as u64));
                let s = store.stats();
                assert!(s.hot_bytes + s.compressed_bytes <= limit);
            });
        }
        keys.par_iter()
            .enumerate()
            .filter(|(i, _)| i.is_multiple_of(2))
            .for_each(|(_, &k)| assert!(store.remove(k)));
    });
    for (i, &k) in keys.iter().enumerate() {
        assert_eq!(store.contains(k), i % 2 == 1);
        if i % 2 == 1 {
            assert_eq!(*store.get(k).unwrap(), chunk(i as u64));
        }
    }
    let s = store.stats();
    assert_eq!(s.chunks, 32);
    assert_eq!(
        store.budget().reserved_bytes(),
        s.hot_bytes + s.compressed_bytes + s.scratch_bytes
    );
    assert!(
        s.bytes_spilled > 0 && s.bytes_compressed > 0 && s.bytes_read_back > 0,
        "{s:?}"
    );
}
