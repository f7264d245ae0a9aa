//! The streaming executor: runs a lowered plan on the session's thread pool under its budget.
//!
//! ```text
//!   coordinator (calling thread)                 workers (session's rayon pool)
//!   ────────────────────────────                 ─────────────────────────────
//!   ready heap, by priority ──admit──▶ reserve bytes, pin inputs ──▶ fetch inputs, run body
//!        ▲                                                                  │
//!        └── release inputs at last use, store output, wake dependents ◀────┘ (channel)
//! ```
//!
//! Admission is strictly in priority order: the lowest-priority ready task starts only when
//! its bytes (output, scratch, and inputs not already in RAM) can be reserved. When they
//! cannot, the coordinator first demotes stored chunks — those whose next use is farthest
//! away in the known schedule go first — and otherwise waits for a running task to finish.
//! It never pauses a running task, and with nothing running every stored chunk is demotable,
//! so a plan whose every task fits the limit always finishes. Taking ready tasks in order also
//! keeps source tasks from running ahead of their consumers (dask's root-task overproduction).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use crate::chunk::ChunkData;
use crate::error::{Error, Result};
use crate::memory::Reservation;
use crate::plan::{Lowered, TaskId};
use crate::store::{ChunkKey, ChunkStore, SpillCopy, Tier};

/// One thing the executor did, for tests and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A task started.
    Run(String),
    /// A task finished.
    Done(String),
    /// Stored chunks were demoted to free bytes.
    Demote(u64),
    /// The output of the named task was released after its last use.
    Release(String),
}

/// Figures of one run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunStats {
    /// Tasks run.
    pub tasks: usize,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Peak bytes reserved in the budget during the run, as seen when tasks were admitted and
    /// finished and at every memory sample (so never below a sample's `reserved_bytes`).
    pub peak_reserved_bytes: u64,
    /// Projected peak of the plan.
    pub projected_peak_bytes: u64,
    /// Bytes freed by demotion during the run.
    pub demoted_bytes: u64,
    /// Tasks in the plan.
    pub tasks_total: usize,
    /// Memory sampled every 50 ms, at the start and at the end; empty when the session's
    /// `record_timeline` is off.
    pub samples: Vec<MemorySample>,
    /// Every task's thread and times, in order of completion; empty when the session's
    /// `record_timeline` is off.
    pub task_records: Vec<TaskRecord>,
}

/// When and where one task ran.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRecord {
    /// The task's label (operation and region).
    pub label: String,
    /// The stage it belongs to.
    pub stage: String,
    /// Index of the worker thread that ran it.
    pub thread: usize,
    /// Start, in seconds since the run started.
    pub start_s: f64,
    /// End, in seconds since the run started.
    pub end_s: f64,
    /// Bytes reserved for it.
    pub reserved_bytes: u64,
}

/// The engine's memory at one moment of a run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemorySample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Bytes reserved in the budget (tasks and RAM tiers).
    pub reserved_bytes: u64,
    /// Bytes in the hot tier.
    pub hot_bytes: u64,
    /// Bytes in the compressed tier.
    pub compressed_bytes: u64,
    /// Bytes in spill files.
    pub disk_bytes: u64,
    /// The process's resident set, from the OS.
    pub rss_bytes: u64,
    /// Tasks running.
    pub running: usize,
    /// Tasks finished.
    pub done: usize,
}

/// Receives progress while a run goes on (the session's progress bar implements it).
///
/// All three methods are called on the thread that computes (the coordinator), so they
/// should return quickly: the coordinator admits no task while an observer works.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use spillway::{MemorySample, RunObserver, RunStart, RunStats, Session};
///
/// #[derive(Default)]
/// struct Count { started: AtomicUsize, last_done: AtomicUsize, finished: AtomicUsize }
/// impl RunObserver for Count {
///     fn started(&self, _run: &RunStart) { self.started.fetch_add(1, Ordering::Relaxed); }
///     fn progress(&self, _total_tasks: usize, sample: &MemorySample) {
///         self.last_done.store(sample.done, Ordering::Relaxed);
///     }
///     fn finished(&self, _stats: Option<&RunStats>) { self.finished.fetch_add(1, Ordering::Relaxed); }
/// }
/// let count = Arc::new(Count::default());
/// let s = Session::builder().observer(Arc::clone(&count) as Arc<dyn RunObserver>).build()?;
/// let x = s.ones::<f64>(&[100, 10], [10, 10])?;
/// let n = x.sum(0)?.plan()?.num_tasks();
/// x.sum(0)?.compute::<f64>()?;
/// assert_eq!(count.started.load(Ordering::Relaxed), 1);
/// assert_eq!(count.finished.load(Ordering::Relaxed), 1);
/// assert_eq!(count.last_done.load(Ordering::Relaxed), n);
/// # Ok::<(), spillway::Error>(())
/// ```
pub trait RunObserver: Send + Sync {
    /// Called once before the first task starts.
    fn started(&self, _run: &RunStart) {}

