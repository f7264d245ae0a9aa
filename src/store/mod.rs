//! The tiered chunk store.
//!
//! ```text
//!            put / get (promote when the budget allows)
//!                 │
//!   ┌─────────────▼─────────────┐  counted against the MemoryBudget
//!   │ hot: decoded chunks, LRU  │
//!   └─────────────┬─────────────┘
//!                 │ demote (farthest next use first, else least recently used)
//!   ┌─────────────▼─────────────┐  counted against the MemoryBudget
//!   │ compressed: shuffle+zstd  │  (skipped for chunks that compress poorly)
//!   └─────────────┬─────────────┘
//!                 │ demote
//!   ┌─────────────▼─────────────┐  not counted: on disk, read back record by record
//!   │ disk: spill files         │
//!   └───────────────────────────┘
//! ```
//!
//! Keys are opaque [`ChunkKey`]s handed out by the executor. A pinned chunk is never demoted.
//!
//! # What is counted against the budget
//!
//! Both RAM tiers hold a [`Reservation`] for exactly the bytes they keep: a hot chunk its
//! elements, a compressed chunk its compressed bytes. A demotion hands the victim's bytes down:
//! the compressed copy's reservation is split off the hot one, the rest returns to the budget,
//! so the store never needs budget it does not already hold to make room.
//!
//! Not counted, and bounded per thread that is moving a chunk: while a chunk is being
//! compressed its compressed copy grows next to it (at most the chunk's size, usually far
//! less), and compressing or decompressing uses a 1 MiB shuffle scratch, plus, when reading
//! a compressed record back from disk, a 1 MiB read buffer. A chunk that [`get`](ChunkStore::get) decodes but cannot
//! promote is the caller's to account for. An `Arc` of a chunk that a caller still holds keeps
//! its memory alive after the store demotes it: the caller's own reservation covers it.
//!
//! # Concurrency
//!
//! One mutex guards the index (a few pointer moves per call). Compression, decompression and
//! disk I/O run outside it: a demotion claims its victim under the lock (readers still find
//! the chunk where it was), encodes it unlocked, and publishes the new tier only if the entry
//! has not changed meanwhile (removed, replaced, promoted or pinned); otherwise the work is
//! dropped and the chunk stays as it is.
//!
//! # Disk copies
//!
//! Chunks never change under a key, so a chunk read back from disk and promoted keeps its spill
//! record: demoting it again only drops the RAM copy. [`StoreStats::disk_chunks`] therefore
//! counts every chunk with a record, including those that are also in RAM.

mod compressed;
mod disk;
mod hot;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use disk::SpillRead;

use crate::chunk::ChunkData;
use crate::codec::chunk_bytes;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::memory::{MemoryBudget, Reservation};
use crate::pool::ChunkPool;
use compressed::{Blob, worth_compressing};
use disk::{DiskTier, Payload, SpillRecord};
use hot::{Claim, CompressedChunk, Entry, HotChunk, Index, Pass, Ram, Victim};

/// The key of a chunk in the store: an opaque number, unique within the process.
///
/// ```
/// let a = spillway::store::ChunkKey::fresh();
/// let b = spillway::store::ChunkKey::fresh();
/// assert_ne!(a, b);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey(pub u64);

impl ChunkKey {
    /// A key no other call has returned.
    pub fn fresh() -> ChunkKey {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ChunkKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Where a chunk lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Decoded, in RAM.
    Hot,
    /// Compressed, in RAM.
    Compressed,
    /// In a spill file on disk.
    Disk,
}

/// Settings of a [`ChunkStore`].
///
/// ```
/// let c = spillway::store::StoreConfig::default();
/// assert_eq!(c.compression_level, 1);
/// assert_eq!(c.spill_file_bytes, 256 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// zstd level of the compressed tier.
    pub compression_level: i32,
    /// A chunk goes to the compressed tier only if a sample compresses at least this well
    /// (uncompressed over compressed bytes); others go straight to disk. Full-precision float
    /// data often reaches only 1.05–1.6, so the default 1.3 keeps the tier for data where it
    /// saves real memory.
    pub min_compression_ratio: f64,
    /// Whether the compressed tier is used at all.
    pub compressed_tier: bool,
    /// Folder for spill files (a fresh temporary folder inside it); the system temp dir if `None`.
    pub spill_dir: Option<PathBuf>,
    /// A cap on bytes in spill files (live records plus dead ones whose file is not yet empty).
    pub max_spill_bytes: Option<u64>,
    /// Size at which a new spill file is started. Space is reclaimed a whole file at a time,
    /// when its last record is removed.
    pub spill_file_bytes: u64,
    /// How records are read back (positional reads by default: lower peak RSS, measured).
    pub spill_read: SpillRead,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compression_level: 1,
            min_compression_ratio: 1.3,
            compressed_tier: true,
            spill_dir: None,
            max_spill_bytes: None,
            spill_file_bytes: 256 << 20,
            spill_read: SpillRead::Pread,
        }
    }
}

