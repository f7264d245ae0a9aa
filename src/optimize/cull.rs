//! Cull: drop operations that do nothing, and with them every node no target needs.
//!
//! A cast to the dtype a node already has, a rechunk to the grid it already has, an identity
//! transpose and a slice of the whole array are replaced by their input. Nodes that no target
//! reaches afterwards are gone from the graph (it is defined by reachability from its targets).

use std::sync::Arc;

use super::{Graph, OptimizerRule, rewrite};
use crate::graph::{NodeRef, Op};

pub(crate) struct Cull;

fn simplify(n: NodeRef) -> NodeRef {
    match &n.op {
        Op::Cast(a) if a.dtype == n.dtype => Arc::clone(a),
        Op::Rechunk(a) if a.grid == n.grid => Arc::clone(a),
        Op::Transpose(p, a) if p.iter().enumerate().all(|(k, &q)| k == q) && a.grid == n.grid => {
            Arc::clone(a)
        }
        Op::Slice(s, a)
            if s.iter().all(|&v| v == 0) && a.shape() == n.shape() && a.grid == n.grid =>
        {
            Arc::clone(a)
        }
        _ => n,
    }
}

impl OptimizerRule for Cull {
    fn name(&self) -> &'static str {
        "cull"
    }

    fn rewrite(&self, g: Graph) -> Graph {
        rewrite(&g, simplify)
    }
}
