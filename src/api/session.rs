//! Sessions: the memory budget, thread pool and chunk store a computation runs with.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::exec::{RunObserver, RunStats};
use crate::memory::{MemoryBudget, parse_bytes};
use crate::report::progress::ProgressBarObserver;
use crate::report::{ProgressMode, RunReport};
use crate::store::{ChunkStore, StoreConfig};

/// A memory size given as bytes or as a string such as `"2GB"` or `"1.5 GiB"`.
///
/// ```
/// use spillway::MemoryLimit;
/// let a: MemoryLimit = "512MiB".into();
/// let b: MemoryLimit = (512u64 << 20).into();
/// assert_eq!(a.bytes().unwrap(), b.bytes().unwrap());
/// ```
#[derive(Clone, Debug)]
pub enum MemoryLimit {
    /// A number of bytes.
    Bytes(u64),
    /// A size string, parsed by [`parse_bytes`](crate::parse_bytes).
    Text(String),
}

impl MemoryLimit {
    /// The size in bytes.
    ///
    /// # Errors
    /// [`Error::InvalidMemoryLimit`] when the text does not parse or the size is zero.
    pub fn bytes(&self) -> Result<u64> {
        match self {
            MemoryLimit::Bytes(0) => Err(Error::InvalidMemoryLimit {
                input: "0".into(),
                reason: "the size must be at least one byte".into(),
            }),
            MemoryLimit::Bytes(b) => Ok(*b),
            MemoryLimit::Text(s) => parse_bytes(s),
        }
    }
}

impl From<u64> for MemoryLimit {
    fn from(b: u64) -> Self {
        MemoryLimit::Bytes(b)
    }
}
impl From<usize> for MemoryLimit {
    fn from(b: usize) -> Self {
        MemoryLimit::Bytes(b as u64)
    }
}
impl From<&str> for MemoryLimit {
    fn from(s: &str) -> Self {
        MemoryLimit::Text(s.to_string())
    }
}
impl From<String> for MemoryLimit {
    fn from(s: String) -> Self {
        MemoryLimit::Text(s)
    }
}

/// Builds a [`Session`]; every setting has a default.
///
/// ```
/// let s = spillway::Session::builder().memory_limit("256MiB").threads(2).build().unwrap();
/// assert_eq!(s.memory_limit_bytes(), 256 << 20);
/// assert_eq!(s.threads(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct SessionBuilder {
    memory_limit: Option<MemoryLimit>,
    threads: Option<usize>,
    spill_dir: Option<PathBuf>,
    chunk_target_bytes: Option<MemoryLimit>,
    max_result_fraction: Option<f64>,
    fuse: Option<bool>,
    optimize: Option<bool>,
    tile_bytes: Option<usize>,
    compressed_tier: Option<bool>,
    compression_level: Option<i32>,
    max_spill_bytes: Option<u64>,
    observer: Option<Arc<dyn RunObserver>>,
    progress: Option<ProgressMode>,
    record_timeline: Option<bool>,
    tune_allocator: Option<bool>,
}

impl std::fmt::Debug for dyn RunObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunObserver")
    }
}

impl SessionBuilder {
    /// Receives progress of every run of the session (a logger, a progress display of your
    /// own); it runs next to the progress bar of [`with_progress`](Self::with_progress).
    pub fn observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A progress bar on stderr for every compute, persist and write: tasks done of total,
    /// tasks per second, ETA, memory reserved per tier, bytes spilled and the OS's RSS.
    /// `true` draws it when stderr is a terminal, [`ProgressMode::Always`] also when it is not
    /// (one plain line a second); default off.
    ///
    /// ```
    /// use spillway::{ProgressMode, Session};
    /// let s = Session::builder().with_progress(true).build()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?; // silent unless a terminal
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn with_progress(mut self, mode: impl Into<ProgressMode>) -> Self {
        self.progress = Some(mode.into());
        self
    }

