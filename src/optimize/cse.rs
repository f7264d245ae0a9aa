//! Common-subexpression elimination: structurally equal nodes become one.
//!
//! Two nodes are equal when their operation and parameters, dtype, chunk grid and (already
//! merged) inputs are equal. Closures, in-memory arrays and external sources compare by
//! identity, so only the same source object merges.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Graph, OptimizerRule, inputs, rewrite};
use crate::graph::{Node, NodeRef, Op};

pub(crate) struct Cse;

fn ptr<T: ?Sized>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as *const () as usize
}

/// A string that is equal for structurally equal nodes.
pub(crate) fn key(n: &Node) -> String {
    let op = match &n.op {
        Op::Full(v) => format!("full {v:?}"),
        Op::Arange { start, step, end } => format!("arange {start:?} {step:?} {end:?}"),
        Op::FromFn(f) => format!("from_fn {}", ptr(f)),
        Op::Random { seed, normal } => format!("random {seed} {normal}"),
        Op::Memory(d) => format!("memory {}", ptr(d)),
        Op::External(s) => format!("external {}", ptr(s)),
        Op::Stored(s) => format!("stored {}", ptr(s)),
        Op::Unary(u, _) => format!("unary {u:?}"),
        Op::Binary(b, _, _) => format!("binary {b:?}"),
        Op::BinaryScalar(b, _, s, l) => format!("scalar {b:?} {s:?} {l}"),
        Op::Where(..) => "where".into(),
        Op::Cast(_) => "cast".into(),
        Op::Map(f, _) => format!("map {}", ptr(f)),
        Op::Transpose(p, _) => format!("transpose {p:?}"),
        Op::Slice(s, _) => format!("slice {s:?}"),
        Op::Concat(a, _) => format!("concat {a}"),
        Op::InsertAxis(a, _) => format!("insert_axis {a}"),
        Op::Rechunk(_) => "rechunk".into(),
        Op::Reduce(spec, _) => format!(
            "reduce {:?} {:?} {} {}",
            spec.op, spec.axes, spec.keepdims, spec.split_every
        ),
    };
    let ins: Vec<u64> = inputs(n).iter().map(|i| i.id.0).collect();
    format!(
        "{op}|{}|{:?}|{:?}|{ins:?}",
        n.dtype,
        n.shape(),
        n.grid.chunk_shape()
    )
}

impl OptimizerRule for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn rewrite(&self, g: Graph) -> Graph {
        let mut seen: HashMap<String, NodeRef> = HashMap::new();
        rewrite(&g, |n| Arc::clone(seen.entry(key(&n)).or_insert(n)))
    }
}
