//! The store's index: one LRU over every chunk, whichever tier holds it, with the hot and
//! compressed payloads held in RAM under their reservations.
//!
//! Only this module changes an entry's tier, and every change goes through [`Index::update`]
//! or insert/remove, which subtract the entry's old contribution from the statistics and add
//! the new one, so the per-tier counts cannot drift from what is held.

use std::sync::Arc;

use lru::LruCache;

use super::compressed::Blob;
use super::disk::SpillRecord;
use super::{ChunkKey, StoreStats, Tier};
use crate::chunk::ChunkData;
use crate::memory::Reservation;

/// A decoded chunk in RAM and the budget bytes it holds.
pub(crate) struct HotChunk {
    pub(crate) chunk: Arc<ChunkData>,
    pub(crate) reservation: Reservation,
}

/// A compressed chunk in RAM and the budget bytes it holds.
pub(crate) struct CompressedChunk {
    pub(crate) blob: Arc<Blob>,
    pub(crate) reservation: Reservation,
}

/// What of a chunk is in RAM. Matched without wildcards, so a new tier shows every place
/// to review.
pub(crate) enum Ram {
    Hot(HotChunk),
    Compressed(CompressedChunk),
    /// Nothing: the chunk is only on disk.
    Empty,
}

/// One stored chunk.
pub(crate) struct Entry {
    pub(crate) ram: Ram,
    /// The spill record. Kept when a chunk is promoted back to RAM: chunks are immutable, so
    /// a later demotion just drops the RAM copy instead of writing it again.
    pub(crate) disk: Option<Arc<SpillRecord>>,
    pub(crate) pins: u32,
    /// A demotion is encoding this entry outside the lock; others leave it alone.
    pub(crate) claimed: bool,
    /// Changes whenever the entry's payload changes; a demotion publishes only if it still
    /// matches the version it claimed.
    pub(crate) version: u64,
}

impl Entry {
    pub(crate) fn tier(&self) -> Tier {
        match self.ram {
            Ram::Hot(_) => Tier::Hot,
            Ram::Compressed(_) => Tier::Compressed,
            Ram::Empty => Tier::Disk,
        }
    }

    /// RAM bytes the entry holds against the budget.
    pub(crate) fn ram_bytes(&self) -> u64 {
        match &self.ram {
            Ram::Hot(h) => h.reservation.bytes(),
            Ram::Compressed(c) => c.reservation.bytes(),
            Ram::Empty => 0,
        }
    }
}

fn account(stats: &mut StoreStats, e: &Entry, add: bool) {
    fn apply(v: &mut u64, d: u64, add: bool) {
        if add { *v += d } else { *v -= d }
    }
    apply(&mut stats.chunks, 1, add);
    match &e.ram {
        Ram::Hot(h) => {
            apply(&mut stats.hot_chunks, 1, add);
            apply(&mut stats.hot_bytes, h.reservation.bytes(), add);
        }
        Ram::Compressed(c) => {
            apply(&mut stats.compressed_chunks, 1, add);
            apply(&mut stats.compressed_bytes, c.reservation.bytes(), add);
        }
        Ram::Empty => {}
    }
    if let Some(r) = &e.disk {
        apply(&mut stats.disk_chunks, 1, add);
        apply(&mut stats.disk_bytes, r.len(), add);
    }
    stats.peak_hot_bytes = stats.peak_hot_bytes.max(stats.hot_bytes);
    stats.peak_compressed_bytes = stats.peak_compressed_bytes.max(stats.compressed_bytes);
}

/// Which RAM tier a demotion pass takes victims from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Hot,
    Compressed,
}

/// The payload a claimed victim is encoded from, outside the lock.
pub(crate) enum Victim {
    Hot(Arc<ChunkData>),
    Compressed(Arc<Blob>),
}

/// The result of choosing a victim under the lock.
pub(crate) enum Claim {
    /// The victim had a disk copy; its RAM copy (returned here, to be freed outside the
    /// lock) was taken out on the spot, freeing this many bytes of budget.
    Dropped(u64, Ram),
    /// The victim must be encoded outside the lock, then published.
    Encode {
        key: ChunkKey,
        version: u64,
        victim: Victim,
    },
}

pub(crate) struct Index {
    lru: LruCache<ChunkKey, Entry>,
    pub(crate) stats: StoreStats,
    next_version: u64,
}

impl Index {
    pub(crate) fn new() -> Index {
        Index {
            lru: LruCache::unbounded(),
            stats: StoreStats::default(),
            next_version: 0,
        }
    }

