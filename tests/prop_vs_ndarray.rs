//! Property tests: random expressions over random shapes and chunkings give the same values as
//! the same expression on plain ndarray (exact for element-wise work, within a tight relative
//! tolerance for floating reductions), with fusion on and off.

#![allow(clippy::single_range_in_vec_init)] // `slice` takes one range per axis

use ndarray::{ArrayD, Axis, Dimension, IxDyn};
use proptest::prelude::*;
use spillway::{Array, Session};

#[derive(Clone, Debug)]
enum Expr {
    Base(usize),
    AddScalar(Box<Expr>, f64),
    MulScalar(Box<Expr>, f64),
    RSub(Box<Expr>, f64),
    Sin(Box<Expr>),
    Abs(Box<Expr>),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Max(Box<Expr>, Box<Expr>),
    WhereGt(Box<Expr>, f64, Box<Expr>),
}

fn expr_strategy(bases: usize) -> impl Strategy<Value = Expr> {
    let leaf = (0..bases).prop_map(Expr::Base);
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), -3.0..3.0f64).prop_map(|(e, c)| Expr::AddScalar(Box::new(e), c)),
            (inner.clone(), -3.0..3.0f64).prop_map(|(e, c)| Expr::MulScalar(Box::new(e), c)),
            (inner.clone(), -3.0..3.0f64).prop_map(|(e, c)| Expr::RSub(Box::new(e), c)),
            inner.clone().prop_map(|e| Expr::Sin(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Abs(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Neg(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Add(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Mul(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Max(Box::new(a), Box::new(b))),
            (inner.clone(), -1.0..1.0f64, inner).prop_map(|(a, c, b)| Expr::WhereGt(
                Box::new(a),
                c,
                Box::new(b)
            )),
        ]
    })
}

fn build(e: &Expr, xs: &[Array]) -> Array {
    match e {
        Expr::Base(i) => xs[*i].clone(),
        Expr::AddScalar(a, c) => &build(a, xs) + *c,
        Expr::MulScalar(a, c) => &build(a, xs) * *c,
        Expr::RSub(a, c) => *c - &build(a, xs),
        Expr::Sin(a) => build(a, xs).sin().unwrap(),
        Expr::Abs(a) => build(a, xs).abs().unwrap(),
        Expr::Neg(a) => (-&build(a, xs)).unwrap(),
        Expr::Add(a, b) => (&build(a, xs) + &build(b, xs)).unwrap(),
        Expr::Mul(a, b) => (&build(a, xs) * &build(b, xs)).unwrap(),
        Expr::Max(a, b) => build(a, xs).maximum(&build(b, xs)).unwrap(),
        Expr::WhereGt(a, c, b) => {
            let a = build(a, xs);
            a.gt(*c).unwrap().where_(&a, &build(b, xs)).unwrap()
        }
    }
}

fn broadcast(a: &ArrayD<f64>, b: &ArrayD<f64>, f: impl Fn(f64, f64) -> f64) -> ArrayD<f64> {
    let n = a.ndim().max(b.ndim());
    let pad = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, n - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let (sa, sb) = (pad(a.shape()), pad(b.shape()));
    let shape: Vec<usize> = sa.iter().zip(&sb).map(|(x, y)| *x.max(y)).collect();
    let av = a.broadcast(IxDyn(&shape)).unwrap();
    let bv = b.broadcast(IxDyn(&shape)).unwrap();
    ndarray::Zip::from(&av)
        .and(&bv)
        .map_collect(|&x, &y| f(x, y))
}

fn eval(e: &Expr, xs: &[ArrayD<f64>]) -> ArrayD<f64> {
    match e {
        Expr::Base(i) => xs[*i].clone(),
        Expr::AddScalar(a, c) => eval(a, xs).mapv(|v| v + c),
        Expr::MulScalar(a, c) => eval(a, xs).mapv(|v| v * c),
        Expr::RSub(a, c) => eval(a, xs).mapv(|v| c - v),
        Expr::Sin(a) => eval(a, xs).mapv(f64::sin),
        Expr::Abs(a) => eval(a, xs).mapv(f64::abs),
        Expr::Neg(a) => eval(a, xs).mapv(|v| -v),
        Expr::Add(a, b) => broadcast(&eval(a, xs), &eval(b, xs), |x, y| x + y),
        Expr::Mul(a, b) => broadcast(&eval(a, xs), &eval(b, xs), |x, y| x * y),
        Expr::Max(a, b) => broadcast(&eval(a, xs), &eval(b, xs), f64::max),
        Expr::WhereGt(a, c, b) => broadcast(
            &eval(a, xs),
            &eval(b, xs),
            |x, y| if x > *c { x } else { y },
        ),
    }
}

#[derive(Clone, Copy, Debug)]
enum Red {
    Sum,
    Mean,
    Var,
    Min,
    Max,
}

fn reduce_ref(x: &ArrayD<f64>, red: Red, axes: &[usize]) -> ArrayD<f64> {
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    let n: usize = sorted.iter().map(|&a| x.shape()[a]).product();
    let fold = |x: &ArrayD<f64>, f: &dyn Fn(&ndarray::ArrayViewD<f64>) -> f64| -> ArrayD<f64> {
        // Move reduced axes to the end, flatten them, reduce each lane.
        let keep: Vec<usize> = (0..x.ndim()).filter(|a| !sorted.contains(a)).collect();
        let perm: Vec<usize> = keep.iter().chain(sorted.iter()).copied().collect();
        let p = x
            .view()
            .permuted_axes(IxDyn(&perm))
            .as_standard_layout()
            .into_owned();
        let out_shape: Vec<usize> = keep.iter().map(|&a| x.shape()[a]).collect();
        let m: usize = out_shape.iter().product();
        let flat = p.into_shape_with_order(IxDyn(&[m, n])).unwrap();
        let v: Vec<f64> = flat
            .axis_iter(Axis(0))
            .map(|lane| f(&lane.into_dyn()))
            .collect();
        ArrayD::from_shape_vec(IxDyn(&out_shape), v).unwrap()
    };
    match red {
        Red::Sum => fold(x, &|l| l.sum()),
        Red::Mean => fold(x, &|l| l.sum() / n as f64),
        Red::Var => fold(x, &|l| {
            let m = l.sum() / n as f64;
            l.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64
        }),
        Red::Min => fold(x, &|l| l.iter().copied().fold(f64::INFINITY, f64::min)),
        Red::Max => fold(x, &|l| l.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
    }
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>, rel: f64) -> bool {
    a.shape() == b.shape()
        && a.iter().zip(b.iter()).all(|(x, y)| {
            let scale = x.abs().max(y.abs()).max(1.0);
            (x - y).abs() <= rel * scale || (x.is_nan() && y.is_nan())
        })
}

/// A shape of 1–4 axes, a chunking, and the shapes of three operands that broadcast to it.
fn case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<Vec<usize>>, u64)> {
    prop::collection::vec(1usize..9, 1..=4)
        .prop_flat_map(|shape| {
            let chunks = shape.iter().map(|&n| 1..=n).collect::<Vec<_>>();
            let masks = prop::collection::vec(prop::collection::vec(any::<bool>(), shape.len()), 3);
            (Just(shape), chunks, masks, any::<u64>())
        })
        .prop_map(|(shape, chunks, masks, seed)| {
            let shapes = masks
                .iter()
                .enumerate()
                .map(|(k, m)| {
                    if k == 0 {
                        shape.clone()
                    } else {
                        shape
                            .iter()
                            .zip(m)
                            .map(|(&n, &b)| if b { 1 } else { n })
                            .collect()
                    }
                })
                .collect();
            (shape, chunks, shapes, seed)
        })
}

fn data(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut s = seed | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn elementwise_matches_ndarray((_shape, chunks, shapes, seed) in case(), e in expr_strategy(3), fuse in any::<bool>()) {
        let s = Session::builder().memory_limit("64MiB").threads(2).fuse(fuse).tile_bytes(64).build().unwrap();
        let nd: Vec<ArrayD<f64>> = shapes.iter().enumerate().map(|(k, sh)| data(sh, seed.wrapping_add(k as u64))).collect();
        let xs: Vec<Array> = nd.iter().map(|a| {
            let c: Vec<usize> = a.shape().iter().zip(&chunks).map(|(&n, &c)| c.min(n)).collect();
            s.from_ndarray(a.clone(), c).unwrap()
        }).collect();
        let got = build(&e, &xs).compute::<f64>().unwrap();
        let want = eval(&e, &nd);
        // Element-wise work is exact: same operations, same order, per element.
        prop_assert!(got.shape() == want.shape() && got.iter().zip(want.iter()).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())), "{got:?} vs {want:?}");
    }

    #[test]
    fn reductions_match_ndarray(
        (_shape, chunks, shapes, seed) in case(),
        e in expr_strategy(3),
        red in prop_oneof![Just(Red::Sum), Just(Red::Mean), Just(Red::Var), Just(Red::Min), Just(Red::Max)],
        axis_mask in prop::collection::vec(any::<bool>(), 4),
        split_every in 2usize..5,
        fuse in any::<bool>(),
    ) {
        let s = Session::builder().memory_limit("64MiB").threads(2).fuse(fuse).tile_bytes(64).build().unwrap();
        let nd: Vec<ArrayD<f64>> = shapes.iter().enumerate().map(|(k, sh)| data(sh, seed.wrapping_add(k as u64))).collect();
        let xs: Vec<Array> = nd.iter().map(|a| {
            let c: Vec<usize> = a.shape().iter().zip(&chunks).map(|(&n, &c)| c.min(n)).collect();
            s.from_ndarray(a.clone(), c).unwrap()
        }).collect();
        let y = build(&e, &xs);
        let axes: Vec<usize> = (0..y.ndim()).filter(|&a| axis_mask[a]).collect();
        let op = match red {
            Red::Sum => spillway::Reduction::Sum,
            Red::Mean => spillway::Reduction::Mean,
            Red::Var => spillway::Reduction::Var { ddof: 0.0 },
            Red::Min => spillway::Reduction::Min,
            Red::Max => spillway::Reduction::Max,
        };
        let opts = spillway::ReduceOptions { keepdims: false, split_every };
        let got = y.reduce(op, axes.clone(), opts).unwrap().compute::<f64>().unwrap();
        let want = reduce_ref(&eval(&e, &nd), red, &axes);
        prop_assert!(close(&got, &want, 1e-10), "{red:?} over {axes:?}: {got:?} vs {want:?}");
    }

    #[test]
    fn integer_elementwise_is_exact(shape in prop::collection::vec(1usize..7, 1..=3), c in 1usize..4, k in -5i32..5) {
        let s = Session::builder().memory_limit("16MiB").build().unwrap();
        let a = ArrayD::from_shape_fn(IxDyn(&shape), |ix| ix.slice().iter().fold(7i32, |acc, &v| acc.wrapping_mul(31).wrapping_add(v as i32)));
        let x = s.from_ndarray(a.clone(), vec![c; shape.len()]).unwrap();
        let y = ((&(&x * k as i64) + &x).unwrap() - 3).abs().unwrap().clip(0, 1000).unwrap();
        let want = a.mapv(|v| (v.wrapping_mul(k).wrapping_add(v).wrapping_sub(3)).wrapping_abs().clamp(0, 1000));
        prop_assert_eq!(y.compute::<i32>().unwrap(), want.clone());
        let total: i64 = y.sum(None).unwrap().compute_scalar().unwrap();
        prop_assert_eq!(total, want.iter().map(|&v| v as i64).sum::<i64>());
    }

    #[test]
    fn structure_ops_match_ndarray(shape in prop::collection::vec(1usize..7, 2..=3), c in 1usize..4, cut in 0usize..6) {
        let s = Session::builder().memory_limit("16MiB").build().unwrap();
        let a = data(&shape, 3);
        let x = s.from_ndarray(a.clone(), vec![c; shape.len()]).unwrap();
        // transpose
        let t = x.transpose().compute::<f64>().unwrap();
        prop_assert_eq!(t, a.t().to_owned());
        // slice along axis 0
        let lo = cut.min(shape[0]);
        let sl = x.slice(&[lo..shape[0]]).unwrap().compute::<f64>().unwrap();
        prop_assert_eq!(sl, a.slice_axis(Axis(0), ndarray::Slice::from(lo..)).to_owned());
        // concatenate and stack
        let cat = Array::concatenate(&[&x, &x], 1).unwrap().compute::<f64>().unwrap();
        prop_assert_eq!(cat, ndarray::concatenate(Axis(1), &[a.view(), a.view()]).unwrap());
        let st = Array::stack(&[&x, &(&x * 2.0)], 0).unwrap().compute::<f64>().unwrap();
        let a2 = a.mapv(|v| v * 2.0);
        prop_assert_eq!(st, ndarray::stack(Axis(0), &[a.view(), a2.view()]).unwrap());
        // rechunk keeps values
        let r = x.rechunk(vec![1; shape.len()]).unwrap().sum(0).unwrap().compute::<f64>().unwrap();
        let want = a.sum_axis(Axis(0));
        prop_assert!(close(&r, &want, 1e-12));
    }
}
