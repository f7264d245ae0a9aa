//! Lowering an expression graph to chunk tasks, with projected bytes and a depth-first order.
//!
//! ```text
//!  graph nodes ──lower──▶ stages ──▶ tasks (one per output chunk or partial)
//!                                      │ projected bytes = inputs + output + scratch
//!                                      ▼
//!                          order: depth-first post-order from the targets
//! ```
//!
//! A *stage* is a run of fused operations ending in something that must exist as chunks:
//! a reduction's partials and their combine tree, a persisted array, or a sink's output chunks.
//! Element-wise and structural operations between stage boundaries are evaluated inside the
//! consuming task, tile by tile ([`eval`]); with fusion switched off every operation becomes a
//! stage of its own, which is how Dask runs the same graph.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::chunk::ChunkData;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::{NodeId, NodeRef, Op, ReduceOp, broadcast_region};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSink;
use crate::kernels::reduce::{self, TileAcc};
use crate::store::ChunkKey;

pub(crate) mod eval;
pub(crate) mod order;
pub(crate) mod rechunk;

use eval::EvalCtx;

/// Index of a task in a plan.
pub(crate) type TaskId = usize;

/// What a task does once its inputs are fetched.
pub(crate) trait TaskBody: Send + Sync {
    /// Runs the task on its inputs (in the order of [`TaskSpec::reads`]); returns one chunk
    /// per output, in the order of [`TaskSpec::outputs`].
    fn run(&self, inputs: &[Arc<ChunkData>], env: &TaskEnv) -> Result<Vec<ChunkData>>;
}

/// What the executor lends a running task.
pub(crate) struct TaskEnv<'a> {
    /// Reusable chunk buffers.
    pub(crate) pool: &'a crate::pool::ChunkPool,
    /// The chunk store, for tasks that hand over outputs before they finish.
    pub(crate) store: &'a crate::store::ChunkStore,
}

/// One task of a plan.
pub(crate) struct TaskSpec {
    pub(crate) label: String,
    pub(crate) stage: usize,
    pub(crate) deps: Vec<TaskId>,
    /// Store keys the task reads, with their bytes.
    pub(crate) reads: Vec<(ChunkKey, u64)>,
    /// Chunks the task produces into the store, with their bytes (none for a write task;
    /// several for a rechunk split).
    pub(crate) outputs: Vec<(ChunkKey, u64)>,
    /// Bytes of the results the task builds (a write task's evaluated chunk included).
    pub(crate) output_bytes: u64,
    /// Scratch (tiles) and data read from external sources.
    pub(crate) working_bytes: u64,
    /// Output kept after the run (persist).
    pub(crate) keep_output: bool,
    pub(crate) body: Arc<dyn TaskBody>,
}

impl TaskSpec {
    /// Bytes the task may hold at once if none of its inputs is already in RAM.
    pub(crate) fn projected_bytes(&self) -> u64 {
        self.output_bytes + self.working_bytes + self.reads.iter().map(|r| r.1).sum::<u64>()
    }
}

/// A summary of one stage, for `explain()`.
#[derive(Clone, Debug)]
pub(crate) struct StageInfo {
    pub(crate) name: String,
    pub(crate) fused: Vec<String>,
    pub(crate) tasks: usize,
    pub(crate) max_task_bytes: u64,
    pub(crate) output_bytes: u64,
}

/// What a planned computation delivers.
pub(crate) enum Target {
    /// Stream the node's chunks (of the sink's grid) into a sink.
    Sink(NodeRef, Arc<dyn ChunkSink>),
    /// Keep the node's chunks in the store (persist).
    Keep(NodeRef),
}

/// How lowering runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlanOptions {
    pub(crate) optimize: bool,
    pub(crate) fuse: bool,
    pub(crate) tile_elems: usize,
    pub(crate) threads: usize,
    pub(crate) limit_bytes: u64,
}

/// A lowered computation: tasks, their order, and what it is projected to cost.
pub(crate) struct Lowered {
    pub(crate) tasks: Vec<TaskSpec>,
    pub(crate) priority: Vec<usize>,
    pub(crate) stages: Vec<StageInfo>,
    pub(crate) sinks: Vec<Arc<dyn ChunkSink>>,
    /// For each `Keep` target, its chunk keys by linear chunk index.
    pub(crate) kept: Vec<Vec<ChunkKey>>,
    pub(crate) projected_peak_bytes: u64,
    /// The most bytes projected to wait in the compressed and disk tiers at once.
    pub(crate) projected_spill_bytes: u64,
    pub(crate) options: PlanOptions,
    /// What each optimizer rule did, and the graph before and after.
    pub(crate) optimizer_log: Vec<String>,
    pub(crate) graph_before: String,
    pub(crate) graph_after: String,
}

/// How a produced node's chunks cover it.
enum Layout {
    /// The node's own chunk grid.
    Grid(ChunkGrid),
    /// The pieces of a rechunk through an intermediate.
    Cells(Arc<rechunk::CellGrid>),
}

struct Produced {
    layout: Layout,
    /// By linear chunk (or cell) index.
    chunks: Vec<(TaskId, ChunkKey, u64)>,
}

impl Produced {
    /// The chunks overlapping `region`: linear index and region of each.
    fn overlapping(&self, region: &Region) -> Vec<(usize, Region)> {
        match &self.layout {
            Layout::Grid(g) => g
                .chunks_overlapping(region)
                .into_iter()
                .map(|idx| (g.linear_index(&idx), g.chunk_region(&idx)))
                .collect(),
            Layout::Cells(c) => c
                .cells_overlapping(region)
                .into_iter()
                .map(|i| (i, c.cell_region(i)))
                .collect(),
        }
    }
}

