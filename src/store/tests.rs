//! Unit tests of the tiers' internals; behaviour through the facade is in `tests/store_*.rs`.

use std::sync::Arc;

use super::disk::{DiskTier, Payload, SpillRead};
use super::*;
use crate::dtype::DType;

fn f64_chunk(n: usize, seed: u64) -> ChunkData {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    ChunkData::from(ndarray::Array1::from(v).into_dyn())
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn disk_tier_round_trips_in_both_read_modes() {
    for mode in [SpillRead::Pread, SpillRead::Mmap] {
        let disk = DiskTier::new(None, None, 1 << 20, mode).unwrap();
        let c = f64_chunk(1000, 1);
        let raw = chunk_bytes(&c);
        let rec = disk
            .write(5, c.dtype(), c.shape(), Payload::Raw(&raw))
            .unwrap();
        assert_eq!(disk.read(&rec).unwrap(), c);
        let blob = Blob::encode(&c, 1).unwrap();
        let rec2 = disk
            .write(
                6,
                c.dtype(),
                c.shape(),
                Payload::Zstd {
                    bytes: &blob.bytes,
                    raw_len: blob.raw_len,
                },
            )
            .unwrap();
        assert_eq!(disk.read(&rec2).unwrap(), c);
        assert_eq!(
            disk.read(&rec).unwrap(),
            c,
            "reading one record does not disturb another"
        );
    }
}

#[test]
fn files_rotate_and_are_deleted_when_their_last_record_goes() {
    let disk = DiskTier::new(None, None, 20_000, SpillRead::Pread).unwrap();
    let c = f64_chunk(1000, 2); // 8000 bytes + header
    let raw = chunk_bytes(&c);
    let recs: Vec<_> = (0..6)
        .map(|k| {
            disk.write(k, c.dtype(), c.shape(), Payload::Raw(&raw))
                .unwrap()
        })
        .collect();
    // Two records fit in 20 000 bytes, so six records make three files.
    assert_eq!(files_in(disk.path()), 3);
    let used = disk.file_bytes();
    assert_eq!(used, recs.iter().map(|r| r.len()).sum::<u64>());
    let mut recs = recs.into_iter();
    let (a, b) = (recs.next().unwrap(), recs.next().unwrap());
    drop(a);
    assert_eq!(files_in(disk.path()), 3, "a file with a live record stays");
    drop(b);
    assert_eq!(
        files_in(disk.path()),
        2,
        "the first file is deleted with its last record"
    );
    let rest: Vec<_> = recs.collect();
    drop(rest);
    // The active file stays (empty records) until the next write reuses it from the start.
    assert_eq!(files_in(disk.path()), 1);
    let r = disk
        .write(9, c.dtype(), c.shape(), Payload::Raw(&raw))
        .unwrap();
    assert_eq!(
        disk.file_bytes(),
        2 * r.len(),
        "the emptied active file was reused from its start, not grown"
    );
    assert_eq!(disk.read(&r).unwrap(), c);
}

#[test]
fn spill_cap_is_a_typed_error_and_frees_nothing_else() {
    let disk = DiskTier::new(None, Some(20_000), 1 << 20, SpillRead::Pread).unwrap();
    let c = f64_chunk(1000, 3);
    let raw = chunk_bytes(&c);
    let a = disk
        .write(1, c.dtype(), c.shape(), Payload::Raw(&raw))
        .unwrap();
    let b = disk
        .write(2, c.dtype(), c.shape(), Payload::Raw(&raw))
        .unwrap();
    let err = disk
        .write(3, c.dtype(), c.shape(), Payload::Raw(&raw))
        .err()
        .unwrap();
    match err {
        Error::SpillLimitExceeded {
            requested,
            used,
            max,
        } => {
            assert_eq!(requested, a.len());
            assert_eq!(used, a.len() + b.len());
            assert_eq!(max, 20_000);
        }
        e => panic!("unexpected {e}"),
    }
    assert_eq!(disk.read(&a).unwrap(), c);
    assert_eq!(disk.read(&b).unwrap(), c);
}

#[test]
fn records_of_every_dtype_and_rank_round_trip() {
    let disk = DiskTier::new(None, None, 1 << 20, SpillRead::Pread).unwrap();
    for dtype in DType::ALL {
        for shape in [
            vec![],
            vec![0],
            vec![7],
            vec![3, 4],
            vec![2, 3, 4],
            vec![2, 1, 3, 2],
        ] {
            let values: Vec<f64> = f64_chunk(shape.iter().product(), 7)
                .to_f64_vec()
                .iter()
                .map(|v| v * 300.0)
                .collect();
            let c = ChunkData::from(
                ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), values).unwrap(),
            )
            .cast(dtype);
            let raw = chunk_bytes(&c);
            let rec = disk
                .write(1, c.dtype(), c.shape(), Payload::Raw(&raw))
                .unwrap();
            assert_eq!(disk.read(&rec).unwrap(), c, "{dtype} {shape:?}");
            let blob = Blob::encode(&c, 3).unwrap();
            let rec = disk
                .write(
                    2,
                    c.dtype(),
                    c.shape(),
                    Payload::Zstd {
                        bytes: &blob.bytes,
                        raw_len: blob.raw_len,
                    },
                )
                .unwrap();
            assert_eq!(disk.read(&rec).unwrap(), c, "{dtype} {shape:?} compressed");
        }
    }
}