    /// Called at the start, at most every sampling interval while tasks run, and after the
    /// last task (with `sample.done == total_tasks` when the run succeeded).
    fn progress(&self, total_tasks: usize, sample: &MemorySample);

    /// Called once when the run ends: with its figures when it succeeded, `None` when it
    /// failed.
    fn finished(&self, _stats: Option<&RunStats>) {}
}

/// What a run is about to do, for [`RunObserver::started`].
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use spillway::{MemorySample, RunObserver, RunStart, Session};
///
/// #[derive(Default)]
/// struct Starts(Mutex<Vec<String>>);
/// impl RunObserver for Starts {
///     fn started(&self, run: &RunStart) {
///         self.0.lock().unwrap().push(format!("{}: {} tasks", run.description, run.total_tasks));
///     }
///     fn progress(&self, _total_tasks: usize, _sample: &MemorySample) {}
/// }
/// let starts = Arc::new(Starts::default());
/// let s = Session::builder().observer(Arc::clone(&starts) as Arc<dyn RunObserver>).build()?;
/// s.ones::<f64>(&[100], [50])?.persist()?;
/// assert_eq!(starts.0.lock().unwrap().as_slice(), ["persist: 2 tasks"]);
/// # Ok::<(), spillway::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunStart {
    /// What the run delivers: `compute`, `persist`, `zarr write out.zarr (v3, …)`, ….
    pub description: String,
    /// Tasks in the plan.
    pub total_tasks: usize,
    /// The session's memory limit.
    pub limit_bytes: u64,
    /// The plan's projected peak.
    pub projected_peak_bytes: u64,
}

/// How a run is watched: who is told its progress and whether its timeline is kept.
#[derive(Clone, Copy)]
pub(crate) struct Monitor<'a> {
    /// Told the run's start, progress and end.
    pub(crate) observers: &'a [Arc<dyn RunObserver>],
    /// Whether memory samples and task records are kept in the run's figures.
    pub(crate) record_timeline: bool,
    /// What the run delivers (for observers).
    pub(crate) description: &'a str,
}

impl Monitor<'_> {
    /// Nobody watching, nothing recorded.
    #[cfg(test)]
    pub(crate) fn none() -> Monitor<'static> {
        Monitor {
            observers: &[],
            record_timeline: false,
            description: "",
        }
    }
}

/// Interval between memory samples of a run.
pub(crate) const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

type Completion = (
    TaskId,
    u64,
    Result<(Vec<ChunkData>, Vec<SpillCopy>)>,
    Reservation,
    Instant,
    Instant,
    usize,
);

/// Runs a plan to completion.
pub(crate) fn execute(
    plan: &Lowered,
    store: &Arc<ChunkStore>,
    buffers: &Arc<crate::pool::ChunkPool>,
    pool: &rayon::ThreadPool,
    log: Option<&mut Vec<Event>>,
    monitor: Monitor<'_>,
) -> Result<RunStats> {
    for o in monitor.observers {
        o.started(&RunStart {
            description: monitor.description.to_string(),
            total_tasks: plan.tasks.len(),
            limit_bytes: store.budget().limit_bytes(),
            projected_peak_bytes: plan.projected_peak_bytes,
        });
    }
    let result = run_plan(plan, store, buffers, pool, log, monitor);
    for o in monitor.observers {
        o.finished(result.as_ref().ok());
    }
    result
}

/// What a run holds only while it runs goes back: the store's compression scratch, and, with
/// `drain`, the pooled buffers.
fn end_run(buffers: &crate::pool::ChunkPool, store: &ChunkStore, drain: bool) {
    buffers.end_run(drain);
    store.release_scratch();
}