    /// Whether each run keeps its memory timeline and task stream for
    /// [`Session::last_run_report`] (default true). Recording costs a `/proc` read every
    /// 50 ms and a small record per task; off, the report still has the run's figures.
    ///
    /// ```
    /// let s = spillway::Session::builder().record_timeline(false).build()?;
    /// s.ones::<f64>(&[1_000], [100])?.sum(None)?.compute_scalar::<f64>()?;
    /// let r = s.last_run_report().unwrap();
    /// assert!(r.stats.samples.is_empty() && r.stats.task_records.is_empty());
    /// assert_eq!(r.stats.tasks, r.stats.tasks_total);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn record_timeline(mut self, on: bool) -> Self {
        self.record_timeline = Some(on);
        self
    }

    /// The hard memory budget of everything the engine holds (default: half of the machine's RAM).
    pub fn memory_limit(mut self, limit: impl Into<MemoryLimit>) -> Self {
        self.memory_limit = Some(limit.into());
        self
    }

    /// Worker threads (default: all cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Folder for spill files (default: the system temp dir).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Target size of automatically chosen chunks (default 128 MiB).
    pub fn chunk_target_bytes(mut self, size: impl Into<MemoryLimit>) -> Self {
        self.chunk_target_bytes = Some(size.into());
        self
    }

    /// Largest share of the memory limit `compute()` may return in RAM (default 0.5).
    pub fn max_result_fraction(mut self, f: f64) -> Self {
        self.max_result_fraction = Some(f);
        self
    }

    /// Whether chains of element-wise operations are fused into tiled tasks (default true).
    pub fn fuse(mut self, on: bool) -> Self {
        self.fuse = Some(on);
        self
    }

    /// Whether the graph is optimised before lowering — common subexpressions merged, no-op
    /// nodes culled, element-wise chains fused (default true). Off gives the plan Dask would
    /// run, one task per operation and chunk: for comparison and debugging.
    pub fn optimize(mut self, on: bool) -> Self {
        self.optimize = Some(on);
        self
    }

    /// Bytes of one tile of a fused task (default 256 KiB).
    pub fn tile_bytes(mut self, bytes: usize) -> Self {
        self.tile_bytes = Some(bytes);
        self
    }

    /// Whether the store's compressed RAM tier is used (default true).
    pub fn compressed_tier(mut self, on: bool) -> Self {
        self.compressed_tier = Some(on);
        self
    }

    /// zstd level of the compressed tier (default 1).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.compression_level = Some(level);
        self
    }

    /// Whether building the session fixes glibc malloc's mmap threshold at 1 MiB and its
    /// trim threshold at 4 MiB, for the whole process (default true; nothing happens on
    /// other allocators).
    ///
    /// glibc raises the threshold after the first large free, up to 32 MiB; from then on,
    /// chunk-sized buffers come from the heap, and the holes they leave when freed stay
    /// resident. Measured on W5 (a 4 GB rechunk under 512 MiB): peak RSS 630 MiB with
    /// glibc's default, 512 MiB with the threshold fixed. Buffers of 1 MiB and more then
    /// go back to the kernel when freed, so peak RSS follows the budget.
    pub fn tune_allocator(mut self, on: bool) -> Self {
        self.tune_allocator = Some(on);
        self
    }

    /// A cap on bytes written to spill files (default: none).
    pub fn max_spill_bytes(mut self, bytes: u64) -> Self {
        self.max_spill_bytes = Some(bytes);
        self
    }

    /// Checks the settings and starts the session's thread pool and store.
    ///
    /// # Errors
    /// [`Error::InvalidMemoryLimit`] or [`Error::InvalidConfig`] for a bad setting.
    ///
    /// ```
    /// assert!(spillway::Session::builder().threads(0).build().is_err());
    /// ```
    pub fn build(self) -> Result<Session> {
        let memory_limit = match &self.memory_limit {
            Some(l) => l.bytes()?,
            None => default_memory_limit(),
        };
        let threads = match self.threads {
            Some(0) => {
                return Err(Error::InvalidConfig {
                    setting: "threads",
                    reason: "must be at least 1".into(),
                });
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        let chunk_target_bytes = match &self.chunk_target_bytes {
            Some(l) => l.bytes()?,
            None => 128 << 20,
        };
        let max_result_fraction = self.max_result_fraction.unwrap_or(0.5);
        if !(max_result_fraction > 0.0 && max_result_fraction <= 1.0) {
            return Err(Error::InvalidConfig {
                setting: "max_result_fraction",
                reason: format!("must be in (0, 1], got {max_result_fraction}"),
            });
        }
        let tile_bytes = self.tile_bytes.unwrap_or(256 << 10);
        if tile_bytes < 64 {
            return Err(Error::InvalidConfig {
                setting: "tile_bytes",
                reason: format!("must be at least 64, got {tile_bytes}"),
            });
        }
        let level = self.compression_level.unwrap_or(1);
        if !(-7..=22).contains(&level) {
            return Err(Error::InvalidConfig {
                setting: "compression_level",
                reason: format!("zstd levels are -7..=22, got {level}"),
            });
        }
        if let Some(d) = &self.spill_dir
            && !d.is_dir()
        {
            return Err(Error::InvalidConfig {
                setting: "spill_dir",
                reason: format!("{} is not an existing folder", d.display()),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("spillway-{i}"))
            .build()
            .map_err(|e| Error::InvalidConfig {
                setting: "threads",
                reason: e.to_string(),
            })?;
        if self.tune_allocator.unwrap_or(true) {
            crate::memory::fix_mmap_threshold();
        }
        let budget = MemoryBudget::new(memory_limit);
        let store_config = StoreConfig {
            compression_level: level,
            compressed_tier: self.compressed_tier.unwrap_or(true),
            spill_dir: self.spill_dir.clone(),
            max_spill_bytes: self.max_spill_bytes,
            ..StoreConfig::default()
        };
        let store = Arc::new(ChunkStore::new(budget.clone(), store_config)?);
        // Up to half the limit in reusable buffers: enough for a chunk being written while the
        // next is computed, and always inside the budget (pooled bytes are reserved).
        let buffers = Arc::new(crate::pool::ChunkPool::new(
            budget.clone(),
            memory_limit / 2,
        ));
        store.set_recycler(Arc::clone(&buffers));
        Ok(Session {
            inner: Arc::new(SessionInner {
                memory_limit,
                threads,
                chunk_target_bytes,
                max_result_fraction,
                fuse: self.fuse.unwrap_or(true),
                optimize: self.optimize.unwrap_or(true),
                tile_elems: (tile_bytes / 8).max(8),
                pool,
                budget: budget.clone(),
                store,
                buffers,
                last_report: Mutex::new(None),
                observers: self
                    .observer
                    .iter()
                    .cloned()
                    .chain(
                        ProgressBarObserver::for_mode(self.progress.unwrap_or_default())
                            .map(|o| Arc::new(o) as Arc<dyn RunObserver>),
                    )
                    .collect(),
                record_timeline: self.record_timeline.unwrap_or(true),
            }),
        })
    }
}

fn default_memory_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(8 << 30);
    total / 2
}

pub(crate) struct SessionInner {
    pub(crate) memory_limit: u64,
    pub(crate) threads: usize,
    pub(crate) chunk_target_bytes: u64,
    pub(crate) max_result_fraction: f64,
    pub(crate) fuse: bool,
    pub(crate) optimize: bool,
    pub(crate) tile_elems: usize,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) budget: MemoryBudget,
    pub(crate) store: Arc<ChunkStore>,
    pub(crate) buffers: Arc<crate::pool::ChunkPool>,
    pub(crate) last_report: Mutex<Option<RunReport>>,
    pub(crate) observers: Vec<Arc<dyn RunObserver>>,
    pub(crate) record_timeline: bool,
}

/// The context arrays are built and computed in: memory budget, thread pool and chunk store.
/// Cheap to clone; every clone shares the same budget and store.
///
/// ```
/// use spillway::Session;
/// let s = Session::builder().memory_limit("1GiB").build().unwrap();
/// let x = s.ones::<f64>(&[1000, 100], [250, 100]).unwrap();
/// assert_eq!(x.sum(None).unwrap().compute_scalar::<f64>().unwrap(), 100_000.0);
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("memory_limit", &self.inner.memory_limit)
            .field("threads", &self.inner.threads)
            .field("fuse", &self.inner.fuse)
            .finish()
    }
}

