//! Reduction accumulators.
//!
//! A reduction runs in three steps, each a pure function here:
//! 1. a *partial* folds tiles of one input chunk into an accumulator ([`TileAcc`]);
//! 2. *combine* merges partials in a tree of bounded fan-in ([`merge`]);
//! 3. *finalize* turns the merged partial into the result chunk ([`finalize`]).
//!
//! A partial is stored as chunk data with a leading "moment" axis: `[sum]` for sum and mean,
//! `[mean, m2]` for var and std (merged with Chan et al.'s pairwise formula, which stays stable
//! where a sum of squares would not), `[min]` / `[max]`. Every element of a partial has seen the
//! same number of input elements, so one count per partial suffices.

use ndarray::{ArrayD, Axis, IxDyn, Slice, Zip};

use crate::chunk::ChunkData;
use crate::dispatch_chunk;
use crate::dtype::{DType, Element};
use crate::graph::ReduceOp;
use crate::kernels::elementwise::{Arith, maximum, minimum};

/// The dtype a partial of `op` over `input` is kept in.
pub(crate) fn partial_dtype(op: ReduceOp, input: DType) -> DType {
    match op {
        ReduceOp::Sum if !input.is_float() => DType::I64,
        ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Var { .. } | ReduceOp::Std { .. } => DType::F64,
        ReduceOp::Min | ReduceOp::Max => input,
    }
}

fn moments(op: ReduceOp) -> usize {
    match op {
        ReduceOp::Var { .. } | ReduceOp::Std { .. } => 2,
        _ => 1,
    }
}

/// Bytes of a partial whose accumulator shape is `shape`.
pub(crate) fn partial_bytes(op: ReduceOp, input: DType, shape: &[usize]) -> u64 {
    (moments(op) * shape.iter().product::<usize>() * partial_dtype(op, input).size_bytes()) as u64
}

fn reduce_axes_f64(mut x: ArrayD<f64>, axes: &[usize]) -> ArrayD<f64> {
    for &ax in axes.iter().rev() {
        x = x.sum_axis(Axis(ax)).insert_axis(Axis(ax));
    }
    x
}

fn reduce_axes_with<T: Arith>(mut x: ArrayD<T>, axes: &[usize], f: fn(T, T) -> T) -> ArrayD<T> {
    for &ax in axes.iter().rev() {
        let first = x.index_axis(Axis(ax), 0).to_owned();
        let rest = x.slice_axis(Axis(ax), Slice::from(1..));
        let folded = rest.axis_iter(Axis(ax)).fold(first, |mut acc, lane| {
            Zip::from(&mut acc)
                .and(&lane)
                .for_each(|a, &b| *a = f(*a, b));
            acc
        });
        x = folded.insert_axis(Axis(ax));
    }
    x
}

fn to_f64(x: &ChunkData) -> ArrayD<f64> {
    match x {
        ChunkData::F64(a) => a.clone(),
        other => dispatch_chunk!(other, a, T => a.mapv(|v| v.to_f64())),
    }
}

fn into_f64(x: ChunkData) -> ArrayD<f64> {
    match x {
        ChunkData::F64(a) => a,
        other => to_f64(&other),
    }
}

#[allow(clippy::large_enum_variant)] // one accumulator per task; boxing buys nothing
enum AccData {
    SumF(ArrayD<f64>),
    SumI(ArrayD<i64>),
    Moments {
        mean: ArrayD<f64>,
        m2: ArrayD<f64>,
        n: ArrayD<f64>,
    },
    Extreme(Option<ChunkData>),
}

/// Folds tiles of one task region into a partial.
pub(crate) struct TileAcc {
    op: ReduceOp,
    axes: Vec<usize>,
    shape: Vec<usize>,
    data: AccData,
}

