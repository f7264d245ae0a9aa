//! Typed chunk data: an owned n-d block of one dtype.
//!
//! `ChunkData` is what tasks produce, what the store keeps and what sources and sinks exchange.
//! It is an enum over `ndarray::ArrayD<T>` so that kernels are written once, generically, and
//! dispatched on the dtype with [`dispatch_chunk!`](crate::dispatch_chunk).

use ndarray::{ArrayD, IxDyn, SliceInfoElem};

use crate::dtype::{DType, Element, Scalar};
use crate::grid::Region;

/// An owned n-d block of elements of one dtype.
///
/// ```
/// use spillway::{ChunkData, DType};
/// let c = ChunkData::from(ndarray::arr2(&[[1.0f64, 2.0], [3.0, 4.0]]).into_dyn());
/// assert_eq!(c.dtype(), DType::F64);
/// assert_eq!(c.shape(), &[2, 2]);
/// assert_eq!(c.nbytes(), 32);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkData {
    /// `bool` elements.
    Bool(ArrayD<bool>),
    /// `u8` elements.
    U8(ArrayD<u8>),
    /// `i32` elements.
    I32(ArrayD<i32>),
    /// `i64` elements.
    I64(ArrayD<i64>),
    /// `f32` elements.
    F32(ArrayD<f32>),
    /// `f64` elements.
    F64(ArrayD<f64>),
}

