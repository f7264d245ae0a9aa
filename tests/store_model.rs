//! Random sequences of store operations checked against a `HashMap` model: after every step
//! each stored value reads back as the model says, the RAM tiers stay within the budget and
//! hold exactly the budget's reserved bytes, and pinned chunks have not moved down.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use spillway::store::{ChunkKey, ChunkStore, StoreConfig, Tier};
use spillway::{ChunkData, Error, MemoryBudget};

const LIMIT: u64 = 12_000;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u8,
        len: usize,
        seed: u64,
        smooth: bool,
    },
    Get(u8),
    Peek(u8),
    Pin(u8),
    Unpin(u8),
    Remove(u8),
    Demote(u64),
    DemoteBelady(u64),
    DemoteChunk(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..6;
    prop_oneof![
        3 => (key.clone(), 0usize..900, any::<u64>(), any::<bool>())
            .prop_map(|(key, len, seed, smooth)| Op::Put { key, len, seed, smooth }),
        3 => key.clone().prop_map(Op::Get),
        1 => key.clone().prop_map(Op::Peek),
        1 => key.clone().prop_map(Op::Pin),
        1 => key.clone().prop_map(Op::Unpin),
        1 => key.clone().prop_map(Op::Remove),
        1 => (0u64..10_000).prop_map(Op::Demote),
        1 => (0u64..10_000).prop_map(Op::DemoteBelady),
        1 => key.prop_map(Op::DemoteChunk),
    ]
}

fn data(len: usize, seed: u64, smooth: bool) -> ChunkData {
    let mut s = seed | 1;
    let v: Vec<f64> = (0..len)
        .map(|i| {
            if smooth {
                ((i as u64 + seed % 100) % 10) as f64
            } else {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as f64
            }
        })
        .collect();
    ChunkData::from(ndarray::Array1::from(v).into_dyn())
}

fn rank(t: Tier) -> u8 {
    match t {
        Tier::Hot => 0,
        Tier::Compressed => 1,
        Tier::Disk => 2,
    }
}

struct Model {
    values: HashMap<u8, ChunkData>,
    /// Pin count and the lowest tier rank the chunk may be in while pinned.
    pins: HashMap<u8, (u32, u8)>,
}

fn key(k: u8, base: u64) -> ChunkKey {
    ChunkKey(base + k as u64)
}

fn check(store: &ChunkStore, m: &Model, base: u64) -> Result<(), TestCaseError> {
    for k in 0..6u8 {
        match m.values.get(&k) {
            Some(v) => {
                let got = store
                    .peek(key(k, base))
                    .map_err(|e| TestCaseError::fail(format!("peek {k}: {e}")))?;
                prop_assert_eq!(&*got, v);
                let t = store.tier_of(key(k, base)).unwrap();
                if let Some(&(n, max_rank)) = m.pins.get(&k)
                    && n > 0
                {
                    prop_assert!(
                        rank(t) <= max_rank,
                        "pinned chunk {} moved down to {:?}",
                        k,
                        t
                    );
                }
            }
            None => {
                prop_assert!(!store.contains(key(k, base)));
                prop_assert!(matches!(
                    store.peek(key(k, base)),
                    Err(Error::MissingChunk(_))
                ));
            }
        }
    }
    let s = store.stats();
    prop_assert!(
        s.hot_bytes + s.compressed_bytes + s.scratch_bytes <= LIMIT,
        "{:?}",
        s
    );
    prop_assert_eq!(
        store.budget().reserved_bytes(),
        s.hot_bytes + s.compressed_bytes + s.scratch_bytes
    );
    prop_assert_eq!(s.chunks, m.values.len() as u64);
    prop_assert!(s.disk_chunks <= s.chunks);
    Ok(())
}

fn run(ops: Vec<Op>, compressed_tier: bool) -> Result<(), TestCaseError> {
    let cfg = StoreConfig {
        compressed_tier,
        spill_file_bytes: 16_384,
        ..Default::default()
    };
    let store = ChunkStore::new(MemoryBudget::new(LIMIT), cfg).unwrap();
    let base = ChunkKey::fresh().0 * 1000;
    let mut m = Model {
        values: HashMap::new(),
        pins: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::Put {
                key: k,
                len,
                seed,
                smooth,
            } => {
                let c = data(len, seed, smooth);
                let tier = store.put(key(k, base), Arc::new(c.clone())).unwrap();
                prop_assert!(tier != Tier::Compressed);
                if c.nbytes() > LIMIT {
                    prop_assert_eq!(tier, Tier::Disk);
                }
                m.values.insert(k, c);
                m.pins.remove(&k);
            }
            Op::Get(k) | Op::Peek(k) => {
                let got = if matches!(op, Op::Get(_)) {
                    store.get(key(k, base))
                } else {
                    store.peek(key(k, base))
                };
                match (got, m.values.get(&k)) {
                    (Ok(g), Some(v)) => prop_assert_eq!(&*g, v),
                    (Err(Error::MissingChunk(_)), None) => {}
                    (g, v) => prop_assert!(
                        false,
                        "get {} gave {:?}, model has {:?}",
                        k,
                        g.map(|_| ()),
                        v.is_some()
                    ),
                }
            }
            Op::Pin(k) => match (store.pin(key(k, base)), m.values.contains_key(&k)) {
                (Ok(()), true) => {
                    let t = rank(store.tier_of(key(k, base)).unwrap());
                    let e = m.pins.entry(k).or_insert((0, t));
                    e.0 += 1;
                    e.1 = e.1.min(t);
                }
                (Err(Error::MissingChunk(_)), false) => {}
                (r, present) => {
                    prop_assert!(false, "pin {} gave {:?} with present={}", k, r, present)
                }
            },
            Op::Unpin(k) => {
                store.unpin(key(k, base));
                if let Some(e) = m.pins.get_mut(&k) {
                    e.0 = e.0.saturating_sub(1);
                    if e.0 == 0 {
                        m.pins.remove(&k);
                    }
                }
            }
            Op::Remove(k) => {
                prop_assert_eq!(store.remove(key(k, base)), m.values.remove(&k).is_some());
                m.pins.remove(&k);
            }
            Op::Demote(b) => {
                store.demote(b).unwrap();
            }
            Op::DemoteBelady(b) => {
                store
                    .demote_with(b, &|k: ChunkKey| {
                        (!k.0.is_multiple_of(3)).then_some(k.0 % 7)
                    })
                    .unwrap();
            }
            Op::DemoteChunk(k) => match store.demote_chunk(key(k, base)) {
                Ok(_) => prop_assert!(m.values.contains_key(&k)),
                Err(Error::MissingChunk(_)) => prop_assert!(!m.values.contains_key(&k)),
                Err(e) => prop_assert!(false, "demote_chunk: {}", e),
            },
        }
        // A pinned chunk that a get promoted may not go below its new tier either.
        for (k, e) in m.pins.iter_mut() {
            if let Some(t) = store.tier_of(key(*k, base)) {
                e.1 = e.1.min(rank(t));
            }
        }
        check(&store, &m, base)?;
    }
    drop(store);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_hashmap_with_compressed_tier(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, true)?;
    }

    #[test]
    fn store_matches_a_hashmap_without_compressed_tier(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, false)?;
    }
}
