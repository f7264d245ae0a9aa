//! Graph optimisation, run before lowering: a list of rules, one per file, applied in order.
//!
//! ```text
//!   targets ──▶ 1. cse   merge structurally equal nodes (x.mean(0) written twice is one node)
//!           ──▶ 2. cull  drop no-op nodes (same-dtype casts, same-grid rechunks, identity
//!                        transposes, full slices) and everything no target needs
//!           ──▶ 3. fuse  choose stage boundaries: reductions always; with fusion on, every
//!                        element-wise and structural node between them is evaluated inside
//!                        the consuming task, tile by tile
//! ```
//!
//! CSE runs first so that cull sees merged inputs, and fusion last because it only labels the
//! final graph. Every rule is a pure function from graph to graph; [`optimize`] records what
//! each did for `explain()`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::graph::{Node, NodeId, NodeRef, Op};

mod cse;
mod cull;
mod fuse;

pub(crate) use fuse::Fuse;

/// The graph a computation needs: its targets and everything they reach.
#[derive(Clone)]
pub(crate) struct Graph {
    pub(crate) targets: Vec<NodeRef>,
}

impl Graph {
    /// All nodes, each once, inputs before consumers.
    pub(crate) fn nodes(&self) -> Vec<NodeRef> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for t in &self.targets {
            let mut stack: Vec<(NodeRef, bool)> = vec![(Arc::clone(t), false)];
            while let Some((n, expanded)) = stack.pop() {
                if expanded {
                    out.push(n);
                    continue;
                }
                if !seen.insert(n.id) {
                    continue;
                }
                stack.push((Arc::clone(&n), true));
                for i in inputs(&n).into_iter().rev() {
                    if !seen.contains(&i.id) {
                        stack.push((Arc::clone(i), false));
                    }
                }
            }
        }
        out
    }

    /// One line per node: `n7 = add(n3, n5) f64 [100, 10] chunks [10, 10]`.
    pub(crate) fn describe(&self) -> String {
        let mut s = String::new();
        for n in self.nodes() {
            let ins: Vec<String> = inputs(&n).iter().map(|i| i.id.to_string()).collect();
            let _ = writeln!(
                s,
                "    {} = {}({}) {} {:?} chunks {:?}",
                n.id,
                n.op.name(),
                ins.join(", "),
                n.dtype,
                n.shape(),
                n.grid.chunk_shape()
            );
        }
        s
    }
}

/// The inputs of a node, in order.
pub(crate) fn inputs(n: &Node) -> Vec<&NodeRef> {
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
        | Op::Transpose(_, a)
        | Op::Slice(_, a)
        | Op::InsertAxis(_, a)
        | Op::Rechunk(a)
        | Op::Reduce(_, a) => vec![a],
        Op::Binary(_, a, b) => vec![a, b],
        Op::Where(c, a, b) => vec![c, a, b],
        Op::Concat(_, xs) => xs.iter().collect(),
    }
}

/// A copy of `n` reading `new` instead of its inputs (same order); `n` itself when nothing
/// changed.
pub(crate) fn with_inputs(n: &NodeRef, new: &[NodeRef]) -> NodeRef {
    let old = inputs(n);
    if old.iter().zip(new).all(|(a, b)| a.id == b.id) {
        return Arc::clone(n);
    }
    let a = || Arc::clone(&new[0]);
    let op = match &n.op {
        Op::Unary(u, _) => Op::Unary(*u, a()),
        Op::BinaryScalar(b, _, s, l) => Op::BinaryScalar(*b, a(), *s, *l),
        Op::Cast(_) => Op::Cast(a()),
        Op::Map(f, _) => Op::Map(Arc::clone(f), a()),
        Op::Transpose(p, _) => Op::Transpose(p.clone(), a()),
        Op::Slice(s, _) => Op::Slice(s.clone(), a()),
        Op::InsertAxis(x, _) => Op::InsertAxis(*x, a()),
        Op::Rechunk(_) => Op::Rechunk(a()),
        Op::Reduce(spec, _) => Op::Reduce(spec.clone(), a()),
        Op::Binary(b, _, _) => Op::Binary(*b, a(), Arc::clone(&new[1])),
        Op::Where(..) => Op::Where(a(), Arc::clone(&new[1]), Arc::clone(&new[2])),
        Op::Concat(x, _) => Op::Concat(*x, new.to_vec()),
        _ => return Arc::clone(n),
    };
    crate::graph::node(n.dtype, n.grid.clone(), op)
}

/// Rebuilds the graph bottom-up with `f` choosing each node's replacement (given the node
/// with its inputs already replaced).
pub(crate) fn rewrite(g: &Graph, mut f: impl FnMut(NodeRef) -> NodeRef) -> Graph {
    let mut map: HashMap<NodeId, NodeRef> = HashMap::new();
    for n in g.nodes() {
        let new_inputs: Vec<NodeRef> = inputs(&n).iter().map(|i| Arc::clone(&map[&i.id])).collect();
        let rebuilt = with_inputs(&n, &new_inputs);
        map.insert(n.id, f(rebuilt));
    }
    Graph {
        targets: g.targets.iter().map(|t| Arc::clone(&map[&t.id])).collect(),
    }
}

/// One rewrite of the graph.
pub(crate) trait OptimizerRule {
    fn name(&self) -> &'static str;
    fn rewrite(&self, g: Graph) -> Graph;
}