    pub(crate) fn version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Inserts as most recently used; returns the entry it replaces.
    pub(crate) fn insert(&mut self, key: ChunkKey, mut entry: Entry) -> Option<Entry> {
        entry.version = self.version();
        account(&mut self.stats, &entry, true);
        let old = self.lru.put(key, entry);
        if let Some(o) = &old {
            account(&mut self.stats, o, false);
        }
        old
    }

    pub(crate) fn remove(&mut self, key: ChunkKey) -> Option<Entry> {
        let old = self.lru.pop(&key);
        if let Some(o) = &old {
            account(&mut self.stats, o, false);
        }
        old
    }

    /// Looks an entry up, marking it recently used when `touch`.
    pub(crate) fn find(&mut self, key: ChunkKey, touch: bool) -> Option<&mut Entry> {
        if touch {
            self.lru.get_mut(&key)
        } else {
            self.lru.peek_mut(&key)
        }
    }

    pub(crate) fn peek(&self, key: ChunkKey) -> Option<&Entry> {
        self.lru.peek(&key)
    }

    /// Changes an entry's payload with `f`, keeping the statistics exact and bumping the
    /// version. Returns what `f` returns, or `None` when the key is absent.
    pub(crate) fn update<R>(
        &mut self,
        key: ChunkKey,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let version = self.version();
        let e = self.lru.peek_mut(&key)?;
        account(&mut self.stats, e, false);
        let r = f(e);
        e.version = version;
        e.claimed = false;
        account(&mut self.stats, e, true);
        Some(r)
    }

    /// The keys eligible for demotion in `pass` (unpinned, unclaimed, in that tier), best
    /// victim first: without `next_use` the least recently used first; with it, chunks not
    /// needed again first, then the farthest next use, ties going to the least recently used
    /// (Belady). Ranked in one scan: demoting many small chunks costs one ranking, not one
    /// per chunk.
    pub(crate) fn victims(
        &self,
        pass: Pass,
        next_use: Option<&dyn Fn(ChunkKey) -> Option<u64>>,
    ) -> Vec<ChunkKey> {
        let eligible = |e: &Entry| {
            e.pins == 0
                && !e.claimed
                && match e.ram {
                    Ram::Hot(_) => pass == Pass::Hot,
                    Ram::Compressed(_) => pass == Pass::Compressed,
                    Ram::Empty => false,
                }
        };
        // Least recently used first; with `next_use`, by farthest next use (not needed again
        // first), ties kept in LRU order by the stable sort.
        let mut keys: Vec<(u128, ChunkKey)> = self
            .lru
            .iter()
            .rev()
            .filter(|(_, e)| eligible(e))
            .map(|(k, _)| {
                let rank =
                    next_use.map_or(0, |f| f(*k).map_or(u128::from(u64::MAX) + 1, u128::from));
                (rank, *k)
            })
            .collect();
        if next_use.is_some() {
            keys.sort_by_key(|b| std::cmp::Reverse(b.0));
        }
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// Claims one chunk for demotion (`None` if absent, pinned, claimed or only on disk).
    pub(crate) fn claim_key(&mut self, key: ChunkKey) -> Option<Claim> {
        let e = self.lru.peek_mut(&key)?;
        if e.pins > 0 || e.claimed {
            return None;
        }
        if e.disk.is_some() {
            let freed = e.ram_bytes();
            if matches!(e.ram, Ram::Empty) {
                return None;
            }
            let old = self.update(key, |e| std::mem::replace(&mut e.ram, Ram::Empty))?;
            return Some(Claim::Dropped(freed, old));
        }
        let victim = match &e.ram {
            Ram::Hot(h) => Victim::Hot(Arc::clone(&h.chunk)),
            Ram::Compressed(c) => Victim::Compressed(Arc::clone(&c.blob)),
            Ram::Empty => return None,
        };
        e.claimed = true;
        Some(Claim::Encode {
            key,
            version: e.version,
            victim,
        })
    }

    /// Gives up a claim (the encoding failed or was abandoned).
    pub(crate) fn unclaim(&mut self, key: ChunkKey, version: u64) {
        if let Some(e) = self.lru.peek_mut(&key)
            && e.version == version
        {
            e.claimed = false;
        }
    }

    /// Whether a claimed entry may be published: still there, unchanged and unpinned. Clears
    /// the claim when it may not.
    pub(crate) fn can_publish(&mut self, key: ChunkKey, version: u64) -> bool {
        match self.lru.peek_mut(&key) {
            Some(e) if e.version == version => {
                if e.pins > 0 {
                    e.claimed = false;
                    false
                } else {
                    true
                }
            }
            _ => false,
        }
    }
}
