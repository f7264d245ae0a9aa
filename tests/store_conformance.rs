//! One conformance suite, run against each tier of the store and against the facade left to
//! itself under a small budget: round trips of every dtype and of 0-d to 4-d chunks, eviction
//! order, pinning, removal, and detection of corrupt spill records.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use spillway::store::{ChunkKey, ChunkStore, SpillRead, StoreConfig, Tier};
use spillway::{ChunkData, DType, Error, MemoryBudget};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Nothing forced: a small budget makes the store demote on its own.
    Facade,
    Hot,
    Compressed,
    /// Spill records read back with `pread`.
    Disk,
    /// Spill records read back through a mapping of the record.
    DiskMmap,
}

const MODES: [Mode; 5] = [
    Mode::Facade,
    Mode::Hot,
    Mode::Compressed,
    Mode::Disk,
    Mode::DiskMmap,
];

fn config(mode: Mode) -> StoreConfig {
    match mode {
        Mode::Facade | Mode::Hot => StoreConfig::default(),
        // Every chunk that shrinks at all is kept compressed.
        Mode::Compressed => StoreConfig {
            min_compression_ratio: 0.0,
            ..Default::default()
        },
        Mode::Disk => StoreConfig {
            compressed_tier: false,
            ..Default::default()
        },
        Mode::DiskMmap => StoreConfig {
            compressed_tier: false,
            spill_read: SpillRead::Mmap,
            ..Default::default()
        },
    }
}

fn store(mode: Mode, budget: u64) -> ChunkStore {
    ChunkStore::new(MemoryBudget::new(budget), config(mode)).unwrap()
}

/// A budget that forces the facade to move things, and is roomy for the forced modes.
fn budget_for(mode: Mode) -> u64 {
    if mode == Mode::Facade { 6_000 } else { 1 << 30 }
}

/// Puts a chunk and pushes it down to the mode's tier.
fn place(store: &ChunkStore, mode: Mode, key: ChunkKey, chunk: ChunkData) -> Tier {
    let tier = store.put(key, Arc::new(chunk)).unwrap();
    match mode {
        Mode::Facade | Mode::Hot => tier,
        Mode::Compressed => store.demote_chunk(key).unwrap(),
        Mode::Disk | Mode::DiskMmap => {
            let t = store.demote_chunk(key).unwrap();
            assert_eq!(t, Tier::Disk);
            t
        }
    }
}

/// Deterministic values with some structure (they compress) and some variety.
fn chunk(dtype: DType, shape: &[usize], seed: u64) -> ChunkData {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n as u64)
        .map(|i| ((i * 7 + seed * 13) % 23) as f64 * 1.5 - 9.0)
        .collect();
    ChunkData::from(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()).cast(dtype)
}

const SHAPES: [&[usize]; 8] = [
    &[],
    &[0],
    &[1],
    &[300],
    &[17, 33],
    &[0, 4],
    &[5, 6, 7],
    &[3, 4, 5, 6],
];

#[test]
fn every_dtype_and_rank_round_trips() {
    for mode in MODES {
        let s = store(mode, budget_for(mode));
        let mut kept = Vec::new();
        for (d, dtype) in DType::ALL.into_iter().enumerate() {
            for (i, shape) in SHAPES.iter().enumerate() {
                let c = chunk(dtype, shape, (d * 10 + i) as u64);
                let k = ChunkKey::fresh();
                let tier = place(&s, mode, k, c.clone());
                match mode {
                    Mode::Hot => assert_eq!(tier, Tier::Hot),
                    Mode::Compressed if c.len() >= 300 => {
                        assert_eq!(tier, Tier::Compressed, "{dtype} {shape:?}")
                    }
                    _ => {}
                }
                assert_eq!(*s.peek(k).unwrap(), c, "{mode:?} peek {dtype} {shape:?}");
                kept.push((k, c));
            }
        }
        // Read everything again after all the puts (the facade has moved most of it by now).
        for (k, c) in &kept {
            let got = s.get(*k).unwrap();
            assert_eq!(*got, *c, "{mode:?} get {:?}", c.shape());
            assert_eq!(got.dtype(), c.dtype());
        }
        let st = s.stats();
        assert_eq!(st.chunks, kept.len() as u64);
        assert!(
            st.hot_bytes + st.compressed_bytes <= budget_for(mode),
            "{mode:?} {st:?}"
        );
        if mode == Mode::Facade {
            assert!(
                st.bytes_spilled > 0 && st.bytes_read_back > 0,
                "the small budget made it spill: {st:?}"
            );
        }
    }
}

