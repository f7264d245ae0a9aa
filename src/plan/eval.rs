//! Evaluating a fused expression over a region, tile by tile.
//!
//! A task evaluates the element-wise and structural operations between its *leaves* (stored
//! chunks, external sources, reductions computed by earlier tasks) and its output region. The
//! region is cut into tiles of a few hundred KiB, and each tile is evaluated through the whole
//! expression before the next one starts, so an intermediate array never exists at chunk size:
//! only a handful of tiles per thread are alive at once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chunk::ChunkData;
use crate::dispatch_dtype;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::graph::{NodeId, NodeRef, Op, broadcast_region};
use crate::grid::Region;
use crate::kernels::elementwise;

/// Data of one leaf available to a task: pieces of the leaf (global regions with their data).
#[derive(Default, Clone)]
pub(crate) struct LeafData {
    pub(crate) pieces: Vec<(Region, Arc<ChunkData>)>,
}

impl LeafData {
    fn read(&self, region: &Region, dtype: DType) -> ChunkData {
        for (r, d) in &self.pieces {
            if r.contains(region) {
                let rel = region.relative_to(r);
                if rel.start().iter().all(|&s| s == 0) && rel.shape() == d.shape() {
                    return (**d).clone();
                }
                return d.slice(&rel);
            }
        }
        let mut out = ChunkData::zeros(dtype, region.shape());
        for (r, d) in &self.pieces {
            if let Some(ov) = r.intersect(region) {
                if ov.is_empty() {
                    continue;
                }
                out.assign_region(&ov.relative_to(region), &d.slice(&ov.relative_to(r)));
            }
        }
        out
    }
}

/// What a task evaluates with: its leaves' data and which nodes to memoise per tile.
#[derive(Default)]
pub(crate) struct EvalCtx {
    pub(crate) leaves: HashMap<NodeId, LeafData>,
    /// Nodes read more than once within the fused expression.
    pub(crate) shared: std::collections::HashSet<NodeId>,
}

pub(crate) use crate::grid::c_order_tiles as tiles;

/// Evaluates `node` over `region` (global coordinates).
pub(crate) fn eval(
    node: &NodeRef,
    region: &Region,
    ctx: &EvalCtx,
    memo: &mut HashMap<(NodeId, Region), ChunkData>,
) -> Result<ChunkData> {
    if let Some(leaf) = ctx.leaves.get(&node.id) {
        return Ok(leaf.read(region, node.dtype));
    }
    let shared = ctx.shared.contains(&node.id);
    if shared && let Some(v) = memo.get(&(node.id, region.clone())) {
        return Ok(v.clone());
    }
    let v = eval_op(node, region, ctx, memo)?;
    if shared {
        memo.insert((node.id, region.clone()), v.clone());
    }
    Ok(v)
}

