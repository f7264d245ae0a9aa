//! Element-wise kernels with numpy broadcasting.

use ndarray::{ArrayD, IxDyn, Zip};

use crate::chunk::ChunkData;
use crate::dtype::{DType, Element, Scalar};
use crate::graph::{BinaryOp, UnaryOp};

/// Arithmetic on one element type. Integers wrap on overflow, as numpy's do.
pub(crate) trait Arith: Element {
    fn add(a: Self, b: Self) -> Self;
    fn sub(a: Self, b: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn div(a: Self, b: Self) -> Self;
    fn neg(a: Self) -> Self;
    fn abs(a: Self) -> Self;
    fn powi(a: Self, n: i32) -> Self;
    fn is_nan(a: Self) -> bool;
}

macro_rules! int_arith {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)] fn add(a: Self, b: Self) -> Self { a.wrapping_add(b) }
            #[inline(always)] fn sub(a: Self, b: Self) -> Self { a.wrapping_sub(b) }
            #[inline(always)] fn mul(a: Self, b: Self) -> Self { a.wrapping_mul(b) }
            #[inline(always)] fn div(a: Self, b: Self) -> Self { if b == 0 { 0 } else { a.wrapping_div(b) } }
            #[inline(always)] fn neg(a: Self) -> Self { (0 as $t).wrapping_sub(a) }
            #[inline(always)] fn abs(a: Self) -> Self { if a < (0 as $t) { (0 as $t).wrapping_sub(a) } else { a } }
            #[inline(always)] fn powi(a: Self, n: i32) -> Self { if n < 0 { 0 } else { a.wrapping_pow(n as u32) } }
            #[inline(always)] fn is_nan(_: Self) -> bool { false }
        }
    )*};
}
int_arith!(u8, i32, i64);

macro_rules! float_arith {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)] fn add(a: Self, b: Self) -> Self { a + b }
            #[inline(always)] fn sub(a: Self, b: Self) -> Self { a - b }
            #[inline(always)] fn mul(a: Self, b: Self) -> Self { a * b }
            #[inline(always)] fn div(a: Self, b: Self) -> Self { a / b }
            #[inline(always)] fn neg(a: Self) -> Self { -a }
            #[inline(always)] fn abs(a: Self) -> Self { a.abs() }
            #[inline(always)] fn powi(a: Self, n: i32) -> Self { a.powi(n) }
            #[inline(always)] fn is_nan(a: Self) -> bool { a.is_nan() }
        }
    )*};
}
float_arith!(f32, f64);

impl Arith for bool {
    fn add(a: Self, b: Self) -> Self {
        a | b
    }
    fn sub(a: Self, b: Self) -> Self {
        a ^ b
    }
    fn mul(a: Self, b: Self) -> Self {
        a & b
    }
    fn div(a: Self, _b: Self) -> Self {
        a
    }
    fn neg(a: Self) -> Self {
        a
    }
    fn abs(a: Self) -> Self {
        a
    }
    fn powi(a: Self, _n: i32) -> Self {
        a
    }
    fn is_nan(_: Self) -> bool {
        false
    }
}

/// NaN-propagating minimum (numpy's `minimum`).
#[inline(always)]
pub(crate) fn minimum<T: Arith>(a: T, b: T) -> T {
    if T::is_nan(a) || a <= b {
        a
    } else if T::is_nan(b) || b < a {
        b
    } else {
        a
    }
}

/// NaN-propagating maximum (numpy's `maximum`).
#[inline(always)]
pub(crate) fn maximum<T: Arith>(a: T, b: T) -> T {
    if T::is_nan(a) || a >= b {
        a
    } else if T::is_nan(b) || b > a {
        b
    } else {
        a
    }
}

/// Float functions.
pub(crate) trait FloatEl: Arith {
    fn sqrt(a: Self) -> Self;
    fn exp(a: Self) -> Self;
    fn ln(a: Self) -> Self;
    fn sin(a: Self) -> Self;
    fn cos(a: Self) -> Self;
    fn powf(a: Self, p: f64) -> Self;
}

macro_rules! float_el {
    ($($t:ty),*) => {$(
        impl FloatEl for $t {
            #[inline(always)] fn sqrt(a: Self) -> Self { a.sqrt() }
            #[inline(always)] fn exp(a: Self) -> Self { a.exp() }
            #[inline(always)] fn ln(a: Self) -> Self { a.ln() }
            #[inline(always)] fn sin(a: Self) -> Self { a.sin() }
            #[inline(always)] fn cos(a: Self) -> Self { a.cos() }
            #[inline(always)] fn powf(a: Self, p: f64) -> Self { a.powf(p as $t) }
        }
    )*};
}
float_el!(f32, f64);

