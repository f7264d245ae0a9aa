//! A small pool of chunk buffers inside the budget.
//!
//! On these machines the first touch of fresh memory runs below 1 GB/s while rewriting warm
//! memory runs at 25 GB/s, and glibc hands buffers above its mmap threshold back to the kernel
//! on free — so a chunk-sized buffer allocated per task costs 10–40× a reused one. Tasks take
//! their output buffers from this pool, and buffers whose chunk is done (written to a sink,
//! released from the store) come back to it. Every pooled buffer holds a reservation, so the
//! pool counts against the memory limit like everything else, and the executor drains it
//! before it demotes stored chunks.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

thread_local! {
    /// The earmark id of the task running on this thread, if any.
    static TASK: Cell<Option<u64>> = const { Cell::new(None) };
}

/// A fresh id for [`ChunkPool::earmark`], unique in the process.
pub(crate) fn earmark_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Marks the current thread as running task `id` until dropped, so that the pool hands the
/// task the buffers earmarked for it (and no other task's). Scopes nest: a task that a
/// worker picks up while waiting inside another restores the outer id when it ends.
pub(crate) struct TaskScope(Option<u64>);

impl TaskScope {
    pub(crate) fn enter(id: u64) -> TaskScope {
        TaskScope(TASK.with(|t| t.replace(Some(id))))
    }
}

impl Drop for TaskScope {
    fn drop(&mut self) {
        TASK.with(|t| t.set(self.0));
    }
}

/// Who pays for a pooled buffer's bytes.
enum Hold {
    /// The pool itself, with its own reservation.
    Reserved(Reservation),
    /// An admitted task, whose reservation took over the buffer's bytes (see
    /// [`ChunkPool::earmark`]); the buffer waits here for the task to ask for it.
    Earmarked(u64),
}

struct Pooled {
    buf: RawBuf,
    hold: Hold,
}

/// Buffers kept for reuse, each paid for by a reservation: the pool's own, or, once earmarked,
/// that of the task it waits for.
pub(crate) struct ChunkPool {
    budget: MemoryBudget,
    max_bytes: u64,
    /// Buffers smaller than this are not worth pooling: malloc reuses them from its heap,
    /// while larger ones (at or above the session's 1 MiB mmap threshold) come fresh from the
    /// kernel each time. 1 MiB: W5's 1.7 MB rechunk pieces then reuse warm buffers (10.9 s
    /// against 11.7-12.4 s with 4 MiB, `BENCHMARKS.md`).
    min_bytes: u64,
    free: Mutex<Vec<Pooled>>,
    /// Runs in progress: buffers are only taken back while one is, so that chunks dropped
    /// between runs (a persisted array's last handle going) free their memory.
    active: AtomicUsize,
}

/// Whether a buffer of `have` elements suits a request for `want`: large enough, and not so
/// large that the chunk's counted bytes would hide much of its real size.
fn fits(have: usize, want: usize) -> bool {
    have >= want && have - want <= want / 4
}

impl ChunkPool {
    pub(crate) fn new(budget: MemoryBudget, max_bytes: u64) -> ChunkPool {
        ChunkPool {
            budget,
            max_bytes,
            min_bytes: 1 << 20,
            free: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
        }
    }

    /// A run starts: buffers given back from now on are kept.
    pub(crate) fn begin_run(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// A run ends; with `drain`, the pool frees what it holds (see [`drain`](Self::drain)).
    pub(crate) fn end_run(&self, drain: bool) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        if drain {
            self.drain();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of `dtype` for `n` elements, if one is pooled; its hold is dropped, since the
    /// caller's own reservation covers the block it becomes.
    fn take(&self, dtype: DType, n: usize) -> Option<RawBuf> {
        if ((n * dtype.size_bytes()) as u64) < self.min_bytes {
            return None;
        }
        let me = TASK.with(Cell::get);
        let mut free = self.lock();
        // The task's own earmarked buffers first (its reservation already pays for them),
        // then the pool's; never another task's. The smallest that fits, so large buffers
        // stay for large chunks.
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, p)| p.buf.dtype() == dtype && fits(p.buf.elems(), n))
            .filter_map(|(i, p)| match p.hold {
                Hold::Earmarked(id) if Some(id) == me => Some((0, p.buf.elems(), i)),
                Hold::Earmarked(_) => None,
                Hold::Reserved(_) => Some((1, p.buf.elems(), i)),
            })
            .min()
            .map(|(_, _, i)| i)?;
        let p = free.swap_remove(best);
        drop(free);
        Some(p.buf)
    }