struct Inputs {
    deps: Vec<TaskId>,
    reads: Vec<(ChunkKey, u64)>,
    pieces: Vec<(NodeId, Region)>,
    externals: Vec<(NodeRef, Region)>,
    external_bytes: u64,
    /// Bytes the external reads fetch and decode (whole stored chunks).
    external_cost: u64,
    virtual_nodes: usize,
    shared: HashSet<NodeId>,
    fused_names: Vec<String>,
}

struct Lowering {
    opts: PlanOptions,
    boundaries: HashSet<NodeId>,
    tasks: Vec<TaskSpec>,
    produced: HashMap<NodeId, Produced>,
    stages: Vec<StageInfo>,
    /// Rechunks planned through an intermediate ([`rechunk`]), decided on first sight.
    staged: HashMap<NodeId, bool>,
    /// Every reduction of the graph (candidates for sharing partial tasks).
    reductions: Vec<NodeRef>,
}

fn bounding(a: &Region, b: &Region) -> Region {
    let start: Vec<usize> = (0..a.ndim())
        .map(|k| a.start()[k].min(b.start()[k]))
        .collect();
    let shape = (0..a.ndim())
        .map(|k| a.end(k).max(b.end(k)) - start[k])
        .collect();
    Region::new(start, shape)
}

impl Lowering {
    fn materialized(&self, n: &NodeRef) -> bool {
        self.boundaries.contains(&n.id)
    }

    fn tile_elems(&self) -> usize {
        if self.opts.fuse {
            self.opts.tile_elems
        } else {
            usize::MAX
        }
    }

    /// Finds what evaluating `root` over `region` needs. With `skip_root`, `root` itself is
    /// evaluated even if it is a stage boundary (its producer task is being built).
    fn inputs(&mut self, root: &NodeRef, region: &Region, skip_root: bool) -> Result<Inputs> {
        self.inputs_multi(std::slice::from_ref(root), region, skip_root)
    }