fn unary_arith<T: Arith>(mut a: ArrayD<T>, op: UnaryOp) -> ArrayD<T> {
    match op {
        UnaryOp::Neg => a.mapv_inplace(T::neg),
        UnaryOp::Abs => a.mapv_inplace(T::abs),
        UnaryOp::Powi(n) => a.mapv_inplace(|v| T::powi(v, n)),
        UnaryOp::Clip(lo, hi) => {
            let (lo, hi) = (lo.to::<T>(), hi.to::<T>());
            a.mapv_inplace(|v| minimum(maximum(v, lo), hi))
        }
        UnaryOp::Not => a.mapv_inplace(|v| T::from_i64((v.to_i64() == 0) as i64)),
        _ => unreachable!("float function dispatched as arithmetic"),
    }
    a
}

fn unary_float<T: FloatEl>(mut a: ArrayD<T>, op: UnaryOp) -> ArrayD<T> {
    match op {
        UnaryOp::Sqrt => a.mapv_inplace(T::sqrt),
        UnaryOp::Exp => a.mapv_inplace(T::exp),
        UnaryOp::Ln => a.mapv_inplace(T::ln),
        UnaryOp::Sin => a.mapv_inplace(T::sin),
        UnaryOp::Cos => a.mapv_inplace(T::cos),
        UnaryOp::Powf(p) => a.mapv_inplace(|v| T::powf(v, p)),
        other => return unary_arith(a, other),
    }
    a
}

/// Applies a unary operation; `out` is the result dtype the graph inferred.
pub(crate) fn unary(op: UnaryOp, x: ChunkData, out: DType) -> ChunkData {
    match x.into_dtype(out) {
        ChunkData::F64(a) => ChunkData::F64(unary_float(a, op)),
        ChunkData::F32(a) => ChunkData::F32(unary_float(a, op)),
        ChunkData::I64(a) => ChunkData::I64(unary_arith(a, op)),
        ChunkData::I32(a) => ChunkData::I32(unary_arith(a, op)),
        ChunkData::U8(a) => ChunkData::U8(unary_arith(a, op)),
        ChunkData::Bool(a) => ChunkData::Bool(unary_arith(a, op)),
    }
}

/// Runs `$body` with `$f` bound to the function item of an arithmetic op, so each loop is
/// monomorphised and inlined (a function pointer per element costs more than the op).
macro_rules! with_arith {
    ($op:expr, $T:ty, $f:ident => $body:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = <$T as Arith>::add;
                $body
            }
            BinaryOp::Sub => {
                let $f = <$T as Arith>::sub;
                $body
            }
            BinaryOp::Mul => {
                let $f = <$T as Arith>::mul;
                $body
            }
            BinaryOp::Div => {
                let $f = <$T as Arith>::div;
                $body
            }
            BinaryOp::Minimum => {
                let $f = minimum::<$T>;
                $body
            }
            BinaryOp::Maximum => {
                let $f = maximum::<$T>;
                $body
            }
            _ => unreachable!("comparison dispatched as arithmetic"),
        }
    };
}

macro_rules! with_cmp {
    ($op:expr, $T:ty, $f:ident => $body:expr) => {
        match $op {
            BinaryOp::Lt => {
                let $f = |a: $T, b: $T| a < b;
                $body
            }
            BinaryOp::Le => {
                let $f = |a: $T, b: $T| a <= b;
                $body
            }
            BinaryOp::Gt => {
                let $f = |a: $T, b: $T| a > b;
                $body
            }
            BinaryOp::Ge => {
                let $f = |a: $T, b: $T| a >= b;
                $body
            }
            BinaryOp::Eq => {
                let $f = |a: $T, b: $T| a == b;
                $body
            }
            BinaryOp::Ne => {
                let $f = |a: $T, b: $T| a != b;
                $body
            }
            _ => unreachable!("arithmetic dispatched as comparison"),
        }
    };
}

fn zip_same<T: Arith>(
    mut a: ArrayD<T>,
    mut b: ArrayD<T>,
    shape: &[usize],
    f: fn(T, T) -> T,
) -> ArrayD<T> {
    if a.shape() == shape {
        Zip::from(&mut a)
            .and_broadcast(&b)
            .for_each(|x, &y| *x = f(*x, y));
        a
    } else if b.shape() == shape {
        Zip::from(&mut b)
            .and_broadcast(&a)
            .for_each(|y, &x| *y = f(x, *y));
        b
    } else {
        let sh = IxDyn(shape);
        let av = a
            .broadcast(sh.clone())
            .expect("broadcast checked by the graph");
        let bv = b.broadcast(sh).expect("broadcast checked by the graph");
        Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y))
    }
}

fn zip_cmp<T: Arith>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    shape: &[usize],
    f: fn(T, T) -> bool,
) -> ArrayD<bool> {
    let sh = IxDyn(shape);
    let av = a
        .broadcast(sh.clone())
        .expect("broadcast checked by the graph");
    let bv = b.broadcast(sh).expect("broadcast checked by the graph");
    Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y))
}

