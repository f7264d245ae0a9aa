//! Rechunking: any source chunking to any target chunking gives exactly the source's values,
//! whether the planner evaluates the rechunk inside its consumers or splits the input into
//! pieces first, and the executor's reservation never exceeds the budget.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use spillway::io::ChunkSink;
use spillway::io::zarr::ZarrWriteOptions;
use spillway::{Array, ChunkData, ChunkGrid, DType, Session};

fn session(limit: u64) -> Session {
    session_with(limit, true)
}

fn session_with(limit: u64, fuse: bool) -> Session {
    Session::builder()
        .memory_limit(limit)
        .fuse(fuse)
        .threads(2)
        .tile_bytes(2048)
        .build()
        .unwrap()
}

fn values(x: &Array) -> Vec<f64> {
    x.compute::<f64>().unwrap().iter().copied().collect()
}

/// A sink that checks each chunk against the expected values as it arrives, so results
/// larger than what `compute` may return are checked without holding them.
struct Check {
    grid: ChunkGrid,
    want: Vec<f64>,
    seen: Mutex<usize>,
}

impl ChunkSink for Check {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn write_chunk(&self, index: &[usize], data: &ChunkData) -> spillway::Result<()> {
        let r = self.grid.chunk_region(index);
        let shape = self.grid.shape();
        let got = data.to_f64_vec();
        for (k, ix) in ndarray::indices(r.shape()).into_iter().enumerate() {
            let mut lin = 0;
            for a in 0..shape.len() {
                lin = lin * shape[a] + r.start()[a] + ix[a];
            }
            assert_eq!(got[k], self.want[lin], "element {lin} of chunk {index:?}");
        }
        *self.seen.lock().unwrap() += got.len();
        Ok(())
    }
    fn finish(&self) -> spillway::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "check".into()
    }
}

/// Streams `x` through a [`Check`] sink against `want`.
fn check(x: &Array, want: &[f64]) {
    let sink = Arc::new(Check {
        grid: x.chunk_grid().clone(),
        want: want.to_vec(),
        seen: Mutex::new(0),
    });
    x.write_to(sink.clone()).unwrap();
    assert_eq!(*sink.seen.lock().unwrap(), want.len());
}

/// The W5 shape in miniature: row chunks to column chunks of a Zarr array, under a budget
/// that cannot hold a column's worth of row chunks, so the rechunk must go through pieces.
#[test]
fn zarr_row_chunks_to_column_chunks_go_through_pieces_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let big = Session::builder().memory_limit("1GiB").build().unwrap();
    let (n, m) = (2_000, 1_000);
    let i = big.arange(n, [200]).unwrap().insert_axis(1).unwrap();
    let j = big.arange(m, [m]).unwrap().insert_axis(0).unwrap();
    let x = ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap();
    let want = values(&x);
    x.to_zarr(dir.path().join("src.zarr"), &ZarrWriteOptions::default())
        .unwrap();

    // Source chunks of 1.6 MB; a target chunk (2000 × 50) touches all ten of them.
    let limit = 24u64 << 20;
    let s = session(limit);
    let src = s.from_zarr(dir.path().join("src.zarr"), "/").unwrap();
    let y = src.rechunk([n, 50]).unwrap();
    let plan = y.plan().unwrap();
    assert!(
        plan.explain().contains("rechunk split"),
        "{}",
        plan.explain()
    );
    y.to_zarr(dir.path().join("dst.zarr"), &ZarrWriteOptions::default())
        .unwrap();
    let run = s.last_run().unwrap();
    assert!(
        run.peak_reserved_bytes <= limit,
        "{}",
        run.peak_reserved_bytes
    );
    let back = big.from_zarr(dir.path().join("dst.zarr"), "/").unwrap();
    assert_eq!(back.chunk_shape(), &[n, 50]);
    assert_eq!(values(&back), want);
}

#[test]
fn persisted_chunks_that_spill_are_split_once_and_gathered() {
    let limit = 3u64 << 20;
    let s = session(limit);
    let big = session(64 << 20);
    let want = values(&big.random_normal(&[1_000, 600], [50, 600], 5).unwrap());
    let x = s.random_normal(&[1_000, 600], [50, 600], 5).unwrap();
    let x = x.persist().unwrap(); // 4.8 MB: most of it spills
    let y = x.rechunk([1_000, 40]).unwrap();
    assert!(y.plan().unwrap().explain().contains("rechunk split"));
    let sums: Vec<f64> = y
        .sum(0)
        .unwrap()
        .compute::<f64>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    assert!(s.last_run().unwrap().peak_reserved_bytes <= limit);
    for (j, got) in sums.iter().enumerate() {
        let w: f64 = (0..1_000).map(|i| want[i * 600 + j]).sum();
        assert!(
            (got - w).abs() <= 1e-9 * w.abs().max(1.0),
            "column {j}: {got} vs {w}"
        );
    }
}