    /// As [`inputs`](Self::inputs) for several roots evaluated over the same region in one
    /// task: nodes reached from more than one root are shared (memoised per tile).
    fn inputs_multi(
        &mut self,
        roots: &[NodeRef],
        region: &Region,
        skip_root: bool,
    ) -> Result<Inputs> {
        // Collect the needed region per frontier node and count fused nodes.
        let mut needed: Vec<(NodeRef, Region)> = Vec::new();
        let mut visits: HashMap<NodeId, usize> = HashMap::new();
        let mut names = Vec::new();
        let mut stack: Vec<(NodeRef, Region, bool)> = roots
            .iter()
            .rev()
            .map(|r| (Arc::clone(r), region.clone(), skip_root))
            .collect();
        while let Some((n, r, is_root)) = stack.pop() {
            // A rechunk through an intermediate is read as its pieces, also as the root of
            // a consumer's task (a write of the rechunked array), but not by its own split.
            let staged = matches!(n.op, Op::Rechunk(_))
                && (!is_root || !skip_root)
                && self.rechunk_staged(&n)?;
            // An external source is read once per task, whole, also as the root (a task
            // evaluating it tile by tile would decode its chunks once per tile).
            let frontier = staged
                || (matches!(n.op, Op::External(_)) && (!is_root || !skip_root))
                || !is_root && (self.materialized(&n) || n.is_stored_source());
            if frontier {
                match needed.iter_mut().find(|(m, _)| m.id == n.id) {
                    Some((_, have)) => *have = bounding(have, &r),
                    None => needed.push((Arc::clone(&n), r)),
                }
                continue;
            }
            let v = visits.entry(n.id).or_insert(0);
            *v += 1;
            if *v == 1 {
                names.push(n.op.name());
            }
            if r.is_empty() {
                continue;
            }
            for (input, ir) in input_regions(&n, &r) {
                stack.push((Arc::clone(input), ir, false));
            }
        }
        let shared = visits
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|(id, _)| *id)
            .collect();
        let mut inp = Inputs {
            deps: vec![],
            reads: vec![],
            pieces: vec![],
            externals: vec![],
            external_bytes: 0,
            external_cost: 0,
            virtual_nodes: visits.len(),
            shared,
            fused_names: names,
        };
        needed.sort_by_key(|(n, _)| n.id);
        for (n, r) in needed {
            if r.is_empty() {
                continue;
            }
            match &n.op {
                Op::External(src) => {
                    inp.external_bytes +=
                        (r.len() * n.dtype.size_bytes()) as u64 + src.read_overhead_bytes(&r);
                    inp.external_cost += src.read_cost_bytes(&r);
                    inp.externals.push((n, r));
                }
                Op::Stored(st) => {
                    for idx in n.grid.chunks_overlapping(&r) {
                        let cr = n.grid.chunk_region(&idx);
                        let key = st.keys[n.grid.linear_index(&idx)];
                        inp.reads
                            .push((key, (cr.len() * n.dtype.size_bytes()) as u64));
                        inp.pieces.push((n.id, cr));
                    }
                }
                _ => {
                    self.produce(&n)?;
                    let p = &self.produced[&n.id];
                    for (lin, cr) in p.overlapping(&r) {
                        let (task, key, bytes) = p.chunks[lin];
                        inp.deps.push(task);
                        inp.reads.push((key, bytes));
                        inp.pieces.push((n.id, cr));
                    }
                }
            }
        }
        inp.deps.sort_unstable();
        inp.deps.dedup();
        Ok(inp)
    }

    fn scratch_bytes(&self, inp: &Inputs, region: &Region) -> u64 {
        let tile = region.len().min(self.tile_elems()) as u64 * 8;
        tile * (inp.virtual_nodes as u64 + 2)
    }

    fn new_stage(&mut self, name: String, fused: Vec<String>) -> usize {
        self.stages.push(StageInfo {
            name,
            fused,
            tasks: 0,
            max_task_bytes: 0,
            output_bytes: 0,
        });
        self.stages.len() - 1
    }

    fn push(&mut self, t: TaskSpec) -> TaskId {
        let s = &mut self.stages[t.stage];
        s.tasks += 1;
        s.max_task_bytes = s.max_task_bytes.max(t.projected_bytes());
        s.output_bytes += t.output_bytes;
        self.tasks.push(t);
        self.tasks.len() - 1
    }

    /// Tasks that evaluate `node` over every chunk of `grid`, each either returning the chunk
    /// (`sink == None`) or writing it to the sink.
    fn eval_tasks(
        &mut self,
        node: &NodeRef,
        grid: &ChunkGrid,
        sink: Option<&Arc<dyn ChunkSink>>,
        keep: bool,
        stage_name: &str,
    ) -> Result<Vec<(TaskId, ChunkKey, u64)>> {
        let skip_root = self.materialized(node) && sink.is_none() && !keep;
        let mut stage = None;
        let mut out = Vec::new();
        for idx in grid.chunk_indices() {
            let region = grid.chunk_region(&idx);
            let inp = self.inputs(node, &region, skip_root)?;
            let st = *stage.get_or_insert_with(|| {
                self.new_stage(stage_name.to_string(), inp.fused_names.clone())
            });
            let chunk_bytes = (region.len() * node.dtype.size_bytes()) as u64;
            // A sink that takes the chunk as a stream of tiles never sees it whole.
            let streamed = sink.is_some_and(|s| s.streams(&idx));
            let bytes = if streamed { 0 } else { chunk_bytes };
            let working = self.scratch_bytes(&inp, &region)
                + inp.external_bytes
                + sink.map_or(0, |s| {
                    if streamed {
                        s.stream_bytes()
                    } else {
                        s.buffer_bytes_per_chunk()
                    }
                });
            let key = ChunkKey::fresh();
            let body = Arc::new(EvalBody {
                node: Arc::clone(node),
                region: region.clone(),
                pieces: inp.pieces,
                externals: inp.externals,
                shared: inp.shared,
                tile_elems: self.tile_elems(),
                mode: match sink {
                    Some(s) => EvalMode::Write(Arc::clone(s), idx.clone()),
                    None => EvalMode::Chunk,
                },
            });
            let label = format!("{stage_name} {region}");
            let id = self.push(TaskSpec {
                label,
                stage: st,
                deps: inp.deps,
                reads: inp.reads,
                outputs: if sink.is_none() {
                    vec![(key, bytes)]
                } else {
                    vec![]
                },
                output_bytes: bytes,
                working_bytes: working,
                keep_output: keep,
                body,
            });
            out.push((id, key, bytes));
        }
        Ok(out)
    }

    /// Makes sure a stage-boundary node has producer tasks.
    fn produce(&mut self, n: &NodeRef) -> Result<()> {
        if self.produced.contains_key(&n.id) {
            return Ok(());
        }
        if matches!(n.op, Op::Rechunk(_)) && self.rechunk_staged(n)? {
            let produced = self.split_tasks(n)?;
            self.produced.insert(n.id, produced);
            return Ok(());
        }
        let chunks = match &n.op {
            Op::Reduce(..) => self.reduce_tasks(n)?,
            _ => {
                let name = n.op.name();
                self.eval_tasks(n, &n.grid.clone(), None, false, &name)?
            }
        };
        self.produced.insert(
            n.id,
            Produced {
                layout: Layout::Grid(n.grid.clone()),
                chunks,
            },
        );
        Ok(())
    }

    /// Whether a rechunk goes through an intermediate of pieces. The direct plan evaluates
    /// the rechunk inside each consumer task, which fetches (and decodes) every input chunk
    /// its region touches. That is refused when a task would hold more than its share of the
    /// budget, or when the input would be read more than four times over in all (and that
    /// re-reading is more than a task's share of the budget): then each input chunk is read
    /// once and split.
    fn rechunk_staged(&mut self, n: &NodeRef) -> Result<bool> {
        if !matches!(n.op, Op::Rechunk(_)) {
            return Ok(false);
        }
        if let Some(&s) = self.staged.get(&n.id) {
            return Ok(s);
        }
        let size = n.dtype.size_bytes() as u64;
        let (mut worst, mut cost) = (0u64, 0u64);
        for idx in n.grid.chunk_indices() {
            let r = n.grid.chunk_region(&idx);
            let inp = self.inputs(n, &r, true)?;
            let reads: u64 = inp.reads.iter().map(|x| x.1).sum();
            worst = worst.max(reads + inp.external_bytes + r.len() as u64 * size);
            cost += reads + inp.external_cost;
        }
        let total = n.grid.shape().iter().product::<usize>() as u64 * size;
        let share = self.opts.limit_bytes / self.opts.threads.max(1) as u64;
        let mut staged = worst > share || (cost > 4 * total && cost > share);
        if staged && worst <= share {
            // Pieces of a few KiB cost more in bookkeeping than re-reading saves: when the
            // direct plan fits a task's share of the limit, keep it. (Only the share: the
            // estimate here leaves out what an unfused task holds besides, and over the
            // share such a task could exceed the whole limit.)
            let Op::Rechunk(a) = &n.op else {
                unreachable!("checked above")
            };
            // (Pieces as the chunkings cut them; the leading-axis bands come on top.)
            let (read, _, _) = self.split_layout(n, a);
            let cells = rechunk::CellGrid::with_leading_step(&read, &n.grid, usize::MAX);
            if total / (cells.num_cells().max(1) as u64) < 64 << 10 {
                staged = false;
            }
        }
        self.staged.insert(n.id, staged);
        Ok(staged)
    }

    /// How a rechunk through an intermediate reads its input and cuts the pieces: the read
    /// regions (the input's chunks, grouped along axes where the output's chunks are longer,
    /// up to a quarter of a task's share of the budget, as Rechunker consolidates reads so
    /// that pieces are not tiny), the pieces, and the leading-axis step inside a read region
    /// (a band of pieces across it, what a split holds while filling them, is about an
    /// eighth of a task's share).
    fn split_layout(&self, n: &NodeRef, a: &NodeRef) -> (ChunkGrid, rechunk::CellGrid, usize) {
        let size = n.dtype.size_bytes() as u64;
        let share = self.opts.limit_bytes / self.opts.threads.max(1) as u64;
        let src = a.grid.chunk_shape();
        let dst = n.grid.chunk_shape();
        let mut read = src.to_vec();
        for k in (0..read.len()).rev() {
            if dst[k] <= src[k] || src[k] == 0 {
                continue;
            }
            let bytes = read.iter().product::<usize>() as u64 * size;
            let by_memory = ((share / 4) / bytes.max(1)).max(1) as usize;
            let factor = (dst[k] / src[k]).min(by_memory).max(1);
            read[k] = (src[k] * factor).min(a.shape()[k].max(1));
        }
        let read = ChunkGrid::new(a.shape().to_vec(), read).unwrap_or_else(|_| a.grid.clone());
        let row_bytes = (read.chunk_shape().iter().skip(1).product::<usize>() as u64) * size;
        let step = ((share / 8) / row_bytes.max(1)).max(1) as usize;
        let c0 = read.chunk_shape().first().copied().unwrap_or(1).max(1);
        let step = c0.div_ceil(c0.div_ceil(step.min(c0)));
        let cells = rechunk::CellGrid::with_leading_step(&read, &n.grid, step);
        (read, cells, step)
    }

    /// Stage one of a rechunk through an intermediate: one task per chunk of the input,
    /// reading it once and returning its pieces (the cells of both chunkings).
    fn split_tasks(&mut self, n: &NodeRef) -> Result<Produced> {
        let Op::Rechunk(a) = &n.op else {
            unreachable!("only rechunks are split")
        };
        let size = n.dtype.size_bytes() as u64;
        let (read, cells, step) = self.split_layout(n, a);
        let consolidated = read.chunk_shape() != a.grid.chunk_shape();
        let cells = Arc::new(cells);
        let name = format!(
            "rechunk split {:?} -> pieces -> {:?}",
            read.chunk_shape(),
            n.grid.chunk_shape()
        );
        let mut chunks = vec![(0, ChunkKey::fresh(), 0); cells.num_cells()];
        let mut stage = None;
        for idx in read.chunk_indices() {
            let region = read.chunk_region(&idx);
            let outs = cells.cells_overlapping(&region);
            let band = (region.len().min(self.tile_elems()) as u64) * size;
            // The pieces being filled at once: one band of cells along the leading axis.
            let held = if self.opts.fuse && !consolidated {
                (step.min(region.shape().first().copied().unwrap_or(1)) as u64)
                    * (region.shape().iter().skip(1).product::<usize>() as u64)
                    * size
            } else {
                // Unfused, the region is read as one tile, and a region of several input
                // chunks is read chunk by chunk: every piece may be filling at once.
                region.len() as u64 * size
            };
            let (input, deps, reads, working, fused) = match &a.op {
                Op::External(src) => (
                    rechunk::SplitInput::Source(Arc::clone(src)),
                    vec![],
                    vec![],
                    src.read_overhead_bytes(&region) + 2 * band,
                    vec![a.op.name()],
                ),
                _ => {
                    // The rechunk node itself as the root: it reads `a` over the region,
                    // through `a`'s producers when `a` is materialized.
                    let inp = self.inputs(n, &region, true)?;
                    let working = self.scratch_bytes(&inp, &region) + inp.external_bytes;
                    (
                        rechunk::SplitInput::Expr {
                            node: Arc::clone(n),
                            pieces: inp.pieces,
                            externals: inp.externals,
                            shared: inp.shared,
                        },
                        inp.deps,
                        inp.reads,
                        working,
                        inp.fused_names,
                    )
                }
            };
            let st = *stage.get_or_insert_with(|| self.new_stage(name.clone(), fused));
            let outputs: Vec<(ChunkKey, u64)> = outs
                .iter()
                .map(|&c| (ChunkKey::fresh(), cells.cell_region(c).len() as u64 * size))
                .collect();
            let output_bytes = held.min(outputs.iter().map(|o| o.1).sum());
            let body = Arc::new(rechunk::SplitBody {
                input,
                region: region.clone(),
                cells: Arc::clone(&cells),
                outputs: outs.iter().zip(&outputs).map(|(&c, o)| (c, o.0)).collect(),
                dtype: n.dtype,
                tile_elems: self.tile_elems(),
            });
            let id = self.push(TaskSpec {
                label: format!("rechunk split {region} into {} pieces", outs.len()),
                stage: st,
                deps,
                reads,
                outputs: outputs.clone(),
                output_bytes,
                working_bytes: working,
                keep_output: false,
                body,
            });
            for (&c, (key, bytes)) in outs.iter().zip(outputs) {
                chunks[c] = (id, key, bytes);
            }
        }
        Ok(Produced {
            layout: Layout::Cells(cells),
            chunks,
        })
    }

    fn reduce_tasks(&mut self, n: &NodeRef) -> Result<Vec<(TaskId, ChunkKey, u64)>> {
        let group = self.reduction_group(n);
        let partials = self.partial_tasks(&group)?;
        let mut mine = Vec::new();
        for (m, parts) in group.iter().zip(partials) {
            let chunks = self.combine_tasks(m, parts)?;
            if m.id == n.id {
                mine = chunks;
            } else {
                self.produced.insert(
                    m.id,
                    Produced {
                        layout: Layout::Grid(m.grid.clone()),
                        chunks,
                    },
                );
            }
        }
        Ok(mine)
    }

    /// The reductions whose partials are computed together with `n`'s (`n` first): not yet
    /// produced, over inputs with the same shape and chunking, and independent of each other
    /// (none reads another's result). One task per input chunk then evaluates every input
    /// over each tile — with the subexpressions they share, such as `x` in `x.mean(0)` and
    /// `x.std(0)`, evaluated once — so the input is read or computed once, not once per
    /// reduction.
    fn reduction_group(&self, n: &NodeRef) -> Vec<NodeRef> {
        let Op::Reduce(_, x) = &n.op else {
            unreachable!("only reductions are grouped")
        };
        let mut group = vec![Arc::clone(n)];
        if !self.opts.optimize {
            return group;
        }
        for m in &self.reductions {
            let Op::Reduce(_, y) = &m.op else { continue };
            if m.id == n.id || self.produced.contains_key(&m.id) || y.grid != x.grid {
                continue;
            }
            if group.iter().all(|g| !reaches(g, m.id) && !reaches(m, g.id)) {
                group.push(Arc::clone(m));
            }
        }
        group
    }

    /// Partial tasks for a group of reductions over inputs of one chunking: one task per
    /// input chunk, with one output per reduction. For each reduction and each of its output
    /// chunks, the partials that feed it (task, key, bytes, element count); a partial that is
    /// alone for its output chunk already holds the final result.
    #[allow(clippy::type_complexity)]
    fn partial_tasks(
        &mut self,
        group: &[NodeRef],
    ) -> Result<Vec<Vec<Vec<(TaskId, ChunkKey, u64, f64)>>>> {
        let specs: Vec<(&crate::graph::ReduceSpec, &NodeRef)> = group
            .iter()
            .map(|m| match &m.op {
                Op::Reduce(spec, x) => (spec, x),
                _ => unreachable!("only reductions are grouped"),
            })
            .collect();
        let in_grid = specs[0].1.grid.clone();
        let names: Vec<String> = specs
            .iter()
            .map(|(spec, _)| format!("{}(axes={:?})", spec.op.name(), spec.axes))
            .collect();
        let name = names.join(" + ");
        // How many partials feed each output chunk of each reduction.
        let fan_in: Vec<Vec<usize>> = group
            .iter()
            .zip(&specs)
            .map(|(m, (spec, _))| {
                let mut c = vec![0; m.grid.num_chunks().max(1)];
                for idx in in_grid.chunk_indices() {
                    c[m.grid.linear_index(&out_index(spec, &idx))] += 1;
                }
                c
            })
            .collect();
        let mut result: Vec<Vec<Vec<(TaskId, ChunkKey, u64, f64)>>> = group
            .iter()
            .map(|m| vec![Vec::new(); m.grid.num_chunks().max(1)])
            .collect();
        let inputs: Vec<NodeRef> = specs.iter().map(|(_, x)| Arc::clone(x)).collect();
        let mut stage = None;
        for idx in in_grid.chunk_indices() {
            let region = in_grid.chunk_region(&idx);
            let inp = self.inputs_multi(&inputs, &region, false)?;
            let st = *stage.get_or_insert_with(|| {
                self.new_stage(format!("{name} partial"), inp.fused_names.clone())
            });
            let mut parts = Vec::new();
            let mut outputs = Vec::new();
            let mut scratch = 0;
            for (g, (m, (spec, x))) in group.iter().zip(&specs).enumerate() {
                let acc_shape: Vec<usize> = region
                    .shape()
                    .iter()
                    .enumerate()
                    .map(|(k, &len)| if spec.axes.contains(&k) { 1 } else { len })
                    .collect();
                let count: f64 = spec
                    .axes
                    .iter()
                    .map(|&a| region.shape()[a] as f64)
                    .product();
                let pbytes = reduce::partial_bytes(spec.op, x.dtype, &acc_shape);
                let lin = m.grid.linear_index(&out_index(spec, &idx));
                let out_region = m.grid.chunk_region(&unlinear(&m.grid, lin));
                let (obytes, finalize) = if fan_in[g][lin] == 1 {
                    (
                        (out_region.len() * m.dtype.size_bytes()) as u64,
                        Some((m.dtype, out_region.shape().to_vec())),
                    )
                } else {
                    (pbytes, None)
                };
                scratch += pbytes;
                let key = ChunkKey::fresh();
                outputs.push((key, obytes));
                parts.push(PartialSpec {
                    node: Arc::clone(x),
                    op: spec.op,
                    axes: spec.axes.clone(),
                    count,
                    finalize,
                });
                result[g][lin].push((usize::MAX, key, obytes, count));
            }
            let working = self.scratch_bytes(&inp, &region) + inp.external_bytes + scratch;
            let output_bytes = outputs.iter().map(|o| o.1).sum();
            let id = self.push(TaskSpec {
                label: format!("{name} partial {region}"),
                stage: st,
                deps: inp.deps,
                reads: inp.reads,
                outputs,
                output_bytes,
                working_bytes: working,
                keep_output: false,
                body: Arc::new(PartialBody {
                    parts,
                    region: region.clone(),
                    pieces: inp.pieces,
                    externals: inp.externals,
                    shared: inp.shared,
                    tile_elems: self.tile_elems(),
                }),
            });
            for (g, (m, (spec, _))) in group.iter().zip(&specs).enumerate() {
                let lin = m.grid.linear_index(&out_index(spec, &idx));
                if let Some(last) = result[g][lin].last_mut() {
                    last.0 = id;
                }
            }
        }
        Ok(result)
    }

    /// The combine tree of one reduction over its partials (bounded fan-in, `split_every`);
    /// returns each output chunk's final task, key and bytes.
    fn combine_tasks(
        &mut self,
        n: &NodeRef,
        partials: Vec<Vec<(TaskId, ChunkKey, u64, f64)>>,
    ) -> Result<Vec<(TaskId, ChunkKey, u64)>> {
        let Op::Reduce(spec, _) = &n.op else {
            unreachable!("only reductions are combined")
        };
        let op = spec.op;
        let name = format!("{}(axes={:?})", op.name(), spec.axes);
        let mut combine_stage = None;
        let mut empty_stage = None;
        let mut result = Vec::with_capacity(partials.len());
        for (lin, mut level) in partials.into_iter().enumerate() {
            let out_idx = unlinear(&n.grid, lin);
            let out_region = n.grid.chunk_region(&out_idx);
            let out_bytes = (out_region.len() * n.dtype.size_bytes()) as u64;
            if level.is_empty() {
                // Every reduced axis is empty: the result is the reduction's identity.
                let st = *empty_stage
                    .get_or_insert_with(|| self.new_stage(format!("{name} partial"), vec![]));
                let key = ChunkKey::fresh();
                let id = self.push(TaskSpec {
                    label: format!("{name} empty {out_region}"),
                    stage: st,
                    deps: vec![],
                    reads: vec![],
                    outputs: vec![(key, out_bytes)],
                    output_bytes: out_bytes,
                    working_bytes: 0,
                    keep_output: false,
                    body: Arc::new(EmptyReduceBody {
                        op,
                        dtype: n.dtype,
                        shape: out_region.shape().to_vec(),
                    }),
                });
                result.push((id, key, out_bytes));
                continue;
            }
            if level.len() == 1 {
                let (id, key, bytes, _) = level[0];
                result.push((id, key, bytes));
                continue;
            }
            let mut depth = 0;
            loop {
                let last = level.len() <= spec.split_every;
                let mut next = Vec::new();
                for group in level.chunks(spec.split_every) {
                    let st = *combine_stage
                        .get_or_insert_with(|| self.new_stage(format!("{name} combine"), vec![]));
                    let counts: Vec<f64> = group.iter().map(|g| g.3).collect();
                    let total: f64 = counts.iter().sum();
                    let (obytes, fin) = if last {
                        (out_bytes, Some((n.dtype, out_region.shape().to_vec())))
                    } else {
                        (group[0].2, None)
                    };
                    let key = ChunkKey::fresh();
                    let id = self.push(TaskSpec {
                        label: format!("{name} combine level {depth} {out_region}"),
                        stage: st,
                        deps: group.iter().map(|g| g.0).collect(),
                        reads: group.iter().map(|g| (g.1, g.2)).collect(),
                        outputs: vec![(key, obytes)],
                        output_bytes: obytes,
                        working_bytes: group[0].2,
                        keep_output: false,
                        body: Arc::new(CombineBody {
                            op,
                            counts,
                            finalize: fin,
                        }),
                    });
                    next.push((id, key, group[0].2, total));
                }
                level = next;
                depth += 1;
                if last {
                    break;
                }
            }
            let (id, key, _, _) = level[0];
            result.push((id, key, out_bytes));
        }
        Ok(result)
    }
}