impl TileAcc {
    /// An empty accumulator for a task region of `region_shape` (the input's rank).
    pub(crate) fn new(
        op: ReduceOp,
        input: DType,
        axes: &[usize],
        region_shape: &[usize],
    ) -> TileAcc {
        let shape: Vec<usize> = region_shape
            .iter()
            .enumerate()
            .map(|(k, &n)| if axes.contains(&k) { 1 } else { n })
            .collect();
        let sh = IxDyn(&shape);
        let data = match op {
            ReduceOp::Sum if !input.is_float() => AccData::SumI(ArrayD::zeros(sh)),
            ReduceOp::Sum | ReduceOp::Mean => AccData::SumF(ArrayD::zeros(sh)),
            ReduceOp::Var { .. } | ReduceOp::Std { .. } => AccData::Moments {
                mean: ArrayD::zeros(sh.clone()),
                m2: ArrayD::zeros(sh.clone()),
                n: ArrayD::zeros(sh),
            },
            ReduceOp::Min | ReduceOp::Max => AccData::Extreme(None),
        };
        TileAcc {
            op,
            axes: axes.to_vec(),
            shape,
            data,
        }
    }

    /// Folds one tile whose position inside the task region starts at `offset`.
    pub(crate) fn add_tile(&mut self, tile: ChunkData, offset: &[usize]) {
        let info: Vec<ndarray::SliceInfoElem> = (0..self.shape.len())
            .map(|k| {
                if self.axes.contains(&k) {
                    ndarray::SliceInfoElem::Slice {
                        start: 0,
                        end: Some(1),
                        step: 1,
                    }
                } else {
                    let s = offset[k] as isize;
                    ndarray::SliceInfoElem::Slice {
                        start: s,
                        end: Some(s + tile.shape()[k] as isize),
                        step: 1,
                    }
                }
            })
            .collect();
        let count: usize = self.axes.iter().map(|&a| tile.shape()[a]).product();
        if count == 0 {
            return;
        }
        match &mut self.data {
            AccData::SumF(acc) => {
                let t = reduce_axes_f64(into_f64(tile), &self.axes);
                let mut dst = acc.slice_mut(info.as_slice());
                dst += &t;
            }
            AccData::SumI(acc) => {
                let t = dispatch_chunk!(tile, a, T => a.mapv(|v| v.to_i64()));
                let t = reduce_axes_with(t, &self.axes, i64::wrapping_add);
                let mut dst = acc.slice_mut(info.as_slice());
                Zip::from(&mut dst)
                    .and(&t)
                    .for_each(|d, &s| *d = d.wrapping_add(s));
            }
            AccData::Moments { mean, m2, n } => {
                let x = into_f64(tile);
                let nb = count as f64;
                let mb = reduce_axes_f64(x.clone(), &self.axes).mapv(|s| s / nb);
                let dev = {
                    let mbv = mb
                        .broadcast(x.raw_dim())
                        .expect("keepdims shape broadcasts");
                    let mut d = x;
                    Zip::from(&mut d).and(&mbv).for_each(|v, &m| {
                        let e = *v - m;
                        *v = e * e
                    });
                    d
                };
                let m2b = reduce_axes_f64(dev, &self.axes);
                let mut mean = mean.slice_mut(info.as_slice());
                let mut m2 = m2.slice_mut(info.as_slice());
                let mut n = n.slice_mut(info.as_slice());
                Zip::from(&mut mean)
                    .and(&mut m2)
                    .and(&mut n)
                    .and(&mb)
                    .and(&m2b)
                    .for_each(|ma, m2a, na, &mb, &m2b| {
                        chan_merge(ma, m2a, na, mb, m2b, nb);
                    });
            }
            AccData::Extreme(acc) => {
                let is_min = matches!(self.op, ReduceOp::Min);
                let t = dispatch_chunk!(tile, a, T => T::into_chunk(reduce_axes_with(a, &self.axes, if is_min { minimum::<T> } else { maximum::<T> })));
                let dtype = t.dtype();
                let acc = acc.get_or_insert_with(|| {
                    let mut z = ChunkData::zeros(dtype, &self.shape);
                    // Start from the identity of min (max) so that merging is uniform.
                    fill_extreme(&mut z, is_min);
                    z
                });
                merge_extreme_into(acc, &info, &t, is_min);
            }
        }
    }