#[test]
fn a_formula_is_rechunked_directly() {
    let s = session(64 << 20);
    let x = s.random_uniform(&[300, 200], [30, 200], 1).unwrap();
    let y = x.rechunk([300, 20]).unwrap();
    assert!(!y.plan().unwrap().explain().contains("rechunk split"));
    assert_eq!(values(&y), values(&x));
}

#[test]
fn operands_with_different_chunkings_combine_exactly() {
    let limit = 6u64 << 20;
    let s = session(limit);
    let big = session(256 << 20);
    let (shape, ca, cb) = ([1_200, 800], [120, 800], [1_200, 80]);
    let want: Vec<f64> = values(&big.random_normal(&shape, ca, 2).unwrap())
        .iter()
        .zip(values(&big.random_normal(&shape, cb, 3).unwrap()))
        .map(|(x, y)| x + 2.0 * y)
        .collect();
    let a = s.random_normal(&shape, ca, 2).unwrap().persist().unwrap();
    let b = s.random_normal(&shape, cb, 3).unwrap().persist().unwrap();
    let c = (&a + &(&b * 2.0)).unwrap();
    // `b`'s column chunks are split into pieces once, not re-read by every row chunk.
    assert!(c.plan().unwrap().explain().contains("rechunk split"));
    check(&c, &want);
    assert!(s.last_run().unwrap().peak_reserved_bytes <= limit);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_rechunk_of_a_stored_array_keeps_every_value(
        shape in prop::collection::vec(1usize..60, 1..4),
        src_seed in prop::collection::vec(1usize..60, 3),
        dst_seed in prop::collection::vec(1usize..60, 3),
        from_zarr in any::<bool>(),
        fuse in any::<bool>(),
        limit_kib in 256u64..2048,
    ) {
        let nd = shape.len();
        let src_chunks: Vec<usize> = (0..nd).map(|k| src_seed[k].min(shape[k])).collect();
        let dst_chunks: Vec<usize> = (0..nd).map(|k| dst_seed[k].min(shape[k])).collect();
        let big = Session::builder().memory_limit("256MiB").build().unwrap();
        let x0 = big.random_normal(&shape, src_chunks.clone(), 9).unwrap();
        let want = values(&x0);
        let dir = tempfile::tempdir().unwrap();
        let limit = if from_zarr { (limit_kib << 10) + (24 << 20) } else { limit_kib << 10 };
        // Unfused, every operation holds whole chunks: give it room for a few.
        let limit = if fuse { limit } else { 4 * limit };
        // A target chunk must fit beside what produces it; larger ones are refused before
        // any work (a typed error, tested elsewhere).
        let dst_bytes = dst_chunks.iter().product::<usize>() as u64 * 8;
        prop_assume!(dst_bytes * 2 <= limit);
        let s = session_with(limit, fuse);
        let x = if from_zarr {
            x0.to_zarr(dir.path().join("x.zarr"), &ZarrWriteOptions::default()).unwrap();
            s.from_zarr(dir.path().join("x.zarr"), "/").unwrap()
        } else {
            s.random_normal(&shape, src_chunks.clone(), 9).unwrap().persist().unwrap()
        };
        let y = x.rechunk(dst_chunks.clone()).unwrap();
        prop_assert_eq!(y.chunk_shape(), &dst_chunks[..]);
        check(&y, &want);
        prop_assert!(s.last_run().unwrap().peak_reserved_bytes <= limit);
        // And through a consumer that is itself fused (an element-wise op), then reduced.
        let z = (&y * 2.0).sum(None).unwrap().compute_scalar::<f64>().unwrap();
        let zw: f64 = want.iter().map(|v| v * 2.0).sum();
        prop_assert!((z - zw).abs() <= 1e-9 * zw.abs().max(1.0));
    }
}

/// Chunkings that cut each other into tiny pieces (a 1-element-wide source against a
/// 1-element-wide target): the plan must stay cheap, by consolidating reads or by keeping the
/// direct plan, and still give every value.
#[test]
fn crossing_needle_chunkings_finish_and_keep_every_value() {
    let big = session(256 << 20);
    let shape = [59, 59, 59];
    let want = values(&big.random_normal(&shape, [1, 1, 59], 4).unwrap());
    for limit in [512u64 << 10, 4 << 20] {
        let s = session(limit);
        let x = s
            .random_normal(&shape, [1, 1, 59], 4)
            .unwrap()
            .persist()
            .unwrap();
        let y = x.rechunk([59, 1, 1]).unwrap();
        check(&y, &want);
        assert!(s.last_run().unwrap().peak_reserved_bytes <= limit);
    }
}
