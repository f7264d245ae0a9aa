//! Writes arrays through `ParquetSink` and reads them back through `ParquetSource`: every
//! dtype and codec, 1-d and 2-d, names, row groups in and out of order and from several
//! threads, and the safe-write guarantees.

use std::path::Path;

use ndarray::{ArrayD, Axis, IxDyn, s};
use proptest::prelude::*;
use spillway::io::parquet::{ParquetCompression, ParquetSink, ParquetSource, ParquetWriteOptions};
use spillway::io::{ChunkSink, ChunkSource};
use spillway::{ChunkData, DType, Error, Region};

/// A deterministic test array of `dtype` whose values use the type's range (large i64s,
/// fractional and negative floats, both bools).
fn test_array(dtype: DType, shape: &[usize]) -> ChunkData {
    let n: usize = shape.iter().product();
    let f = |i: usize| -> f64 { ((i * 7919) % 1013) as f64 - 500.0 };
    let v: Vec<usize> = (0..n).collect();
    match dtype {
        DType::Bool => ChunkData::from(
            ArrayD::from_shape_vec(IxDyn(shape), v.iter().map(|&i| (i * 7) % 3 == 0).collect())
                .unwrap(),
        ),
        DType::U8 => ChunkData::from(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                v.iter().map(|&i| (i * 37 % 256) as u8).collect(),
            )
            .unwrap(),
        ),
        DType::I32 => ChunkData::from(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                v.iter().map(|&i| (f(i) as i32) * 4_000_000).collect(),
            )
            .unwrap(),
        ),
        DType::I64 => ChunkData::from(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                v.iter()
                    .map(|&i| (f(i) as i64) * 10_000_000_000_000_007)
                    .collect(),
            )
            .unwrap(),
        ),
        DType::F32 => ChunkData::from(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                v.iter().map(|&i| (f(i) / 3.0) as f32).collect(),
            )
            .unwrap(),
        ),
        DType::F64 => ChunkData::from(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                v.iter().map(|&i| f(i).sin() * 1e-3 + f(i) * 1e12).collect(),
            )
            .unwrap(),
        ),
    }
}

/// Writes `data` in row groups of `rg` rows, delivering the chunks listed in `order` (all of
/// them or, to test incomplete writes, some).
fn write(
    path: &Path,
    data: &ChunkData,
    rg: usize,
    opts: &ParquetWriteOptions,
    order: &[usize],
) -> ParquetSink {
    let sink = ParquetSink::create(path, data.shape(), data.dtype(), rg, opts).unwrap();
    let indices = sink.grid().chunk_indices();
    assert!(order.len() <= indices.len());
    for &k in order {
        let region = sink.grid().chunk_region(&indices[k]);
        sink.write_chunk(&indices[k], &data.slice(&region)).unwrap();
    }
    sink
}

/// Column `j` of a 2-d chunk as a 1-d chunk.
fn column_of(data: &ChunkData, j: usize) -> ChunkData {
    spillway::dispatch_chunk!(data, a, T => ChunkData::from(a.index_axis(Axis(1), j).to_owned()))
}

