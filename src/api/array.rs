//! [`Array`]: a lazy, cheaply cloneable handle on a node of the expression graph.

use std::sync::{Arc, Mutex};

use ndarray::ArrayD;

use crate::api::report::Plan;
use crate::api::session::Session;
use crate::chunk::ChunkData;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::exec::{self, RunStats};
use crate::graph::{NodeRef, Op, StoredArray};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSink;
use crate::plan::{self, PlanOptions, Target};
use crate::report::{RunReport, StageSummary};

/// A lazy N-d array: every operation records a node; nothing runs until `compute`,
/// `persist` or a write.
///
/// ```
/// use spillway::Session;
/// let s = Session::builder().memory_limit("512MiB").build().unwrap();
/// let x = s.from_fn(&[1000, 200], [100, 200], |ix| (ix[0] as f64 * 0.001 + ix[1] as f64 * 0.0007).sin()).unwrap();
/// let y = ((&x * 2.5).mean(1).unwrap()).std(None, 0.0).unwrap();
/// let v: f64 = y.compute_scalar().unwrap();
/// assert!(v > 0.0);
/// ```
#[derive(Clone)]
pub struct Array {
    pub(crate) session: Session,
    pub(crate) node: NodeRef,
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Array<{}>{:?} chunks {:?} ({})",
            self.dtype(),
            self.shape(),
            self.chunk_shape(),
            self.node.op.name()
        )
    }
}