    /// The finished partial (`[moments, ...shape]`).
    pub(crate) fn into_partial(self) -> ChunkData {
        match self.data {
            AccData::SumF(a) => ChunkData::F64(a.insert_axis(Axis(0))),
            AccData::SumI(a) => ChunkData::I64(a.insert_axis(Axis(0))),
            AccData::Moments { mean, m2, .. } => ChunkData::F64(
                ndarray::stack(Axis(0), &[mean.view(), m2.view()]).expect("same shapes"),
            ),
            AccData::Extreme(Some(c)) => c.into_shape(&[&[1usize][..], &self.shape].concat()),
            AccData::Extreme(None) => {
                unreachable!("min/max over an empty region is refused by the graph")
            }
        }
    }
}

fn fill_extreme(z: &mut ChunkData, is_min: bool) {
    match z {
        ChunkData::F64(a) => a.fill(if is_min {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }),
        ChunkData::F32(a) => a.fill(if is_min {
            f32::INFINITY
        } else {
            f32::NEG_INFINITY
        }),
        ChunkData::I64(a) => a.fill(if is_min { i64::MAX } else { i64::MIN }),
        ChunkData::I32(a) => a.fill(if is_min { i32::MAX } else { i32::MIN }),
        ChunkData::U8(a) => a.fill(if is_min { u8::MAX } else { u8::MIN }),
        ChunkData::Bool(a) => a.fill(is_min),
    }
}

fn merge_extreme_into(
    acc: &mut ChunkData,
    info: &[ndarray::SliceInfoElem],
    t: &ChunkData,
    is_min: bool,
) {
    macro_rules! arm {
        ($($v:ident : $t:ty),*) => {
            match (acc, t) {
                $((ChunkData::$v(a), ChunkData::$v(b)) => {
                    let f = if is_min { minimum::<$t> } else { maximum::<$t> };
                    let mut dst = a.slice_mut(info);
                    Zip::from(&mut dst).and(b).for_each(|d, &s| *d = f(*d, s));
                })*
                _ => unreachable!("partials of one reduction share a dtype"),
            }
        };
    }
    arm!(F64: f64, F32: f32, I64: i64, I32: i32, U8: u8, Bool: bool)
}

#[inline(always)]
fn chan_merge(ma: &mut f64, m2a: &mut f64, na: &mut f64, mb: f64, m2b: f64, nb: f64) {
    if nb == 0.0 {
        return;
    }
    if *na == 0.0 {
        *ma = mb;
        *m2a = m2b;
        *na = nb;
        return;
    }
    let n = *na + nb;
    let delta = mb - *ma;
    *ma += delta * nb / n;
    *m2a += m2b + delta * delta * *na * nb / n;
    *na = n;
}

/// Merges partials (each with the count of input elements behind every one of its elements).
pub(crate) fn merge(op: ReduceOp, parts: &[(&ChunkData, f64)]) -> ChunkData {
    let (first, n0) = parts[0];
    match op {
        ReduceOp::Var { .. } | ReduceOp::Std { .. } => {
            let ChunkData::F64(a) = first else {
                unreachable!("moments are f64")
            };
            let mut mean = a.index_axis(Axis(0), 0).to_owned();
            let mut m2 = a.index_axis(Axis(0), 1).to_owned();
            let mut na = n0;
            for &(p, nb) in &parts[1..] {
                let ChunkData::F64(b) = p else {
                    unreachable!("moments are f64")
                };
                let mb = b.index_axis(Axis(0), 0);
                let m2b = b.index_axis(Axis(0), 1);
                Zip::from(&mut mean)
                    .and(&mut m2)
                    .and(&mb)
                    .and(&m2b)
                    .for_each(|ma, m2a, &mb, &m2b| {
                        let mut n = na;
                        chan_merge(ma, m2a, &mut n, mb, m2b, nb);
                    });
                na += nb;
            }
            ChunkData::F64(ndarray::stack(Axis(0), &[mean.view(), m2.view()]).expect("same shapes"))
        }
        ReduceOp::Sum | ReduceOp::Mean => {
            let mut acc = first.clone();
            for &(p, _) in &parts[1..] {
                match (&mut acc, p) {
                    (ChunkData::F64(a), ChunkData::F64(b)) => *a += b,
                    (ChunkData::I64(a), ChunkData::I64(b)) => {
                        Zip::from(a).and(b).for_each(|x, &y| *x = x.wrapping_add(y))
                    }
                    _ => unreachable!("sum partials are f64 or i64"),
                }
            }
            acc
        }
        ReduceOp::Min | ReduceOp::Max => {
            let is_min = matches!(op, ReduceOp::Min);
            let mut acc = first.clone();
            let all: Vec<ndarray::SliceInfoElem> = (0..acc.shape().len())
                .map(|_| ndarray::SliceInfoElem::Slice {
                    start: 0,
                    end: None,
                    step: 1,
                })
                .collect();
            for &(p, _) in &parts[1..] {
                merge_extreme_into(&mut acc, &all, p, is_min);
            }
            acc
        }
    }
}