fn eval_op(
    node: &NodeRef,
    region: &Region,
    ctx: &EvalCtx,
    memo: &mut HashMap<(NodeId, Region), ChunkData>,
) -> Result<ChunkData> {
    let shape = region.shape();
    Ok(match &node.op {
        Op::Full(v) => ChunkData::full(node.dtype, shape, *v),
        Op::Arange { start, step, end } => {
            let s0 = region.start().first().copied().unwrap_or(0);
            let n = shape.first().copied().unwrap_or(1);
            let last = node.shape().first().copied().unwrap_or(1).saturating_sub(1);
            let dims = ndarray::IxDyn(shape);
            match node.dtype {
                DType::I64 => {
                    let (a, d) = (*start as i64, *step as i64);
                    let v: Vec<i64> = (s0..s0 + n).map(|i| a + i as i64 * d).collect();
                    ChunkData::I64(ndarray::ArrayD::from_shape_vec(dims, v).expect("1-d arange"))
                }
                dt => {
                    let v: Vec<f64> = (s0..s0 + n)
                        .map(|i| match end {
                            Some(e) if i == last => *e,
                            _ => *start + i as f64 * *step,
                        })
                        .collect();
                    ChunkData::F64(ndarray::ArrayD::from_shape_vec(dims, v).expect("1-d arange"))
                        .into_dtype(dt)
                }
            }
        }
        Op::FromFn(f) => f.eval(region)?,
        Op::Random { seed, normal } => {
            random_block(*seed, *normal, node.shape(), region, node.dtype)
        }
        Op::Memory(data) => {
            let whole = Region::whole(node.shape());
            LeafData {
                pieces: vec![(whole, Arc::clone(data))],
            }
            .read(region, node.dtype)
        }
        Op::External(src) => src.read_region(region)?,
        Op::Stored(_) => unreachable!("stored chunks are always task leaves"),
        Op::Reduce(..) => unreachable!("reductions are always task leaves"),
        Op::Unary(op, a) => elementwise::unary(*op, eval(a, region, ctx, memo)?, node.dtype),
        Op::Cast(a) => eval(a, region, ctx, memo)?.into_dtype(node.dtype),
        Op::Map(f, a) => f.apply(eval(a, region, ctx, memo)?)?,
        Op::Rechunk(a) => eval(a, region, ctx, memo)?,
        Op::Binary(op, a, b) => {
            let x = eval(a, &broadcast_region(region, a.shape()), ctx, memo)?;
            let y = eval(b, &broadcast_region(region, b.shape()), ctx, memo)?;
            let compute = elementwise::compute_dtype(*op, a.dtype, b.dtype, node.dtype);
            elementwise::binary(*op, x, y, shape, compute)
        }
        Op::BinaryScalar(op, a, s, left) => {
            let x = eval(a, region, ctx, memo)?;
            let compute = if op.is_comparison() {
                s.result_dtype_with(a.dtype)
            } else {
                node.dtype
            };
            elementwise::binary_scalar(*op, x, *s, *left, compute)
        }
        Op::Where(c, a, b) => {
            let cv = eval(c, &broadcast_region(region, c.shape()), ctx, memo)?;
            let x = eval(a, &broadcast_region(region, a.shape()), ctx, memo)?;
            let y = eval(b, &broadcast_region(region, b.shape()), ctx, memo)?;
            elementwise::where_(cv, x, y, shape, node.dtype)
        }
        Op::Transpose(perm, a) => {
            let r = transpose_region(region, perm);
            let x = eval(a, &r, ctx, memo)?;
            x.permuted(perm)
        }
        Op::Slice(start, a) => eval(a, &region.translated(start), ctx, memo)?,
        Op::InsertAxis(axis, a) => {
            let x = eval(a, &remove_axis(region, *axis), ctx, memo)?;
            x.into_shape(shape)
        }
        Op::Concat(axis, xs) => {
            let parts = concat_parts(region, *axis, xs);
            if parts.len() == 1 && parts[0].2.shape() == shape {
                let (i, local, _) = &parts[0];
                return eval(&xs[*i], local, ctx, memo);
            }
            let mut out = ChunkData::zeros(node.dtype, shape);
            for (i, local, dst) in parts {
                let v = eval(&xs[i], &local, ctx, memo)?;
                out.assign_region(&dst, &v);
            }
            out
        }
    })
}

/// The input region a transpose reads for an output region.
pub(crate) fn transpose_region(region: &Region, perm: &[usize]) -> Region {
    let mut start = vec![0; perm.len()];
    let mut shape = vec![0; perm.len()];
    for (k, &p) in perm.iter().enumerate() {
        start[p] = region.start()[k];
        shape[p] = region.shape()[k];
    }
    Region::new(start, shape)
}

pub(crate) fn remove_axis(region: &Region, axis: usize) -> Region {
    let mut start = region.start().to_vec();
    let mut shape = region.shape().to_vec();
    start.remove(axis);
    shape.remove(axis);
    Region::new(start, shape)
}

/// For each input of a concatenation overlapping `region`: its index, the region of it to read
/// and where that lands relative to `region`.
pub(crate) fn concat_parts(
    region: &Region,
    axis: usize,
    xs: &[NodeRef],
) -> Vec<(usize, Region, Region)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let (lo, hi) = (region.start()[axis], region.end(axis));
    for (i, x) in xs.iter().enumerate() {
        let len = x.shape()[axis];
        let (s, e) = (lo.max(offset), hi.min(offset + len));
        if s < e {
            let local = region.with_axis(axis, s - offset, e - s);
            let dst = Region::new(vec![0; region.ndim()], region.shape().to_vec()).with_axis(
                axis,
                s - lo,
                e - s,
            );
            out.push((i, local, dst));
        }
        offset += len;
    }
    out
}

