//! Element-wise operations, reductions and structural operations on [`Array`].
//!
//! Operators with a scalar (`&x * 2.5`, `1.0 - &x`) cannot fail and return an [`Array`].
//! Operators between two arrays return `Result<Array>`, because their shapes may not
//! broadcast: `(&a + &b)?`.

use std::ops::Range;
use std::sync::Arc;

use crate::api::array::Array;
use crate::dtype::{DType, Element, Scalar};
use crate::error::{Error, Result};
use crate::graph::{self, BinaryOp, NodeRef, Op, ReduceOp, UnaryOp, build};
use crate::grid::Chunks;
use crate::plan::eval::MapClosure;

/// Which axes a reduction runs over.
///
/// ```
/// use spillway::Axes;
/// let _all: Axes = None.into();
/// let _one: Axes = 1.into();
/// let _two: Axes = [0, 2].into();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    /// Every axis (the result is 0-d unless `keepdims`).
    All,
    /// These axes.
    Some(Vec<usize>),
}

impl From<usize> for Axes {
    fn from(a: usize) -> Self {
        Axes::Some(vec![a])
    }
}
impl From<Option<usize>> for Axes {
    fn from(a: Option<usize>) -> Self {
        a.map_or(Axes::All, |a| Axes::Some(vec![a]))
    }
}
impl<const N: usize> From<[usize; N]> for Axes {
    fn from(a: [usize; N]) -> Self {
        Axes::Some(a.to_vec())
    }
}
impl From<Vec<usize>> for Axes {
    fn from(a: Vec<usize>) -> Self {
        Axes::Some(a)
    }
}
impl From<&[usize]> for Axes {
    fn from(a: &[usize]) -> Self {
        Axes::Some(a.to_vec())
    }
}

/// A reduction, for [`Array::reduce`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reduction {
    /// Sum (`i64` for integer and bool inputs).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Variance with `ddof` delta degrees of freedom (0 = population).
    Var {
        /// Delta degrees of freedom.
        ddof: f64,
    },
    /// Standard deviation with `ddof`.
    Std {
        /// Delta degrees of freedom.
        ddof: f64,
    },
    /// Minimum (NaN propagates).
    Min,
    /// Maximum (NaN propagates).
    Max,
}

/// Options of a reduction.
///
/// ```
/// let o = spillway::ReduceOptions { keepdims: true, ..Default::default() };
/// assert_eq!(o.split_every, 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceOptions {
    /// Keep reduced axes with length 1.
    pub keepdims: bool,
    /// Largest number of partial results one combine task merges (dask's `split_every`).
    pub split_every: usize,
}

impl Default for ReduceOptions {
    fn default() -> Self {
        ReduceOptions {
            keepdims: false,
            split_every: 8,
        }
    }
}

/// The second operand of an element-wise method: an array or a scalar.
#[derive(Clone, Debug)]
pub enum Operand<'a> {
    /// An array (broadcast against the receiver).
    Array(&'a Array),
    /// A scalar.
    Scalar(Scalar),
}

impl<'a> From<&'a Array> for Operand<'a> {
    fn from(a: &'a Array) -> Self {
        Operand::Array(a)
    }
}
macro_rules! operand_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Operand<'_> {
            fn from(v: $t) -> Self {
                Operand::Scalar(v.into())
            }
        }
    )*};
}
operand_from!(f64, f32, i64, i32, u8, usize, bool);

impl Array {
    fn check_session(&self, other: &Array) -> Result<()> {
        if self.session.same(&other.session) {
            Ok(())
        } else {
            Err(Error::SessionMismatch)
        }
    }

    fn unary(&self, op: UnaryOp) -> Result<Array> {
        Ok(self.with(build::unary(op, &self.node)?))
    }

    fn binary(&self, op: BinaryOp, other: Operand<'_>) -> Result<Array> {
        match other {
            Operand::Array(o) => {
                self.check_session(o)?;
                Ok(self.with(build::binary(op, &self.node, &o.node)?))
            }
            Operand::Scalar(s) => Ok(self.with(build::binary_scalar(op, &self.node, s, false)?)),
        }
    }