fn in_order(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn read_all(path: &Path, columns: Option<&[&str]>) -> (ParquetSource, ChunkData) {
    let src = ParquetSource::open(path, columns).unwrap();
    let all = src.read_region(&Region::whole(src.grid().shape())).unwrap();
    (src, all)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_dtype_and_codec_round_trips_1d_and_2d() {
    let dir = tempfile::tempdir().unwrap();
    for codec in [
        ParquetCompression::Zstd(1),
        ParquetCompression::Zstd(9),
        ParquetCompression::Snappy,
        ParquetCompression::None,
    ] {
        for dtype in DType::ALL {
            let opts = ParquetWriteOptions::default().compression(codec);
            // 1-d: one column named c0; 1000 rows in row groups of 300 (the last has 100).
            let data = test_array(dtype, &[1000]);
            let path = dir.path().join(format!("{dtype}-{codec:?}-1d.parquet"));
            write(&path, &data, 300, &opts, &in_order(4))
                .finish()
                .unwrap();
            let (src, back) = read_all(&path, Some(&["c0"]));
            assert_eq!(src.dtype(), dtype);
            assert_eq!(src.row_group_rows(), vec![300, 300, 300, 100]);
            assert_eq!(back, data, "{dtype} {codec:?} 1-d");

            // 2-d: three columns c0..c2.
            let data = test_array(dtype, &[250, 3]);
            let path = dir.path().join(format!("{dtype}-{codec:?}-2d.parquet"));
            write(&path, &data, 64, &opts, &in_order(4))
                .finish()
                .unwrap();
            let (src, back) = read_all(&path, None);
            assert_eq!(src.column_names(), vec!["c0", "c1", "c2"]);
            assert_eq!(src.dtype(), dtype);
            assert_eq!(src.row_group_rows(), vec![64, 64, 64, 58]);
            assert_eq!(back, data, "{dtype} {codec:?} 2-d");
            // One column of the 2-d file by name, as 1-d.
            let (_, c1) = read_all(&path, Some(&["c1"]));
            assert_eq!(c1, column_of(&data, 1), "{dtype} {codec:?} column c1");
        }
    }
}

#[test]
fn names_are_written_and_several_1d_arrays_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // Three 1-d arrays of equal length stacked as named columns (the lead's stacking path).
    let a = ArrayD::from_shape_fn(IxDyn(&[40]), |i| i[0] as f64 * 0.5);
    let b = ArrayD::from_shape_fn(IxDyn(&[40]), |i| -(i[0] as f64));
    let c = ArrayD::from_shape_fn(IxDyn(&[40]), |i| (i[0] as f64).sqrt());
    let mut stacked = ArrayD::zeros(IxDyn(&[40, 3]));
    for (j, col) in [&a, &b, &c].into_iter().enumerate() {
        stacked.slice_mut(s![.., j]).assign(col);
    }
    let path = dir.path().join("named.parquet");
    let opts = ParquetWriteOptions::default().column_names(["temp", "pressure", "wind"]);
    let data = ChunkData::from(stacked);
    write(&path, &data, 16, &opts, &in_order(3))
        .finish()
        .unwrap();
    for (name, want) in [("temp", &a), ("pressure", &b), ("wind", &c)] {
        let (_, got) = read_all(&path, Some(&[name]));
        assert_eq!(got, ChunkData::from(want.clone()), "{name}");
    }
    let (src, got) = read_all(&path, Some(&["wind", "temp"]));
    assert_eq!(src.column_names(), vec!["wind", "temp"]);
    let got = got.to_f64_vec();
    for r in 0..40 {
        assert_eq!(got[2 * r], c[r]);
        assert_eq!(got[2 * r + 1], a[r]);
    }
}

#[test]
fn out_of_order_row_groups_wait_encoded_and_land_in_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = test_array(DType::I64, &[100, 2]);
    let path = dir.path().join("reverse.parquet");
    let sink = ParquetSink::create(
        &path,
        &[100, 2],
        DType::I64,
        10,
        &ParquetWriteOptions::default(),
    )
    .unwrap();
    for k in (1..10).rev() {
        let r = sink.grid().chunk_region(&[k, 0]);
        sink.write_chunk(&[k, 0], &data.slice(&r)).unwrap();
        assert_eq!(
            sink.row_groups_written(),
            0,
            "nothing can be appended before row group 0"
        );
    }
    let waiting = sink.buffered_bytes();
    assert!(waiting > 0);
    assert_eq!(sink.peak_buffered_bytes(), waiting);
    sink.write_chunk(&[0, 0], &data.slice(&sink.grid().chunk_region(&[0, 0])))
        .unwrap();
    assert_eq!(sink.row_groups_written(), 10);
    assert_eq!(sink.buffered_bytes(), 0);
    sink.finish().unwrap();
    let (src, back) = read_all(&path, None);
    assert_eq!(src.row_group_rows(), vec![10; 10]);
    assert_eq!(back, data);
}

#[test]
fn concurrent_writers_produce_the_same_file_contents() {
    let dir = tempfile::tempdir().unwrap();
    let data = test_array(DType::F64, &[5000, 4]);
    let path = dir.path().join("concurrent.parquet");
    let opts = ParquetWriteOptions::default().compression(ParquetCompression::Zstd(3));
    let sink = ParquetSink::create(&path, &[5000, 4], DType::F64, 128, &opts).unwrap();
    let n = sink.grid().num_chunks();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (sink, data) = (&sink, &data);
            scope.spawn(move || {
                // Thread t takes every fourth row group, highest first, to force waiting.
                for k in (0..n).filter(|k| k % 4 == t).rev() {
                    let r = sink.grid().chunk_region(&[k, 0]);
                    sink.write_chunk(&[k, 0], &data.slice(&r)).unwrap();
                }
            });
        }
    });
    assert_eq!(sink.row_groups_written(), n);
    sink.finish().unwrap();
    let (src, back) = read_all(&path, None);
    let mut want = vec![128; n - 1];
    want.push(5000 - 128 * (n - 1));
    assert_eq!(src.row_group_rows(), want);
    assert_eq!(back, data);
}

