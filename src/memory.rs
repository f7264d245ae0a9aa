//! The byte budget every holder of memory draws from.
//!
//! A [`MemoryBudget`] belongs to a session. Whoever keeps bytes alive — a running task for its
//! output and scratch, the store for hot and compressed chunks — holds a [`Reservation`] for
//! them. A reservation returns its bytes when it is dropped (RAII, as DataFusion's
//! `MemoryReservation`), so a failed task or an evicted chunk can never leak budget.
//!
//! The budget is the engine's own account; the process's real peak RSS is measured separately
//! from the OS (see `benches/` and `tests/rss.rs`), because accounting alone can drift from it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

struct BudgetInner {
    limit: u64,
    reserved: AtomicU64,
    peak: AtomicU64,
}

/// A shared byte budget with a hard limit.
///
/// ```
/// use spillway::MemoryBudget;
/// let budget = MemoryBudget::new(1000);
/// let r = budget.try_reserve(600).unwrap();
/// assert!(budget.try_reserve(600).is_err());
/// assert_eq!(budget.reserved_bytes(), 600);
/// drop(r);
/// assert_eq!(budget.reserved_bytes(), 0);
/// assert_eq!(budget.peak_bytes(), 600);
/// ```
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<BudgetInner>,
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit_bytes())
            .field("reserved", &self.reserved_bytes())
            .field("peak", &self.peak_bytes())
            .finish()
    }
}

impl MemoryBudget {
    /// A budget of `limit_bytes`.
    pub fn new(limit_bytes: u64) -> MemoryBudget {
        MemoryBudget {
            inner: Arc::new(BudgetInner {
                limit: limit_bytes,
                reserved: AtomicU64::new(0),
                peak: AtomicU64::new(0),
            }),
        }
    }