    /// `self + other` with broadcasting.
    ///
    /// # Errors
    /// [`Error::BroadcastMismatch`], [`Error::DTypeMismatch`] (bool + bool), [`Error::SessionMismatch`].
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = s.ones::<f64>(&[3, 1], [3, 1]).unwrap();
    /// let b = s.ones::<f64>(&[4], [2]).unwrap();
    /// assert_eq!(a.try_add(&b).unwrap().shape(), &[3, 4]);
    /// assert!(s.ones::<f64>(&[3], [3]).unwrap().try_add(&b).is_err());
    /// ```
    pub fn try_add<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Add, other.into())
    }

    /// `self - other` with broadcasting.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn try_sub<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Sub, other.into())
    }

    /// `self * other` with broadcasting.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn try_mul<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Mul, other.into())
    }

    /// `self / other` (true division: integers give `f64`).
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(4, [2]).unwrap().try_div(2).unwrap();
    /// assert_eq!(x.dtype(), spillway::DType::F64);
    /// ```
    pub fn try_div<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Div, other.into())
    }

    /// Element-wise minimum (NaN propagates, as numpy's `minimum`).
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(4, [4]).unwrap().minimum(2).unwrap();
    /// assert_eq!(x.compute::<i64>().unwrap().as_slice().unwrap(), &[0, 1, 2, 2]);
    /// ```
    pub fn minimum<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Minimum, other.into())
    }

    /// Element-wise maximum (NaN propagates).
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn maximum<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Maximum, other.into())
    }

    /// `self < other`, as bool.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let m = s.arange(4, [4]).unwrap().lt(2).unwrap();
    /// assert_eq!(m.compute::<bool>().unwrap().as_slice().unwrap(), &[true, true, false, false]);
    /// ```
    pub fn lt<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Lt, other.into())
    }

    /// `self <= other`, as bool.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn le<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Le, other.into())
    }

    /// `self > other`, as bool.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn gt<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Gt, other.into())
    }

    /// `self >= other`, as bool.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn ge<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Ge, other.into())
    }

    /// `self == other`, as bool.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn eq_elem<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Eq, other.into())
    }

    /// `self != other`, as bool.
    ///
    /// # Errors
    /// As [`try_add`](Self::try_add).
    pub fn ne_elem<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Ne, other.into())
    }

    /// `-self`.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for bool.
    pub fn neg(&self) -> Result<Array> {
        self.unary(UnaryOp::Neg)
    }

    /// `|self|`.
    ///
    /// # Errors
    /// None for numeric dtypes.
    pub fn abs(&self) -> Result<Array> {
        self.unary(UnaryOp::Abs)
    }

    /// Logical not of a bool array.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for non-bool arrays.
    pub fn not(&self) -> Result<Array> {
        self.unary(UnaryOp::Not)
    }

    /// Square root (integers give `f64`).
    ///
    /// # Errors
    /// None today; kept fallible for symmetry.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let r = s.full(&[2], 9, spillway::DType::I32, [2]).unwrap().sqrt().unwrap();
    /// assert_eq!(r.compute::<f64>().unwrap().as_slice().unwrap(), &[3.0, 3.0]);
    /// ```
    pub fn sqrt(&self) -> Result<Array> {
        self.unary(UnaryOp::Sqrt)
    }

    /// `e^self`.
    ///
    /// # Errors
    /// None today.
    pub fn exp(&self) -> Result<Array> {
        self.unary(UnaryOp::Exp)
    }

    /// Natural logarithm.
    ///
    /// # Errors
    /// None today.
    pub fn ln(&self) -> Result<Array> {
        self.unary(UnaryOp::Ln)
    }

    /// Sine.
    ///
    /// # Errors
    /// None today.
    pub fn sin(&self) -> Result<Array> {
        self.unary(UnaryOp::Sin)
    }

    /// Cosine.
    ///
    /// # Errors
    /// None today.
    pub fn cos(&self) -> Result<Array> {
        self.unary(UnaryOp::Cos)
    }

    /// Integer power (keeps integer dtypes; wraps on overflow).
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for bool.
    pub fn powi(&self, n: i32) -> Result<Array> {
        self.unary(UnaryOp::Powi(n))
    }

    /// Float power.
    ///
    /// # Errors
    /// None today.
    pub fn powf(&self, p: f64) -> Result<Array> {
        self.unary(UnaryOp::Powf(p))
    }

    /// Limits values to `[lo, hi]`.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for bool; [`Error::InvalidArgument`] when `lo > hi`.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let c = s.arange(5, [5]).unwrap().clip(1, 3).unwrap();
    /// assert_eq!(c.compute::<i64>().unwrap().as_slice().unwrap(), &[1, 1, 2, 3, 3]);
    /// ```
    pub fn clip(&self, lo: impl Into<Scalar>, hi: impl Into<Scalar>) -> Result<Array> {
        let (lo, hi) = (lo.into(), hi.into());
        if lo.as_f64() > hi.as_f64() {
            return Err(Error::InvalidArgument(format!(
                "clip: lo {} is above hi {}",
                lo.as_f64(),
                hi.as_f64()
            )));
        }
        self.unary(UnaryOp::Clip(lo, hi))
    }

    /// Converts to another dtype (as Rust's `as`; `!= 0` for bool).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(3, [3]).unwrap().astype(spillway::DType::F32);
    /// assert_eq!(x.compute::<f32>().unwrap().as_slice().unwrap(), &[0.0, 1.0, 2.0]);
    /// ```
    pub fn astype(&self, dtype: DType) -> Array {
        if dtype == self.dtype() {
            self.clone()
        } else {
            self.with(build::cast(&self.node, dtype))
        }
    }

    /// Applies a closure to every element. The input is converted to `T` first.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(3, [2]).unwrap().map(|v: i64| (v * v) as f64);
    /// assert_eq!(x.compute::<f64>().unwrap().as_slice().unwrap(), &[0.0, 1.0, 4.0]);
    /// ```
    pub fn map<T: Element, U: Element, F: Fn(T) -> U + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> Array {
        let m = Arc::new(MapClosure {
            f,
            _t: std::marker::PhantomData,
        });
        self.with(build::map(&self.node, m, U::DTYPE))
    }

    /// Picks from `a` where `self` (a bool array) is true, else from `b`, with broadcasting.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] when `self` is not bool; broadcast errors.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(4, [2]).unwrap();
    /// let y = x.lt(2).unwrap().where_(&x, -1).unwrap();
    /// assert_eq!(y.compute::<i64>().unwrap().as_slice().unwrap(), &[0, 1, -1, -1]);
    /// ```
    pub fn where_<'a, 'b>(
        &self,
        a: impl Into<Operand<'a>>,
        b: impl Into<Operand<'b>>,
    ) -> Result<Array> {
        let (a, b) = (a.into(), b.into());
        let other_dtype = |o: &Operand<'_>| match o {
            Operand::Array(x) => Some(x.dtype()),
            Operand::Scalar(_) => None,
        };
        let (da, db) = (other_dtype(&a), other_dtype(&b));
        let lift = |o: Operand<'_>, peer: Option<DType>| -> Result<NodeRef> {
            match o {
                Operand::Array(x) => {
                    self.check_session(x)?;
                    Ok(Arc::clone(&x.node))
                }
                Operand::Scalar(s) => {
                    let dt = peer.map_or(s.dtype(), |p| s.result_dtype_with(p));
                    Ok(graph::node(
                        dt,
                        crate::grid::ChunkGrid::single(&[]),
                        Op::Full(s),
                    ))
                }
            }
        };
        let an = lift(a, db)?;
        let bn = lift(b, da)?;
        Ok(self.with(build::where_(&self.node, &an, &bn)?))
    }

    /// A reduction with options.
    ///
    /// # Errors
    /// [`Error::AxisOutOfRange`], [`Error::DuplicateAxis`], [`Error::InvalidArgument`] (bad
    /// `split_every` or `ddof`), [`Error::InvalidShape`] (min/max over an empty axis).
    ///
    /// ```
    /// use spillway::{ReduceOptions, Reduction};
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.ones::<f64>(&[4, 6], [2, 3]).unwrap();
    /// let r = x.reduce(Reduction::Sum, 1, ReduceOptions { keepdims: true, ..Default::default() }).unwrap();
    /// assert_eq!(r.shape(), &[4, 1]);
    /// ```
    pub fn reduce(
        &self,
        op: Reduction,
        axes: impl Into<Axes>,
        options: ReduceOptions,
    ) -> Result<Array> {
        let axes = axes.into();
        let axes = match &axes {
            Axes::All => None,
            Axes::Some(v) => Some(v.as_slice()),
        };
        let op = match op {
            Reduction::Sum => ReduceOp::Sum,
            Reduction::Mean => ReduceOp::Mean,
            Reduction::Var { ddof } => ReduceOp::Var { ddof },
            Reduction::Std { ddof } => ReduceOp::Std { ddof },
            Reduction::Min => ReduceOp::Min,
            Reduction::Max => ReduceOp::Max,
        };
        Ok(self.with(build::reduce(
            &self.node,
            op,
            axes,
            options.keepdims,
            options.split_every,
        )?))
    }

    /// Sum over `axes` (`None` for all).
    ///
    /// # Errors
    /// As [`reduce`](Self::reduce).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let t: i64 = s.arange(10, [3]).unwrap().sum(None).unwrap().compute_scalar().unwrap();
    /// assert_eq!(t, 45);
    /// ```
    pub fn sum(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(Reduction::Sum, axes, ReduceOptions::default())
    }

    /// Mean over `axes`.
    ///
    /// # Errors
    /// As [`reduce`](Self::reduce).
    pub fn mean(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(Reduction::Mean, axes, ReduceOptions::default())
    }

    /// Variance over `axes` with `ddof`.
    ///
    /// # Errors
    /// As [`reduce`](Self::reduce).
    pub fn var(&self, axes: impl Into<Axes>, ddof: f64) -> Result<Array> {
        self.reduce(Reduction::Var { ddof }, axes, ReduceOptions::default())
    }

    /// Standard deviation over `axes` with `ddof`.
    ///
    /// # Errors
    /// As [`reduce`](Self::reduce).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let sd: f64 = s.arange(4, [3]).unwrap().std(None, 0.0).unwrap().compute_scalar().unwrap();
    /// assert!((sd - 1.25f64.sqrt()).abs() < 1e-12);
    /// ```
    pub fn std(&self, axes: impl Into<Axes>, ddof: f64) -> Result<Array> {
        self.reduce(Reduction::Std { ddof }, axes, ReduceOptions::default())
    }

    /// Minimum over `axes`.
    ///
    /// # Errors
    /// As [`reduce`](Self::reduce).
    pub fn min(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(Reduction::Min, axes, ReduceOptions::default())
    }

    /// Maximum over `axes`.
    ///
    /// # Errors
    /// As [`reduce`](Self::reduce).
    pub fn max(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(Reduction::Max, axes, ReduceOptions::default())
    }

    /// Reverses the axes.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// assert_eq!(s.zeros::<u8>(&[2, 3, 4], [1, 1, 1]).unwrap().transpose().shape(), &[4, 3, 2]);
    /// ```
    pub fn transpose(&self) -> Array {
        let perm: Vec<usize> = (0..self.ndim()).rev().collect();
        self.permute_axes(&perm)
            .expect("a reversal is a permutation")
    }

    /// Reorders the axes: output axis `k` is input axis `perm[k]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`], [`Error::AxisOutOfRange`], [`Error::DuplicateAxis`].
    pub fn permute_axes(&self, perm: &[usize]) -> Result<Array> {
        Ok(self.with(build::transpose(&self.node, perm)?))
    }

    /// A view of ranges along the leading axes (step 1), like `x[2..5, ..]`.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] for ranges outside the array.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(10, [3]).unwrap().slice(&[2..5]).unwrap();
    /// assert_eq!(x.compute::<i64>().unwrap().as_slice().unwrap(), &[2, 3, 4]);
    /// ```
    pub fn slice(&self, ranges: &[Range<usize>]) -> Result<Array> {
        Ok(self.with(build::slice(&self.node, ranges)?))
    }

    /// Inserts an axis of length 1 (numpy's `expand_dims`, `x[:, None]`).
    ///
    /// # Errors
    /// [`Error::AxisOutOfRange`].
    pub fn insert_axis(&self, axis: usize) -> Result<Array> {
        Ok(self.with(build::insert_axis(&self.node, axis)?))
    }

    /// The same values in another chunking.
    ///
    /// # Errors
    /// [`Error::InvalidChunks`].
    pub fn rechunk(&self, chunks: impl Into<Chunks>) -> Result<Array> {
        Ok(self.with(build::rechunk(
            &self.node,
            &chunks.into(),
            self.session.inner.chunk_target_bytes,
        )?))
    }

    /// Joins arrays along an existing axis (dtypes promote).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::AxisOutOfRange`], [`Error::InvalidArgument`] (no arrays).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = s.ones::<f64>(&[2, 3], [2, 3]).unwrap();
    /// let c = spillway::Array::concatenate(&[&a, &a], 0).unwrap();
    /// assert_eq!(c.shape(), &[4, 3]);
    /// ```
    pub fn concatenate(arrays: &[&Array], axis: usize) -> Result<Array> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::InvalidArgument("concatenate needs at least one array".into()))?;
        for a in arrays {
            first.check_session(a)?;
        }
        let nodes: Vec<NodeRef> = arrays.iter().map(|a| Arc::clone(&a.node)).collect();
        Ok(first.with(build::concat(&nodes, axis)?))
    }

    /// Joins arrays of one shape along a new axis.
    ///
    /// # Errors
    /// As [`concatenate`](Self::concatenate).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = s.ones::<f64>(&[3], [3]).unwrap();
    /// assert_eq!(spillway::Array::stack(&[&a, &a], 1).unwrap().shape(), &[3, 2]);
    /// ```
    pub fn stack(arrays: &[&Array], axis: usize) -> Result<Array> {
        let expanded = arrays
            .iter()
            .map(|a| a.insert_axis(axis))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Array> = expanded.iter().collect();
        Array::concatenate(&refs, axis)
    }
}

