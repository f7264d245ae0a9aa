//! Checked constructors of graph nodes: shape, dtype and chunk-grid inference.

use std::sync::Arc;

use super::*;
use crate::grid::Chunks;

fn grid_like(shape: Vec<usize>, chunk: Vec<usize>) -> ChunkGrid {
    ChunkGrid::new(shape.clone(), chunk).unwrap_or_else(|_| ChunkGrid::single(&shape))
}

/// The chunk grid of a broadcast result: each axis takes the chunking of an operand that is
/// not broadcast along it.
fn broadcast_grid(shape: &[usize], operands: &[&NodeRef]) -> ChunkGrid {
    let n = shape.len();
    let chunk = (0..n)
        .map(|k| {
            operands
                .iter()
                .filter_map(|o| {
                    let off = n - o.ndim();
                    (k >= off && o.shape()[k - off] == shape[k])
                        .then(|| o.grid.chunk_shape()[k - off])
                })
                .next()
                .unwrap_or(shape[k].max(1))
        })
        .collect();
    grid_like(shape.to_vec(), chunk)
}

/// An operand in the chunking of the result it is combined into (a rechunk node when they
/// differ, which cull removes again when they do not): so that the planner, not each output
/// chunk on its own, decides how stored operands in another chunking are read.
fn aligned(o: &NodeRef, grid: &ChunkGrid) -> NodeRef {
    let off = grid.ndim() - o.ndim();
    let chunk: Vec<usize> = (0..o.ndim())
        .map(|k| {
            if o.shape()[k] == grid.shape()[k + off] {
                grid.chunk_shape()[k + off]
            } else {
                o.grid.chunk_shape()[k]
            }
        })
        .collect();
    if chunk == o.grid.chunk_shape() {
        Arc::clone(o)
    } else {
        node(
            o.dtype,
            grid_like(o.shape().to_vec(), chunk),
            Op::Rechunk(Arc::clone(o)),
        )
    }
}

pub(crate) fn unary(op: UnaryOp, a: &NodeRef) -> Result<NodeRef> {
    let dt = a.dtype;
    let unsupported = |hint: &str| Error::UnsupportedDType {
        op: format!("{op:?}").to_lowercase(),
        dtype: dt,
        hint: hint.into(),
    };
    let out = match op {
        UnaryOp::Neg if dt == DType::Bool => return Err(unsupported("; use `not` for booleans")),
        UnaryOp::Not if dt != DType::Bool => return Err(unsupported("; `not` takes a bool array")),
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Not => dt,
        UnaryOp::Powi(_) if dt == DType::Bool => {
            return Err(unsupported("; cast with `astype` first"));
        }
        UnaryOp::Powi(_) => dt,
        UnaryOp::Clip(..) if dt == DType::Bool => return Err(unsupported("")),
        UnaryOp::Clip(..) => dt,
        UnaryOp::Sqrt
        | UnaryOp::Exp
        | UnaryOp::Ln
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Powf(_) => dt.float_result(),
    };
    Ok(node(out, a.grid.clone(), Op::Unary(op, Arc::clone(a))))
}

fn arithmetic_dtype(op: BinaryOp, l: DType, r: DType) -> Result<DType> {
    let p = l.promote(r);
    if op.is_comparison() {
        return Ok(DType::Bool);
    }
    match op {
        BinaryOp::Div => Ok(p.float_result()),
        BinaryOp::Minimum | BinaryOp::Maximum => Ok(p),
        _ if p == DType::Bool => Err(Error::DTypeMismatch {
            op: format!("{} (cast booleans with `astype` first)", op.symbol()),
            left: l,
            right: r,
        }),
        _ => Ok(p),
    }
}

pub(crate) fn binary(op: BinaryOp, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    let shape = broadcast_shapes(op.symbol(), a.shape(), b.shape())?;
    let dtype = arithmetic_dtype(op, a.dtype, b.dtype)?;
    let grid = broadcast_grid(&shape, &[a, b]);
    let (a, b) = (aligned(a, &grid), aligned(b, &grid));
    Ok(node(dtype, grid, Op::Binary(op, a, b)))
}