#[test]
fn belady_claims_never_needed_first_then_farthest() {
    let store = ChunkStore::new(MemoryBudget::new(1 << 30), StoreConfig::default()).unwrap();
    let keys: Vec<ChunkKey> = (0..4).map(|_| ChunkKey::fresh()).collect();
    for &k in &keys {
        store.put(k, Arc::new(f64_chunk(100, k.0))).unwrap();
    }
    let uses = |k: ChunkKey| -> Option<u64> {
        match keys.iter().position(|&x| x == k) {
            Some(0) => Some(10),
            Some(1) => Some(30),
            Some(2) => None,
            _ => Some(20),
        }
    };
    let order = store.lock().victims(Pass::Hot, Some(&uses));
    assert_eq!(order, vec![keys[2], keys[1], keys[3], keys[0]]);
    for &k in &order {
        assert!(matches!(
            store.lock().claim_key(k),
            Some(Claim::Encode { key, .. }) if key == k
        ));
    }
    assert!(
        store.lock().victims(Pass::Hot, Some(&uses)).is_empty(),
        "claimed chunks are not offered twice"
    );
}

#[test]
fn a_demotion_that_loses_a_race_publishes_nothing() {
    let budget = MemoryBudget::new(1 << 30);
    let store = ChunkStore::new(
        budget.clone(),
        StoreConfig {
            compressed_tier: false,
            ..Default::default()
        },
    )
    .unwrap();
    let k = ChunkKey::fresh();
    store.put(k, Arc::new(f64_chunk(1000, 9))).unwrap();
    let claim = store.lock().claim_key(k).unwrap();
    // While the victim is being encoded, the key is replaced by another chunk.
    let newer = Arc::new(f64_chunk(10, 10));
    store.put(k, Arc::clone(&newer)).unwrap();
    assert_eq!(store.carry_out(claim).unwrap(), 0);
    assert_eq!(store.tier_of(k), Some(Tier::Hot));
    assert_eq!(*store.get(k).unwrap(), *newer);
    let s = store.stats();
    assert_eq!(
        (s.disk_chunks, s.disk_bytes),
        (0, 0),
        "the abandoned record was released"
    );
    assert_eq!(budget.reserved_bytes(), 80);

    // A pin taken during the move keeps the chunk hot.
    let claim = store.lock().claim_key(k).unwrap();
    store.pin(k).unwrap();
    assert_eq!(store.carry_out(claim).unwrap(), 0);
    assert_eq!(store.tier_of(k), Some(Tier::Hot));
    store.unpin(k);
    assert_eq!(
        store.demote_chunk(k).unwrap(),
        Tier::Disk,
        "the claim was released"
    );
}