    /// The hard limit.
    pub fn limit_bytes(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn reserved_bytes(&self) -> u64 {
        self.inner.reserved.load(Ordering::Acquire)
    }

    /// The most bytes ever reserved at once.
    pub fn peak_bytes(&self) -> u64 {
        self.inner.peak.load(Ordering::Acquire)
    }

    /// Bytes that can still be reserved.
    pub fn available_bytes(&self) -> u64 {
        self.limit_bytes().saturating_sub(self.reserved_bytes())
    }

    /// Reserves `bytes`, or fails without reserving anything.
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] when fewer than `bytes` are available.
    ///
    /// ```
    /// let b = spillway::MemoryBudget::new(10);
    /// assert!(b.try_reserve(11).is_err());
    /// assert_eq!(b.try_reserve(10).unwrap().bytes(), 10);
    /// ```
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation> {
        self.try_add(bytes)?;
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// An empty reservation that can grow later.
    ///
    /// ```
    /// let b = spillway::MemoryBudget::new(10);
    /// let mut r = b.empty_reservation();
    /// r.try_grow(4).unwrap();
    /// assert_eq!(b.reserved_bytes(), 4);
    /// ```
    pub fn empty_reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn try_add(&self, bytes: u64) -> Result<()> {
        let inner = &self.inner;
        let mut cur = inner.reserved.load(Ordering::Acquire);
        loop {
            let next = cur.checked_add(bytes).filter(|&n| n <= inner.limit).ok_or(
                Error::BudgetExhausted {
                    requested: bytes,
                    available: inner.limit.saturating_sub(cur),
                    limit: inner.limit,
                },
            )?;
            match inner.reserved.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    inner.peak.fetch_max(next, Ordering::AcqRel);
                    return Ok(());
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn sub(&self, bytes: u64) {
        if bytes > 0 {
            self.inner.reserved.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// Whether two handles share one budget.
    pub fn same_budget(&self, other: &MemoryBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Bytes held against a [`MemoryBudget`]; returned to it on drop.
///
/// ```
/// let b = spillway::MemoryBudget::new(100);
/// let mut r = b.try_reserve(60).unwrap();
/// let part = r.split(20).unwrap();
/// assert_eq!((r.bytes(), part.bytes()), (40, 20));
/// r.shrink(40);
/// assert_eq!(b.reserved_bytes(), 20);
/// ```
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    bytes: u64,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The budget the bytes come from.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Holds `more` bytes in addition.
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] when they are not available; the reservation is unchanged.
    pub fn try_grow(&mut self, more: u64) -> Result<()> {
        self.budget.try_add(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Returns `less` bytes (at most all held) to the budget now.
    pub fn shrink(&mut self, less: u64) {
        let less = less.min(self.bytes);
        self.budget.sub(less);
        self.bytes -= less;
    }

    /// Moves `bytes` of this reservation into a new one (for handing bytes to another holder).
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] when this reservation holds fewer than `bytes`.
    pub fn split(&mut self, bytes: u64) -> Result<Reservation> {
        if bytes > self.bytes {
            return Err(Error::BudgetExhausted {
                requested: bytes,
                available: self.bytes,
                limit: self.budget.limit_bytes(),
            });
        }
        self.bytes -= bytes;
        Ok(Reservation {
            budget: self.budget.clone(),
            bytes,
        })
    }

    /// Takes over another reservation's bytes (both must come from the same budget).
    pub fn merge(&mut self, mut other: Reservation) {
        debug_assert!(self.budget.same_budget(&other.budget));
        self.bytes += other.bytes;
        other.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.sub(self.bytes);
    }
}

/// Parses a byte size such as `"2GB"`, `"1.5 GiB"`, `"512MiB"`, `"100kB"` or `"4096"`.
/// Decimal units (kB, MB, GB, TB) are powers of 1000, binary units (KiB, MiB, GiB, TiB)
/// powers of 1024, as in dask.
///
/// # Errors
/// [`Error::InvalidMemoryLimit`] for anything else, negative or zero sizes included.
///
/// ```
/// use spillway::parse_bytes;
/// assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
/// assert_eq!(parse_bytes("1.5 GiB").unwrap(), 1_610_612_736);
/// assert_eq!(parse_bytes("4096").unwrap(), 4096);
/// assert!(parse_bytes("-1GB").is_err());
/// ```
pub fn parse_bytes(input: &str) -> Result<u64> {
    let bad = |reason: &str| Error::InvalidMemoryLimit {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .trim()
        .parse()
        .map_err(|_| bad("expected a number followed by an optional unit such as MB or GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(bad(
                "unknown unit; use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB",
            ));
        }
    };
    let bytes = num * mult;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(bad("the size must be at least one byte"));
    }
    if bytes > u64::MAX as f64 {
        return Err(bad("the size is too large"));
    }
    Ok(bytes.round() as u64)
}

/// The process's current resident set in bytes (0 where `/proc` is unavailable).
///
/// ```
/// assert!(spillway::current_rss_bytes() > 0);
/// ```
pub fn current_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page_size())
        .unwrap_or(0)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// The process's peak resident set in bytes, as the kernel counts it (`ru_maxrss`).
///
/// ```
/// assert!(spillway::peak_rss_bytes() > 0);
/// ```
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0 {
            u.ru_maxrss as u64 * 1024
        } else {
            0
        }
    }
}

/// Fixes glibc malloc's mmap threshold at 1 MiB (once per process), so that freed chunk
/// buffers return to the kernel instead of staying resident as heap holes; see
/// [`SessionBuilder::tune_allocator`](crate::SessionBuilder::tune_allocator).
pub(crate) fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; M_MMAP_THRESHOLD takes a
            // byte count.
            // M_TRIM_THRESHOLD too: fixing the mmap threshold stops glibc from raising the
            // trim threshold along with it, and at its 128 KiB default the heap is shrunk and
            // regrown around every freed tile (measured on W1: 2 s of system time, 35% of the
            // run); 4 MiB keeps tile-sized churn in place and bounds what stays resident.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_reservations_never_exceed_limit() {
        let b = MemoryBudget::new(1000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if let Ok(r) = b.try_reserve(300) {
                            assert!(b.reserved_bytes() <= 1000);
                            drop(r);
                        }
                    }
                });
            }
        });
        assert_eq!(b.reserved_bytes(), 0);
        assert!(b.peak_bytes() <= 1000);
    }

    #[test]
    fn parse_units() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes(" 1 kB ").unwrap(), 1000);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}
