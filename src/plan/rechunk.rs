//! Rechunking through an intermediate: the plan for chunkings that cut across each other.
//!
//! A rechunk is normally evaluated inside its consumer: each output chunk reads the region it
//! needs of the input. That is free when the input is a formula, but when the input is stored
//! (a Zarr array, persisted chunks) every output chunk must fetch and decode *whole* input
//! chunks. Turning row chunks into column chunks then decodes the whole array once per output
//! chunk, or needs all of it in RAM at once. Rechunker and Cubed solve this with two stages:
//!
//! ```text
//!   input chunks (5000 × 10000)        pieces (5000 × 500)          output chunks (50000 × 500)
//!   ┌──────────────────────┐  split   ┌─┬─┬─┬─┬─┬─┬─┬─┬─┬─┐  gather  ┌─┐
//!   │ read once, streamed  │ ───────▶ │ │ │ │ │ │ │ │ │ │ │ ───────▶ │ │ each reads only
//!   └──────────────────────┘          └─┴─┴─┴─┴─┴─┴─┴─┴─┴─┘          │ │ its pieces
//!                                      (tiered store: RAM,            └─┘
//!                                       compressed, disk)
//! ```
//!
//! Stage one reads each input chunk once and splits it into *pieces*: the cells of the grid
//! whose boundaries are those of both chunkings, so a piece lies inside one input chunk and
//! inside one output chunk. The pieces live in the tiered store, which spills them to disk
//! when the budget is short. Stage two is the consumer itself: each of its tasks reads just
//! the pieces of its region. The choice between the direct plan and this one is made per
//! rechunk when lowering, from what the direct plan would read ([`Lowering`](super)).

use std::collections::HashMap;
use std::sync::Arc;

use crate::chunk::ChunkData;
use crate::error::Result;
use crate::graph::{NodeId, NodeRef};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;

use super::eval;
use super::{TaskBody, TaskEnv};

/// A grid with its own boundaries on every axis (not necessarily regular): the cells where
/// two chunkings of the same shape overlap.
#[derive(Clone, Debug)]
pub(crate) struct CellGrid {
    /// For each axis, the cell starts followed by the axis length.
    bounds: Vec<Vec<usize>>,
}

impl CellGrid {
    /// The cells of the union of two grids' chunk boundaries.
    #[cfg(test)]
    fn intersection(a: &ChunkGrid, b: &ChunkGrid) -> CellGrid {
        Self::with_leading_step(a, b, usize::MAX)
    }

