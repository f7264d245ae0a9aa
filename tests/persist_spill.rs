//! Persisting an array larger than half the limit: chunks are written through to disk by
//! their tasks and their buffers reused. Values, budget and errors through the public API.

use ndarray::{Array2, Axis};
use spillway::{DType, Error, Session};

const MIB: u64 = 1 << 20;

/// 64 MiB persisted under a 32 MiB limit in 4 MiB chunks (the pool's smallest size), reused
/// by two reductions: the same numbers as ndarray, nothing left reserved afterwards.
#[test]
fn a_persist_larger_than_the_limit_reuses_buffers_and_keeps_every_value() {
    let s = Session::builder()
        .memory_limit(32 * MIB)
        .threads(2)
        .build()
        .unwrap();
    let (rows, cols) = (8192, 1024); // 64 MiB of f64, 16 chunks of 512 rows (4 MiB)
    let x = s
        .from_fn::<f64, _>(&[rows, cols], [512, cols], |ix| {
            ((ix[0] * 31 + ix[1] * 7) % 1009) as f64 * 0.5
        })
        .unwrap();
    let want = Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 7) % 1009) as f64 * 0.5
    });
    let p = x.persist().unwrap();
    let spilled = s.memory_report().store.bytes_spilled;
    assert!(
        spilled >= 32 * MIB,
        "most of it went to disk ({spilled} bytes)"
    );
    let sum0 = p.sum(0).unwrap().compute::<f64>().unwrap();
    let max1 = p.max(1).unwrap().compute::<f64>().unwrap();
    assert_eq!(sum0, want.sum_axis(Axis(0)).into_dyn());
    assert_eq!(
        max1,
        want.map_axis(Axis(1), |r| r.fold(f64::MIN, |a, &b| a.max(b)))
            .into_dyn()
    );
    let report = s.memory_report();
    assert!(report.peak_reserved_bytes <= 32 * MIB);
    drop(p);
    drop(x);
    assert_eq!(
        s.budget().reserved_bytes(),
        0,
        "the pool is empty after a compute"
    );
}

/// A spill cap too small for the persist is a typed error, and the session stays usable with
/// nothing left reserved.
#[test]
fn a_persist_past_the_spill_cap_is_a_typed_error_and_the_session_goes_on() {
    let s = Session::builder()
        .memory_limit(32 * MIB)
        .max_spill_bytes(16 * MIB)
        .threads(2)
        .build()
        .unwrap();
    let x = s.full(&[8192, 1024], 1.5, DType::F64, [512, 1024]).unwrap();
    match x.persist() {
        Err(Error::SpillLimitExceeded { .. }) => {}
        other => panic!("expected SpillLimitExceeded, got {other:?}"),
    }
    assert_eq!(s.budget().reserved_bytes(), 0);
    let small = s.full(&[1000], 2.0, DType::F64, [100]).unwrap();
    assert_eq!(
        small.sum(0).unwrap().compute_scalar::<f64>().unwrap(),
        2000.0
    );
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Chunks of 4–8 MiB (large enough for the buffer pool) under budgets of a few chunks:
    /// persist, element-wise work with a second operand, a rechunk and reductions give
    /// ndarray's values, and the executor never reserves more than the limit.
    #[test]
    fn pooled_buffers_under_pressure_keep_every_value(
        chunk_rows in 512usize..1024,
        limit_chunks in 4u64..8,
        target_cols in prop::sample::select(vec![64usize, 128, 256]),
        axis in 0usize..2,
    ) {
        let (rows, cols) = (4096usize, 1024usize); // 32 MiB of f64
        let limit = limit_chunks * (chunk_rows * cols * 8) as u64;
        let s = Session::builder().memory_limit(limit).threads(2).build().unwrap();
        let f = |i: usize, j: usize| ((i * 13 + j * 29) % 251) as f64 - 100.0;
        let x = s
            .from_fn::<f64, _>(&[rows, cols], [chunk_rows, cols], move |ix| f(ix[0], ix[1]))
            .unwrap();
        let want = Array2::from_shape_fn((rows, cols), |(i, j)| f(i, j));
        let p = x.persist().unwrap();
        let y = ((&p * 2.0) + &x).unwrap().rechunk([rows, target_cols]).unwrap();
        let got = y.sum(axis).unwrap().compute::<f64>().unwrap();
        let expect = want.mapv(|v| 3.0 * v).sum_axis(Axis(axis)).into_dyn();
        prop_assert_eq!(got, expect);
        let m = p.max(axis).unwrap().compute::<f64>().unwrap();
        let expect_m = want
            .map_axis(Axis(axis), |r| r.fold(f64::MIN, |a, &b| a.max(b)))
            .into_dyn();
        prop_assert_eq!(m, expect_m);
        prop_assert!(s.memory_report().peak_reserved_bytes <= limit);
        drop(p);
        drop(y);
        drop(x);
        prop_assert_eq!(s.budget().reserved_bytes(), 0);
    }
}