fn run_plan(
    plan: &Lowered,
    store: &Arc<ChunkStore>,
    buffers: &Arc<crate::pool::ChunkPool>,
    pool: &rayon::ThreadPool,
    log: Option<&mut Vec<Event>>,
    monitor: Monitor<'_>,
) -> Result<RunStats> {
    let started = Instant::now();
    buffers.begin_run();
    let mut log = log;
    let tasks = &plan.tasks;
    let n = tasks.len();
    let budget = store.budget().clone();
    let threads = pool.current_num_threads().max(1);

    let mut waiting: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut dependents: Vec<Vec<TaskId>> = vec![Vec::new(); n];
    for (i, t) in tasks.iter().enumerate() {
        for &d in &t.deps {
            dependents[d].push(i);
        }
    }
    // Readers per key among this plan's tasks, and produced keys (only those are released).
    let mut readers: HashMap<ChunkKey, usize> = HashMap::new();
    let mut consumers_of: HashMap<ChunkKey, Vec<TaskId>> = HashMap::new();
    for (i, t) in tasks.iter().enumerate() {
        for (k, _) in &t.reads {
            *readers.entry(*k).or_default() += 1;
            consumers_of.entry(*k).or_default().push(i);
        }
    }
    let produced: std::collections::HashSet<ChunkKey> = tasks
        .iter()
        .filter(|t| !t.keep_output)
        .flat_map(|t| t.outputs.iter().map(|o| o.0))
        .collect();
    let mut finished = vec![false; n];
    let producer: HashMap<ChunkKey, String> = if log.is_some() {
        tasks
            .iter()
            .flat_map(|t| t.outputs.iter().map(|o| (o.0, t.label.clone())))
            .collect()
    } else {
        HashMap::new()
    };

    let mut ready: BinaryHeap<Reverse<(usize, TaskId)>> = BinaryHeap::new();
    for (i, w) in waiting.iter().enumerate() {
        if *w == 0 {
            ready.push(Reverse((plan.priority[i], i)));
        }
    }
    let (tx, rx) = mpsc::channel::<Completion>();
    let mut sampler = Sampler {
        started,
        last: None,
        observers: monitor.observers,
        record: monitor.record_timeline,
        total: n,
        peak_reserved: 0,
        stats: RunStats::default(),
    };
    sampler.maybe_sample(store, 0, 0, true);
    let mut running = 0usize;
    let mut done = 0usize;
    let mut failure: Option<Error> = None;
    let mut stats = RunStats {
        projected_peak_bytes: plan.projected_peak_bytes,
        tasks_total: n,
        ..Default::default()
    };
    let mut peak_reserved = budget.reserved_bytes();
    // A persist larger than half the limit will spill most of its chunks: each task writes
    // its chunk to disk itself, in parallel with the others, and the coordinator's demotions
    // (which would otherwise write them one at a time while admission waits) become drops.
    // All of them, so that the chunks left in RAM at the end can also go without a write.
    let keep_bytes: u64 = tasks
        .iter()
        .filter(|t| t.keep_output)
        .flat_map(|t| t.outputs.iter().map(|o| o.1))
        .sum();
    let write_through = keep_bytes > budget.limit_bytes() / 2;

    while done < n {
        // Admit as many ready tasks as threads and budget allow, in priority order.
        while failure.is_none() && running < threads {
            let Some(&Reverse((_, t))) = ready.peek() else {
                break;
            };
            let spec = &tasks[t];
            let non_hot: Vec<u64> = spec
                .reads
                .iter()
                .filter(|(k, _)| store.tier_of(*k) != Some(Tier::Hot))
                .map(|r| r.1)
                .collect();
            let need = spec.output_bytes + spec.working_bytes + non_hot.iter().sum::<u64>();
            // Pooled buffers that fit the task's outputs and reads pay for part of it: their
            // reservations move to the task, and the task writes into their warm pages.
            let mark = crate::pool::earmark_id();
            let mut wants: Vec<u64> = spec.outputs.iter().map(|o| o.1).chain(non_hot).collect();
            let mut reservation = buffers.earmark(mark, &mut wants);
            let grow = |r: &mut Reservation| r.try_grow(need.saturating_sub(r.bytes()));
            if grow(&mut reservation).is_err() {
                // Pooled buffers the task cannot use go first: they are the cheapest bytes to
                // give back.
                buffers.drain();
                let short = need
                    .saturating_sub(reservation.bytes())
                    .saturating_sub(budget.available_bytes());
                let next_use = |k: ChunkKey| -> Option<u64> {
                    consumers_of.get(&k).and_then(|c| {
                        c.iter()
                            .filter(|&&c| !finished[c])
                            .map(|&c| plan.priority[c] as u64)
                            .min()
                    })
                };
                // Demoted chunks' buffers come back to the pool, still reserved: the task
                // takes those it fits, the rest are freed.
                let freed = match store.demote_with(short, &next_use) {
                    Ok(f) => f,
                    Err(e) => {
                        // A full disk or the spill cap: no new work; running tasks finish,
                        // then the run fails with every partial output dropped.
                        buffers.unearmark(mark, &mut reservation);
                        failure.get_or_insert(e);
                        break;
                    }
                };
                if freed > 0 {
                    stats.demoted_bytes += freed;
                    if let Some(l) = log.as_deref_mut() {
                        l.push(Event::Demote(freed));
                    }
                }
                reservation.merge(buffers.earmark(mark, &mut wants));
                buffers.drain();
                if let Err(e) = grow(&mut reservation) {
                    buffers.unearmark(mark, &mut reservation);
                    drop(reservation);
                    if running == 0 {
                        failure = Some(match e {
                            Error::BudgetExhausted {
                                available, limit, ..
                            } => Error::TaskExceedsBudget {
                                task: spec.label.clone(),
                                projected_bytes: need,
                                limit_bytes: limit,
                                suggestion: format!(
                                    "only {available} bytes could be freed by spilling; use smaller chunks or a larger memory_limit"
                                ),
                            },
                            other => other,
                        });
                    }
                    break;
                }
            }
            ready.pop();
            peak_reserved = peak_reserved.max(budget.reserved_bytes());
            let mut pinned = Vec::new();
            for (k, _) in &spec.reads {
                if store.pin(*k).is_ok() {
                    pinned.push(*k);
                }
            }
            if let Some(l) = log.as_deref_mut() {
                l.push(Event::Run(spec.label.clone()));
            }
            let keys: Vec<ChunkKey> = spec.reads.iter().map(|r| r.0).collect();
            // Persisted chunks that cannot all stay in RAM are written through to disk by
            // their tasks (see `write_through` above).
            let out_keys: Vec<ChunkKey> = if spec.keep_output && write_through {
                spec.outputs.iter().map(|o| o.0).collect()
            } else {
                Vec::new()
            };
            let body = Arc::clone(&spec.body);
            let store2 = Arc::clone(store);
            let buffers2 = Arc::clone(buffers);
            let tx2 = tx.clone();
            let label = spec.label.clone();
            running += 1;
            pool.spawn(move || {
                let t0 = Instant::now();
                let mut reservation = reservation;
                let scope = crate::pool::TaskScope::enter(mark);
                let result = std::panic::catch_unwind(AssertUnwindSafe(
                    || -> Result<(Vec<ChunkData>, Vec<SpillCopy>)> {
                        let inputs = keys
                            .iter()
                            .map(|k| store2.get(*k))
                            .collect::<Result<Vec<_>>>()?;
                        let out = body.run(
                            &inputs,
                            &crate::plan::TaskEnv {
                                pool: &buffers2,
                                store: &store2,
                            },
                        )?;
                        // Inputs read from a lower tier and held by nothing else are done:
                        // their buffers go to the pool with the part of the reservation
                        // that paid for them (the outputs keep theirs).
                        let mut spare = reservation
                            .bytes()
                            .saturating_sub(out.iter().map(ChunkData::nbytes).sum());
                        for a in inputs {
                            if let Ok(c) = Arc::try_unwrap(a) {
                                let b = c.nbytes();
                                if b <= spare && buffers2.wants(b) {
                                    spare -= b;
                                    let paid = reservation.split(b).expect("within spare");
                                    buffers2.keep(c, paid);
                                }
                            }
                        }
                        // Outputs that will be spilled anyway are written here, on the
                        // worker, so that their demotion later is only a drop.
                        let copies = out_keys
                            .iter()
                            .zip(&out)
                            .map(|(k, c)| store2.spill_copy(*k, c))
                            .collect::<Result<Vec<_>>>()?;
                        Ok((out, copies))
                    },
                ))
                .unwrap_or_else(|p| {
                    let message = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(Error::UserFunctionPanicked {
                        task: label,
                        message,
                    })
                });
                let thread = rayon::current_thread_index().unwrap_or(0);
                drop(scope);
                let _ = tx2.send((t, mark, result, reservation, t0, Instant::now(), thread));
            });
        }
        if running == 0 {
            if failure.is_some() || ready.is_empty() {
                break;
            }
            continue;
        }
        let (t, mark, result, mut reservation, t0, t1, thread) =
            match rx.recv_timeout(SAMPLE_INTERVAL) {
                Ok(c) => c,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    sampler.maybe_sample(store, running, done, false);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    unreachable!("the coordinator holds a sender")
                }
            };
        running -= 1;
        // Earmarked buffers the task did not take are freed while its reservation, which
        // paid for them, still holds their bytes.
        buffers.release(mark);
        sampler.maybe_sample(store, running, done, false);
        let spec = &tasks[t];
        if sampler.record {
            sampler.stats.task_records.push(TaskRecord {
                label: spec.label.clone(),
                stage: plan.stages[spec.stage].name.clone(),
                thread,
                start_s: t0.duration_since(started).as_secs_f64(),
                end_s: t1.duration_since(started).as_secs_f64(),
                reserved_bytes: reservation.bytes(),
            });
        }
        for (k, _) in &spec.reads {
            store.unpin(*k);
        }
        match result {
            Ok((out, copies)) => {
                // Each output keeps its share of the task's reservation; the rest returns.
                let mut copies = copies.into_iter();
                for (&(key, _), data) in spec.outputs.iter().zip(out) {
                    let bytes = data.nbytes();
                    let keep = reservation
                        .split(bytes.min(reservation.bytes()))
                        .expect("split within the reservation");
                    if let Err(e) =
                        store.put_reserved_with(key, Arc::new(data), keep, copies.next())
                    {
                        failure.get_or_insert(e);
                    }
                }
                drop(reservation);
                finished[t] = true;
                done += 1;
                stats.tasks += 1;
                if let Some(l) = log.as_deref_mut() {
                    l.push(Event::Done(spec.label.clone()));
                }
                for (k, _) in &spec.reads {
                    if let Some(c) = readers.get_mut(k) {
                        *c -= 1;
                        if *c == 0 && produced.contains(k) {
                            store.remove(*k);
                            if let Some(l) = log.as_deref_mut() {
                                l.push(Event::Release(
                                    producer.get(k).cloned().unwrap_or_default(),
                                ));
                            }
                        }
                    }
                }
                for &d in &dependents[t] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.push(Reverse((plan.priority[d], d)));
                    }
                }
            }
            Err(e) => {
                drop(reservation);
                failure.get_or_insert(e);
            }
        }
        peak_reserved = peak_reserved.max(budget.reserved_bytes());
    }
    // Outputs of this plan that are still stored and not kept (after a failure) are dropped.
    if let Some(failure) = failure {
        for t in tasks {
            for &(k, _) in &t.outputs {
                store.remove(k);
            }
        }
        for s in &plan.sinks {
            s.abort();
        }
        end_run(buffers, store, true);
        return Err(failure);
    }
    for s in &plan.sinks {
        if let Err(e) = s.finish() {
            for s in &plan.sinks {
                s.abort();
            }
            end_run(buffers, store, true);
            return Err(e);
        }
    }
    // Pooled buffers stay for the runs that read a persisted array; after any other run the
    // session holds nothing but its stored chunks.
    end_run(buffers, store, keep_bytes == 0);
    sampler.maybe_sample(store, 0, done, true);
    stats.wall_s = started.elapsed().as_secs_f64();
    stats.peak_reserved_bytes = peak_reserved.max(sampler.peak_reserved);
    stats.samples = std::mem::take(&mut sampler.stats.samples);
    stats.task_records = std::mem::take(&mut sampler.stats.task_records);
    Ok(stats)
}

