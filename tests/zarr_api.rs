//! Zarr through the lazy API: W3's standardisation streamed to Zarr and read back.

use ndarray::{Array2, Axis};
use spillway::Session;
use spillway::io::zarr::{ZarrVersion, ZarrWriteOptions};

fn formula(i: usize, j: usize) -> f64 {
    (i as f64 * 0.001 + j as f64 * 0.0007).sin()
}

#[test]
fn standardise_to_zarr_matches_ndarray() {
    let (rows, cols) = (2_000, 300);
    let dir = tempfile::tempdir().unwrap();
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    let x = s
        .from_fn(&[rows, cols], [250, cols], |ix| formula(ix[0], ix[1]))
        .unwrap();
    let y = ((&x - &x.mean(0).unwrap()).unwrap() / &x.std(0, 0.0).unwrap()).unwrap();
    for (name, opts) in [
        ("v3.zarr", ZarrWriteOptions::default()),
        (
            "v2.zarr",
            ZarrWriteOptions::default().version(ZarrVersion::V2),
        ),
        (
            "sharded.zarr",
            ZarrWriteOptions::default()
                .chunk_shape(vec![125, 100])
                .shards(vec![250, 300]),
        ),
    ] {
        let path = dir.path().join(name);
        y.to_zarr(&path, &opts).unwrap();
        let back = s.from_zarr(&path, "/").unwrap().compute::<f64>().unwrap();
        let xa = Array2::from_shape_fn((rows, cols), |(i, j)| formula(i, j));
        let want = (&xa - &xa.mean_axis(Axis(0)).unwrap()) / xa.std_axis(Axis(0), 0.0);
        let want = want.into_dyn();
        assert_eq!(back.shape(), want.shape());
        for (a, b) in back.iter().zip(want.iter()) {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn failed_write_leaves_nothing_at_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.zarr");
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    let x = s
        .from_fn(&[100, 10], [10, 10], |ix| {
            assert!(ix[0] < 90, "source failure at row {}", ix[0]);
            ix[0] as f64
        })
        .unwrap();
    let err = x.to_zarr(&path, &ZarrWriteOptions::default()).unwrap_err();
    assert!(
        matches!(err, spillway::Error::UserFunctionPanicked { .. }),
        "{err}"
    );
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temp folder is left behind"
    );
}

#[test]
fn group_of_arrays_with_region_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.zarr");
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    let a = s.arange(100, [25]).unwrap().astype(spillway::DType::F64);
    let b = (&a * 2.0).sqrt().unwrap();
    let o = ZarrWriteOptions::default().dimension_names(["t"]);
    spillway::Array::to_zarr_group(
        &path,
        &[("a", &a, o.clone()), ("b", &b, o)],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    let back_b = s.from_zarr(&path, "b").unwrap().compute::<f64>().unwrap();
    assert_eq!(back_b[[50]], 10.0);
    // Overwrite the second quarter of `a` with zeros.
    s.zeros::<f64>(&[25], [25])
        .unwrap()
        .to_zarr_region(&path, "a", &[25])
        .unwrap();
    let back_a = s
        .from_zarr(&path, "a")
        .unwrap()
        .sum(None)
        .unwrap()
        .compute_scalar::<f64>()
        .unwrap();
    assert_eq!(
        back_a,
        (0..100).filter(|i| !(25..50).contains(i)).sum::<i64>() as f64
    );
    // A misaligned region is refused before anything is written.
    assert!(
        s.zeros::<f64>(&[10], [10])
            .unwrap()
            .to_zarr_region(&path, "a", &[5])
            .is_err()
    );
}