pub(crate) fn binary_scalar(
    op: BinaryOp,
    a: &NodeRef,
    s: Scalar,
    scalar_left: bool,
) -> Result<NodeRef> {
    let p = s.result_dtype_with(a.dtype);
    let dtype = if op.is_comparison() {
        DType::Bool
    } else {
        match op {
            BinaryOp::Div => p.float_result(),
            BinaryOp::Minimum | BinaryOp::Maximum => p,
            _ if p == DType::Bool => {
                return Err(Error::DTypeMismatch {
                    op: format!("{} (cast booleans with `astype` first)", op.symbol()),
                    left: a.dtype,
                    right: s.dtype(),
                });
            }
            _ => p,
        }
    };
    Ok(node(
        dtype,
        a.grid.clone(),
        Op::BinaryScalar(op, Arc::clone(a), s, scalar_left),
    ))
}

pub(crate) fn where_(c: &NodeRef, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    if c.dtype != DType::Bool {
        return Err(Error::UnsupportedDType {
            op: "where".into(),
            dtype: c.dtype,
            hint: "; the condition must be a bool array".into(),
        });
    }
    let s = broadcast_shapes("where", c.shape(), a.shape())?;
    let shape = broadcast_shapes("where", &s, b.shape())?;
    let grid = broadcast_grid(&shape, &[c, a, b]);
    let dtype = a.dtype.promote(b.dtype);
    let (c, a, b) = (aligned(c, &grid), aligned(a, &grid), aligned(b, &grid));
    Ok(node(dtype, grid, Op::Where(c, a, b)))
}

pub(crate) fn cast(a: &NodeRef, dtype: DType) -> NodeRef {
    node(dtype, a.grid.clone(), Op::Cast(Arc::clone(a)))
}

pub(crate) fn map(a: &NodeRef, f: Arc<dyn MapFn>, out: DType) -> NodeRef {
    node(out, a.grid.clone(), Op::Map(f, Arc::clone(a)))
}

pub(crate) fn check_axis(axis: usize, ndim: usize) -> Result<()> {
    if axis >= ndim {
        Err(Error::AxisOutOfRange { axis, ndim })
    } else {
        Ok(())
    }
}

pub(crate) fn transpose(a: &NodeRef, perm: &[usize]) -> Result<NodeRef> {
    if perm.len() != a.ndim() {
        return Err(Error::InvalidArgument(format!(
            "permutation {perm:?} has {} entries for {} axes",
            perm.len(),
            a.ndim()
        )));
    }
    let mut seen = vec![false; perm.len()];
    for &p in perm {
        check_axis(p, a.ndim())?;
        if seen[p] {
            return Err(Error::DuplicateAxis { axis: p });
        }
        seen[p] = true;
    }
    let shape = perm.iter().map(|&p| a.shape()[p]).collect();
    let chunk = perm.iter().map(|&p| a.grid.chunk_shape()[p]).collect();
    Ok(node(
        a.dtype,
        grid_like(shape, chunk),
        Op::Transpose(perm.to_vec(), Arc::clone(a)),
    ))
}

pub(crate) fn slice(a: &NodeRef, ranges: &[std::ops::Range<usize>]) -> Result<NodeRef> {
    if ranges.len() > a.ndim() {
        return Err(Error::InvalidArgument(format!(
            "{} ranges for an array of {} axes",
            ranges.len(),
            a.ndim()
        )));
    }
    let mut start = vec![0; a.ndim()];
    let mut shape = a.shape().to_vec();
    for (axis, r) in ranges.iter().enumerate() {
        let len = a.shape()[axis];
        if r.start > r.end || r.end > len {
            return Err(Error::InvalidRange {
                axis,
                start: r.start,
                end: r.end,
                len,
            });
        }
        start[axis] = r.start;
        shape[axis] = r.end - r.start;
    }
    let chunk = a.grid.chunk_shape().to_vec();
    Ok(node(
        a.dtype,
        grid_like(shape, chunk),
        Op::Slice(start, Arc::clone(a)),
    ))
}