    /// A zero-filled block of `shape`, on a pooled buffer when one of the dtype fits.
    pub(crate) fn zeros(&self, dtype: DType, shape: &[usize]) -> ChunkData {
        let n: usize = shape.iter().product();
        match self.take(dtype, n) {
            Some(RawBuf::Bool(v)) => filled(v, shape),
            Some(RawBuf::U8(v)) => filled(v, shape),
            Some(RawBuf::I32(v)) => filled(v, shape),
            Some(RawBuf::I64(v)) => filled(v, shape),
            Some(RawBuf::F32(v)) => filled(v, shape),
            Some(RawBuf::F64(v)) => filled(v, shape),
            None => ChunkData::zeros(dtype, shape),
        }
    }

    /// Whether a block of `nbytes` would be pooled now.
    pub(crate) fn wants(&self, nbytes: u64) -> bool {
        nbytes >= self.min_bytes
            && nbytes <= self.max_bytes
            && self.active.load(Ordering::SeqCst) > 0
    }

    fn raw(c: ChunkData) -> RawBuf {
        match c {
            ChunkData::Bool(a) => RawBuf::Bool(a.into_raw_vec_and_offset().0),
            ChunkData::U8(a) => RawBuf::U8(a.into_raw_vec_and_offset().0),
            ChunkData::I32(a) => RawBuf::I32(a.into_raw_vec_and_offset().0),
            ChunkData::I64(a) => RawBuf::I64(a.into_raw_vec_and_offset().0),
            ChunkData::F32(a) => RawBuf::F32(a.into_raw_vec_and_offset().0),
            ChunkData::F64(a) => RawBuf::F64(a.into_raw_vec_and_offset().0),
        }
    }

    /// Takes back the buffer of a block that is no longer needed, if it is worth keeping and
    /// the budget has room for it; otherwise frees it.
    pub(crate) fn recycle(&self, c: ChunkData) {
        if !self.wants(c.nbytes()) {
            return;
        }
        let buf = Self::raw(c);
        if let Ok(paid) = self.budget.try_reserve(buf.bytes()) {
            self.keep_raw(buf, paid);
        }
    }

    /// Takes back the buffer of a block together with the reservation that paid for it (a
    /// chunk leaving the store's RAM, a read that is done): the bytes stay counted, with no
    /// new reservation to find. Frees both when the buffer is not worth keeping or the
    /// reservation does not cover it.
    pub(crate) fn keep(&self, c: ChunkData, paid: Reservation) {
        if self.wants(c.nbytes()) {
            self.keep_raw(Self::raw(c), paid);
        }
    }

    /// Pools `buf` on `paid` (what of it exceeds the buffer returns to the budget), unless the
    /// reservation is short of it or the pool is full: then both go.
    fn keep_raw(&self, buf: RawBuf, mut paid: Reservation) {
        let bytes = buf.bytes();
        if paid.bytes() < bytes {
            return;
        }
        let mut free = self.lock();
        let held: u64 = free.iter().map(|p| p.buf.bytes()).sum();
        if held + bytes > self.max_bytes {
            return;
        }
        let r = paid.split(bytes).expect("checked above");
        free.push(Pooled {
            buf,
            hold: Hold::Reserved(r),
        });
    }