/// Counts of what the store holds and has done.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Chunks stored, in any tier.
    pub chunks: u64,
    /// Chunks in the hot tier.
    pub hot_chunks: u64,
    /// Bytes in the hot tier.
    pub hot_bytes: u64,
    /// Most bytes ever in the hot tier.
    pub peak_hot_bytes: u64,
    /// Chunks in the compressed tier.
    pub compressed_chunks: u64,
    /// Compressed bytes held.
    pub compressed_bytes: u64,
    /// Most compressed bytes ever held.
    pub peak_compressed_bytes: u64,
    /// Chunks with a record on disk (including those promoted back to RAM, which keep it).
    pub disk_chunks: u64,
    /// Bytes of live records on disk.
    pub disk_bytes: u64,
    /// Bytes of the spill files that exist now (live and dead records).
    pub spill_file_bytes: u64,
    /// Budget bytes held now as scratch for compressing victims of a full budget (see
    /// [`ChunkStore::demote_with`]).
    #[serde(default)]
    pub scratch_bytes: u64,
    /// Uncompressed bytes that went into the compressed tier.
    pub bytes_compressed: u64,
    /// Compressed bytes those became.
    pub compressed_output_bytes: u64,
    /// Bytes decompressed back.
    pub bytes_decompressed: u64,
    /// Bytes written to spill files.
    pub bytes_spilled: u64,
    /// Bytes read back from spill files.
    pub bytes_read_back: u64,
}

impl StoreStats {
    /// Uncompressed over compressed bytes of everything that went into the compressed tier
    /// (1.0 when nothing did).
    ///
    /// ```
    /// let s = spillway::store::StoreStats { bytes_compressed: 300, compressed_output_bytes: 200,
    ///     ..Default::default() };
    /// assert_eq!(s.compression_ratio(), 1.5);
    /// ```
    pub fn compression_ratio(&self) -> f64 {
        if self.compressed_output_bytes == 0 {
            1.0
        } else {
            self.bytes_compressed as f64 / self.compressed_output_bytes as f64
        }
    }
}

/// Chunks keyed by [`ChunkKey`], kept within a [`MemoryBudget`].
///
/// ```
/// use std::sync::Arc;
/// use spillway::{ChunkData, DType, MemoryBudget};
/// use spillway::store::{ChunkKey, ChunkStore, StoreConfig, Tier};
/// let store = ChunkStore::new(MemoryBudget::new(1 << 20), StoreConfig::default()).unwrap();
/// let k = ChunkKey::fresh();
/// store.put(k, Arc::new(ChunkData::zeros(DType::F64, &[10]))).unwrap();
/// assert_eq!(store.get(k).unwrap().len(), 10);
///
/// // A chunk larger than the whole budget goes straight to disk, and reads back.
/// let big = ChunkKey::fresh();
/// assert_eq!(store.put(big, Arc::new(ChunkData::zeros(DType::F64, &[200_000]))).unwrap(), Tier::Disk);
/// assert_eq!(store.get(big).unwrap().len(), 200_000);
/// assert!(store.remove(k));
/// ```
pub struct ChunkStore {
    budget: MemoryBudget,
    config: StoreConfig,
    // Declared before `disk`: entries (and their spill records) drop before the spill folder.
    inner: Mutex<Index>,
    disk: DiskTier,
    /// Where the buffers of chunks leaving RAM go, with the reservation that paid for them,
    /// and where reads from lower tiers take their buffers (the session's chunk pool).
    recycler: OnceLock<Arc<ChunkPool>>,
    /// Budget bytes the store keeps for building compressed copies when the budget is full
    /// (see [`demote_by`](Self::demote_by)): without them, every victim of a full budget would
    /// go to disk raw. Given up when nothing else can be freed.
    scratch: Mutex<Option<Reservation>>,
}