macro_rules! scalar_ops {
    ($($tr:ident $method:ident $op:ident),*) => {$(
        scalar_ops!(@scalars $tr $method $op; f64, i64);
        impl std::ops::$tr<&Array> for &Array {
            type Output = Result<Array>;
            fn $method(self, rhs: &Array) -> Result<Array> {
                self.binary(BinaryOp::$op, Operand::Array(rhs))
            }
        }
        impl std::ops::$tr<Array> for Array {
            type Output = Result<Array>;
            fn $method(self, rhs: Array) -> Result<Array> {
                self.binary(BinaryOp::$op, Operand::Array(&rhs))
            }
        }
        impl std::ops::$tr<&Array> for Array {
            type Output = Result<Array>;
            fn $method(self, rhs: &Array) -> Result<Array> {
                self.binary(BinaryOp::$op, Operand::Array(rhs))
            }
        }
        impl std::ops::$tr<Array> for &Array {
            type Output = Result<Array>;
            fn $method(self, rhs: Array) -> Result<Array> {
                self.binary(BinaryOp::$op, Operand::Array(&rhs))
            }
        }
    )*};
    (@scalars $tr:ident $method:ident $op:ident; $($t:ty),*) => {$(
        impl std::ops::$tr<$t> for &Array {
            type Output = Array;
            fn $method(self, rhs: $t) -> Array {
                binary_scalar_infallible(self, BinaryOp::$op, rhs.into(), false)
            }
        }
        impl std::ops::$tr<$t> for Array {
            type Output = Array;
            fn $method(self, rhs: $t) -> Array {
                binary_scalar_infallible(&self, BinaryOp::$op, rhs.into(), false)
            }
        }
        impl std::ops::$tr<&Array> for $t {
            type Output = Array;
            fn $method(self, rhs: &Array) -> Array {
                binary_scalar_infallible(rhs, BinaryOp::$op, self.into(), true)
            }
        }
        impl std::ops::$tr<Array> for $t {
            type Output = Array;
            fn $method(self, rhs: Array) -> Array {
                binary_scalar_infallible(&rhs, BinaryOp::$op, self.into(), true)
            }
        }
    )*};
}
scalar_ops!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div);

fn binary_scalar_infallible(a: &Array, op: BinaryOp, s: Scalar, left: bool) -> Array {
    // Only a bool scalar with a bool array has no arithmetic dtype; treat the bool as an
    // integer then, as numpy does for Python bools in arithmetic.
    let s = match (s, a.dtype()) {
        (Scalar::Bool(b), DType::Bool) => Scalar::Int(b as i64),
        (s, _) => s,
    };
    a.with(
        build::binary_scalar(op, &a.node, s, left)
            .expect("a non-bool scalar always has an arithmetic dtype"),
    )
}

impl std::ops::Neg for &Array {
    type Output = Result<Array>;
    fn neg(self) -> Result<Array> {
        Array::neg(self)
    }
}