#[test]
fn chunks_of_another_dtype_are_converted_and_bad_chunks_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cast.parquet");
    let sink =
        ParquetSink::create(&path, &[4], DType::F32, 2, &ParquetWriteOptions::default()).unwrap();
    sink.write_chunk(&[0], &ChunkData::from(ndarray::arr1(&[1i32, 2]).into_dyn()))
        .unwrap();
    // Wrong shape for the chunk's region.
    assert!(matches!(
        sink.write_chunk(
            &[1],
            &ChunkData::from(ndarray::arr1(&[1.0f32, 2.0, 3.0]).into_dyn())
        ),
        Err(Error::ShapeMismatch { .. })
    ));
    // Not a chunk of the grid.
    assert!(matches!(
        sink.write_chunk(&[2], &ChunkData::zeros(DType::F32, &[2])),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        sink.write_chunk(&[0, 0], &ChunkData::zeros(DType::F32, &[2])),
        Err(Error::InvalidArgument(_))
    ));
    // The same row group twice.
    assert!(matches!(
        sink.write_chunk(&[0], &ChunkData::zeros(DType::F32, &[2])),
        Err(Error::InvalidArgument(_))
    ));
    sink.write_chunk(
        &[1],
        &ChunkData::from(ndarray::arr1(&[3.5f64, -4.0]).into_dyn()),
    )
    .unwrap();
    sink.finish().unwrap();
    let (src, back) = read_all(&path, Some(&["c0"]));
    assert_eq!(src.dtype(), DType::F32);
    assert_eq!(
        back,
        ChunkData::from(ndarray::arr1(&[1.0f32, 2.0, 3.5, -4.0]).into_dyn())
    );
    // After finish, nothing more is accepted.
    assert!(
        sink.write_chunk(&[1], &ChunkData::zeros(DType::F32, &[2]))
            .is_err()
    );
    assert!(sink.finish().is_err());
}

#[test]
fn bad_shapes_and_names_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.parquet");
    let d = ParquetWriteOptions::default();
    assert!(matches!(
        ParquetSink::create(&p, &[2, 3, 4], DType::F64, 1, &d),
        Err(Error::InvalidShape { .. })
    ));
    assert!(matches!(
        ParquetSink::create(&p, &[], DType::F64, 1, &d),
        Err(Error::InvalidShape { .. })
    ));
    assert!(matches!(
        ParquetSink::create(&p, &[10, 0], DType::F64, 1, &d),
        Err(Error::InvalidShape { .. })
    ));
    match ParquetSink::create(
        &p,
        &[10, 3],
        DType::F64,
        5,
        &d.clone().column_names(["a", "b"]),
    ) {
        Err(Error::ShapeMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, vec![3]);
            assert_eq!(actual, vec![2]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    assert!(matches!(
        ParquetSink::create(
            &p,
            &[10, 2],
            DType::F64,
            5,
            &d.clone().column_names(["a", "a"])
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        ParquetSink::create(&p, &[10], DType::F64, 0, &d),
        Err(Error::InvalidChunks { .. })
    ));
    let missing_dir = dir.path().join("no/such/dir/x.parquet");
    assert!(matches!(
        ParquetSink::create(&missing_dir, &[10], DType::F64, 5, &d),
        Err(Error::Io { .. })
    ));
    // None of these left anything behind.
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn an_existing_path_is_refused_unless_overwrite_and_replaced_only_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.parquet");
    std::fs::write(&path, b"precious").unwrap();
    let data = test_array(DType::I32, &[30]);
    match ParquetSink::create(
        &path,
        &[30],
        DType::I32,
        10,
        &ParquetWriteOptions::default(),
    ) {
        Err(Error::PathExists { path: p }) => assert_eq!(p, path),
        other => panic!("expected PathExists, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");

    let opts = ParquetWriteOptions::default().overwrite(true);
    let sink = write(&path, &data, 10, &opts, &[2, 0, 1]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"precious",
        "the old file stays until finish"
    );
    assert_eq!(
        dir_entries(dir.path()).len(),
        2,
        "the new file is a hidden sibling meanwhile"
    );
    assert!(
        dir_entries(dir.path())
            .iter()
            .any(|n| n.starts_with(".data.parquet.spillway-tmp-"))
    );
    sink.finish().unwrap();
    assert_eq!(dir_entries(dir.path()), vec!["data.parquet"]);
    assert_eq!(read_all(&path, Some(&["c0"])).1, data);

    // An aborted overwrite leaves the previous file as it was.
    let other = ChunkData::full(DType::I32, &[30], spillway::Scalar::Int(7));
    let sink = write(&path, &other, 10, &opts, &[0]);
    sink.abort();
    assert!(sink.finish().is_err());
    assert_eq!(dir_entries(dir.path()), vec!["data.parquet"]);
    assert_eq!(read_all(&path, Some(&["c0"])).1, data);
}

#[cfg(unix)]
#[test]
fn the_finished_file_gets_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    std::fs::File::create(&reference).unwrap();
    let path = dir.path().join("perm.parquet");
    write(
        &path,
        &test_array(DType::U8, &[5]),
        5,
        &ParquetWriteOptions::default(),
        &[0],
    )
    .finish()
    .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&path),
        mode(&reference),
        "like File::create, not tempfile's owner-only 0o600"
    );
}