/// The output chunk index a reduction's input chunk index feeds.
fn out_index(spec: &crate::graph::ReduceSpec, idx: &[usize]) -> Vec<usize> {
    (0..idx.len())
        .filter_map(|k| {
            if spec.axes.contains(&k) {
                spec.keepdims.then_some(0)
            } else {
                Some(idx[k])
            }
        })
        .collect()
}

/// Whether `target` is `n` or among the nodes `n` is computed from.
fn reaches(n: &NodeRef, target: NodeId) -> bool {
    let mut stack = vec![Arc::clone(n)];
    let mut seen = HashSet::new();
    while let Some(m) = stack.pop() {
        if m.id == target {
            return true;
        }
        if seen.insert(m.id) {
            stack.extend(crate::optimize::inputs(&m).into_iter().map(Arc::clone));
        }
    }
    false
}

fn unlinear(grid: &ChunkGrid, mut lin: usize) -> Vec<usize> {
    let g = grid.grid_shape();
    let mut idx = vec![0; g.len()];
    for a in (0..g.len()).rev() {
        idx[a] = lin % g[a].max(1);
        lin /= g[a].max(1);
    }
    idx
}

/// The regions of a node's inputs that evaluating `region` of it reads.
pub(crate) fn input_regions<'a>(n: &'a NodeRef, region: &Region) -> Vec<(&'a NodeRef, Region)> {
    match &n.op {
        Op::Full(_)
        | Op::Arange { .. }
        | Op::FromFn(_)
        | Op::Random { .. }
        | Op::Memory(_)
        | Op::External(_)
        | Op::Stored(_) => vec![],
        Op::Unary(_, a)
        | Op::BinaryScalar(_, a, _, _)
        | Op::Cast(a)
        | Op::Map(_, a)
        | Op::Rechunk(a) => vec![(a, region.clone())],
        Op::Binary(_, a, b) => vec![
            (a, broadcast_region(region, a.shape())),
            (b, broadcast_region(region, b.shape())),
        ],
        Op::Where(c, a, b) => vec![
            (c, broadcast_region(region, c.shape())),
            (a, broadcast_region(region, a.shape())),
            (b, broadcast_region(region, b.shape())),
        ],
        Op::Transpose(perm, a) => vec![(a, eval::transpose_region(region, perm))],
        Op::Slice(start, a) => vec![(a, region.translated(start))],
        Op::InsertAxis(axis, a) => vec![(a, eval::remove_axis(region, *axis))],
        Op::Concat(axis, xs) => eval::concat_parts(region, *axis, xs)
            .into_iter()
            .map(|(i, local, _)| (&xs[i], local))
            .collect(),
        Op::Reduce(..) => unreachable!("a reduction is evaluated by its own tasks"),
    }
}