/// splitmix64: a counter-based generator, so every element's value depends only on the seed
/// and its global index — the same whatever the chunking, thread count or order.
#[inline(always)]
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline(always)]
fn unit(seed: u64, k: u64) -> f64 {
    ((splitmix(seed ^ splitmix(k)) >> 11) as f64) * (1.0 / (1u64 << 53) as f64)
}

fn random_block(
    seed: u64,
    normal: bool,
    full: &[usize],
    region: &Region,
    dtype: DType,
) -> ChunkData {
    let a = ndarray::ArrayD::from_shape_fn(region.shape(), |ix| {
        let mut k: u64 = 0;
        for (a, &n) in full.iter().enumerate() {
            k = k * n as u64 + (region.start()[a] + ix[a]) as u64;
        }
        if normal {
            let u1 = 1.0 - unit(seed, 2 * k);
            let u2 = unit(seed, 2 * k + 1);
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        } else {
            unit(seed, k)
        }
    });
    ChunkData::F64(a).into_dtype(dtype)
}

/// A closure of the global index, element by element.
pub(crate) struct ElementFn<T, F> {
    pub(crate) f: F,
    pub(crate) _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element, F: Fn(&[usize]) -> T + Send + Sync> crate::graph::RegionFn for ElementFn<T, F> {
    fn eval(&self, region: &Region) -> Result<ChunkData> {
        let mut idx = region.start().to_vec();
        let a = ndarray::ArrayD::from_shape_fn(region.shape(), |ix| {
            for (k, v) in idx.iter_mut().enumerate() {
                *v = region.start()[k] + ix[k];
            }
            (self.f)(&idx)
        });
        Ok(T::into_chunk(a))
    }
}

/// A user closure mapping elements of type `T` to `U`.
pub(crate) struct MapClosure<T, U, F> {
    pub(crate) f: F,
    pub(crate) _t: std::marker::PhantomData<fn(T) -> U>,
}

impl<T: Element, U: Element, F: Fn(T) -> U + Send + Sync> crate::graph::MapFn
    for MapClosure<T, U, F>
{
    fn apply(&self, input: ChunkData) -> Result<ChunkData> {
        let a =
            T::from_chunk(input.into_dtype(T::DTYPE)).expect("cast to the closure's input dtype");
        Ok(U::into_chunk(a.mapv(|v| (self.f)(v))))
    }
}

/// Evaluates a whole region of `node` tile by tile into one output block.
pub(crate) fn eval_region_tiled(
    node: &NodeRef,
    region: &Region,
    ctx: &EvalCtx,
    tile_elems: usize,
    pool: Option<&crate::pool::ChunkPool>,
) -> Result<ChunkData> {
    let ts = tiles(region, tile_elems);
    let mut memo = HashMap::new();
    if ts.len() == 1 {
        return eval(node, region, ctx, &mut memo);
    }
    // Filled completely by the tiles below; a pooled buffer avoids first-touch page faults.
    let mut out = match pool {
        Some(p) => p.zeros(node.dtype, region.shape()),
        None => {
            dispatch_dtype!(node.dtype, T => T::into_chunk(ndarray::ArrayD::<T>::default(region.shape())))
        }
    };
    for t in ts {
        memo.clear();
        let v = eval(node, &t, ctx, &mut memo)?;
        out.assign_region(&t.relative_to(region), &v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_partition_the_region() {
        for (shape, target) in [
            (vec![10, 7], 20),
            (vec![3, 4, 5], 7),
            (vec![100], 33),
            (vec![2, 3], 1000),
            (vec![5, 100], 30),
        ] {
            let r = Region::new(vec![1; shape.len()], shape.clone());
            let ts = tiles(&r, target);
            assert_eq!(
                ts.iter().map(|t| t.len()).sum::<usize>(),
                r.len(),
                "{shape:?}"
            );
            for t in &ts {
                assert!(r.contains(t));
            }
            for (i, a) in ts.iter().enumerate() {
                for b in &ts[i + 1..] {
                    assert!(a.intersect(b).is_none_or(|x| x.is_empty()));
                }
            }
        }
    }
}