/// Runs `$body` with `$a` bound to the typed array inside a [`ChunkData`] and `$T` to its
/// element type.
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch_chunk {
    ($chunk:expr, $a:ident, $T:ident => $body:expr) => {
        match $chunk {
            $crate::ChunkData::Bool($a) => {
                #[allow(unused)]
                type $T = bool;
                $body
            }
            $crate::ChunkData::U8($a) => {
                #[allow(unused)]
                type $T = u8;
                $body
            }
            $crate::ChunkData::I32($a) => {
                #[allow(unused)]
                type $T = i32;
                $body
            }
            $crate::ChunkData::I64($a) => {
                #[allow(unused)]
                type $T = i64;
                $body
            }
            $crate::ChunkData::F32($a) => {
                #[allow(unused)]
                type $T = f32;
                $body
            }
            $crate::ChunkData::F64($a) => {
                #[allow(unused)]
                type $T = f64;
                $body
            }
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust element type of a [`DType`].
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

impl ChunkData {
    /// The dtype of the elements.
    ///
    /// ```
    /// let c = spillway::ChunkData::zeros(spillway::DType::U8, &[3]);
    /// assert_eq!(c.dtype(), spillway::DType::U8);
    /// ```
    pub fn dtype(&self) -> DType {
        dispatch_chunk!(self, _a, T => T::DTYPE)
    }

    /// The shape of the block.
    ///
    /// ```
    /// assert_eq!(spillway::ChunkData::zeros(spillway::DType::F32, &[2, 5]).shape(), &[2, 5]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        dispatch_chunk!(self, a, T => a.shape())
    }

    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(spillway::ChunkData::zeros(spillway::DType::F32, &[2, 5]).len(), 10);
    /// ```
    pub fn len(&self) -> usize {
        dispatch_chunk!(self, a, T => a.len())
    }

    /// Whether the block has no elements.
    ///
    /// ```
    /// assert!(spillway::ChunkData::zeros(spillway::DType::F32, &[0, 5]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes taken by the elements.
    ///
    /// ```
    /// assert_eq!(spillway::ChunkData::zeros(spillway::DType::I32, &[4]).nbytes(), 16);
    /// ```
    pub fn nbytes(&self) -> u64 {
        (self.len() * self.dtype().size_bytes()) as u64
    }

    /// A block of zeros (`false` for bool).
    ///
    /// ```
    /// let z = spillway::ChunkData::zeros(spillway::DType::I64, &[2]);
    /// assert_eq!(z, spillway::ChunkData::from(ndarray::arr1(&[0i64, 0]).into_dyn()));
    /// ```
    pub fn zeros(dtype: DType, shape: &[usize]) -> ChunkData {
        dispatch_dtype!(dtype, T => T::into_chunk(ArrayD::<T>::default(IxDyn(shape))))
    }

    /// A block filled with one value, converted to `dtype`.
    ///
    /// ```
    /// let c = spillway::ChunkData::full(spillway::DType::F64, &[2], 1.5.into());
    /// assert_eq!(c, spillway::ChunkData::from(ndarray::arr1(&[1.5, 1.5]).into_dyn()));
    /// ```
    pub fn full(dtype: DType, shape: &[usize], value: Scalar) -> ChunkData {
        dispatch_dtype!(dtype, T => T::into_chunk(ArrayD::<T>::from_elem(IxDyn(shape), value.to::<T>())))
    }

    /// Converts every element to `dtype` (as Rust's `as` does; `!= 0` for bool).
    ///
    /// ```
    /// use spillway::{ChunkData, DType};
    /// let c = ChunkData::from(ndarray::arr1(&[1.7f64, -2.2]).into_dyn());
    /// assert_eq!(c.cast(DType::I32), ChunkData::from(ndarray::arr1(&[1i32, -2]).into_dyn()));
    /// ```
    pub fn cast(&self, dtype: DType) -> ChunkData {
        if self.dtype() == dtype {
            return self.clone();
        }
        dispatch_chunk!(self, a, S => {
            dispatch_dtype!(dtype, T => T::into_chunk(a.mapv(cast_elem::<S, T>)))
        })
    }

    /// Converts into `dtype`, reusing the buffer when the dtype already matches.
    pub(crate) fn into_dtype(self, dtype: DType) -> ChunkData {
        if self.dtype() == dtype {
            self
        } else {
            self.cast(dtype)
        }
    }

    /// A copy of a region of the block (region coordinates are relative to the block).
    ///
    /// ```
    /// use spillway::{ChunkData, Region};
    /// let c = ChunkData::from(ndarray::arr2(&[[1, 2, 3], [4, 5, 6]]).into_dyn().mapv(|v: i32| v));
    /// let s = c.slice(&Region::new(vec![1, 1], vec![1, 2]));
    /// assert_eq!(s, ChunkData::from(ndarray::arr2(&[[5, 6]]).into_dyn()));
    /// ```
    pub fn slice(&self, region: &Region) -> ChunkData {
        dispatch_chunk!(self, a, T => T::into_chunk(a.slice(region.slice_info().as_slice()).to_owned()))
    }

    /// Copies `src` into the region `region` of this block. The dtypes must match and the
    /// region's shape must be `src`'s shape.
    pub(crate) fn assign_region(&mut self, region: &Region, src: &ChunkData) {
        debug_assert_eq!(region.shape(), src.shape());
        let info = region.slice_info();
        macro_rules! arm {
            ($($v:ident),*) => {
                match (self, src) {
                    $((ChunkData::$v(d), ChunkData::$v(s)) => d.slice_mut(info.as_slice()).assign(s),)*
                    (d, s) => {
                        let s = s.cast(d.dtype());
                        d.assign_region(region, &s)
                    }
                }
            };
        }
        arm!(Bool, U8, I32, I64, F32, F64)
    }

    /// The elements as `f64`, in C order.
    ///
    /// ```
    /// let c = spillway::ChunkData::from(ndarray::arr1(&[true, false]).into_dyn());
    /// assert_eq!(c.to_f64_vec(), vec![1.0, 0.0]);
    /// ```
    pub fn to_f64_vec(&self) -> Vec<f64> {
        dispatch_chunk!(self, a, T => a.iter().map(|v| v.to_f64()).collect())
    }

    /// Reshapes to `shape` (same number of elements), keeping C order.
    pub(crate) fn into_shape(self, shape: &[usize]) -> ChunkData {
        dispatch_chunk!(self, a, T => {
            let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
            T::into_chunk(a.into_shape_with_order(IxDyn(shape)).expect("element count is preserved"))
        })
    }

    /// Permutes the axes (a view made owned in standard layout).
    pub(crate) fn permuted(&self, perm: &[usize]) -> ChunkData {
        dispatch_chunk!(self, a, T => T::into_chunk(a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()))
    }
}

/// Converts one element between dtypes as `as` does.
#[inline(always)]
pub(crate) fn cast_elem<S: Element, T: Element>(v: S) -> T {
    if S::DTYPE.is_float() || T::DTYPE.is_float() {
        T::from_f64(v.to_f64())
    } else {
        T::from_i64(v.to_i64())
    }
}

impl<T: Element> From<ArrayD<T>> for ChunkData {
    fn from(a: ArrayD<T>) -> Self {
        T::into_chunk(a)
    }
}

/// Slice elements for a region (used by ndarray's `slice`).
impl Region {
    pub(crate) fn slice_info(&self) -> Vec<SliceInfoElem> {
        self.start()
            .iter()
            .zip(self.shape())
            .map(|(&s, &n)| SliceInfoElem::Slice {
                start: s as isize,
                end: Some((s + n) as isize),
                step: 1,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_between_all_dtypes_keeps_shape() {
        let c = ChunkData::from(ndarray::arr2(&[[1.0f64, 0.0], [2.5, -3.0]]).into_dyn());
        for d in DType::ALL {
            let k = c.cast(d);
            assert_eq!(k.dtype(), d);
            assert_eq!(k.shape(), &[2, 2]);
        }
        assert_eq!(c.cast(DType::Bool).to_f64_vec(), vec![1.0, 0.0, 1.0, 1.0]);
        assert_eq!(c.cast(DType::U8).to_f64_vec(), vec![1.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn assign_region_writes_only_the_region() {
        let mut d = ChunkData::zeros(DType::I32, &[3, 3]);
        let s = ChunkData::full(DType::I32, &[2, 1], Scalar::Int(7));
        d.assign_region(&Region::new(vec![1, 2], vec![2, 1]), &s);
        assert_eq!(d.to_f64_vec(), vec![0., 0., 0., 0., 0., 7., 0., 0., 7.]);
    }
}
