//! Blockwise fusion: choose which nodes end a stage.
//!
//! A reduction always ends a stage (its partials and combine tree are tasks of their own).
//! Everything else — sources, element-wise and structural operations, with any broadcasting —
//! is fused into the task that consumes it and evaluated there tile by tile, so its chunks never
//! exist. Stored sources (persisted chunks, Zarr, Parquet) are read by the consuming task.
//! With fusion off every operation is its own stage, as in Dask.

use std::collections::HashSet;

use super::{Graph, OptimizerRule};
use crate::graph::{NodeId, Op};

pub(crate) struct Fuse {
    pub(crate) enabled: bool,
}

impl Fuse {
    /// The nodes whose chunks are produced by tasks and kept in the store.
    pub(crate) fn boundaries(&self, g: &Graph) -> HashSet<NodeId> {
        g.nodes()
            .iter()
            .filter(|n| match n.op {
                Op::Reduce(..) => true,
                Op::Stored(_) | Op::External(_) | Op::Memory(_) => false,
                _ => !self.enabled,
            })
            .map(|n| n.id)
            .collect()
    }
}

impl OptimizerRule for Fuse {
    fn name(&self) -> &'static str {
        "fuse"
    }

    /// Fusion labels the graph rather than rewriting it.
    fn rewrite(&self, g: Graph) -> Graph {
        g
    }
}
