//! The seed computation `((x * 2.5).mean(axis 1)).std()` at a reduced size, checked against
//! the same thing on a plain in-memory ndarray.

use ndarray::{Array2, Axis};
use spillway::Session;

fn formula(i: usize, j: usize) -> f64 {
    (i as f64 * 0.001 + j as f64 * 0.0007).sin()
}

fn reference(rows: usize, cols: usize) -> f64 {
    let x = Array2::from_shape_fn((rows, cols), |(i, j)| formula(i, j));
    let m = (&x * 2.5).mean_axis(Axis(1)).unwrap();
    m.std(0.0)
}

#[test]
fn seed_pipeline_matches_ndarray_fused_and_unfused() {
    let (rows, cols) = (5_000, 1_000);
    let expect = reference(rows, cols);
    for fuse in [true, false] {
        let s = Session::builder()
            .memory_limit("256MiB")
            .fuse(fuse)
            .build()
            .unwrap();
        let i = s.arange(rows, [500]).unwrap().insert_axis(1).unwrap();
        let j = s.arange(cols, [cols]).unwrap().insert_axis(0).unwrap();
        let x = ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap();
        let y = (&x * 2.5).mean(1).unwrap().std(None, 0.0).unwrap();
        let v: f64 = y.compute_scalar().unwrap();
        assert!(
            (v - expect).abs() <= 1e-9 * expect.abs(),
            "fuse={fuse}: {v} vs {expect}"
        );
    }
}

#[test]
fn from_fn_source_matches() {
    let (rows, cols) = (3_000, 700);
    let expect = reference(rows, cols);
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    let x = s
        .from_fn(&[rows, cols], [400, 700], |ix| formula(ix[0], ix[1]))
        .unwrap();
    let v: f64 = (&x * 2.5)
        .mean(1)
        .unwrap()
        .std(None, 0.0)
        .unwrap()
        .compute_scalar()
        .unwrap();
    assert!((v - expect).abs() <= 1e-9 * expect.abs(), "{v} vs {expect}");
}