pub(crate) fn build_ctx(
    pieces: &[(NodeId, Region)],
    inputs: &[Arc<ChunkData>],
    externals: &[(NodeRef, Region)],
    shared: &HashSet<NodeId>,
) -> Result<EvalCtx> {
    let mut ctx = EvalCtx {
        shared: shared.clone(),
        ..Default::default()
    };
    for ((id, r), d) in pieces.iter().zip(inputs) {
        ctx.leaves
            .entry(*id)
            .or_default()
            .pieces
            .push((r.clone(), Arc::clone(d)));
    }
    for (n, r) in externals {
        let Op::External(src) = &n.op else {
            unreachable!("externals are external sources")
        };
        let data = src.read_region(r)?;
        ctx.leaves
            .entry(n.id)
            .or_default()
            .pieces
            .push((r.clone(), Arc::new(data)));
    }
    Ok(ctx)
}

enum EvalMode {
    Chunk,
    Write(Arc<dyn ChunkSink>, Vec<usize>),
}

struct EvalBody {
    node: NodeRef,
    region: Region,
    pieces: Vec<(NodeId, Region)>,
    externals: Vec<(NodeRef, Region)>,
    shared: HashSet<NodeId>,
    tile_elems: usize,
    mode: EvalMode,
}

impl TaskBody for EvalBody {
    fn run(&self, inputs: &[Arc<ChunkData>], env: &TaskEnv) -> Result<Vec<ChunkData>> {
        let mut ctx = build_ctx(&self.pieces, inputs, &self.externals, &self.shared)?;
        if let EvalMode::Write(sink, idx) = &self.mode
            && let Some(mut stream) = sink.stream_chunk(idx)?
        {
            // Tiles come in C order, so the chunk reaches the sink's encoder as a stream and
            // never exists whole (a stored node's tiles are slices of its pieces).
            let mut memo = HashMap::new();
            for t in eval::tiles(&self.region, self.tile_elems) {
                memo.clear();
                let v = eval::eval(&self.node, &t, &ctx, &mut memo)?;
                stream.write(&v.into_dtype(sink.dtype()))?;
            }
            stream.finish()?;
            return Ok(vec![]);
        }
        let whole = ctx
            .leaves
            .get(&self.node.id)
            .and_then(|leaf| leaf.pieces.iter().position(|(r, _)| *r == self.region));
        let data = if let Some(i) = whole {
            // The node is itself stored (persisting a stored array or a reduction result, or
            // reading an external source) and one piece is the whole region: take it, without
            // a copy when nothing else holds it (a region read from a source).
            let mut leaf = ctx.leaves.remove(&self.node.id).expect("found above");
            let (_, d) = leaf.pieces.swap_remove(i);
            drop(leaf);
            drop(ctx);
            Arc::try_unwrap(d).unwrap_or_else(|d| (*d).clone())
        } else if ctx.leaves.contains_key(&self.node.id) {
            eval::eval(&self.node, &self.region, &ctx, &mut HashMap::new())?
        } else {
            eval::eval_region_tiled(
                &self.node,
                &self.region,
                &ctx,
                self.tile_elems,
                Some(env.pool),
            )?
        };
        match &self.mode {
            EvalMode::Chunk => Ok(vec![data]),
            EvalMode::Write(sink, idx) => {
                let data = data.into_dtype(sink.dtype());
                sink.write_chunk(idx, &data)?;
                env.pool.recycle(data);
                Ok(vec![])
            }
        }
    }
}