#[test]
fn least_recently_used_is_demoted_first() {
    for mode in MODES {
        let n = 2000; // 16 000 bytes of f64
        let budget = if mode == Mode::Facade {
            3 * 16_000 + 100
        } else {
            1 << 30
        };
        let s = store(mode, budget);
        let keys: Vec<ChunkKey> = (0..3).map(|_| ChunkKey::fresh()).collect();
        for (i, &k) in keys.iter().enumerate() {
            place(&s, mode, k, chunk(DType::F64, &[n], i as u64));
        }
        let before: Vec<Tier> = keys.iter().map(|&k| s.tier_of(k).unwrap()).collect();
        // Hold the rest of the budget so reads cannot promote: only recency changes.
        let blocker = s
            .budget()
            .try_reserve(s.budget().available_bytes())
            .unwrap();
        s.get(keys[0]).unwrap();
        assert_eq!(
            s.tier_of(keys[0]),
            Some(before[0]),
            "{mode:?}: no promotion without budget"
        );
        drop(blocker);
        match mode {
            Mode::Facade => {
                // A fourth chunk does not fit: the least recently used (keys[1]) makes room.
                let d = ChunkKey::fresh();
                assert_eq!(
                    s.put(d, Arc::new(chunk(DType::F64, &[n], 9))).unwrap(),
                    Tier::Hot
                );
                // Compressing keys[1] may free less than a chunk; then keys[2], next in
                // LRU order, follows. keys[0], the most recently used, stays.
                assert_ne!(s.tier_of(keys[1]), Some(Tier::Hot));
                assert_eq!(s.tier_of(keys[0]), Some(Tier::Hot));
                assert_eq!(s.tier_of(d), Some(Tier::Hot));
            }
            Mode::Hot | Mode::Compressed => {
                let blocker = s
                    .budget()
                    .try_reserve(s.budget().available_bytes())
                    .unwrap();
                assert!(s.demote(1).unwrap() > 0);
                let after: Vec<Tier> = keys.iter().map(|&k| s.tier_of(k).unwrap()).collect();
                assert_ne!(
                    after[1], before[1],
                    "{mode:?}: keys[1] is the least recently used"
                );
                assert_eq!((after[0], after[2]), (before[0], before[2]), "{mode:?}");
                assert!(s.demote(1).unwrap() > 0);
                assert_ne!(
                    s.tier_of(keys[2]).unwrap(),
                    before[2],
                    "{mode:?}: then keys[2]"
                );
                assert_eq!(s.tier_of(keys[0]).unwrap(), before[0]);
                drop(blocker);
            }
            Mode::Disk | Mode::DiskMmap => {
                assert_eq!(s.demote(1).unwrap(), 0, "nothing below disk");
                // With budget to spare, a read promotes.
                s.get(keys[2]).unwrap();
                assert_eq!(s.tier_of(keys[2]), Some(Tier::Hot));
            }
        }
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(
                *s.get(k).unwrap(),
                chunk(DType::F64, &[n], i as u64),
                "{mode:?}"
            );
        }
    }
}