/// At most this much scratch for compressing victims (and at most 1/32 of the limit).
const SCRATCH_BYTES: u64 = 8 << 20;

/// A chunk's spill record written ahead of storing it ([`ChunkStore::spill_copy`]); dropping
/// it unused frees the record's space.
pub(crate) struct SpillCopy(Arc<SpillRecord>);

/// Where a demoted hot chunk went, before it is published.
enum Encoded {
    Compressed(Blob),
    Spilled(Arc<SpillRecord>),
}

/// What a read decodes from, taken out under the lock.
enum Source {
    Blob(Arc<Blob>),
    Disk(Arc<SpillRecord>),
}

impl ChunkStore {
    /// An empty store drawing on `budget`. Creates its private spill folder right away, so a
    /// missing or read-only `spill_dir` is reported here rather than in the middle of a
    /// computation.
    ///
    /// # Errors
    /// [`Error::Io`] when the spill folder cannot be created; [`Error::InvalidConfig`] for a
    /// compression level zstd does not have, a negative or NaN `min_compression_ratio`, or a
    /// zero `spill_file_bytes`.
    pub fn new(budget: MemoryBudget, config: StoreConfig) -> Result<ChunkStore> {
        let levels = zstd::compression_level_range();
        if !levels.contains(&config.compression_level) {
            return Err(Error::InvalidConfig {
                setting: "compression_level",
                reason: format!(
                    "{} is not a zstd level ({}..={})",
                    config.compression_level,
                    levels.start(),
                    levels.end()
                ),
            });
        }
        if config.min_compression_ratio.is_nan() || config.min_compression_ratio < 0.0 {
            return Err(Error::InvalidConfig {
                setting: "min_compression_ratio",
                reason: format!(
                    "{} is not a ratio of at least 0",
                    config.min_compression_ratio
                ),
            });
        }
        if config.spill_file_bytes == 0 {
            return Err(Error::InvalidConfig {
                setting: "spill_file_bytes",
                reason: "must be at least 1 byte".into(),
            });
        }
        let disk = DiskTier::new(
            config.spill_dir.as_deref(),
            config.max_spill_bytes,
            config.spill_file_bytes,
            config.spill_read,
        )?;
        Ok(ChunkStore {
            budget,
            config,
            inner: Mutex::new(Index::new()),
            disk,
            recycler: OnceLock::new(),
            scratch: Mutex::new(None),
        })
    }

    /// Hands the buffers of chunks that leave RAM to `pool` (with their reservations) instead
    /// of freeing them, and reads lower tiers into the pool's buffers: on machines where the
    /// first touch of fresh pages is slow, a spilling run then reuses warm memory.
    pub(crate) fn set_recycler(&self, pool: Arc<ChunkPool>) {
        let _ = self.recycler.set(pool);
    }

    /// Frees a RAM copy that left the store, or hands its buffer to the recycler when nothing
    /// else holds it.
    fn let_go(&self, ram: Ram) {
        if let (Ram::Hot(hot), Some(pool)) = (ram, self.recycler.get())
            && let Ok(chunk) = Arc::try_unwrap(hot.chunk)
        {
            pool.keep(chunk, hot.reservation);
        }
    }

    /// A block to decode a chunk of `dtype` and `shape` into, on one of the recycler's warm
    /// buffers when it has one; `None` when the pool would not take such a block at all.
    fn pooled_block(&self, dtype: DType, shape: &[usize]) -> Option<ChunkData> {
        let bytes = shape.iter().product::<usize>() as u64 * dtype.size_bytes() as u64;
        self.recycler
            .get()
            .filter(|p| p.wants(bytes))
            .map(|p| p.zeros(dtype, shape))
    }