/// One reduction's share of a partial task.
struct PartialSpec {
    node: NodeRef,
    op: ReduceOp,
    axes: Vec<usize>,
    count: f64,
    finalize: Option<(DType, Vec<usize>)>,
}

/// A partial task of one or more reductions over the same input chunk: every input is
/// evaluated tile by tile into its accumulator, sharing a memo so that common
/// subexpressions are evaluated once per tile.
struct PartialBody {
    parts: Vec<PartialSpec>,
    region: Region,
    pieces: Vec<(NodeId, Region)>,
    externals: Vec<(NodeRef, Region)>,
    shared: HashSet<NodeId>,
    tile_elems: usize,
}

impl TaskBody for PartialBody {
    fn run(&self, inputs: &[Arc<ChunkData>], _env: &TaskEnv) -> Result<Vec<ChunkData>> {
        let ctx = build_ctx(&self.pieces, inputs, &self.externals, &self.shared)?;
        let mut accs: Vec<TileAcc> = self
            .parts
            .iter()
            .map(|p| TileAcc::new(p.op, p.node.dtype, &p.axes, self.region.shape()))
            .collect();
        let mut memo = HashMap::new();
        for t in eval::tiles(&self.region, self.tile_elems) {
            memo.clear();
            let off = t.relative_to(&self.region);
            for (p, acc) in self.parts.iter().zip(&mut accs) {
                let v = eval::eval(&p.node, &t, &ctx, &mut memo)?;
                acc.add_tile(v, off.start());
            }
        }
        Ok(self
            .parts
            .iter()
            .zip(accs)
            .map(|(p, acc)| {
                let partial = acc.into_partial();
                match &p.finalize {
                    Some((dt, shape)) => reduce::finalize(p.op, partial, p.count, *dt, shape),
                    None => partial,
                }
            })
            .collect())
    }
}