macro_rules! same_dtype_arms {
    ($a:expr, $b:expr, $x:ident, $y:ident, $T:ident => $body:expr) => {
        match ($a, $b) {
            (ChunkData::F64($x), ChunkData::F64($y)) => {
                type $T = f64;
                $body
            }
            (ChunkData::F32($x), ChunkData::F32($y)) => {
                type $T = f32;
                $body
            }
            (ChunkData::I64($x), ChunkData::I64($y)) => {
                type $T = i64;
                $body
            }
            (ChunkData::I32($x), ChunkData::I32($y)) => {
                type $T = i32;
                $body
            }
            (ChunkData::U8($x), ChunkData::U8($y)) => {
                type $T = u8;
                $body
            }
            (ChunkData::Bool($x), ChunkData::Bool($y)) => {
                type $T = bool;
                $body
            }
            _ => unreachable!("operands were cast to one dtype"),
        }
    };
}

/// Applies a binary operation to two blocks that broadcast to `shape`. `compute` is the dtype
/// both are brought to; `out` the result dtype (bool for comparisons).
pub(crate) fn binary(
    op: BinaryOp,
    a: ChunkData,
    b: ChunkData,
    shape: &[usize],
    compute: DType,
) -> ChunkData {
    let a = a.into_dtype(compute);
    let b = b.into_dtype(compute);
    if op.is_comparison() {
        same_dtype_arms!(a, b, x, y, T => with_cmp!(op, T, f => ChunkData::Bool(zip_cmp(&x, &y, shape, f))))
    } else {
        same_dtype_arms!(a, b, x, y, T => with_arith!(op, T, f => T::into_chunk(zip_same(x, y, shape, f))))
    }
}

/// `array op scalar` (or `scalar op array` when `scalar_left`).
pub(crate) fn binary_scalar(
    op: BinaryOp,
    a: ChunkData,
    s: Scalar,
    scalar_left: bool,
    compute: DType,
) -> ChunkData {
    let a = a.into_dtype(compute);
    macro_rules! go {
        ($x:ident, $T:ty) => {{
            let v: $T = s.to::<$T>();
            if op.is_comparison() {
                with_cmp!(op, $T, f => ChunkData::Bool(if scalar_left {
                    $x.mapv(|e| f(v, e))
                } else {
                    $x.mapv(|e| f(e, v))
                }))
            } else {
                let mut x = $x;
                with_arith!(op, $T, f => if scalar_left {
                    x.mapv_inplace(|e| f(v, e))
                } else {
                    x.mapv_inplace(|e| f(e, v))
                });
                <$T as Element>::into_chunk(x)
            }
        }};
    }
    match a {
        ChunkData::F64(x) => go!(x, f64),
        ChunkData::F32(x) => go!(x, f32),
        ChunkData::I64(x) => go!(x, i64),
        ChunkData::I32(x) => go!(x, i32),
        ChunkData::U8(x) => go!(x, u8),
        ChunkData::Bool(x) => go!(x, bool),
    }
}

/// `where(cond, a, b)` broadcast to `shape`, in dtype `out`.
pub(crate) fn where_(
    c: ChunkData,
    a: ChunkData,
    b: ChunkData,
    shape: &[usize],
    out: DType,
) -> ChunkData {
    let ChunkData::Bool(c) = c else {
        unreachable!("the graph checks that the condition is bool")
    };
    let a = a.into_dtype(out);
    let b = b.into_dtype(out);
    let sh = IxDyn(shape);
    let cv = c
        .broadcast(sh.clone())
        .expect("broadcast checked by the graph");
    same_dtype_arms!(a, b, x, y, T => {
        let xv = x.broadcast(sh.clone()).expect("broadcast checked by the graph");
        let yv = y.broadcast(sh.clone()).expect("broadcast checked by the graph");
        T::into_chunk(Zip::from(&cv).and(&xv).and(&yv).map_collect(|&c, &x, &y| if c { x } else { y }))
    })
}

/// The dtype both operands of a binary operation are computed in.
pub(crate) fn compute_dtype(op: BinaryOp, l: DType, r: DType, out: DType) -> DType {
    if op.is_comparison() {
        l.promote(r)
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;

    #[test]
    fn broadcast_add_matches_ndarray() {
        let a = arr2(&[[1.0], [2.0]]).into_dyn();
        let b = arr2(&[[10.0, 20.0, 30.0]]).into_dyn();
        let r = binary(
            BinaryOp::Add,
            a.clone().into(),
            b.clone().into(),
            &[2, 3],
            DType::F64,
        );
        assert_eq!(r, ChunkData::F64(&a + &b));
    }

    #[test]
    fn integer_ops_wrap() {
        let a = ChunkData::from(ndarray::arr1(&[250u8]).into_dyn());
        let r = binary_scalar(BinaryOp::Add, a, Scalar::Int(10), false, DType::U8);
        assert_eq!(r.to_f64_vec(), vec![4.0]);
    }

    #[test]
    fn minimum_propagates_nan() {
        assert!(minimum(f64::NAN, 1.0).is_nan());
        assert!(minimum(1.0, f64::NAN).is_nan());
        assert_eq!(maximum(1.0, 2.0), 2.0);
    }
}
