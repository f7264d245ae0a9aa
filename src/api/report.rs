//! What a plan projects and what the session holds.

use crate::api::session::Session;
use crate::memory::{current_rss_bytes, peak_rss_bytes};
use crate::plan::Lowered;
use crate::store::StoreStats;

/// A planned computation, inspectable before it runs.
///
/// ```
/// let s = spillway::Session::builder().memory_limit("1GiB").build().unwrap();
/// let x = s.ones::<f64>(&[1000, 1000], [100, 1000]).unwrap();
/// let plan = (&x * 2.0).mean(1).unwrap().plan().unwrap();
/// assert!(plan.num_tasks() >= 10);
/// println!("{}", plan.explain());
/// ```
pub struct Plan {
    pub(crate) lowered: Lowered,
}

impl Plan {
    /// Number of tasks.
    pub fn num_tasks(&self) -> usize {
        self.lowered.tasks.len()
    }

    /// Projected peak bytes of the run under the chosen order.
    pub fn projected_peak_bytes(&self) -> u64 {
        self.lowered.projected_peak_bytes
    }

    /// The largest projected bytes of one task.
    pub fn max_task_bytes(&self) -> u64 {
        self.lowered
            .tasks
            .iter()
            .map(|t| t.projected_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Number of stages (fused runs of operations ending in a reduction, persist or write).
    pub fn num_stages(&self) -> usize {
        self.lowered.stages.len()
    }

    /// A readable description: stages, their task counts and projected bytes, what was fused.
    pub fn explain(&self) -> String {
        self.lowered.explain()
    }

    /// The expression graph before and after optimisation (CSE, cull), one node per line.
    pub fn explain_graph(&self) -> String {
        self.lowered.explain_graph()
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explain())
    }
}

/// Memory figures of a session: the engine's account and the OS's.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemoryReport {
    /// The memory limit.
    pub limit_bytes: u64,
    /// Bytes reserved now.
    pub reserved_bytes: u64,
    /// Most bytes ever reserved at once.
    pub peak_reserved_bytes: u64,
    /// What the chunk store holds, per tier.
    pub store: StoreStats,
    /// Bytes of reusable chunk buffers held (reserved in the budget).
    pub pool_bytes: u64,
    /// The process's resident set now, from `/proc/self/statm`.
    pub rss_bytes: u64,
    /// The process's peak resident set (`getrusage` `ru_maxrss`).
    pub peak_rss_bytes: u64,
}

impl Session {
    /// The session's memory figures now.
    ///
    /// ```
    /// let s = spillway::Session::builder().memory_limit("1GiB").build().unwrap();
    /// let r = s.memory_report();
    /// assert_eq!(r.limit_bytes, 1 << 30);
    /// assert!(r.peak_rss_bytes > 0);
    /// ```
    pub fn memory_report(&self) -> MemoryReport {
        let b = &self.inner.budget;
        MemoryReport {
            limit_bytes: b.limit_bytes(),
            reserved_bytes: b.reserved_bytes(),
            peak_reserved_bytes: b.peak_bytes(),
            store: self.inner.store.stats(),
            pool_bytes: self.inner.buffers.held_bytes(),
            rss_bytes: current_rss_bytes(),
            peak_rss_bytes: peak_rss_bytes(),
        }
    }
}
