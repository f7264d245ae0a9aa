//! Chunks as bytes and back, without copying where the layout allows.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};

use super::CodecError;
use crate::chunk::ChunkData;
use crate::dtype::DType;

/// Element types whose every bit pattern is a valid value, so their memory may be viewed and
/// written as bytes. `bool` is not one (only 0 and 1 are valid) and is handled apart.
trait Pod: Copy + Default {}
impl Pod for u8 {}
impl Pod for i32 {}
impl Pod for i64 {}
impl Pod for f32 {}
impl Pod for f64 {}

fn pod_bytes<T: Pod>(s: &[T]) -> &[u8] {
    // SAFETY: `T` is a plain integer or float type without padding; any initialised value is
    // a sequence of `size_of::<T>()` initialised bytes, and `u8` has alignment 1.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

fn pod_bytes_mut<T: Pod>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `pod_bytes`; additionally every byte pattern written through the view is
    // a valid `T` (`Pod`), so the slice stays valid whatever the caller writes.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

fn bool_bytes(s: &[bool]) -> &[u8] {
    // SAFETY: `bool` is one byte holding 0 or 1; reading it as `u8` is always valid.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), s.len()) }
}

fn view<T: Copy>(a: &ArrayD<T>, as_bytes: fn(&[T]) -> &[u8]) -> Cow<'_, [u8]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(as_bytes(s)),
        None => {
            let owned: Vec<T> = a.iter().copied().collect();
            Cow::Owned(as_bytes(&owned).to_vec())
        }
    }
}

/// The elements of `chunk` as bytes in C order, native endian. Borrowed (no copy) when the
/// array is in standard layout, which every chunk the engine makes is.
///
/// ```
/// use spillway::ChunkData;
/// let c = ChunkData::from(ndarray::arr1(&[1u8, 2, 3]).into_dyn());
/// assert_eq!(&*spillway::codec::chunk_bytes(&c), &[1, 2, 3]);
/// ```
pub fn chunk_bytes(chunk: &ChunkData) -> Cow<'_, [u8]> {
    match chunk {
        ChunkData::Bool(a) => view(a, bool_bytes),
        ChunkData::U8(a) => view(a, pod_bytes),
        ChunkData::I32(a) => view(a, pod_bytes),
        ChunkData::I64(a) => view(a, pod_bytes),
        ChunkData::F32(a) => view(a, pod_bytes),
        ChunkData::F64(a) => view(a, pod_bytes),
    }
}

fn build<T: Pod>(
    shape: &[usize],
    n: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), CodecError>,
) -> Result<ArrayD<T>, CodecError> {
    // `vec![0; n]` of a zero-valued element comes from calloc: for large chunks that is fresh
    // zero pages from the kernel, so no pass is spent zeroing before `fill` writes them.
    let mut v = vec![T::default(); n];
    fill(pod_bytes_mut(&mut v))?;
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| CodecError(format!("shape {shape:?}: {e}")))
}

/// Makes a chunk of `dtype` and `shape` whose element bytes (C order, native endian) are
/// written by `fill` into a zeroed buffer of exactly the chunk's byte length. Bool bytes other
/// than 0 and 1 are rejected as corrupt.
///
/// # Errors
/// What `fill` returns; a [`CodecError`] for an element count that overflows or for invalid
/// bool bytes.
///
/// ```
/// use spillway::{ChunkData, DType};
/// let c = spillway::codec::chunk_from_bytes(DType::I32, &[2], |b| {
///     b.copy_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
///     Ok(())
/// })
/// .unwrap();
/// if cfg!(target_endian = "little") {
///     assert_eq!(c, ChunkData::from(ndarray::arr1(&[1i32, 2]).into_dyn()));
/// }
/// ```
pub fn chunk_from_bytes(
    dtype: DType,
    shape: &[usize],
    fill: impl FnOnce(&mut [u8]) -> Result<(), CodecError>,
) -> Result<ChunkData, CodecError> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_mul(dtype.size_bytes()).is_some())
        .ok_or_else(|| CodecError(format!("shape {shape:?} has too many elements")))?;
    Ok(match dtype {
        DType::Bool => {
            let raw = build::<u8>(shape, n, fill)?;
            if let Some(bad) = raw.iter().find(|&&b| b > 1) {
                return Err(CodecError(format!(
                    "bool element holds byte {bad}, not 0 or 1"
                )));
            }
            ChunkData::Bool(raw.mapv(|b| b != 0))
        }
        DType::U8 => ChunkData::U8(build(shape, n, fill)?),
        DType::I32 => ChunkData::I32(build(shape, n, fill)?),
        DType::I64 => ChunkData::I64(build(shape, n, fill)?),
        DType::F32 => ChunkData::F32(build(shape, n, fill)?),
        DType::F64 => ChunkData::F64(build(shape, n, fill)?),
    })
}

/// Like [`chunk_from_bytes`], but writes into `into` when it is a block of the same dtype and
/// shape in standard layout (a pooled buffer, whose pages are already warm) instead of a new
/// buffer. Bool blocks, and a block that does not match, fall back to a new buffer.
pub(crate) fn chunk_from_bytes_into(
    into: Option<ChunkData>,
    dtype: DType,
    shape: &[usize],
    fill: impl FnOnce(&mut [u8]) -> Result<(), CodecError>,
) -> Result<ChunkData, CodecError> {
    if let Some(mut c) =
        into.filter(|c| c.dtype() == dtype && c.shape() == shape && dtype != DType::Bool)
    {
        let bytes = match &mut c {
            ChunkData::Bool(_) => None,
            ChunkData::U8(a) => a.as_slice_mut().map(pod_bytes_mut),
            ChunkData::I32(a) => a.as_slice_mut().map(pod_bytes_mut),
            ChunkData::I64(a) => a.as_slice_mut().map(pod_bytes_mut),
            ChunkData::F32(a) => a.as_slice_mut().map(pod_bytes_mut),
            ChunkData::F64(a) => a.as_slice_mut().map(pod_bytes_mut),
        };
        if let Some(b) = bytes {
            fill(b)?;
            return Ok(c);
        }
    }
    chunk_from_bytes(dtype, shape, fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_standard_layout_is_copied_in_c_order() {
        let a = ndarray::arr2(&[[1u8, 2], [3, 4]])
            .reversed_axes()
            .into_dyn();
        let c = ChunkData::U8(a);
        assert_eq!(&*chunk_bytes(&c), &[1, 3, 2, 4]);
    }

    #[test]
    fn invalid_bool_bytes_are_rejected() {
        let err = chunk_from_bytes(DType::Bool, &[3], |b| {
            b.copy_from_slice(&[1, 0, 7]);
            Ok(())
        })
        .unwrap_err();
        assert!(err.0.contains("byte 7"), "{err}");
    }

    #[test]
    fn overflowing_shape_is_an_error() {
        assert!(chunk_from_bytes(DType::F64, &[usize::MAX, 2], |_| Ok(())).is_err());
    }
}