    /// As [`intersection`](Self::intersection), with the leading axis also cut every `step`
    /// elements inside each chunk of `a`: a split task that reads a chunk of `a` in C order
    /// then completes a band of cells every `step` rows and can hand them over, holding one
    /// band instead of the whole chunk.
    pub(crate) fn with_leading_step(a: &ChunkGrid, b: &ChunkGrid, step: usize) -> CellGrid {
        let bounds = (0..a.ndim())
            .map(|k| {
                let n = a.shape()[k];
                let mut v: Vec<usize> = [a, b]
                    .iter()
                    .flat_map(|g| {
                        let c = g.chunk_shape()[k].max(1);
                        (0..n).step_by(c)
                    })
                    .collect();
                if k == 0 && step < a.chunk_shape()[0] {
                    let c = a.chunk_shape()[0].max(1);
                    for start in (0..n).step_by(c) {
                        v.extend((start..(start + c).min(n)).step_by(step.max(1)));
                    }
                }
                v.push(n);
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        CellGrid { bounds }
    }

    fn counts(&self) -> Vec<usize> {
        self.bounds
            .iter()
            .map(|b| b.len().saturating_sub(1))
            .collect()
    }

    /// The number of cells.
    pub(crate) fn num_cells(&self) -> usize {
        self.counts().iter().product()
    }

    /// The region of the cell at a linear (C order) index.
    pub(crate) fn cell_region(&self, mut lin: usize) -> Region {
        let counts = self.counts();
        let mut start = vec![0; counts.len()];
        let mut shape = vec![0; counts.len()];
        for k in (0..counts.len()).rev() {
            let i = lin % counts[k].max(1);
            lin /= counts[k].max(1);
            start[k] = self.bounds[k][i];
            shape[k] = self.bounds[k][i + 1] - self.bounds[k][i];
        }
        Region::new(start, shape)
    }

    /// Linear indices of the cells overlapping `region`, in C order.
    pub(crate) fn cells_overlapping(&self, region: &Region) -> Vec<usize> {
        let counts = self.counts();
        let mut ranges = Vec::with_capacity(counts.len());
        for (k, b) in self.bounds.iter().enumerate() {
            if counts[k] == 0 || region.shape()[k] == 0 {
                return vec![];
            }
            let (lo, hi) = (region.start()[k], region.end(k));
            // The cell holding `lo`, up to the cell holding `hi - 1`.
            let first = b.partition_point(|&x| x <= lo).saturating_sub(1);
            let last = b.partition_point(|&x| x < hi).saturating_sub(1);
            ranges.push(first..last + 1);
        }
        let mut out = vec![0usize];
        for (k, r) in ranges.into_iter().enumerate() {
            let n = counts[k];
            out = out
                .iter()
                .flat_map(|&base| r.clone().map(move |i| base * n + i))
                .collect();
        }
        out
    }
}

/// How a rechunk split reads its input.
pub(crate) enum SplitInput {
    /// The input is a stored source: stream it piece by piece, never whole.
    Source(Arc<dyn ChunkSource>),
    /// The input is an expression: evaluate it tile by tile over the task's leaves.
    Expr {
        node: NodeRef,
        pieces: Vec<(NodeId, Region)>,
        externals: Vec<(NodeRef, Region)>,
        shared: std::collections::HashSet<NodeId>,
    },
}

/// Stage one of a rechunk: reads one region of the input once and splits it into the
/// pieces of the cell grid inside it. Each piece goes into the store as soon as its last
/// element arrives (the store spills it when the budget is short), so the task holds only
/// the pieces being filled, a band of them when the region is read in C order.
pub(crate) struct SplitBody {
    pub(crate) input: SplitInput,
    pub(crate) region: Region,
    pub(crate) cells: Arc<CellGrid>,
    /// The cells this task produces, by linear index, with their store keys.
    pub(crate) outputs: Vec<(usize, crate::store::ChunkKey)>,
    pub(crate) dtype: crate::dtype::DType,
    pub(crate) tile_elems: usize,
}

impl TaskBody for SplitBody {
    fn run(&self, inputs: &[Arc<ChunkData>], env: &TaskEnv) -> Result<Vec<ChunkData>> {
        let slot: HashMap<usize, usize> = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, &(c, _))| (c, i))
            .collect();
        let regions: Vec<Region> = self
            .outputs
            .iter()
            .map(|&(c, _)| self.cells.cell_region(c))
            .collect();
        // A piece's buffer exists from its first element to its last; filled completely by
        // the scatter (pooled buffers avoid first-touch faults).
        let mut bufs: Vec<Option<ChunkData>> = vec![None; regions.len()];
        let mut filled = vec![0usize; regions.len()];
        let mut scatter = |band: &Region, data: ChunkData| -> Result<()> {
            let data = data.into_dtype(self.dtype);
            for c in self.cells.cells_overlapping(band) {
                let Some(&i) = slot.get(&c) else { continue };
                let r = &regions[i];
                let Some(ov) = r.intersect(band).filter(|o| !o.is_empty()) else {
                    continue;
                };
                if ov == *band && ov == *r {
                    bufs[i] = Some(data.clone());
                } else {
                    bufs[i]
                        .get_or_insert_with(|| env.pool.zeros(self.dtype, r.shape()))
                        .assign_region(&ov.relative_to(r), &data.slice(&ov.relative_to(band)));
                }
                filled[i] += ov.len();
                if filled[i] == r.len()
                    && let Some(piece) = bufs[i].take()
                {
                    env.store.put(self.outputs[i].1, Arc::new(piece))?;
                }
            }
            Ok(())
        };
        match &self.input {
            SplitInput::Source(src) => {
                src.read_pieces(&self.region, self.tile_elems, &mut scatter)?
            }
            SplitInput::Expr {
                node,
                pieces,
                externals,
                shared,
            } => {
                let ctx = super::build_ctx(pieces, inputs, externals, shared)?;
                let mut memo = HashMap::new();
                for t in eval::tiles(&self.region, self.tile_elems) {
                    memo.clear();
                    let v = eval::eval(node, &t, &ctx, &mut memo)?;
                    scatter(&t, v)?;
                }
            }
        }
        // Every piece was handed over as it completed.
        debug_assert!(bufs.iter().all(Option::is_none));
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_the_overlaps_of_both_chunkings() {
        let a = ChunkGrid::new(vec![10, 6], vec![4, 6]).unwrap();
        let b = ChunkGrid::new(vec![10, 6], vec![10, 4]).unwrap();
        let g = CellGrid::intersection(&a, &b);
        assert_eq!(g.num_cells(), 3 * 2);
        assert_eq!(g.cell_region(0), Region::new(vec![0, 0], vec![4, 4]));
        assert_eq!(g.cell_region(5), Region::new(vec![8, 4], vec![2, 2]));
        // Every cell lies inside one chunk of each grid, and the cells tile the array.
        let total: usize = (0..g.num_cells()).map(|c| g.cell_region(c).len()).sum();
        assert_eq!(total, 60);
        for c in 0..g.num_cells() {
            let r = g.cell_region(c);
            assert_eq!(a.chunks_overlapping(&r).len(), 1);
            assert_eq!(b.chunks_overlapping(&r).len(), 1);
        }
        assert_eq!(
            g.cells_overlapping(&Region::new(vec![3, 3], vec![2, 2])),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            g.cells_overlapping(&Region::new(vec![4, 4], vec![4, 2])),
            vec![3]
        );
    }
}