/// Takes memory samples at a fixed interval from the coordinator (no extra thread: the
/// coordinator wakes at least every interval), keeps them when recording, and forwards them to
/// the observers. With neither, it does nothing (not even read the RSS).
struct Sampler<'a> {
    started: Instant,
    last: Option<Instant>,
    observers: &'a [Arc<dyn RunObserver>],
    record: bool,
    total: usize,
    /// Most bytes reserved at any sample.
    peak_reserved: u64,
    stats: RunStats,
}

impl Sampler<'_> {
    fn maybe_sample(&mut self, store: &ChunkStore, running: usize, done: usize, force: bool) {
        if !self.record && self.observers.is_empty() {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|l| now.duration_since(l) < SAMPLE_INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        let st = store.stats();
        let sample = MemorySample {
            t_s: now.duration_since(self.started).as_secs_f64(),
            reserved_bytes: store.budget().reserved_bytes(),
            hot_bytes: st.hot_bytes,
            compressed_bytes: st.compressed_bytes,
            disk_bytes: st.disk_bytes,
            rss_bytes: crate::memory::current_rss_bytes(),
            running,
            done,
        };
        self.peak_reserved = self.peak_reserved.max(sample.reserved_bytes);
        for o in self.observers {
            o.progress(self.total, &sample);
        }
        if self.record {
            self.stats.samples.push(sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Session;
    use crate::plan::{PlanOptions, Target, lower};

    /// The order of runs, demotions and releases for a small reduction, as a snapshot: each
    /// partial's output is released by the combine that reads it, and combine groups finish
    /// before the next group's partials start (depth first).
    #[test]
    fn event_log_of_a_small_reduction() {
        let s = Session::builder()
            .memory_limit("16MiB")
            .threads(1)
            .build()
            .unwrap();
        let x = s.ones::<f64>(&[6, 2], [1, 2]).unwrap();
        let y = x
            .reduce(
                crate::Reduction::Sum,
                0,
                crate::ReduceOptions {
                    keepdims: false,
                    split_every: 3,
                },
            )
            .unwrap();
        let sink: Arc<dyn crate::io::ChunkSink> = Arc::new(crate::api::array::MemorySink::new(
            y.node.grid.clone(),
            y.dtype(),
        ));
        let opts = PlanOptions {
            optimize: true,
            fuse: true,
            tile_elems: 1024,
            threads: 1,
            limit_bytes: 16 << 20,
        };
        let plan = lower(&[Target::Sink(Arc::clone(&y.node), sink)], opts).unwrap();
        let mut log = Vec::new();
        execute(
            &plan,
            &s.inner.store,
            &s.inner.buffers,
            &s.inner.pool,
            Some(&mut log),
            Monitor::none(),
        )
        .unwrap();
        let text: Vec<String> = log
            .iter()
            .filter(|e| !matches!(e, Event::Done(_)))
            .map(|e| match e {
                Event::Run(l) => format!("run {l}"),
                Event::Release(l) => format!("release {l}"),
                Event::Demote(b) => format!("demote {b}"),
                Event::Done(_) => unreachable!(),
            })
            .collect();
        let expect = [
            "run sum(axes=[0]) partial [0..1, 0..2]",
            "run sum(axes=[0]) partial [1..2, 0..2]",
            "run sum(axes=[0]) partial [2..3, 0..2]",
            "run sum(axes=[0]) combine level 0 [0..2]",
            "release sum(axes=[0]) partial [0..1, 0..2]",
            "release sum(axes=[0]) partial [1..2, 0..2]",
            "release sum(axes=[0]) partial [2..3, 0..2]",
            "run sum(axes=[0]) partial [3..4, 0..2]",
            "run sum(axes=[0]) partial [4..5, 0..2]",
            "run sum(axes=[0]) partial [5..6, 0..2]",
            "run sum(axes=[0]) combine level 0 [0..2]",
            "release sum(axes=[0]) partial [3..4, 0..2]",
            "release sum(axes=[0]) partial [4..5, 0..2]",
            "release sum(axes=[0]) partial [5..6, 0..2]",
            "run sum(axes=[0]) combine level 1 [0..2]",
            "release sum(axes=[0]) combine level 0 [0..2]",
            "release sum(axes=[0]) combine level 0 [0..2]",
            "run write memory [0..2]",
            "release sum(axes=[0]) combine level 1 [0..2]",
        ];
        assert_eq!(text, expect, "{text:#?}");
        assert_eq!(s.budget().reserved_bytes(), 0, "everything released");
    }
}