impl Array {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.node.shape()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.node.ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.node.dtype
    }

    /// Bytes of the whole array.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// assert_eq!(s.zeros::<f32>(&[10, 10], [5, 5]).unwrap().nbytes(), 400);
    /// ```
    pub fn nbytes(&self) -> u64 {
        self.node.nbytes()
    }

    /// Bytes of the largest chunk.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// assert_eq!(s.zeros::<f64>(&[10, 10], [5, 10]).unwrap().chunk_bytes(), 400);
    /// ```
    pub fn chunk_bytes(&self) -> u64 {
        self.node.grid.chunk_bytes(self.dtype().size_bytes())
    }

    /// Number of chunks.
    pub fn num_chunks(&self) -> usize {
        self.node.grid.num_chunks()
    }

    /// The chunk grid.
    pub fn chunk_grid(&self) -> &ChunkGrid {
        &self.node.grid
    }

    /// The (uniform) chunk shape.
    pub fn chunk_shape(&self) -> &[usize] {
        self.node.grid.chunk_shape()
    }

    /// The session the array belongs to.
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub(crate) fn with(&self, node: NodeRef) -> Array {
        Array {
            session: self.session.clone(),
            node,
        }
    }

    pub(crate) fn plan_options(&self) -> PlanOptions {
        let inner = &self.session.inner;
        PlanOptions {
            optimize: inner.optimize,
            fuse: inner.fuse,
            tile_elems: inner.tile_elems,
            threads: inner.threads,
            limit_bytes: inner.memory_limit,
        }
    }

    /// Plans the computation of this array without running it: task count, projected peak
    /// memory and a readable explanation.
    ///
    /// # Errors
    /// [`Error::TaskExceedsBudget`] when a single task cannot fit the memory limit.
    ///
    /// ```
    /// let s = spillway::Session::builder().memory_limit("64MiB").build().unwrap();
    /// let x = s.ones::<f64>(&[4000, 1000], [1000, 1000]).unwrap();
    /// let p = x.sum(0).unwrap().plan().unwrap();
    /// assert!(p.projected_peak_bytes() < 64 << 20);
    /// assert!(p.explain().contains("sum"));
    /// ```
    pub fn plan(&self) -> Result<Plan> {
        let sink: Arc<dyn ChunkSink> =
            Arc::new(MemorySink::new(self.node.grid.clone(), self.dtype()));
        let lowered = plan::lower(
            &[Target::Sink(Arc::clone(&self.node), sink)],
            self.plan_options(),
        )?;
        Ok(Plan { lowered })
    }

    pub(crate) fn run(&self, targets: &[Target]) -> Result<(plan::Lowered, RunStats)> {
        let lowered = plan::lower(targets, self.plan_options())?;
        let inner = &self.session.inner;
        let description = describe(targets);
        let spilled_before = inner.store.stats().bytes_spilled;
        let stats = exec::execute(
            &lowered,
            &inner.store,
            &inner.buffers,
            &inner.pool,
            None,
            exec::Monitor {
                observers: &inner.observers,
                record_timeline: inner.record_timeline,
                description: &description,
            },
        )?;
        let store = inner.store.stats();
        let report = RunReport {
            description,
            limit_bytes: inner.memory_limit,
            threads: inner.threads,
            stages: lowered
                .stages
                .iter()
                .map(|st| StageSummary {
                    name: st.name.clone(),
                    tasks: st.tasks,
                    max_task_bytes: st.max_task_bytes,
                    output_bytes: st.output_bytes,
                    fused: st.fused.clone(),
                })
                .collect(),
            plan: lowered.explain(),
            stats: stats.clone(),
            spilled_bytes: store.bytes_spilled.saturating_sub(spilled_before),
            store,
            peak_rss_bytes: crate::memory::peak_rss_bytes(),
        };
        *inner.last_report.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
        Ok((lowered, stats))
    }

    /// Computes the array into RAM as untyped chunk data.
    ///
    /// # Errors
    /// [`Error::ResultTooLarge`] when the result exceeds `max_result_fraction` of the memory
    /// limit; any error of the computation.
    pub fn compute_data(&self) -> Result<ChunkData> {
        let inner = &self.session.inner;
        let bytes = self.nbytes();
        let allowed = (inner.memory_limit as f64 * inner.max_result_fraction) as u64;
        if bytes > allowed {
            return Err(Error::ResultTooLarge {
                result_bytes: bytes,
                allowed_bytes: allowed,
                limit_bytes: inner.memory_limit,
            });
        }
        // The result buffer is memory the engine holds: reserve it for the whole run.
        let _reservation = match inner.budget.try_reserve(bytes) {
            Ok(r) => r,
            Err(_) => {
                inner
                    .store
                    .demote(bytes.saturating_sub(inner.budget.available_bytes()))?;
                inner
                    .budget
                    .try_reserve(bytes)
                    .map_err(|_| Error::ResultTooLarge {
                        result_bytes: bytes,
                        allowed_bytes: inner.budget.available_bytes(),
                        limit_bytes: inner.memory_limit,
                    })?
            }
        };
        let sink = Arc::new(MemorySink::new(self.node.grid.clone(), self.dtype()));
        let dyn_sink: Arc<dyn ChunkSink> = Arc::clone(&sink) as Arc<dyn ChunkSink>;
        self.run(&[Target::Sink(Arc::clone(&self.node), dyn_sink)])?;
        Ok(sink.take())
    }

    /// Computes the array into an `ndarray` of element type `T` (the array's dtype).
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] when `T` is not the array's dtype (use `astype`);
    /// otherwise as [`compute_data`](Self::compute_data).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(6, [4]).unwrap();
    /// assert!(x.compute::<f64>().is_err());
    /// assert_eq!(x.compute::<i64>().unwrap().len(), 6);
    /// ```
    pub fn compute<T: Element>(&self) -> Result<ArrayD<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::UnsupportedDType {
                op: format!("compute::<{}>", T::DTYPE),
                dtype: self.dtype(),
                hint: format!(
                    "; the array is {}, convert with .astype(DType::{:?})",
                    self.dtype(),
                    T::DTYPE
                ),
            });
        }
        Ok(T::from_chunk(self.compute_data()?).expect("dtype checked above"))
    }

    /// Computes a 0-d array (for example a full reduction) into a scalar.
    ///
    /// # Errors
    /// [`Error::InvalidShape`] when the array is not 0-d; otherwise as [`compute`](Self::compute).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let m: f64 = s.arange(5, [2]).unwrap().mean(None).unwrap().compute_scalar().unwrap();
    /// assert_eq!(m, 2.0);
    /// ```
    pub fn compute_scalar<T: Element>(&self) -> Result<T> {
        if self.ndim() != 0 {
            return Err(Error::InvalidShape {
                shape: self.shape().to_vec(),
                reason: "compute_scalar needs a 0-d array (reduce over all axes first)".into(),
            });
        }
        let a = self.compute::<T>()?;
        Ok(*a.iter().next().expect("a 0-d array has one element"))
    }

    /// Materialises the array's chunks into the session's store — in RAM while the budget
    /// allows, spilled to compressed RAM or disk beyond — and returns an array that reads them
    /// from there. The chunks live until the last handle on the returned array drops.
    ///
    /// # Errors
    /// Any error of the computation; [`Error::TaskExceedsBudget`] for chunks that cannot fit.
    ///
    /// ```
    /// let s = spillway::Session::builder().memory_limit("64MiB").build().unwrap();
    /// let x = s.random_uniform(&[1000, 100], [250, 100], 1).unwrap().persist().unwrap();
    /// let a: f64 = x.sum(None).unwrap().compute_scalar().unwrap();
    /// let b: f64 = x.sum(None).unwrap().compute_scalar().unwrap();
    /// assert_eq!(a, b);
    /// ```
    pub fn persist(&self) -> Result<Array> {
        let (lowered, _) = self.run(&[Target::Keep(Arc::clone(&self.node))])?;
        let keys = lowered.kept.into_iter().next().expect("one keep target");
        let stored = Arc::new(StoredArray {
            keys,
            store: Arc::clone(&self.session.inner.store),
        });
        Ok(self.with(crate::graph::node(
            self.dtype(),
            self.node.grid.clone(),
            Op::Stored(stored),
        )))
    }

    /// Streams the array into a sink (a Zarr array, a Parquet file, …), chunk by chunk.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the sink's shape differs; any error of the computation
    /// (the sink is then aborted, leaving nothing that looks complete).
    pub fn write_to(&self, sink: Arc<dyn ChunkSink>) -> Result<RunStats> {
        if sink.grid().shape() != self.shape() {
            sink.abort();
            return Err(Error::ShapeMismatch {
                op: format!("write to {}", sink.describe()),
                expected: sink.grid().shape().to_vec(),
                actual: self.shape().to_vec(),
            });
        }
        Ok(self.run(&[Target::Sink(Arc::clone(&self.node), sink)])?.1)
    }
}