struct CombineBody {
    op: ReduceOp,
    counts: Vec<f64>,
    finalize: Option<(DType, Vec<usize>)>,
}

impl TaskBody for CombineBody {
    fn run(&self, inputs: &[Arc<ChunkData>], _env: &TaskEnv) -> Result<Vec<ChunkData>> {
        let parts: Vec<(&ChunkData, f64)> = inputs
            .iter()
            .map(|a| &**a)
            .zip(self.counts.iter().copied())
            .collect();
        let merged = reduce::merge(self.op, &parts);
        Ok(vec![match &self.finalize {
            Some((dt, shape)) => {
                reduce::finalize(self.op, merged, self.counts.iter().sum(), *dt, shape)
            }
            None => merged,
        }])
    }
}

struct EmptyReduceBody {
    op: ReduceOp,
    dtype: DType,
    shape: Vec<usize>,
}

impl TaskBody for EmptyReduceBody {
    fn run(&self, _inputs: &[Arc<ChunkData>], _env: &TaskEnv) -> Result<Vec<ChunkData>> {
        let v = match self.op {
            ReduceOp::Sum => 0.0,
            _ => f64::NAN,
        };
        Ok(vec![ChunkData::full(self.dtype, &self.shape, v.into())])
    }
}

/// Lowers targets to tasks, orders them and projects the peak.
///
/// # Errors
/// [`Error::TaskExceedsBudget`] when one task cannot fit the memory limit.
pub(crate) fn lower(targets: &[Target], opts: PlanOptions) -> Result<Lowered> {
    let nodes: Vec<NodeRef> = targets
        .iter()
        .map(|t| match t {
            Target::Sink(n, _) | Target::Keep(n) => Arc::clone(n),
        })
        .collect();
    let optimized = crate::optimize::optimize(nodes, opts.optimize, opts.fuse);
    let targets: Vec<Target> = targets
        .iter()
        .zip(&optimized.graph.targets)
        .map(|(t, n)| match t {
            Target::Sink(_, s) => Target::Sink(Arc::clone(n), Arc::clone(s)),
            Target::Keep(_) => Target::Keep(Arc::clone(n)),
        })
        .collect();
    let targets = &targets[..];
    let mut lw = Lowering {
        opts,
        boundaries: optimized.boundaries,
        tasks: vec![],
        produced: HashMap::new(),
        stages: vec![],
        staged: HashMap::new(),
        reductions: optimized
            .graph
            .nodes()
            .into_iter()
            .filter(|n| matches!(n.op, Op::Reduce(..)))
            .collect(),
    };
    let mut sinks = Vec::new();
    let mut kept = Vec::new();
    let mut roots = Vec::new();
    for t in targets {
        match t {
            Target::Sink(node, sink) => {
                let name = format!("write {}", sink.describe());
                let ids = lw.eval_tasks(node, &sink.grid().clone(), Some(sink), false, &name)?;
                roots.extend(ids.iter().map(|i| i.0));
                sinks.push(Arc::clone(sink));
            }
            Target::Keep(node) => {
                let ids = lw.eval_tasks(node, &node.grid.clone(), None, true, "persist")?;
                roots.extend(ids.iter().map(|i| i.0));
                kept.push(ids.iter().map(|i| i.1).collect());
            }
        }
    }
    let priority = order::depth_first(&lw.tasks, &roots);
    let (projected_peak_bytes, projected_spill_bytes) =
        order::projected_peak(&lw.tasks, &priority, opts.threads, opts.limit_bytes);
    let lowered = Lowered {
        tasks: lw.tasks,
        priority,
        stages: lw.stages,
        sinks,
        kept,
        projected_peak_bytes,
        projected_spill_bytes,
        options: opts,
        optimizer_log: optimized.log,
        graph_before: optimized.before,
        graph_after: optimized.after,
    };
    lowered.check_fits()?;
    Ok(lowered)
}