    /// Hands pooled buffers' reservations to task `id`, one buffer per wanted block size (in
    /// bytes) that a pooled buffer fits: the task then needs that much less from the budget,
    /// and its blocks, when it asks the pool for them, reuse warm memory. Returns the bytes
    /// handed over (an empty reservation when none fit) and which wants were met. The
    /// buffers stay pooled until taken; [`release`](Self::release) frees those the task did
    /// not take, [`unearmark`](Self::unearmark) gives them back to the pool.
    pub(crate) fn earmark(&self, id: u64, wants: &mut Vec<u64>) -> Reservation {
        let mut out = self.budget.empty_reservation();
        if wants.is_empty() {
            return out;
        }
        let mut free = self.lock();
        wants.retain(|&want| {
            let best = free
                .iter_mut()
                .filter(|p| {
                    matches!(p.hold, Hold::Reserved(_)) && {
                        let size = p.buf.dtype().size_bytes() as u64;
                        want.is_multiple_of(size) && fits(p.buf.elems(), (want / size) as usize)
                    }
                })
                .min_by_key(|p| p.buf.elems());
            match best {
                Some(p) => {
                    if let Hold::Reserved(r) = std::mem::replace(&mut p.hold, Hold::Earmarked(id)) {
                        out.merge(r);
                    }
                    false
                }
                None => true,
            }
        });
        out
    }

    /// Gives the buffers earmarked for task `id` and not taken back to the pool, moving their
    /// bytes out of `from` (the task's reservation, which took them over).
    pub(crate) fn unearmark(&self, id: u64, from: &mut Reservation) {
        let mut free = self.lock();
        free.retain_mut(|p| {
            if !matches!(p.hold, Hold::Earmarked(i) if i == id) {
                return true;
            }
            match from.split(p.buf.bytes()) {
                Ok(r) => {
                    p.hold = Hold::Reserved(r);
                    true
                }
                Err(_) => false,
            }
        });
    }

    /// Frees the buffers earmarked for task `id` that it did not take. Call before the task's
    /// reservation is dropped: that reservation is what paid for them.
    pub(crate) fn release(&self, id: u64) {
        drop(self.remove_where(|h| matches!(h, Hold::Earmarked(e) if *e == id)));
    }

    /// Frees every pooled buffer the pool pays for (earmarked ones belong to their tasks);
    /// returns the bytes given back to the budget.
    pub(crate) fn drain(&self) -> u64 {
        let gone = self.remove_where(|h| matches!(h, Hold::Reserved(_)));
        gone.iter().map(|p| p.buf.bytes()).sum()
    }

    /// Takes the buffers whose hold matches out of the pool, to be freed by the caller outside
    /// the lock (unmapping a large buffer is a syscall).
    fn remove_where(&self, pred: impl Fn(&Hold) -> bool) -> Vec<Pooled> {
        self.lock().extract_if(.., |p| pred(&p.hold)).collect()
    }