#[test]
fn pinned_chunks_are_never_demoted() {
    for mode in MODES {
        let budget = if mode == Mode::Facade {
            40_000
        } else {
            1 << 30
        };
        let s = store(mode, budget);
        let a = ChunkKey::fresh();
        let t = place(&s, mode, a, chunk(DType::I64, &[2000], 1));
        s.pin(a).unwrap();
        s.pin(a).unwrap();
        assert_eq!(s.demote(u64::MAX).unwrap(), 0, "{mode:?}");
        assert_eq!(s.demote_with(u64::MAX, &|_| None).unwrap(), 0);
        assert_eq!(s.demote_chunk(a).unwrap(), t);
        if mode == Mode::Facade {
            // Puts that do not fit around the pinned chunk go to disk instead of moving it.
            for i in 0..5 {
                s.put(ChunkKey::fresh(), Arc::new(chunk(DType::I64, &[2000], i)))
                    .unwrap();
            }
        }
        assert_eq!(s.tier_of(a), Some(t), "{mode:?}");
        s.unpin(a);
        assert_eq!(s.demote_chunk(a).unwrap(), t, "{mode:?}: still pinned once");
        s.unpin(a);
        let after = s.demote_chunk(a).unwrap();
        if t != Tier::Disk {
            assert_ne!(after, t, "{mode:?}: unpinned, it moves");
        }
        assert_eq!(*s.get(a).unwrap(), chunk(DType::I64, &[2000], 1));
        assert!(matches!(
            s.pin(ChunkKey::fresh()),
            Err(Error::MissingChunk(_))
        ));
    }
}

#[test]
fn removal_frees_every_tier() {
    for mode in MODES {
        let s = store(mode, budget_for(mode));
        let keys: Vec<ChunkKey> = (0..6).map(|_| ChunkKey::fresh()).collect();
        for (i, &k) in keys.iter().enumerate() {
            place(&s, mode, k, chunk(DType::F32, &[40, 25], i as u64));
        }
        for &k in &keys {
            assert!(s.contains(k));
            assert!(s.remove(k), "{mode:?}");
            assert!(!s.contains(k));
            assert!(!s.remove(k));
            assert!(matches!(s.get(k), Err(Error::MissingChunk(n)) if n == k.0));
        }
        let st = s.stats();
        assert_eq!(
            (st.chunks, st.hot_bytes, st.compressed_bytes, st.disk_bytes),
            (0, 0, 0, 0),
            "{mode:?} {st:?}"
        );
        assert_eq!(s.budget().reserved_bytes(), 0, "{mode:?}");
        // Emptied spill files are deleted or truncated for reuse.
        let on_disk: u64 = std::fs::read_dir(s.spill_path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk <= st.spill_file_bytes, "{mode:?}");
    }
}

/// The only spill file of a store that has spilled one record, with its header length.
fn only_file(s: &ChunkStore) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(s.spill_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    files[0].clone()
}

#[test]
fn corrupt_and_short_records_are_errors_never_wrong_numbers() {
    for mode in [Mode::Facade, Mode::Compressed, Mode::Disk, Mode::DiskMmap] {
        let shape = [64, 32];
        let header = 44 + 8 * shape.len() as u64;
        for damage in ["payload", "header", "truncate"] {
            let s = store(mode, 1 << 30);
            let k = ChunkKey::fresh();
            let c = chunk(DType::F64, &shape, 3);
            place(&s, mode, k, c.clone());
            if mode != Mode::Disk && mode != Mode::DiskMmap {
                while s.demote_chunk(k).unwrap() != Tier::Disk {}
            }
            let path = only_file(&s);
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let len = f.metadata().unwrap().len();
            match damage {
                "payload" => {
                    let at = header + (len - header) / 2;
                    let mut b = [0u8];
                    f.read_exact_at(&mut b, at).unwrap();
                    f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
                }
                "header" => f.write_all_at(&[0xFF], 8).unwrap(), // the key
                _ => f.set_len(len - 10).unwrap(),
            }
            let err = s.get(k).unwrap_err();
            match &err {
                Error::CorruptSpill { key, detail } => {
                    assert_eq!(*key, k.0);
                    if damage == "truncate" {
                        assert!(detail.contains("short read"), "{mode:?}: {detail}");
                    }
                }
                e => panic!("{mode:?} {damage}: expected CorruptSpill, got {e}"),
            }
            assert!(s.peek(k).is_err(), "{mode:?} {damage}: the error is stable");
            assert!(s.remove(k));
        }
    }
}