#[test]
fn promoted_chunks_keep_their_record_and_demote_for_free() {
    let budget = MemoryBudget::new(1 << 30);
    let store = ChunkStore::new(
        budget.clone(),
        StoreConfig {
            compressed_tier: false,
            ..Default::default()
        },
    )
    .unwrap();
    let k = ChunkKey::fresh();
    let c = f64_chunk(1000, 11);
    store.put(k, Arc::new(c.clone())).unwrap();
    assert_eq!(store.demote_chunk(k).unwrap(), Tier::Disk);
    let spilled = store.stats().bytes_spilled;
    assert_eq!(*store.get(k).unwrap(), c);
    assert_eq!(store.tier_of(k), Some(Tier::Hot));
    assert_eq!(store.demote(1).unwrap(), 8000);
    assert_eq!(store.tier_of(k), Some(Tier::Disk));
    assert_eq!(
        store.stats().bytes_spilled,
        spilled,
        "nothing was written again"
    );
    assert_eq!(budget.reserved_bytes(), 0);
    assert_eq!(*store.get(k).unwrap(), c);
}

#[test]
fn invalid_settings_are_refused() {
    let b = MemoryBudget::new(1000);
    for cfg in [
        StoreConfig {
            compression_level: 1000,
            ..Default::default()
        },
        StoreConfig {
            min_compression_ratio: f64::NAN,
            ..Default::default()
        },
        StoreConfig {
            spill_file_bytes: 0,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            ChunkStore::new(b.clone(), cfg),
            Err(Error::InvalidConfig { .. })
        ));
    }
    let missing = std::env::temp_dir().join("spillway-no-such-dir/nested");
    let err = ChunkStore::new(
        b,
        StoreConfig {
            spill_dir: Some(missing.clone()),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, Error::Io { path: Some(p), .. } if *p == missing),
        "{err}"
    );
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ChunkStore>();
}

/// A chunk leaving RAM hands its buffer, still reserved, to the recycler; a read from disk
/// then decodes into that warm buffer, and a copy written ahead makes demotion a drop.
#[test]
fn buffers_of_demoted_chunks_are_recycled_and_reads_reuse_them() {
    let budget = MemoryBudget::new(64 << 20);
    let store = ChunkStore::new(
        budget.clone(),
        StoreConfig {
            compressed_tier: false,
            ..Default::default()
        },
    )
    .unwrap();
    let pool = Arc::new(ChunkPool::new(budget.clone(), 32 << 20));
    pool.begin_run();
    store.set_recycler(Arc::clone(&pool));
    let n = 1 << 20; // 8 MiB of f64
    let (a, b) = (ChunkKey::fresh(), ChunkKey::fresh());
    let ca = f64_chunk(n, 7);
    store.put(a, Arc::new(ca.clone())).unwrap();
    let a_ptr = match &*store.peek(a).unwrap() {
        ChunkData::F64(x) => x.as_ptr(),
        _ => unreachable!(),
    };
    assert_eq!(store.demote_chunk(a).unwrap(), Tier::Disk);
    assert_eq!(pool.held_bytes(), 8 << 20, "the buffer went to the pool");
    assert_eq!(
        budget.reserved_bytes(),
        8 << 20,
        "with its reservation, counted once"
    );

    // Reading `a` back takes the pooled buffer and gets the same values.
    let back = store.get(a).unwrap();
    assert_eq!(*back, ca);
    match &*back {
        ChunkData::F64(x) => assert_eq!(x.as_ptr(), a_ptr, "warm buffer reused"),
        _ => unreachable!(),
    }
    drop(back);
    assert_eq!(pool.held_bytes(), 0);

    // A chunk stored with a copy written ahead: demoting it writes nothing more.
    let cb = f64_chunk(n, 8);
    let copy = store.spill_copy(b, &cb).unwrap();
    let spilled = store.stats().spill_file_bytes;
    let r = budget.try_reserve(8 << 20).unwrap();
    store
        .put_reserved_with(b, Arc::new(cb.clone()), r, Some(copy))
        .unwrap();
    assert_eq!(store.demote_chunk(b).unwrap(), Tier::Disk);
    assert_eq!(store.stats().spill_file_bytes, spilled, "no second write");
    assert_eq!(*store.get(b).unwrap(), cb);
    assert!(store.remove(a) && store.remove(b));
    pool.drain();
    assert_eq!(budget.reserved_bytes(), 0);
}