impl Lowered {
    fn check_fits(&self) -> Result<()> {
        let limit = self.options.limit_bytes;
        if let Some(t) = self.tasks.iter().max_by_key(|t| t.projected_bytes()) {
            let need = t.projected_bytes();
            if need > limit {
                let factor = limit as f64 / need as f64;
                return Err(Error::TaskExceedsBudget {
                    task: t.label.clone(),
                    projected_bytes: need,
                    limit_bytes: limit,
                    suggestion: format!(
                        "use chunks about {:.0}% of the current size (for example with `rechunk`), or raise memory_limit to at least {} bytes",
                        (factor * 80.0).clamp(1.0, 99.0),
                        need
                    ),
                });
            }
        }
        Ok(())
    }

    /// A readable description of the stages, their task counts and bytes.
    pub(crate) fn explain(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan: {} {} in {} {}, projected peak {} of memory limit {}{} ({} threads, fusion {})",
            self.tasks.len(),
            if self.tasks.len() == 1 {
                "task"
            } else {
                "tasks"
            },
            self.stages.len(),
            if self.stages.len() == 1 {
                "stage"
            } else {
                "stages"
            },
            human(self.projected_peak_bytes),
            human(self.options.limit_bytes),
            if self.projected_spill_bytes > 0 {
                format!(
                    ", up to {} spilled to the lower tiers",
                    human(self.projected_spill_bytes)
                )
            } else {
                String::new()
            },
            self.options.threads,
            if self.options.optimize && self.options.fuse {
                "on"
            } else {
                "off"
            }
        );
        for (i, st) in self.stages.iter().enumerate() {
            let _ = writeln!(
                s,
                "  stage {i}: {} — {} tasks, up to {} per task, {} output",
                st.name,
                st.tasks,
                human(st.max_task_bytes),
                human(st.output_bytes)
            );
            if !st.fused.is_empty() {
                let _ = writeln!(s, "    fused: {}", st.fused.join(" <- "));
            }
        }
        let _ = writeln!(s, "optimizer: {}", self.optimizer_log.join("; "));
        s
    }

    /// The expression graph before and after optimisation, one node per line.
    pub(crate) fn explain_graph(&self) -> String {
        format!(
            "graph before optimisation:\n{}graph after optimisation:\n{}",
            self.graph_before, self.graph_after
        )
    }
}

/// Bytes as a short human-readable string (binary units).
pub(crate) fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