    /// Bytes held.
    pub(crate) fn held_bytes(&self) -> u64 {
        self.lock().iter().map(|p| p.buf.bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_within_the_budget() {
        let budget = MemoryBudget::new(64 << 20);
        let pool = ChunkPool::new(budget.clone(), 32 << 20);
        pool.begin_run();
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

    fn ptr(c: &ChunkData) -> *const f64 {
        match c {
            ChunkData::F64(x) => x.as_ptr(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn kept_buffers_keep_their_reservation_and_earmarks_move_it_to_a_task() {
        let budget = MemoryBudget::new(64 << 20);
        let pool = ChunkPool::new(budget.clone(), 32 << 20);
        pool.begin_run();
        // A chunk leaving the store: its buffer and the reservation that paid for it.
        let paid = budget.try_reserve(8 << 20).unwrap();
        let a = ChunkData::zeros(DType::F64, &[1 << 20]);
        let a_ptr = ptr(&a);
        pool.keep(a, paid);
        assert_eq!(budget.reserved_bytes(), 8 << 20, "still counted, once");
        assert_eq!(pool.held_bytes(), 8 << 20);

        // Task 1 wants an 8 MiB block and a 1 MiB one: only the first fits a pooled buffer.
        let mut wants = vec![8 << 20, 1 << 20];
        let mut r = pool.earmark(1, &mut wants);
        assert_eq!(r.bytes(), 8 << 20, "the buffer's bytes moved to the task");
        assert_eq!(wants, vec![1 << 20], "the unmet want is left");
        assert_eq!(
            budget.reserved_bytes(),
            8 << 20,
            "moving is not reserving again"
        );
        assert_eq!(
            pool.drain(),
            0,
            "an earmarked buffer is the task's, not drained"
        );

        // Another task never gets it; the task it is earmarked for does.
        {
            let _other = TaskScope::enter(2);
            let b = pool.zeros(DType::F64, &[1 << 20]);
            assert_ne!(ptr(&b), a_ptr);
        }
        {
            let _me = TaskScope::enter(1);
            let c = pool.zeros(DType::F64, &[1 << 20]);
            assert_eq!(ptr(&c), a_ptr, "warm memory reused");
            assert_eq!(pool.held_bytes(), 0);
            // Done with it: back to the pool, paid by part of the task's reservation.
            pool.keep(c, r.split(8 << 20).unwrap());
        }
        assert_eq!(r.bytes(), 0);
        assert_eq!(budget.reserved_bytes(), 8 << 20);

        // Earmarked and given back (admission failed): the pool pays again.
        let mut wants = vec![8 << 20];
        let mut r = pool.earmark(3, &mut wants);
        assert!(wants.is_empty());
        pool.unearmark(3, &mut r);
        assert_eq!(r.bytes(), 0);
        assert_eq!(budget.reserved_bytes(), 8 << 20);

        // Earmarked and not taken: released (freed) while the task's reservation holds it.
        let r = pool.earmark(4, &mut vec![8 << 20]);
        pool.release(4);
        assert_eq!(pool.held_bytes(), 0);
        drop(r);
        assert_eq!(
            budget.reserved_bytes(),
            0,
            "nothing counted twice or left over"
        );
    }

    #[test]
    fn a_reservation_that_does_not_cover_the_buffer_frees_both() {
        let budget = MemoryBudget::new(64 << 20);
        let pool = ChunkPool::new(budget.clone(), 32 << 20);
        pool.begin_run();
        let short = budget.try_reserve(1 << 20).unwrap();
        pool.keep(ChunkData::zeros(DType::F64, &[1 << 20]), short);
        assert_eq!(pool.held_bytes(), 0);
        assert_eq!(budget.reserved_bytes(), 0);
        // Over the pool's cap: freed too.
        let paid = budget.try_reserve(40 << 20).unwrap();
        pool.keep(ChunkData::zeros(DType::F64, &[5 << 20]), paid);
        assert_eq!(pool.held_bytes(), 0);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[test]
    fn nothing_is_kept_outside_a_run() {
        let budget = MemoryBudget::new(64 << 20);
        let pool = ChunkPool::new(budget.clone(), 32 << 20);
        // Between runs (say, a persisted array's last handle dropping) memory is freed.
        let paid = budget.try_reserve(8 << 20).unwrap();
        pool.keep(ChunkData::zeros(DType::F64, &[1 << 20]), paid);
        pool.recycle(ChunkData::zeros(DType::F64, &[1 << 20]));
        assert_eq!(pool.held_bytes(), 0);
        assert_eq!(budget.reserved_bytes(), 0);
        pool.begin_run();
        pool.recycle(ChunkData::zeros(DType::F64, &[1 << 20]));
        assert_eq!(pool.held_bytes(), 8 << 20);
        pool.end_run(false);
        assert_eq!(pool.held_bytes(), 8 << 20, "kept for the next run");
        pool.begin_run();
        pool.end_run(true);
        assert_eq!(pool.held_bytes(), 0);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[test]
    fn much_larger_buffers_are_not_handed_out_for_small_blocks() {
        let budget = MemoryBudget::new(64 << 20);
        let pool = ChunkPool::new(budget.clone(), 32 << 20);
        pool.begin_run();
        pool.recycle(ChunkData::zeros(DType::F64, &[2 << 20]));
        assert_eq!(pool.held_bytes(), 16 << 20);
        // A block of 4 MiB would hide 12 MiB of real size: it gets its own buffer.
        let small = pool.zeros(DType::F64, &[512 << 10]);
        assert_eq!(small.len(), 512 << 10);
        assert_eq!(pool.held_bytes(), 16 << 20);
    }
}
