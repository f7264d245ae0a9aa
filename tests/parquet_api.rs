//! Parquet through the lazy API: a standardised 2-d result streamed to Parquet and read back.

use ndarray::{Array2, Axis};
use spillway::Session;
use spillway::io::parquet::{ParquetReadOptions, ParquetWriteOptions, RowGroupSize};

fn formula(i: usize, j: usize) -> f64 {
    (i as f64 * 0.001 + j as f64 * 0.0007).sin()
}

#[test]
fn standardise_to_parquet_matches_ndarray() {
    let (rows, cols) = (1_500, 40);
    let dir = tempfile::tempdir().unwrap();
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    // Column chunks narrower than the table: each row group gathers several array chunks.
    let x = s
        .from_fn(&[rows, cols], [200, 16], |ix| formula(ix[0], ix[1]))
        .unwrap();
    let y = ((&x - &x.mean(0).unwrap()).unwrap() / &x.std(0, 0.0).unwrap()).unwrap();
    let path = dir.path().join("y.parquet");
    y.to_parquet(
        &path,
        &ParquetWriteOptions::default().row_groups(RowGroupSize::Rows(300)),
    )
    .unwrap();
    let back = s
        .from_parquet(&path, None, &ParquetReadOptions::default())
        .unwrap();
    assert_eq!(back.shape(), &[rows, cols]);
    assert_eq!(back.chunk_shape()[0], 300);
    let got = back.compute::<f64>().unwrap();
    let xa = Array2::from_shape_fn((rows, cols), |(i, j)| formula(i, j));
    let want = ((&xa - &xa.mean_axis(Axis(0)).unwrap()) / xa.std_axis(Axis(0), 0.0)).into_dyn();
    for (a, b) in got.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }
    // One column by name is a 1-d array.
    let c7 = s
        .from_parquet(&path, Some(&["c7"]), &ParquetReadOptions::default())
        .unwrap();
    assert_eq!(c7.shape(), &[rows]);
}

#[test]
fn named_columns_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    let t = s.arange(100, [30]).unwrap();
    let v = (&t * 0.5).sqrt().unwrap();
    let path = dir.path().join("tv.parquet");
    spillway::Array::to_parquet_columns(
        &path,
        &[("t", &t), ("v", &v)],
        &ParquetWriteOptions::default(),
    )
    .unwrap();
    let back = s
        .from_parquet(&path, Some(&["v"]), &ParquetReadOptions::default())
        .unwrap();
    assert_eq!(back.compute::<f64>().unwrap()[[50]], 5.0);
    // Existing path, 3-d array, unequal lengths.
    assert!(matches!(
        t.to_parquet(&path, &ParquetWriteOptions::default()),
        Err(spillway::Error::PathExists { .. })
    ));
    let cube = s.zeros::<f64>(&[2, 2, 2], [1, 1, 1]).unwrap();
    assert!(matches!(
        cube.to_parquet(
            dir.path().join("c.parquet"),
            &ParquetWriteOptions::default()
        ),
        Err(spillway::Error::InvalidShape { .. })
    ));
    let short = s.arange(10, [10]).unwrap();
    assert!(
        spillway::Array::to_parquet_columns(
            dir.path().join("bad.parquet"),
            &[("t", &t), ("s", &short)],
            &ParquetWriteOptions::default()
        )
        .is_err()
    );
    assert!(!dir.path().join("bad.parquet").exists());
}