    /// Gives the compression scratch back to the budget (the end of a run, an empty store).
    pub(crate) fn release_scratch(&self) {
        let r = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(r);
    }

    /// Puts back up to `borrowed` bytes of `r` into the scratch; the rest of `r` returns to
    /// the budget.
    fn refill_scratch(&self, mut r: Reservation, borrowed: u64) {
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let keep = borrowed.min(r.bytes());
        if keep > 0 {
            let k = r.split(keep).expect("within the reservation");
            match scratch.as_mut() {
                Some(s) => s.merge(k),
                None => *scratch = Some(k),
            }
        }
    }

    fn scratch_bytes(&self) -> u64 {
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, Reservation::bytes)
    }

    /// The budget the store draws on.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The private folder holding the spill files; it is removed when the store drops.
    pub fn spill_path(&self) -> &Path {
        self.disk.path()
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a chunk, replacing any chunk under `key`. It goes to the hot tier, reserving its
    /// bytes from the budget; when the budget is short, unpinned chunks are demoted first
    /// (least recently used first). A chunk that still cannot be held in RAM (say, larger than
    /// the budget, or the budget is held by pinned chunks and running tasks) is written
    /// straight to disk. Returns the tier it went to.
    ///
    /// # Errors
    /// [`Error::Io`] when a spill file cannot be written, [`Error::SpillLimitExceeded`] when
    /// `max_spill_bytes` would be passed. Every chunk stored before stays readable; on error
    /// `key` holds nothing.
    pub fn put(&self, key: ChunkKey, chunk: Arc<ChunkData>) -> Result<Tier> {
        let bytes = chunk.nbytes();
        let old = self.lock().remove(key);
        drop(old);
        if bytes <= self.budget.limit_bytes() {
            // A few rounds: workers demoting in parallel may take the bytes freed for us.
            for _ in 0..4 {
                if let Ok(r) = self.budget.try_reserve(bytes) {
                    self.insert_hot(key, chunk, r, None);
                    return Ok(Tier::Hot);
                }
                let short = bytes.saturating_sub(self.budget.available_bytes()).max(1);
                if self.demote_by(short, None, true)? == 0 {
                    break;
                }
            }
            if let Ok(r) = self.budget.try_reserve(bytes) {
                self.insert_hot(key, chunk, r, None);
                return Ok(Tier::Hot);
            }
        }
        let rec = self.write_raw(key, &chunk)?;
        let spilled = rec.len();
        let mut idx = self.lock();
        idx.stats.bytes_spilled += spilled;
        let old = idx.insert(
            key,
            Entry {
                ram: Ram::Empty,
                disk: Some(rec),
                pins: 0,
                claimed: false,
                version: 0,
            },
        );
        drop(idx);
        drop(old);
        Ok(Tier::Disk)
    }

    /// Stores a chunk in the hot tier with bytes the caller has already reserved; any excess
    /// of the reservation over the chunk's bytes goes back to the budget.
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] when the reservation is smaller than the chunk and the
    /// difference cannot be reserved.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spillway::{ChunkData, DType, MemoryBudget};
    /// use spillway::store::{ChunkKey, ChunkStore, StoreConfig};
    /// let budget = MemoryBudget::new(1000);
    /// let store = ChunkStore::new(budget.clone(), StoreConfig::default()).unwrap();
    /// let r = budget.try_reserve(500).unwrap();
    /// store.put_reserved(ChunkKey::fresh(), Arc::new(ChunkData::zeros(DType::I32, &[10])), r).unwrap();
    /// assert_eq!(budget.reserved_bytes(), 40);
    /// ```
    pub fn put_reserved(
        &self,
        key: ChunkKey,
        chunk: Arc<ChunkData>,
        reservation: Reservation,
    ) -> Result<()> {
        self.put_reserved_with(key, chunk, reservation, None)
    }

    /// Writes a chunk's bytes to a spill record now, on the calling thread, for a chunk that
    /// is about to be stored and is expected to be demoted later (see
    /// [`put_reserved_with`](Self::put_reserved_with)): the write then happens
    /// on a worker, in parallel with other work, and the demotion is only a drop.
    ///
    /// # Errors
    /// As the disk tier's writes in [`put`](Self::put).
    pub(crate) fn spill_copy(&self, key: ChunkKey, chunk: &ChunkData) -> Result<SpillCopy> {
        self.write_raw(key, chunk).map(SpillCopy)
    }

    /// Writes a chunk's elements as they are to a spill record.
    fn write_raw(&self, key: ChunkKey, chunk: &ChunkData) -> Result<Arc<SpillRecord>> {
        let raw = chunk_bytes(chunk);
        self.disk
            .write(key.0, chunk.dtype(), chunk.shape(), Payload::Raw(&raw))
    }

    /// [`put_reserved`](Self::put_reserved), with a copy made by
    /// [`spill_copy`](Self::spill_copy) already on disk when one is given: demoting the chunk
    /// later frees its RAM without writing anything.
    pub(crate) fn put_reserved_with(
        &self,
        key: ChunkKey,
        chunk: Arc<ChunkData>,
        mut reservation: Reservation,
        copy: Option<SpillCopy>,
    ) -> Result<()> {
        let bytes = chunk.nbytes();
        if reservation.bytes() < bytes {
            reservation.try_grow(bytes - reservation.bytes())?;
        }
        reservation.shrink(reservation.bytes() - bytes);
        self.insert_hot(key, chunk, reservation, copy.map(|c| c.0));
        Ok(())
    }

    fn insert_hot(
        &self,
        key: ChunkKey,
        chunk: Arc<ChunkData>,
        reservation: Reservation,
        disk: Option<Arc<SpillRecord>>,
    ) {
        let spilled = disk.as_ref().map_or(0, |r| r.len());
        let entry = Entry {
            ram: Ram::Hot(HotChunk { chunk, reservation }),
            disk,
            pins: 0,
            claimed: false,
            version: 0,
        };
        let mut idx = self.lock();
        idx.stats.bytes_spilled += spilled;
        let old = idx.insert(key, entry);
        drop(idx);
        drop(old);
    }

    /// The chunk under `key`, marking it recently used. A chunk in the compressed or disk tier
    /// is decoded outside the lock and promoted to hot if the budget has room for it right now
    /// (no other chunk is demoted for it); otherwise the decoded chunk is returned without
    /// being kept, and the caller accounts for it.
    ///
    /// # Errors
    /// [`Error::MissingChunk`] when the key is not stored; [`Error::CorruptSpill`] when its
    /// compressed or spilled bytes fail their checks; [`Error::Io`] when the spill file cannot
    /// be read.
    pub fn get(&self, key: ChunkKey) -> Result<Arc<ChunkData>> {
        self.fetch(key, true)
    }

    /// The chunk under `key`, without changing its recency or its tier.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn peek(&self, key: ChunkKey) -> Result<Arc<ChunkData>> {
        self.fetch(key, false)
    }

    fn fetch(&self, key: ChunkKey, promote: bool) -> Result<Arc<ChunkData>> {
        let (source, version) = {
            let mut idx = self.lock();
            let e = idx.find(key, promote).ok_or(Error::MissingChunk(key.0))?;
            let source = match &e.ram {
                Ram::Hot(h) => return Ok(Arc::clone(&h.chunk)),
                Ram::Compressed(c) => Source::Blob(Arc::clone(&c.blob)),
                Ram::Empty => Source::Disk(Arc::clone(
                    e.disk
                        .as_ref()
                        .expect("an entry without RAM copy is on disk"),
                )),
            };
            (source, e.version)
        };
        let chunk = Arc::new(match &source {
            Source::Blob(b) => b.decode_into(key.0, self.pooled_block(b.dtype, &b.shape))?,
            Source::Disk(r) => {
                let h = &r.header;
                self.disk
                    .read_into(r, self.pooled_block(h.dtype, &h.shape))?
            }
        });
        let promoted = if promote {
            self.budget.try_reserve(chunk.nbytes()).ok()
        } else {
            None
        };
        let mut idx = self.lock();
        match &source {
            Source::Blob(b) => idx.stats.bytes_decompressed += b.raw_len,
            Source::Disk(r) => idx.stats.bytes_read_back += r.len(),
        }
        if let Some(reservation) = promoted {
            let current = idx
                .peek(key)
                .is_some_and(|e| e.version == version && !matches!(e.ram, Ram::Hot(_)));
            if current {
                let hot = HotChunk {
                    chunk: Arc::clone(&chunk),
                    reservation,
                };
                let old = idx.update(key, |e| std::mem::replace(&mut e.ram, Ram::Hot(hot)));
                drop(idx);
                drop(old);
            }
        }
        Ok(chunk)
    }

    /// Where the chunk under `key` lives, if it is stored.
    pub fn tier_of(&self, key: ChunkKey) -> Option<Tier> {
        self.lock().peek(key).map(Entry::tier)
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: ChunkKey) -> bool {
        self.tier_of(key).is_some()
    }

    /// Keeps the chunk from being demoted until a matching [`unpin`](Self::unpin). Pins
    /// count: a chunk pinned twice needs two unpins.
    ///
    /// # Errors
    /// [`Error::MissingChunk`] when the key is not stored.
    pub fn pin(&self, key: ChunkKey) -> Result<()> {
        let mut idx = self.lock();
        let e = idx.find(key, false).ok_or(Error::MissingChunk(key.0))?;
        e.pins += 1;
        Ok(())
    }

    /// Undoes one [`pin`](Self::pin) (nothing if the chunk is not pinned or not stored).
    pub fn unpin(&self, key: ChunkKey) {
        if let Some(e) = self.lock().find(key, false) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Removes the chunk, freeing its RAM and its spill record; `false` if it was not stored.
    pub fn remove(&self, key: ChunkKey) -> bool {
        let (old, empty) = {
            let mut idx = self.lock();
            let old = idx.remove(key);
            (old, idx.stats.chunks == 0)
        };
        if empty {
            self.release_scratch();
        }
        // Dropped outside the lock: freeing a large chunk or deleting an emptied spill file
        // takes a syscall.
        match old {
            Some(e) => {
                self.let_go(e.ram);
                true
            }
            None => false,
        }
    }

    /// Frees at least `bytes` of RAM by demoting unpinned chunks, least recently used first:
    /// hot chunks to the compressed tier (or to disk when they compress poorly), then, if RAM
    /// is still short, compressed chunks to disk. Returns the bytes freed (less than asked
    /// when nothing more can move).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::SpillLimitExceeded`] from the disk tier; the chunk being
    /// moved then stays where it was, readable.
    pub fn demote(&self, bytes: u64) -> Result<u64> {
        self.demote_by(bytes, None, false)
    }

    /// Like [`demote`](Self::demote), but chooses victims by their next use: `next_use(key)`
    /// gives the position in the schedule of a chunk's next read (`None`: not read again in
    /// the current plan). Chunks never read again go first, then the farthest next use.
    /// `next_use` is called with the store's lock held and must not call the store.
    ///
    /// Unlike `demote`, it also frees a little more than asked (up to 1/32 of the limit, at
    /// most 8 MiB) and keeps that as scratch: with it, later victims of a full budget can
    /// still be compressed instead of going to disk raw. The scratch is not counted in the
    /// returned bytes, and it is given back when nothing else can be freed, when the store
    /// empties, and at the end of each run.
    ///
    /// # Errors
    /// As [`demote`](Self::demote).
    pub fn demote_with(
        &self,
        bytes: u64,
        next_use: &dyn Fn(ChunkKey) -> Option<u64>,
    ) -> Result<u64> {
        self.demote_by(bytes, Some(next_use), true)
    }

    fn demote_by(
        &self,
        bytes: u64,
        next_use: Option<&dyn Fn(ChunkKey) -> Option<u64>>,
        keep_scratch: bool,
    ) -> Result<u64> {
        let mut freed = 0;
        // Free the scratch's worth more than asked and keep it: the next victims can then be
        // compressed even though the budget is full.
        let scratch_goal = if keep_scratch {
            SCRATCH_BYTES.min(self.budget.limit_bytes() / 32)
        } else {
            0
        };
        let scratch_held = self.scratch_bytes();
        let want = bytes.saturating_add(scratch_goal.saturating_sub(scratch_held));
        for pass in [Pass::Hot, Pass::Compressed] {
            if freed >= want {
                break;
            }
            // One ranking per pass; a victim claimed meanwhile by another thread is skipped.
            let victims = self.lock().victims(pass, next_use);
            for key in victims {
                if freed >= want {
                    break;
                }
                let claim = self.lock().claim_key(key);
                if let Some(c) = claim {
                    freed += self.carry_out(c)?;
                }
            }
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if freed < bytes {
            // Nothing more can move: the scratch goes back too.
            if let Some(r) = scratch.take() {
                freed += r.bytes();
            }
        } else {
            let held = scratch.as_ref().map_or(0, Reservation::bytes);
            let extra = scratch_goal
                .saturating_sub(held)
                .min(freed - bytes)
                .min(self.budget.available_bytes());
            if extra > 0
                && let Ok(r) = self.budget.try_reserve(extra)
            {
                match scratch.as_mut() {
                    Some(s) => s.merge(r),
                    None => *scratch = Some(r),
                }
                freed -= extra;
            }
        }
        Ok(freed)
    }

    /// Moves one chunk one tier down whatever the budget: hot to compressed (or to disk when
    /// its sample compresses less than `min_compression_ratio`, or the compressed tier is
    /// off), compressed to disk. A pinned chunk, or one on disk already, stays. Returns the
    /// tier the chunk is in afterwards.
    ///
    /// # Errors
    /// [`Error::MissingChunk`] when the key is not stored; disk errors as in
    /// [`demote`](Self::demote).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spillway::{ChunkData, DType, MemoryBudget};
    /// use spillway::store::{ChunkKey, ChunkStore, StoreConfig, Tier};
    /// let store = ChunkStore::new(MemoryBudget::new(1 << 20), StoreConfig::default()).unwrap();
    /// let k = ChunkKey::fresh();
    /// store.put(k, Arc::new(ChunkData::zeros(DType::F64, &[1000]))).unwrap();
    /// assert_eq!(store.demote_chunk(k).unwrap(), Tier::Compressed); // zeros compress well
    /// assert_eq!(store.demote_chunk(k).unwrap(), Tier::Disk);
    /// assert_eq!(store.get(k).unwrap().len(), 1000);
    /// ```
    pub fn demote_chunk(&self, key: ChunkKey) -> Result<Tier> {
        let claim = {
            let mut idx = self.lock();
            if idx.peek(key).is_none() {
                return Err(Error::MissingChunk(key.0));
            }
            idx.claim_key(key)
        };
        if let Some(c) = claim {
            self.carry_out(c)?;
        }
        self.tier_of(key).ok_or(Error::MissingChunk(key.0))
    }

    /// Encodes a claimed victim outside the lock and publishes it; returns the RAM bytes freed.
    fn carry_out(&self, claim: Claim) -> Result<u64> {
        let (key, version, victim) = match claim {
            Claim::Dropped(freed, ram) => {
                self.let_go(ram);
                return Ok(freed);
            }
            Claim::Encode {
                key,
                version,
                victim,
            } => (key, version, victim),
        };
        let result = self.encode_and_publish(key, version, victim);
        if result.is_err() {
            self.lock().unclaim(key, version);
        }
        result
    }

    fn encode_and_publish(&self, key: ChunkKey, version: u64, victim: Victim) -> Result<u64> {
        let cfg = &self.config;
        match victim {
            Victim::Hot(chunk) => {
                let nbytes = chunk.nbytes();
                // The compressed copy is built while the hot copy still holds its bytes: its
                // RAM is reserved as zstd writes it, so it fits whatever the sample guessed,
                // and when the budget runs out first the chunk is spilled raw instead (that
                // needs no copy).
                let mut transient = self.budget.empty_reservation();
                let mut borrowed = 0;
                let blob = if cfg.compressed_tier
                    && worth_compressing(&chunk, cfg.compression_level, cfg.min_compression_ratio)
                        .is_some()
                {
                    // Borrowed for this compression; other demotions meanwhile spill raw.
                    let mut scratch = self
                        .scratch
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    let blob = Blob::encode_within(
                        &chunk,
                        cfg.compression_level,
                        nbytes as usize,
                        &mut |more| {
                            transient.try_grow(more).is_ok()
                                || scratch
                                    .as_mut()
                                    .and_then(|s| s.split(more).ok())
                                    .map(|r| transient.merge(r))
                                    .is_some()
                        },
                    )?;
                    if let Some(r) = scratch {
                        borrowed = r.bytes();
                        transient.merge(r);
                    }
                    blob
                } else {
                    None
                };
                // `transient` lives until the end of this arm, past the publish below.
                // A copy exists only when it came out smaller than the chunk.
                let done = match blob {
                    Some(b) if b.ratio() >= cfg.min_compression_ratio => Encoded::Compressed(b),
                    // The sample was right to try but the whole chunk compresses too little to
                    // keep in RAM: its compressed bytes are still the smaller write.
                    Some(b) => self
                        .disk
                        .write(
                            key.0,
                            b.dtype,
                            &b.shape,
                            Payload::Zstd {
                                bytes: &b.bytes,
                                raw_len: b.raw_len,
                            },
                        )
                        .map(Encoded::Spilled)?,
                    None => Encoded::Spilled(self.write_raw(key, &chunk)?),
                };
                // The victim's handle goes before publishing, so that the store's copy is the
                // last one and its buffer can be recycled.
                drop(chunk);
                let freed = match done {
                    Encoded::Compressed(b) => self.publish_compressed(key, version, b),
                    Encoded::Spilled(rec) => self.publish_disk(key, version, rec),
                };
                // The copy is published (its bytes came out of the chunk's own reservation):
                // the transient bytes refill the scratch, the rest goes back to the budget.
                self.refill_scratch(transient, borrowed);
                Ok(freed)
            }
            Victim::Compressed(b) => {
                let rec = self.disk.write(
                    key.0,
                    b.dtype,
                    &b.shape,
                    Payload::Zstd {
                        bytes: &b.bytes,
                        raw_len: b.raw_len,
                    },
                )?;
                Ok(self.publish_disk(key, version, rec))
            }
        }
    }

    fn publish_compressed(&self, key: ChunkKey, version: u64, blob: Blob) -> u64 {
        let mut idx = self.lock();
        if !idx.can_publish(key, version) {
            return 0;
        }
        let (raw_len, len) = (blob.raw_len, blob.len());
        let blob = Arc::new(blob);
        let old = idx.update(key, |e| {
            let old = std::mem::replace(&mut e.ram, Ram::Empty);
            let Ram::Hot(mut hot) = old else {
                e.ram = old;
                return None;
            };
            // The compressed copy's bytes come out of the hot reservation; the rest goes back.
            let reservation = hot
                .reservation
                .split(len)
                .expect("the compressed copy is smaller than the chunk");
            let freed = hot.reservation.bytes();
            e.ram = Ram::Compressed(CompressedChunk { blob, reservation });
            Some((hot, freed))
        });
        let Some(Some((hot, freed))) = old else {
            return 0;
        };
        idx.stats.bytes_compressed += raw_len;
        idx.stats.compressed_output_bytes += len;
        drop(idx);
        self.let_go(Ram::Hot(hot));
        freed
    }

    fn publish_disk(&self, key: ChunkKey, version: u64, rec: Arc<SpillRecord>) -> u64 {
        let mut idx = self.lock();
        if !idx.can_publish(key, version) {
            drop(idx);
            return 0;
        }
        idx.stats.bytes_spilled += rec.len();
        let old = idx.update(key, |e| {
            let freed = e.ram_bytes();
            e.disk = Some(rec);
            (std::mem::replace(&mut e.ram, Ram::Empty), freed)
        });
        drop(idx);
        old.map_or(0, |(ram, freed)| {
            self.let_go(ram);
            freed
        })
    }

    /// What the store holds and has done.
    pub fn stats(&self) -> StoreStats {
        let mut s = self.lock().stats.clone();
        s.spill_file_bytes = self.disk.file_bytes();
        s.scratch_bytes = self.scratch_bytes();
        s
    }
}
