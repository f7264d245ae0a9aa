//! Every user mistake gets a typed error, and the session stays usable afterwards.

#![allow(clippy::single_range_in_vec_init)] // `slice` takes one range per axis

use spillway::{Array, ChunkDim, Chunks, DType, Error, ReduceOptions, Reduction, Session};

fn session() -> Session {
    Session::builder()
        .memory_limit("64MiB")
        .threads(2)
        .build()
        .unwrap()
}

#[test]
fn bad_settings() {
    assert!(matches!(
        Session::builder().memory_limit("1.5 parsecs").build(),
        Err(Error::InvalidMemoryLimit { .. })
    ));
    assert!(matches!(
        Session::builder().memory_limit("-3GB").build(),
        Err(Error::InvalidMemoryLimit { .. })
    ));
    assert!(matches!(
        Session::builder().memory_limit(0u64).build(),
        Err(Error::InvalidMemoryLimit { .. })
    ));
    assert!(matches!(
        Session::builder().threads(0).build(),
        Err(Error::InvalidConfig {
            setting: "threads",
            ..
        })
    ));
    assert!(matches!(
        Session::builder().max_result_fraction(1.5).build(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        Session::builder()
            .spill_dir("/nonexistent/spillway")
            .build(),
        Err(Error::InvalidConfig {
            setting: "spill_dir",
            ..
        })
    ));
    assert!(matches!(
        Session::builder().compression_level(99).build(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        Session::builder().chunk_target_bytes("zero").build(),
        Err(Error::InvalidMemoryLimit { .. })
    ));
}

#[test]
fn bad_shapes_and_chunks() {
    let s = session();
    assert!(matches!(
        s.zeros::<f64>(&[10], [0]),
        Err(Error::InvalidChunks { .. })
    ));
    assert!(matches!(
        s.zeros::<f64>(&[10, 10], [5]),
        Err(Error::InvalidChunks { .. })
    ));
    assert!(matches!(
        s.zeros::<f64>(&[2; 40], Chunks::Auto),
        Err(Error::InvalidShape { .. })
    ));
    assert!(matches!(
        s.zeros::<f64>(&[usize::MAX, 4], Chunks::Auto),
        Err(Error::InvalidShape { .. })
    ));
    let x = s
        .zeros::<f64>(&[10, 4], [ChunkDim::Size(3), ChunkDim::Whole])
        .unwrap();
    assert!(matches!(
        x.rechunk([0usize, 1]),
        Err(Error::InvalidChunks { .. })
    ));
    assert!(matches!(
        s.arange_f64(0.0, 1.0, 0.0, [2]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn bad_axes_and_broadcasts() {
    let s = session();
    let x = s.ones::<f64>(&[4, 3], [2, 3]).unwrap();
    let y = s.ones::<f64>(&[4], [4]).unwrap();
    assert!(matches!(&x + &y, Err(Error::BroadcastMismatch { .. })));
    assert!(matches!(
        x.sum(2),
        Err(Error::AxisOutOfRange { axis: 2, ndim: 2 })
    ));
    assert!(matches!(
        x.sum([1, 1]),
        Err(Error::DuplicateAxis { axis: 1 })
    ));
    assert!(matches!(
        x.permute_axes(&[0, 0]),
        Err(Error::DuplicateAxis { .. })
    ));
    assert!(matches!(
        x.permute_axes(&[0]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        x.slice(&[1..9]),
        Err(Error::InvalidRange { axis: 0, .. })
    ));
    assert!(matches!(
        x.insert_axis(5),
        Err(Error::AxisOutOfRange { .. })
    ));
    assert!(matches!(
        Array::concatenate(&[&x, &y], 0),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Array::concatenate(&[], 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        x.reduce(
            Reduction::Sum,
            0,
            ReduceOptions {
                split_every: 1,
                ..Default::default()
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(x.var(0, -1.0), Err(Error::InvalidArgument(_))));
    assert!(matches!(x.clip(3.0, 1.0), Err(Error::InvalidArgument(_))));
    let empty = s.zeros::<f64>(&[0, 3], [1, 3]).unwrap();
    assert!(matches!(empty.max(0), Err(Error::InvalidShape { .. })));
    // Mean of an empty axis is NaN, as in numpy.
    assert!(
        empty
            .mean(0)
            .unwrap()
            .compute::<f64>()
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    let other = session().ones::<f64>(&[4, 3], [2, 3]).unwrap();
    assert!(matches!(&x + &other, Err(Error::SessionMismatch)));
    // The session is still usable.
    assert_eq!(x.sum(None).unwrap().compute_scalar::<f64>().unwrap(), 12.0);
}

#[test]
fn bad_dtypes() {
    let s = session();
    let b = s.ones::<f64>(&[3], [3]).unwrap().gt(0.5).unwrap();
    assert_eq!(b.dtype(), DType::Bool);
    assert!(matches!(&b + &b, Err(Error::DTypeMismatch { .. })));
    assert!(matches!(b.neg(), Err(Error::UnsupportedDType { .. })));
    assert!(matches!(b.powi(2), Err(Error::UnsupportedDType { .. })));
    let x = s.ones::<f64>(&[3], [3]).unwrap();
    assert!(matches!(x.not(), Err(Error::UnsupportedDType { .. })));
    assert!(matches!(
        x.where_(1.0, 2.0),
        Err(Error::UnsupportedDType { .. })
    ));
    assert!(matches!(
        x.compute::<f32>(),
        Err(Error::UnsupportedDType { .. })
    ));
    assert!(matches!(
        x.compute_scalar::<f64>(),
        Err(Error::InvalidShape { .. })
    ));
    // Bool arithmetic works once cast.
    assert_eq!(
        b.astype(DType::I32)
            .sum(None)
            .unwrap()
            .compute_scalar::<i64>()
            .unwrap(),
        3
    );
}

#[test]
fn budget_refusals() {
    let s = Session::builder().memory_limit("8MiB").build().unwrap();
    // A result larger than half the limit.
    let big = s.ones::<f64>(&[1024, 1024], [128, 1024]).unwrap();
    assert!(matches!(
        big.compute::<f64>(),
        Err(Error::ResultTooLarge { .. })
    ));
    // A single chunk larger than the limit is refused before any work.
    let huge = s
        .from_fn(&[2048, 1024], [2048, 1024], |_| -> f64 {
            panic!("must not run")
        })
        .unwrap();
    let err = huge.persist().unwrap_err();
    match err {
        Error::TaskExceedsBudget {
            projected_bytes,
            limit_bytes,
            suggestion,
            ..
        } => {
            assert!(projected_bytes > limit_bytes);
            assert!(suggestion.contains("chunks"), "{suggestion}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(huge.plan(), Err(Error::TaskExceedsBudget { .. })));
    assert_eq!(
        big.sum(None).unwrap().compute_scalar::<f64>().unwrap(),
        (1024 * 1024) as f64
    );
}

#[test]
fn user_closures_that_panic_or_fail() {
    let s = session();
    let x = s
        .from_fn(&[100], [10], |ix| {
            if ix[0] == 57 {
                panic!("bad element")
            } else {
                1.0
            }
        })
        .unwrap();
    match x.sum(None).unwrap().compute_scalar::<f64>() {
        Err(Error::UserFunctionPanicked { message, .. }) => {
            assert!(message.contains("bad element"))
        }
        other => panic!("unexpected {other:?}"),
    }
    let blocks = s
        .from_blocks(&[10], [5], |r| {
            Ok(ndarray::ArrayD::<f64>::zeros(vec![r.shape()[0] + 1]))
        })
        .unwrap();
    assert!(matches!(
        blocks.compute::<f64>(),
        Err(Error::ShapeMismatch { .. })
    ));
    let failing = s
        .from_blocks(&[10], [5], |_| -> spillway::Result<ndarray::ArrayD<f64>> {
            Err(Error::InvalidArgument("source offline".into()))
        })
        .unwrap();
    assert!(matches!(
        failing.compute::<f64>(),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing was left reserved by the failed runs.
    assert_eq!(s.budget().reserved_bytes(), 0);
}
