//! Element types and numpy-like promotion.
//!
//! spillway arrays hold one of six element types. Binary operations promote like numpy
//! (NEP 50): two array operands meet at the smallest type that holds both; a Rust scalar
//! operand is "weak" and only changes the kind (an integer array times `2.5` is `f64`, an `f32`
//! array times `2.5` stays `f32`).

use std::fmt;

use ndarray::ArrayD;

use crate::chunk::ChunkData;

/// The element type of an array.
///
/// ```
/// use spillway::DType;
/// assert_eq!(DType::I32.promote(DType::F32), DType::F64);
/// assert_eq!(DType::U8.promote(DType::I64), DType::I64);
/// assert_eq!(DType::F64.size_bytes(), 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// `bool`, one byte per element.
    Bool,
    /// `u8`.
    U8,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl DType {
    /// All dtypes, smallest first.
    pub const ALL: [DType; 6] = [
        DType::Bool,
        DType::U8,
        DType::I32,
        DType::I64,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(spillway::DType::I32.size_bytes(), 4);
    /// ```
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::Bool | DType::U8 => 1,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The numpy name of the dtype (`"float64"`, `"int32"`, `"bool"`, …).
    ///
    /// ```
    /// assert_eq!(spillway::DType::F32.name(), "float32");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Whether the dtype is `f32` or `f64`.
    ///
    /// ```
    /// assert!(spillway::DType::F32.is_float());
    /// ```
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Whether the dtype is an integer type (not `bool`).
    ///
    /// ```
    /// assert!(spillway::DType::U8.is_integer());
    /// ```
    pub const fn is_integer(self) -> bool {
        matches!(self, DType::U8 | DType::I32 | DType::I64)
    }

    /// The dtype two array operands promote to, as numpy does.
    ///
    /// ```
    /// use spillway::DType;
    /// assert_eq!(DType::Bool.promote(DType::U8), DType::U8);
    /// assert_eq!(DType::I64.promote(DType::F32), DType::F64);
    /// assert_eq!(DType::U8.promote(DType::F32), DType::F32);
    /// ```
    pub fn promote(self, other: DType) -> DType {
        use DType::*;
        let (a, b) = if self <= other {
            (self, other)
        } else {
            (other, self)
        };
        match (a, b) {
            (x, y) if x == y => x,
            (Bool, y) => y,
            (U8, y) => y,
            (I32, I64) => I64,
            (I32, F32) | (I64, F32) => F64,
            (_, F64) => F64,
            (x, y) => x.max(y),
        }
    }

    /// The dtype of a result of true division, square root, exp and other float-valued
    /// functions of this dtype: `f32` stays `f32`, everything else becomes `f64`.
    ///
    /// ```
    /// assert_eq!(spillway::DType::I32.float_result(), spillway::DType::F64);
    /// ```
    pub const fn float_result(self) -> DType {
        match self {
            DType::F32 => DType::F32,
            _ => DType::F64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that can be an element of a spillway array: `bool`, `u8`, `i32`, `i64`, `f32`,
/// `f64`. Sealed: the set is closed so every kernel can be written once per dtype.
///
/// ```
/// use spillway::{DType, Element};
/// assert_eq!(<f32 as Element>::DTYPE, DType::F32);
/// assert_eq!(<i64 as Element>::from_f64(3.0), 3);
/// ```
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + PartialOrd + Default + fmt::Debug + 'static
{
    /// The dtype of this element type.
    const DTYPE: DType;
    /// Converts to `f64` (`true` is 1).
    fn to_f64(self) -> f64;
    /// Converts from `f64` as `as` does (saturating for integers, `!= 0` for bool).
    fn from_f64(v: f64) -> Self;
    /// Converts to `i64` as `as` does.
    fn to_i64(self) -> i64;
    /// Converts from `i64` as `as` does (wrapping for narrower integers).
    fn from_i64(v: i64) -> Self;
    /// Wraps an owned ndarray of this type as chunk data.
    fn into_chunk(a: ArrayD<Self>) -> ChunkData;
    /// The ndarray inside chunk data of this type, or `None` for another dtype.
    fn from_chunk(c: ChunkData) -> Option<ArrayD<Self>>;
    /// A view of chunk data of this type, or `None` for another dtype.
    fn view_chunk(c: &ChunkData) -> Option<ndarray::ArrayViewD<'_, Self>>;
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $to_f:expr, $from_f:expr, $to_i:expr, $from_i:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                let f: fn($t) -> f64 = $to_f;
                f(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                let f: fn(f64) -> $t = $from_f;
                f(v)
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                let f: fn($t) -> i64 = $to_i;
                f(self)
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                let f: fn(i64) -> $t = $from_i;
                f(v)
            }
            fn into_chunk(a: ArrayD<Self>) -> ChunkData {
                ChunkData::$variant(a)
            }
            fn from_chunk(c: ChunkData) -> Option<ArrayD<Self>> {
                match c {
                    ChunkData::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn view_chunk(c: &ChunkData) -> Option<ndarray::ArrayViewD<'_, Self>> {
                match c {
                    ChunkData::$variant(a) => Some(a.view()),
                    _ => None,
                }
            }
        }
    };
}

impl_element!(
    bool,
    Bool,
    |v| if v { 1.0 } else { 0.0 },
    |v| v != 0.0,
    |v| v as i64,
    |v| v != 0
);
impl_element!(u8, U8, |v| v as f64, |v| v as u8, |v| v as i64, |v| v as u8);
impl_element!(i32, I32, |v| v as f64, |v| v as i32, |v| v as i64, |v| v
    as i32);
impl_element!(i64, I64, |v| v as f64, |v| v as i64, |v| v, |v| v);
impl_element!(f32, F32, |v| v as f64, |v| v as f32, |v| v as i64, |v| v
    as f32);
impl_element!(f64, F64, |v| v, |v| v, |v| v as i64, |v| v as f64);

/// A scalar operand or fill value. Integer and float scalars are "weak" in promotion (numpy
/// NEP 50): they adopt the array's dtype when its kind can hold them.
///
/// ```
/// use spillway::{DType, Scalar};
/// assert_eq!(Scalar::from(2.5).result_dtype_with(DType::F32), DType::F32);
/// assert_eq!(Scalar::from(2.5).result_dtype_with(DType::I32), DType::F64);
/// assert_eq!(Scalar::from(3).result_dtype_with(DType::U8), DType::U8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Scalar {
    /// The dtype this scalar has on its own (`bool`, `i64` or `f64`).
    ///
    /// ```
    /// assert_eq!(spillway::Scalar::Int(1).dtype(), spillway::DType::I64);
    /// ```
    pub fn dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => DType::F64,
        }
    }

    /// The dtype of `array op scalar` for an array of dtype `array`.
    ///
    /// ```
    /// assert_eq!(spillway::Scalar::Int(1).result_dtype_with(spillway::DType::Bool), spillway::DType::I64);
    /// ```
    pub fn result_dtype_with(self, array: DType) -> DType {
        match (self, array) {
            (Scalar::Bool(_), a) => a,
            (Scalar::Int(_), DType::Bool) => DType::I64,
            (Scalar::Int(_), a) => a,
            (Scalar::Float(_), a) if a.is_float() => a,
            (Scalar::Float(_), _) => DType::F64,
        }
    }

    /// The value as `f64`.
    ///
    /// ```
    /// assert_eq!(spillway::Scalar::Bool(true).as_f64(), 1.0);
    /// ```
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The value converted to element type `T` (as `as` converts).
    ///
    /// ```
    /// assert_eq!(spillway::Scalar::Float(2.7).to::<i32>(), 2);
    /// ```
    pub fn to<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_i64(b as i64),
            Scalar::Int(i) => T::from_i64(i),
            Scalar::Float(f) => T::from_f64(f),
        }
    }
}

macro_rules! scalar_from {
    ($($t:ty => $v:ident as $as:ty),*) => {$(
        impl From<$t> for Scalar {
            fn from(v: $t) -> Self {
                Scalar::$v(v as $as)
            }
        }
    )*};
}
scalar_from!(f64 => Float as f64, f32 => Float as f64, i64 => Int as i64, i32 => Int as i64, u8 => Int as i64, usize => Int as i64, u32 => Int as i64);

impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_is_symmetric_and_idempotent() {
        for a in DType::ALL {
            assert_eq!(a.promote(a), a);
            for b in DType::ALL {
                assert_eq!(a.promote(b), b.promote(a), "{a} {b}");
            }
        }
    }

    #[test]
    fn promotion_matches_numpy_table() {
        use DType::*;
        assert_eq!(Bool.promote(F32), F32);
        assert_eq!(U8.promote(I32), I32);
        assert_eq!(I32.promote(F32), F64);
        assert_eq!(F32.promote(F64), F64);
        assert_eq!(I64.promote(F64), F64);
    }
}