impl Session {
    /// A builder with every setting at its default.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// A session with default settings.
    ///
    /// # Errors
    /// As [`SessionBuilder::build`].
    pub fn new() -> Result<Session> {
        Session::builder().build()
    }

    /// The memory limit in bytes.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.inner.memory_limit
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Target bytes of automatic chunks.
    pub fn chunk_target_bytes(&self) -> u64 {
        self.inner.chunk_target_bytes
    }

    /// Whether fusion is on.
    pub fn fuse(&self) -> bool {
        self.inner.fuse
    }

    /// The session's byte budget.
    pub fn budget(&self) -> &MemoryBudget {
        &self.inner.budget
    }

    /// Figures of the last finished computation, if any (the `stats` of
    /// [`last_run_report`](Self::last_run_report)).
    pub fn last_run(&self) -> Option<RunStats> {
        self.last_run_report().map(|r| r.stats)
    }

    /// What the last successful compute, persist or write did: its figures, memory timeline,
    /// task stream, plan and limit, as data, JSON or an HTML page with charts. `None` before
    /// the first run.
    ///
    /// ```
    /// let s = spillway::Session::builder().memory_limit("64MiB").build()?;
    /// assert!(s.last_run_report().is_none());
    /// let x = s.ones::<f64>(&[4_000, 100], [500, 100])?;
    /// x.mean(0)?.compute::<f64>()?;
    /// let r = s.last_run_report().unwrap();
    /// assert_eq!(r.description, "compute");
    /// assert_eq!(r.limit_bytes, 64 << 20);
    /// assert_eq!(r.stats.task_records.len(), r.stats.tasks_total);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    pub fn last_run_report(&self) -> Option<RunReport> {
        self.inner
            .last_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn same(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
