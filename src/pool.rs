//! A small pool of chunk buffers inside the budget.
//!
//! On these machines the first touch of fresh memory runs below 1 GB/s while rewriting warm
//! memory runs at 25 GB/s, and glibc hands buffers above its mmap threshold back to the kernel
//! on free — so a chunk-sized buffer allocated per task costs 10–40× a reused one. Tasks take
//! their output buffers from this pool, and buffers whose chunk is done (written to a sink,
//! released from the store) come back to it. Every pooled buffer holds a reservation, so the
//! pool counts against the memory limit like everything else, and the executor drains it
//! before it demotes stored chunks.

use std::sync::Mutex;

use ndarray::{ArrayD, IxDyn};

use crate::chunk::ChunkData;
use crate::dtype::{DType, Element};
use crate::memory::{MemoryBudget, Reservation};

enum RawBuf {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl RawBuf {
    fn bytes(&self) -> u64 {
        match self {
            RawBuf::Bool(v) => v.capacity() as u64,
            RawBuf::U8(v) => v.capacity() as u64,
            RawBuf::I32(v) => v.capacity() as u64 * 4,
            RawBuf::I64(v) => v.capacity() as u64 * 8,
            RawBuf::F32(v) => v.capacity() as u64 * 4,
            RawBuf::F64(v) => v.capacity() as u64 * 8,
        }
    }

    fn dtype(&self) -> DType {
        match self {
            RawBuf::Bool(_) => DType::Bool,
            RawBuf::U8(_) => DType::U8,
            RawBuf::I32(_) => DType::I32,
            RawBuf::I64(_) => DType::I64,
            RawBuf::F32(_) => DType::F32,
            RawBuf::F64(_) => DType::F64,
        }
    }

    fn elems(&self) -> usize {
        match self {
            RawBuf::Bool(v) => v.capacity(),
            RawBuf::U8(v) => v.capacity(),
            RawBuf::I32(v) => v.capacity(),
            RawBuf::I64(v) => v.capacity(),
            RawBuf::F32(v) => v.capacity(),
            RawBuf::F64(v) => v.capacity(),
        }
    }
}

fn filled<T: Element>(mut v: Vec<T>, shape: &[usize]) -> ChunkData {
    let n: usize = shape.iter().product();
    v.clear();
    v.resize(n, T::default());
    T::into_chunk(ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches the shape"))
}

/// Buffers kept for reuse, each with a reservation for its bytes.
pub(crate) struct ChunkPool {
    budget: MemoryBudget,
    max_bytes: u64,
    /// Buffers smaller than this are not worth pooling (malloc reuses them cheaply).
    min_bytes: u64,
    free: Mutex<Vec<(RawBuf, Reservation)>>,
}

impl ChunkPool {
    pub(crate) fn new(budget: MemoryBudget, max_bytes: u64) -> ChunkPool {
        ChunkPool {
            budget,
            max_bytes,
            min_bytes: 4 << 20,
            free: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(RawBuf, Reservation)>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A zero-filled block of `shape`, on a pooled buffer when one of the dtype is large enough.
    pub(crate) fn zeros(&self, dtype: DType, shape: &[usize]) -> ChunkData {
        let n: usize = shape.iter().product();
        if (n * dtype.size_bytes()) as u64 >= self.min_bytes {
            let mut free = self.lock();
            // The smallest buffer that fits, so large buffers stay for large chunks.
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, (b, _))| b.dtype() == dtype && b.elems() >= n)
                .min_by_key(|(_, (b, _))| b.elems())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let (buf, _reservation) = free.swap_remove(i);
                drop(free);
                return match buf {
                    RawBuf::Bool(v) => filled(v, shape),
                    RawBuf::U8(v) => filled(v, shape),
                    RawBuf::I32(v) => filled(v, shape),
                    RawBuf::I64(v) => filled(v, shape),
                    RawBuf::F32(v) => filled(v, shape),
                    RawBuf::F64(v) => filled(v, shape),
                };
            }
        }
        ChunkData::zeros(dtype, shape)
    }

    /// Takes back the buffer of a block that is no longer needed, if it is worth keeping and
    /// the budget has room for it; otherwise frees it.
    pub(crate) fn recycle(&self, c: ChunkData) {
        if c.nbytes() < self.min_bytes {
            return;
        }
        let buf = match c {
            ChunkData::Bool(a) => RawBuf::Bool(a.into_raw_vec_and_offset().0),
            ChunkData::U8(a) => RawBuf::U8(a.into_raw_vec_and_offset().0),
            ChunkData::I32(a) => RawBuf::I32(a.into_raw_vec_and_offset().0),
            ChunkData::I64(a) => RawBuf::I64(a.into_raw_vec_and_offset().0),
            ChunkData::F32(a) => RawBuf::F32(a.into_raw_vec_and_offset().0),
            ChunkData::F64(a) => RawBuf::F64(a.into_raw_vec_and_offset().0),
        };
        let bytes = buf.bytes();
        let mut free = self.lock();
        let held: u64 = free.iter().map(|(b, _)| b.bytes()).sum();
        if held + bytes > self.max_bytes {
            return;
        }
        if let Ok(r) = self.budget.try_reserve(bytes) {
            free.push((buf, r));
        }
    }

    /// Frees every pooled buffer; returns the bytes given back to the budget.
    pub(crate) fn drain(&self) -> u64 {
        let mut free = self.lock();
        let bytes = free.iter().map(|(b, _)| b.bytes()).sum();
        free.clear();
        bytes
    }

    /// Bytes held.
    pub(crate) fn held_bytes(&self) -> u64 {
        self.lock().iter().map(|(b, _)| b.bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_within_the_budget() {
        let budget = MemoryBudget::new(64 << 20);
        let pool = ChunkPool::new(budget.clone(), 32 << 20);
        let a = pool.zeros(DType::F64, &[1 << 20]);
        let ptr = match &a {
            ChunkData::F64(x) => x.as_ptr(),
            _ => unreachable!(),
        };
        pool.recycle(a);
        assert_eq!(
            budget.reserved_bytes(),
            8 << 20,
            "a pooled buffer is reserved"
        );
        let b = pool.zeros(DType::F64, &[1000, 1000]);
        match &b {
            ChunkData::F64(x) => {
                assert_eq!(x.as_ptr(), ptr, "the same buffer came back");
                assert!(x.iter().all(|&v| v == 0.0));
            }
            _ => unreachable!(),
        }
        assert_eq!(budget.reserved_bytes(), 0, "its reservation went with it");
        pool.recycle(b);
        assert_eq!(pool.drain(), 8 << 20);
        assert_eq!(budget.reserved_bytes(), 0);
        // Small blocks and blocks over the cap are not kept.
        pool.recycle(ChunkData::zeros(DType::F64, &[10]));
        pool.recycle(ChunkData::zeros(DType::F64, &[5 << 20]));
        assert_eq!(pool.held_bytes(), 0);
    }
}
