//! The array-level expression graph.
//!
//! Every lazy [`Array`](crate::Array) is a handle on a [`Node`]: an operation, its inputs, and the
//! shape, dtype and chunk grid of its result. Building a node checks shapes, axes and dtypes,
//! so errors surface when the user writes the expression, not when it runs.
//!
//! Nodes fall into three groups, which decide how the planner treats them:
//! - *formula* sources (`Full`, `Arange`, `FromFn`, `Random`) and *in-memory* sources (`Memory`),
//!   which any region can be evaluated from directly;
//! - *stored* sources (`External`: Zarr, Parquet, block closures; `Stored`: persisted chunks),
//!   whose chunks a task fetches before it starts;
//! - element-wise and structural operations, which the planner fuses into the tasks that
//!   consume them, and reductions, which always end a fused stage.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::chunk::ChunkData;
use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;

pub(crate) mod build;

/// The identity of a node, unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl NodeId {
    pub(crate) fn fresh() -> NodeId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NodeId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

pub(crate) type NodeRef = Arc<Node>;

/// One array-level operation with the shape, dtype and chunking of its result.
pub struct Node {
    pub(crate) id: NodeId,
    pub(crate) dtype: DType,
    pub(crate) grid: ChunkGrid,
    pub(crate) op: Op,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.id,
            self.op.name(),
            self.dtype,
            self.grid
        )
    }
}

impl Node {
    pub(crate) fn shape(&self) -> &[usize] {
        self.grid.shape()
    }

    pub(crate) fn ndim(&self) -> usize {
        self.grid.ndim()
    }

    pub(crate) fn nbytes(&self) -> u64 {
        self.shape().iter().product::<usize>() as u64 * self.dtype.size_bytes() as u64
    }

    /// Whether tasks read this node's data from stored chunks or an external source.
    pub(crate) fn is_stored_source(&self) -> bool {
        matches!(self.op, Op::External(_) | Op::Stored(_))
    }
}

/// A closure of the global element index, evaluated over any region.
pub(crate) trait RegionFn: Send + Sync {
    fn eval(&self, region: &Region) -> Result<ChunkData>;
}

/// A user closure applied element-wise.
pub(crate) trait MapFn: Send + Sync {
    fn apply(&self, input: ChunkData) -> Result<ChunkData>;
}

/// Chunks of a persisted array, kept in the session's store while a handle lives.
pub(crate) struct StoredArray {
    pub(crate) keys: Vec<crate::store::ChunkKey>,
    pub(crate) store: Arc<crate::store::ChunkStore>,
}

impl Drop for StoredArray {
    fn drop(&mut self) {
        for k in &self.keys {
            self.store.remove(*k);
        }
    }
}

/// Element-wise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum UnaryOp {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Ln,
    Sin,
    Cos,
    Powi(i32),
    Powf(f64),
    Clip(Scalar, Scalar),
    Not,
}

/// Element-wise functions of two arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Minimum,
    Maximum,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl BinaryOp {
    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne
        )
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
        }
    }
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ReduceOp {
    Sum,
    Mean,
    Var { ddof: f64 },
    Std { ddof: f64 },
    Min,
    Max,
}

impl ReduceOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Var { .. } => "var",
            ReduceOp::Std { .. } => "std",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ReduceSpec {
    pub(crate) op: ReduceOp,
    /// Reduced axes of the input, sorted.
    pub(crate) axes: Vec<usize>,
    pub(crate) keepdims: bool,
    pub(crate) split_every: usize,
}

pub(crate) enum Op {
    Full(Scalar),
    /// `start + i * step` along the only axis (`i64` when the dtype is `I64`); `end` replaces
    /// the last value when given (linspace's endpoint).
    Arange {
        start: f64,
        step: f64,
        end: Option<f64>,
    },
    FromFn(Arc<dyn RegionFn>),
    Random {
        seed: u64,
        normal: bool,
    },
    Memory(Arc<ChunkData>),
    External(Arc<dyn ChunkSource>),
    Stored(Arc<StoredArray>),
    Unary(UnaryOp, NodeRef),
    Binary(BinaryOp, NodeRef, NodeRef),
    /// The scalar is the left operand when the flag is true.
    BinaryScalar(BinaryOp, NodeRef, Scalar, bool),
    Where(NodeRef, NodeRef, NodeRef),
    Cast(NodeRef),
    Map(Arc<dyn MapFn>, NodeRef),
    /// Output axis `k` is input axis `perm[k]`.
    Transpose(Vec<usize>, NodeRef),
    /// Start per axis; the node's shape gives the lengths.
    Slice(Vec<usize>, NodeRef),
    Concat(usize, Vec<NodeRef>),
    InsertAxis(usize, NodeRef),
    Rechunk(NodeRef),
    Reduce(ReduceSpec, NodeRef),
}

impl Op {
    pub(crate) fn name(&self) -> String {
        match self {
            Op::Full(v) => format!("full({v:?})"),
            Op::Arange { .. } => "arange".into(),
            Op::FromFn(_) => "from_fn".into(),
            Op::Random { normal: false, .. } => "random_uniform".into(),
            Op::Random { normal: true, .. } => "random_normal".into(),
            Op::Memory(_) => "from_ndarray".into(),
            Op::External(s) => s.describe(),
            Op::Stored(_) => "persisted".into(),
            Op::Unary(u, _) => format!("{u:?}").to_lowercase(),
            Op::Binary(b, _, _) => b.symbol().into(),
            Op::BinaryScalar(b, _, s, _) => format!("{}({})", b.symbol(), s.as_f64()),
            Op::Where(..) => "where".into(),
            Op::Cast(_) => "astype".into(),
            Op::Map(..) => "map".into(),
            Op::Transpose(p, _) => format!("transpose{p:?}"),
            Op::Slice(..) => "slice".into(),
            Op::Concat(a, _) => format!("concatenate(axis={a})"),
            Op::InsertAxis(a, _) => format!("insert_axis({a})"),
            Op::Rechunk(_) => "rechunk".into(),
            Op::Reduce(s, _) => format!("{}(axes={:?})", s.op.name(), s.axes),
        }
    }
}

/// Creates a node.
pub(crate) fn node(dtype: DType, grid: ChunkGrid, op: Op) -> NodeRef {
    Arc::new(Node {
        id: NodeId::fresh(),
        dtype,
        grid,
        op,
    })
}

/// Broadcast shape of two shapes (numpy rules).
pub(crate) fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for k in 0..n {
        let da = if k + a.len() >= n {
            a[k + a.len() - n]
        } else {
            1
        };
        let db = if k + b.len() >= n {
            b[k + b.len() - n]
        } else {
            1
        };
        out[k] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::BroadcastMismatch {
                op: op.to_string(),
                left: a.to_vec(),
                right: b.to_vec(),
            });
        };
    }
    Ok(out)
}

/// The region of an operand of shape `in_shape` that a broadcast to `region` reads.
pub(crate) fn broadcast_region(region: &Region, in_shape: &[usize]) -> Region {
    let n = region.ndim();
    let off = n - in_shape.len();
    let mut start = Vec::with_capacity(in_shape.len());
    let mut shape = Vec::with_capacity(in_shape.len());
    for (k, &d) in in_shape.iter().enumerate() {
        if d == 1 {
            start.push(0);
            shape.push(region.shape()[k + off].min(1));
        } else {
            start.push(region.start()[k + off]);
            shape.push(region.shape()[k + off]);
        }
    }
    Region::new(start, shape)
}