/// The optimised graph, its stage boundaries and what each rule did.
pub(crate) struct Optimized {
    pub(crate) graph: Graph,
    pub(crate) boundaries: HashSet<NodeId>,
    pub(crate) log: Vec<String>,
    pub(crate) before: String,
    pub(crate) after: String,
}

/// Runs the rules in their documented order. With `enabled` off only the fusion labelling
/// runs, marking every operation as its own stage (the plan Dask would run).
pub(crate) fn optimize(targets: Vec<NodeRef>, enabled: bool, fuse_on: bool) -> Optimized {
    let mut g = Graph { targets };
    let before = g.describe();
    let mut log = Vec::new();
    if enabled {
        let rules: [&dyn OptimizerRule; 2] = [&cse::Cse, &cull::Cull];
        for r in rules {
            let n0 = g.nodes().len();
            g = r.rewrite(g);
            log.push(format!("{}: {} -> {} nodes", r.name(), n0, g.nodes().len()));
        }
    }
    let fuse = Fuse {
        enabled: enabled && fuse_on,
    };
    let boundaries = fuse.boundaries(&g);
    let fused = g
        .nodes()
        .iter()
        .filter(|n| !boundaries.contains(&n.id) && !inputs(n).is_empty())
        .count();
    log.push(format!(
        "{}: {} stage boundaries, {} operations fused into their consumers",
        fuse.name(),
        boundaries.len(),
        fused
    ));
    let after = g.describe();
    Optimized {
        graph: g,
        boundaries,
        log,
        before,
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Session};

    fn session() -> Session {
        Session::builder().memory_limit("16MiB").build().unwrap()
    }

    #[test]
    fn cse_merges_a_reduction_written_twice() {
        let s = session();
        let x = s.random_uniform(&[10, 4], [5, 4], 1).unwrap();
        let y = (&x.mean(0).unwrap() + &x.mean(0).unwrap()).unwrap();
        let g = Graph {
            targets: vec![Arc::clone(&y.node)],
        };
        assert_eq!(g.nodes().len(), 4, "random, two means, add");
        let g = cse::Cse.rewrite(g);
        assert_eq!(g.nodes().len(), 3);
        let means: Vec<_> = g
            .nodes()
            .into_iter()
            .filter(|n| matches!(n.op, Op::Reduce(..)))
            .collect();
        assert_eq!(means.len(), 1);
        // The add reads the same node twice.
        let Op::Binary(_, a, b) = &g.targets[0].op else {
            panic!("target is the add")
        };
        assert_eq!(a.id, b.id);
    }

    #[test]
    fn cse_keeps_different_parameters_and_closures_apart() {
        let s = session();
        let x = s.random_uniform(&[10], [5], 1).unwrap();
        let a = s.from_fn(&[10], [5], |ix| ix[0] as f64).unwrap();
        let b = s.from_fn(&[10], [5], |ix| ix[0] as f64).unwrap();
        let y = (&(&(&x * 2.0) + &(&x * 3.0)).unwrap() + &(&a + &b).unwrap()).unwrap();
        let g = cse::Cse.rewrite(Graph {
            targets: vec![Arc::clone(&y.node)],
        });
        assert_eq!(
            g.nodes().len(),
            Graph {
                targets: vec![Arc::clone(&y.node)]
            }
            .nodes()
            .len()
        );
    }

    #[test]
    fn cull_drops_no_op_nodes() {
        let s = session();
        let x = s.random_uniform(&[10, 6], [5, 3], 1).unwrap();
        let y = x
            .astype(DType::F64)
            .rechunk([5, 3])
            .unwrap()
            .permute_axes(&[0, 1])
            .unwrap()
            .slice(&[0..10, 0..6])
            .unwrap();
        let y = y.sin().unwrap();
        let g = cull::Cull.rewrite(Graph {
            targets: vec![Arc::clone(&y.node)],
        });
        let names: Vec<String> = g.nodes().iter().map(|n| n.op.name()).collect();
        assert_eq!(names, vec!["random_uniform".to_string(), "sin".to_string()]);
    }

    #[test]
    fn fuse_marks_only_reductions_as_boundaries() {
        let s = session();
        let x = s.random_uniform(&[10, 6], [5, 3], 1).unwrap();
        let z = ((&x - &x.mean(0).unwrap()).unwrap() / &x.std(0, 0.0).unwrap()).unwrap();
        let g = Graph {
            targets: vec![Arc::clone(&z.node)],
        };
        let on = Fuse { enabled: true }.boundaries(&g);
        assert_eq!(on.len(), 2, "mean and std");
        let off = Fuse { enabled: false }.boundaries(&g);
        assert_eq!(off.len(), g.nodes().len(), "every node is its own stage");
    }

    #[test]
    fn optimize_reports_each_rule_in_order() {
        let s = session();
        let x = s.random_uniform(&[10], [5], 1).unwrap();
        let y = (&x.sum(0).unwrap() + &x.sum(0).unwrap()).unwrap();
        let o = optimize(vec![Arc::clone(&y.node)], true, true);
        assert!(o.log[0].starts_with("cse: 4 -> 3"), "{:?}", o.log);
        assert!(o.log[1].starts_with("cull"), "{:?}", o.log);
        assert!(
            o.log[2].starts_with("fuse: 1 stage boundaries"),
            "{:?}",
            o.log
        );
        assert!(o.before.lines().count() > o.after.lines().count());
    }
}