#[test]
fn abort_drop_or_incomplete_finish_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = test_array(DType::F64, &[30, 2]);
    let opts = ParquetWriteOptions::default();

    let aborted = dir.path().join("aborted.parquet");
    let sink = write(&aborted, &data, 10, &opts, &[0, 1]);
    sink.abort();
    assert!(!aborted.exists());
    assert_eq!(
        dir_entries(dir.path()),
        Vec::<String>::new(),
        "the temporary file is deleted on abort"
    );
    assert!(
        sink.write_chunk(&[2, 0], &data.slice(&sink.grid().chunk_region(&[2, 0])))
            .is_err()
    );
    drop(sink);

    let dropped = dir.path().join("dropped.parquet");
    let sink = write(&dropped, &data, 10, &opts, &[1]);
    assert_eq!(dir_entries(dir.path()).len(), 1);
    drop(sink);
    assert_eq!(
        dir_entries(dir.path()),
        Vec::<String>::new(),
        "dropping an unfinished sink deletes its file"
    );

    let incomplete = dir.path().join("incomplete.parquet");
    let sink = write(&incomplete, &data, 10, &opts, &[0, 2]);
    match sink.finish() {
        Err(Error::Parquet { message, .. }) => {
            assert!(message.contains("1 of 3 row groups"), "{message}")
        }
        other => panic!("expected a Parquet error, got {other:?}"),
    }
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn empty_arrays_write_a_valid_file_without_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    let sink = ParquetSink::create(
        &path,
        &[0, 2],
        DType::F64,
        100,
        &ParquetWriteOptions::default(),
    )
    .unwrap();
    assert_eq!(sink.grid().num_chunks(), 0);
    sink.finish().unwrap();
    let (src, all) = read_all(&path, None);
    assert_eq!(src.grid().shape(), &[0, 2]);
    assert_eq!(src.row_group_rows(), Vec::<usize>::new());
    assert_eq!(all.shape(), &[0, 2]);
}

#[test]
fn buffer_estimate_is_reported_and_grows_with_the_row_group() {
    let dir = tempfile::tempdir().unwrap();
    // Both files have 16 row groups: the estimate also covers the footer metadata the writer
    // keeps for every column chunk, which grows with the number of row groups.
    let small = ParquetSink::create(
        dir.path().join("a.parquet"),
        &[16 * 1024, 4],
        DType::F64,
        1024,
        &ParquetWriteOptions::default(),
    )
    .unwrap();
    let large = ParquetSink::create(
        dir.path().join("b.parquet"),
        &[1 << 20, 4],
        DType::F64,
        65536,
        &ParquetWriteOptions::default(),
    )
    .unwrap();
    let raw_small = 1024 * 4 * 8;
    let raw_large = 65536 * 4 * 8;
    assert!(small.buffer_bytes_per_chunk() >= raw_small);
    assert!(large.buffer_bytes_per_chunk() >= raw_large);
    assert!(
        large.buffer_bytes_per_chunk() < 3 * raw_large,
        "the estimate stays near the encoded size"
    );
    assert!(large.buffer_bytes_per_chunk() > small.buffer_bytes_per_chunk());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Any shape, row-group size and delivery order reads back to the same array, and every
    /// row range reads back to the same slice.
    #[test]
    fn any_layout_and_order_round_trips(
        rows in 0usize..300,
        cols in 1usize..4,
        rg in 1usize..80,
        dtype_i in 0usize..6,
        seed in any::<u64>(),
        r0 in 0usize..300,
        len in 0usize..300,
    ) {
        let dtype = DType::ALL[dtype_i];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let data = test_array(dtype, &[rows, cols]);
        let n = rows.div_ceil(rg);
        // A seeded permutation of the row groups.
        let mut order: Vec<usize> = (0..n).collect();
        let mut x = seed | 1;
        for i in (1..n).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        write(&path, &data, rg, &ParquetWriteOptions::default(), &order).finish().unwrap();
        let (src, back) = read_all(&path, None);
        prop_assert_eq!(&back, &data);
        let r0 = r0.min(rows);
        let len = len.min(rows - r0);
        let part = src.read_region(&Region::new(vec![r0, 0], vec![len, cols])).unwrap();
        prop_assert_eq!(part, data.slice(&Region::new(vec![r0, 0], vec![len, cols])));
    }
}