/// What a run delivers, in words: `compute`, `persist`, `zarr write out.zarr (v3, …)`,
/// `write to parquet out.parquet`, ….
fn describe(targets: &[Target]) -> String {
    let parts: Vec<String> = targets
        .iter()
        .map(|t| match t {
            Target::Keep(_) => "persist".to_string(),
            Target::Sink(_, sink) => match sink.describe() {
                d if d == "memory" => "compute".to_string(),
                // "zarr write out.zarr (v3, …)" says it already (a path may say "write" too).
                d if d.split_whitespace().take(3).any(|w| w == "write") => d,
                d => format!("write to {d}"),
            },
        })
        .collect();
    parts.join(", ")
}

/// A sink that assembles the result in RAM (the target of `compute`).
pub(crate) struct MemorySink {
    grid: ChunkGrid,
    dtype: DType,
    data: Mutex<Option<ChunkData>>,
}

impl MemorySink {
    pub(crate) fn new(grid: ChunkGrid, dtype: DType) -> MemorySink {
        MemorySink {
            grid,
            dtype,
            data: Mutex::new(None),
        }
    }

    pub(crate) fn take(&self) -> ChunkData {
        let mut g = self.data.lock().unwrap_or_else(|e| e.into_inner());
        g.take()
            .unwrap_or_else(|| ChunkData::zeros(self.dtype, self.grid.shape()))
    }
}

impl ChunkSink for MemorySink {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn write_chunk(&self, index: &[usize], data: &ChunkData) -> Result<()> {
        let region = self.grid.chunk_region(index);
        let mut g = self.data.lock().unwrap_or_else(|e| e.into_inner());
        if self.grid.num_chunks() == 1 && g.is_none() {
            *g = Some(data.clone());
            return Ok(());
        }
        let whole = g.get_or_insert_with(|| ChunkData::zeros(self.dtype, self.grid.shape()));
        whole.assign_region(&region.relative_to(&Region::whole(self.grid.shape())), data);
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