pub(crate) fn concat(xs: &[NodeRef], axis: usize) -> Result<NodeRef> {
    let first = xs
        .first()
        .ok_or_else(|| Error::InvalidArgument("concatenate needs at least one array".into()))?;
    check_axis(axis, first.ndim())?;
    let mut shape = first.shape().to_vec();
    let mut dtype = first.dtype;
    for x in &xs[1..] {
        let mut expect = first.shape().to_vec();
        expect[axis] = x.shape().get(axis).copied().unwrap_or(0);
        if x.shape() != expect.as_slice() {
            return Err(Error::ShapeMismatch {
                op: format!("concatenate along axis {axis}"),
                expected: expect,
                actual: x.shape().to_vec(),
            });
        }
        shape[axis] += x.shape()[axis];
        dtype = dtype.promote(x.dtype);
    }
    let chunk = first.grid.chunk_shape().to_vec();
    let inputs = xs
        .iter()
        .map(|x| {
            if x.dtype == dtype {
                Arc::clone(x)
            } else {
                cast(x, dtype)
            }
        })
        .collect();
    Ok(node(
        dtype,
        grid_like(shape, chunk),
        Op::Concat(axis, inputs),
    ))
}

pub(crate) fn insert_axis(a: &NodeRef, axis: usize) -> Result<NodeRef> {
    check_axis(axis, a.ndim() + 1)?;
    let mut shape = a.shape().to_vec();
    shape.insert(axis, 1);
    crate::grid::check_shape(&shape)?;
    let mut chunk = a.grid.chunk_shape().to_vec();
    chunk.insert(axis, 1);
    Ok(node(
        a.dtype,
        grid_like(shape, chunk),
        Op::InsertAxis(axis, Arc::clone(a)),
    ))
}

pub(crate) fn rechunk(a: &NodeRef, chunks: &Chunks, target_bytes: u64) -> Result<NodeRef> {
    let grid = chunks.resolve(a.shape(), a.dtype.size_bytes(), target_bytes)?;
    Ok(node(a.dtype, grid, Op::Rechunk(Arc::clone(a))))
}

pub(crate) fn normalize_axes(axes: Option<&[usize]>, ndim: usize) -> Result<Vec<usize>> {
    let mut v: Vec<usize> = match axes {
        None => (0..ndim).collect(),
        Some(a) => a.to_vec(),
    };
    for &a in &v {
        check_axis(a, ndim)?;
    }
    v.sort_unstable();
    for w in v.windows(2) {
        if w[0] == w[1] {
            return Err(Error::DuplicateAxis { axis: w[0] });
        }
    }
    Ok(v)
}

pub(crate) fn reduce_dtype(op: ReduceOp, dt: DType) -> DType {
    match op {
        ReduceOp::Sum if dt.is_float() => dt,
        ReduceOp::Sum => DType::I64,
        ReduceOp::Mean | ReduceOp::Var { .. } | ReduceOp::Std { .. } => dt.float_result(),
        ReduceOp::Min | ReduceOp::Max => dt,
    }
}

pub(crate) fn reduce(
    a: &NodeRef,
    op: ReduceOp,
    axes: Option<&[usize]>,
    keepdims: bool,
    split_every: usize,
) -> Result<NodeRef> {
    let axes = normalize_axes(axes, a.ndim())?;
    if split_every < 2 {
        return Err(Error::InvalidArgument(format!(
            "split_every must be at least 2, got {split_every}"
        )));
    }
    if matches!(op, ReduceOp::Min | ReduceOp::Max)
        && let Some(&ax) = axes.iter().find(|&&ax| a.shape()[ax] == 0)
    {
        return Err(Error::InvalidShape {
            shape: a.shape().to_vec(),
            reason: format!("{} over the empty axis {ax} has no identity", op.name()),
        });
    }
    if let ReduceOp::Var { ddof } | ReduceOp::Std { ddof } = op
        && (ddof.is_nan() || ddof < 0.0)
    {
        return Err(Error::InvalidArgument(format!(
            "ddof must be >= 0, got {ddof}"
        )));
    }
    let mut shape = Vec::new();
    let mut chunk = Vec::new();
    for k in 0..a.ndim() {
        if axes.contains(&k) {
            if keepdims {
                shape.push(1);
                chunk.push(1);
            }
        } else {
            shape.push(a.shape()[k]);
            chunk.push(a.grid.chunk_shape()[k]);
        }
    }
    let spec = ReduceSpec {
        op,
        axes,
        keepdims,
        split_every,
    };
    Ok(node(
        reduce_dtype(op, a.dtype),
        grid_like(shape, chunk),
        Op::Reduce(spec, Arc::clone(a)),
    ))
}