/// Turns a merged partial over `n` input elements per output element into the result chunk of
/// dtype `out` and shape `out_shape`.
pub(crate) fn finalize(
    op: ReduceOp,
    partial: ChunkData,
    n: f64,
    out: DType,
    out_shape: &[usize],
) -> ChunkData {
    let drop_moment = |c: ChunkData, k: usize| -> ChunkData {
        dispatch_chunk!(c, a, T => T::into_chunk(a.index_axis(Axis(0), k).to_owned()))
    };
    let r = match op {
        ReduceOp::Sum | ReduceOp::Min | ReduceOp::Max => drop_moment(partial, 0),
        ReduceOp::Mean => {
            let ChunkData::F64(a) = drop_moment(partial, 0) else {
                unreachable!("mean partials are f64")
            };
            ChunkData::F64(a.mapv(|s| s / n))
        }
        ReduceOp::Var { ddof } | ReduceOp::Std { ddof } => {
            let ChunkData::F64(m2) = drop_moment(partial, 1) else {
                unreachable!("moments are f64")
            };
            let d = n - ddof;
            let var = m2.mapv(|v| if d > 0.0 { v / d } else { f64::NAN });
            ChunkData::F64(if matches!(op, ReduceOp::Std { .. }) {
                var.mapv(f64::sqrt)
            } else {
                var
            })
        }
    };
    r.into_dtype(out).into_shape(out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn tiled_var_matches_two_pass() {
        let x = Array2::from_shape_fn((7, 5), |(i, j)| ((i * 5 + j) as f64).sin() * 100.0 + 1e6)
            .into_dyn();
        let mut acc = TileAcc::new(ReduceOp::Var { ddof: 0.0 }, DType::F64, &[0], &[7, 5]);
        for (r0, r1) in [(0, 3), (3, 4), (4, 7)] {
            let tile = ChunkData::F64(x.slice(ndarray::s![r0..r1, ..]).to_owned().into_dyn());
            acc.add_tile(tile, &[r0, 0]);
        }
        let p = acc.into_partial();
        let out = finalize(ReduceOp::Var { ddof: 0.0 }, p, 7.0, DType::F64, &[5]);
        let expect = x.var_axis(Axis(0), 0.0);
        for (a, b) in out.to_f64_vec().iter().zip(expect.iter()) {
            assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} {b}");
        }
    }

    #[test]
    fn min_max_and_sum_over_tiles() {
        let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as i32 - 2) * (j as i32 + 1)).into_dyn();
        for (op, expect) in [
            (
                ReduceOp::Min,
                x.fold_axis(Axis(1), i32::MAX, |a, &b| (*a).min(b))
                    .mapv(|v| v as f64),
            ),
            (
                ReduceOp::Max,
                x.fold_axis(Axis(1), i32::MIN, |a, &b| (*a).max(b))
                    .mapv(|v| v as f64),
            ),
            (ReduceOp::Sum, x.sum_axis(Axis(1)).mapv(|v| v as f64)),
        ] {
            let mut acc = TileAcc::new(op, DType::I32, &[1], &[4, 3]);
            acc.add_tile(
                ChunkData::I32(x.slice(ndarray::s![.., 0..2]).to_owned().into_dyn()),
                &[0, 0],
            );
            acc.add_tile(
                ChunkData::I32(x.slice(ndarray::s![.., 2..3]).to_owned().into_dyn()),
                &[0, 2],
            );
            let out_dtype = crate::graph::build::reduce_dtype(op, DType::I32);
            let out = finalize(op, acc.into_partial(), 3.0, out_dtype, &[4]);
            assert_eq!(
                out.to_f64_vec(),
                expect.iter().copied().collect::<Vec<_>>(),
                "{op:?}"
            );
        }
    }
}
