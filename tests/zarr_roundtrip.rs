//! Writes through `ZarrSink` / `ZarrGroupWriter` and reads back through `ZarrSource`, checked
//! against plain in-memory ndarrays; safe-write behaviour; region writes.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use serde_json::Value;
use spillway::io::zarr::{
    BloscCompressor, ZarrCompression, ZarrGroupWriter, ZarrSink, ZarrSource, ZarrVersion,
    ZarrWriteOptions, list_arrays,
};
use spillway::io::{ChunkSink, ChunkSource};
use spillway::{ChunkData, DType, Element, Error, Region};

/// A whole test array: a closed formula of the C-order index, varied, no NaN.
fn full(dtype: DType, shape: &[usize]) -> ChunkData {
    fn make<T: Element>(shape: &[usize], dtype: DType) -> ChunkData {
        let n: usize = shape.iter().product();
        let v: Vec<T> = (0..n)
            .map(|k| {
                let x = if dtype == DType::Bool {
                    f64::from(u8::from(k % 3 == 0 || k % 7 == 1))
                } else {
                    ((k * 37 + 11) % 101) as f64 + if dtype.is_float() { 0.25 } else { 0.0 }
                };
                T::from_f64(x)
            })
            .collect();
        T::into_chunk(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }
    spillway::dispatch_dtype!(dtype, T => make::<T>(shape, dtype))
}

/// Writes every chunk of the sink's grid, from `threads` threads at once.
fn write_all(sink: &ZarrSink, data: &ChunkData, threads: usize) {
    let chunks = sink.grid().chunk_indices();
    std::thread::scope(|s| {
        for t in 0..threads {
            let chunks = &chunks;
            s.spawn(move || {
                for idx in chunks.iter().skip(t).step_by(threads) {
                    let region = sink.grid().chunk_region(idx);
                    sink.write_chunk(idx, &data.slice(&region)).unwrap();
                }
            });
        }
    });
}

fn read_all(path: &Path, array_path: &str) -> ChunkData {
    let src = ZarrSource::open(path, array_path).unwrap();
    src.read_region(&Region::whole(src.grid().shape())).unwrap()
}

fn codecs() -> Vec<(ZarrVersion, ZarrCompression)> {
    let mut out = Vec::new();
    for v in [ZarrVersion::V3, ZarrVersion::V2] {
        out.push((v, ZarrCompression::Zstd { level: 3 }));
        out.push((v, ZarrCompression::Zstd { level: 9 }));
        out.push((v, ZarrCompression::Gzip { level: 5 }));
        out.push((
            v,
            ZarrCompression::Blosc {
                cname: BloscCompressor::Lz4,
                clevel: 5,
            },
        ));
        out.push((
            v,
            ZarrCompression::Blosc {
                cname: BloscCompressor::Zstd,
                clevel: 3,
            },
        ));
        out.push((v, ZarrCompression::None));
    }
    out
}

#[test]
fn every_version_codec_and_dtype_round_trips_with_ragged_edges_from_three_threads() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [7, 5];
    for (i, (version, compression)) in codecs().into_iter().enumerate() {
        for dtype in DType::ALL {
            let path = dir.path().join(format!("a{i}_{dtype}.zarr"));
            let opts = ZarrWriteOptions::default()
                .version(version)
                .compression(compression);
            let sink = ZarrSink::create(&path, "/", &shape, dtype, &[3, 2], &opts).unwrap();
            assert_eq!(sink.grid().grid_shape(), vec![3, 3]);
            let data = full(dtype, &shape);
            write_all(&sink, &data, 3);
            sink.finish().unwrap();
            let meta = if version == ZarrVersion::V3 {
                "zarr.json"
            } else {
                ".zarray"
            };
            assert!(path.join(meta).is_file(), "{version:?} metadata");
            let src = ZarrSource::open(&path, "/").unwrap();
            assert_eq!(src.version(), version);
            assert_eq!(src.dtype(), dtype);
            assert_eq!(src.grid().chunk_shape(), &[3, 2]);
            let back = src.read_region(&Region::whole(&shape)).unwrap();
            assert_eq!(back, data, "{version:?} {compression:?} {dtype}");
        }
    }
}

#[test]
fn metadata_has_no_zarrs_attribute_and_keeps_attributes_and_dimension_names() {
    let dir = tempfile::tempdir().unwrap();
    for version in [ZarrVersion::V3, ZarrVersion::V2] {
        let path = dir.path().join(format!("{version:?}.zarr"));
        let opts = ZarrWriteOptions::default()
            .version(version)
            .attribute("units", "K")
            .attribute("scale", 0.5)
            .dimension_names(["y", "x"]);
        let sink = ZarrSink::create(&path, "/", &[2, 2], DType::F32, &[2, 2], &opts).unwrap();
        write_all(&sink, &full(DType::F32, &[2, 2]), 1);
        sink.finish().unwrap();
        let src = ZarrSource::open(&path, "/").unwrap();
        assert_eq!(src.attributes()["units"], "K");
        assert_eq!(src.attributes()["scale"], 0.5);
        assert!(!src.attributes().contains_key("_zarrs"));
        assert_eq!(
            src.dimension_names(),
            Some(vec![Some("y".into()), Some("x".into())])
        );
        let text = std::fs::read_to_string(path.join(if version == ZarrVersion::V3 {
            "zarr.json"
        } else {
            ".zattrs"
        }))
        .unwrap();
        assert!(!text.contains("_zarrs"), "{text}");
    }
}

#[test]
fn sharded_output_writes_one_task_and_one_file_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [DType::F64, DType::I32, DType::Bool] {
        let path = dir.path().join(format!("s_{dtype}.zarr"));
        let shape = [13, 11];
        let opts = ZarrWriteOptions::default().shards(vec![4, 6]);
        let sink = ZarrSink::create(&path, "/", &shape, dtype, &[2, 3], &opts).unwrap();
        // One write task per shard (ragged at the edges: 13 = 4+4+4+1, 11 = 6+5).
        assert_eq!(sink.grid().chunk_shape(), &[4, 6]);
        assert_eq!(sink.grid().grid_shape(), vec![4, 2]);
        let data = full(dtype, &shape);
        write_all(&sink, &data, 2);
        sink.finish().unwrap();
        let files = walk_files(&path.join("c"));
        assert_eq!(files, 8, "{dtype}: one file per shard");
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(path.join("zarr.json")).unwrap())
                .unwrap();
        let codec = &meta["codecs"][0];
        assert_eq!(codec["name"], "sharding_indexed");
        assert_eq!(
            codec["configuration"]["chunk_shape"],
            serde_json::json!([2, 3])
        );
        assert_eq!(codec["configuration"]["index_codecs"][1]["name"], "crc32c");
        assert_eq!(read_all(&path, "/"), data, "{dtype}");
        // A region read inside one shard.
        let src = ZarrSource::open(&path, "/").unwrap();
        let r = Region::new(vec![5, 2], vec![3, 7]);
        assert_eq!(src.read_region(&r).unwrap(), data.slice(&r));
    }
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    if e.path().is_dir() {
                        walk_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn chunk_shape_option_overrides_and_chunks_larger_than_the_array_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.zarr");
    let opts = ZarrWriteOptions::default().chunk_shape(vec![4]);
    let sink = ZarrSink::create(&path, "/", &[10], DType::I64, &[100], &opts).unwrap();
    assert_eq!(sink.grid().chunk_shape(), &[4]);
    let data = full(DType::I64, &[10]);
    write_all(&sink, &data, 2);
    sink.finish().unwrap();
    assert_eq!(read_all(&path, "/"), data);

    let path = dir.path().join("big.zarr");
    let sink = ZarrSink::create(
        &path,
        "/",
        &[3, 2],
        DType::U8,
        &[8, 8],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    assert_eq!(sink.grid().num_chunks(), 1);
    let data = full(DType::U8, &[3, 2]);
    write_all(&sink, &data, 1);
    sink.finish().unwrap();
    assert_eq!(read_all(&path, "/"), data);
}

#[test]
fn chunks_of_only_the_fill_value_are_not_stored_and_read_back_as_fill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.zarr");
    let opts = ZarrWriteOptions::default().fill_value(-1.5);
    let sink = ZarrSink::create(&path, "/", &[4, 4], DType::F64, &[2, 2], &opts).unwrap();
    let mut data = full(DType::F64, &[4, 4]);
    if let ChunkData::F64(a) = &mut data {
        a.slice_mut(ndarray::s![2..4, 0..2]).fill(-1.5);
    }
    write_all(&sink, &data, 2);
    sink.finish().unwrap();
    assert!(
        !path.join("c/1/0").exists(),
        "an all-fill chunk is not stored"
    );
    assert!(path.join("c/1/1").exists());
    assert_eq!(read_all(&path, "/"), data);
    // Float arrays default to a NaN fill value.
    let path = dir.path().join("nan.zarr");
    let sink = ZarrSink::create(
        &path,
        "/",
        &[3],
        DType::F32,
        &[3],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    sink.finish().unwrap();
    let back = read_all(&path, "/");
    assert!(back.to_f64_vec().iter().all(|v| v.is_nan()));
}

#[test]
fn v2_integer_arrays_default_to_a_null_fill_value_that_reads_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.zarr");
    let opts = ZarrWriteOptions::default().version(ZarrVersion::V2);
    let sink = ZarrSink::create(&path, "/", &[4], DType::I32, &[2], &opts).unwrap();
    let data = ChunkData::from(ndarray::arr1(&[0i32, 0, 3, -4]).into_dyn());
    write_all(&sink, &data, 1);
    sink.finish().unwrap();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(path.join(".zarray")).unwrap()).unwrap();
    assert_eq!(meta["fill_value"], Value::Null);
    assert!(!path.join("0").exists(), "the all-zero chunk is not stored");
    assert_eq!(read_all(&path, "/"), data);
    // An explicit fill value is written as given, and floats default to NaN in v2 too.
    let path = dir.path().join("f.zarr");
    let sink = ZarrSink::create(&path, "/", &[2], DType::F64, &[2], &opts).unwrap();
    sink.finish().unwrap();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(path.join(".zarray")).unwrap()).unwrap();
    assert_eq!(meta["fill_value"], "NaN");
}

#[test]
fn arrays_can_live_inside_groups_of_a_standalone_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested.zarr");
    let sink = ZarrSink::create(
        &path,
        "/a/b/arr",
        &[5],
        DType::I32,
        &[2],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    let data = full(DType::I32, &[5]);
    write_all(&sink, &data, 1);
    sink.finish().unwrap();
    assert_eq!(list_arrays(&path).unwrap(), vec!["/a/b/arr"]);
    assert_eq!(read_all(&path, "a/b/arr"), data);
}

// ---------------------------------------------------------------------------------------------
// Safe writes

/// Names in a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn nothing_appears_at_the_path_before_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.zarr");
    let sink = ZarrSink::create(
        &path,
        "/",
        &[6],
        DType::F64,
        &[2],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    let data = full(DType::F64, &[6]);
    sink.write_chunk(&[0], &data.slice(&Region::new(vec![0], vec![2])))
        .unwrap();
    assert!(!path.exists());
    assert!(matches!(
        ZarrSource::open(&path, "/"),
        Err(Error::Io { .. })
    ));
    let hidden = entries(dir.path());
    assert_eq!(hidden.len(), 1);
    assert!(
        hidden[0].starts_with(".late.zarr.spillway-tmp-"),
        "{hidden:?}"
    );
    sink.write_chunk(&[1], &data.slice(&Region::new(vec![2], vec![2])))
        .unwrap();
    sink.write_chunk(&[2], &data.slice(&Region::new(vec![4], vec![2])))
        .unwrap();
    sink.finish().unwrap();
    assert_eq!(
        entries(dir.path()),
        vec!["late.zarr"],
        "the temp dir became the store"
    );
    assert_eq!(read_all(&path, "/"), data);
    // No more writes after finish, and finish only once.
    let err = sink
        .write_chunk(&[0], &data.slice(&Region::new(vec![0], vec![2])))
        .unwrap_err();
    assert!(matches!(err, Error::Zarr { .. }), "{err:?}");
    assert!(matches!(sink.finish(), Err(Error::Zarr { .. })));
}

#[test]
fn an_existing_path_is_refused_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.zarr");
    let old = full(DType::I32, &[4]);
    let sink = ZarrSink::create(
        &path,
        "/",
        &[4],
        DType::I32,
        &[4],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    write_all(&sink, &old, 1);
    sink.finish().unwrap();

    let err = ZarrSink::create(
        &path,
        "/",
        &[4],
        DType::I32,
        &[4],
        &ZarrWriteOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::PathExists { path: p } if p == &path),
        "{err:?}"
    );
    let err = ZarrGroupWriter::create(&path, &ZarrWriteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::PathExists { .. }));
    assert_eq!(read_all(&path, "/"), old);

    // Overwrite: the old store stays, readable and intact, until the new one is finished.
    let opts = ZarrWriteOptions::default().overwrite(true);
    let sink = ZarrSink::create(&path, "/", &[3], DType::F32, &[2], &opts).unwrap();
    let new = full(DType::F32, &[3]);
    write_all(&sink, &new, 1);
    assert_eq!(read_all(&path, "/"), old);
    sink.finish().unwrap();
    assert_eq!(read_all(&path, "/"), new);
    assert_eq!(
        entries(dir.path()),
        vec!["x.zarr"],
        "old store and temp dir are gone"
    );

    // An overwrite that is dropped before finish leaves the old store as it was.
    let sink = ZarrSink::create(&path, "/", &[3], DType::U8, &[3], &opts).unwrap();
    write_all(&sink, &full(DType::U8, &[3]), 1);
    drop(sink);
    assert_eq!(read_all(&path, "/"), new);
    assert_eq!(entries(dir.path()), vec!["x.zarr"]);
}

#[test]
fn overwrite_never_deletes_a_directory_that_is_not_a_zarr_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("thesis.tex"), "precious").unwrap();
    let opts = ZarrWriteOptions::default().overwrite(true);
    let err = ZarrSink::create(&path, "/", &[2], DType::U8, &[2], &opts).unwrap_err();
    assert!(matches!(err, Error::NotZarr { .. }), "{err:?}");
    assert!(path.join("thesis.tex").exists());
}

#[test]
fn dropped_or_aborted_sinks_leave_nothing_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    for abort in [false, true] {
        let path = dir.path().join(format!("gone_{abort}.zarr"));
        let sink = ZarrSink::create(
            &path,
            "/",
            &[8],
            DType::F64,
            &[2],
            &ZarrWriteOptions::default(),
        )
        .unwrap();
        let data = full(DType::F64, &[8]);
        for i in 0..3 {
            sink.write_chunk(&[i], &data.slice(&Region::new(vec![2 * i], vec![2])))
                .unwrap();
        }
        if abort {
            sink.abort();
            let err = sink
                .write_chunk(&[3], &data.slice(&Region::new(vec![6], vec![2])))
                .unwrap_err();
            assert!(matches!(err, Error::Zarr { .. }));
            assert!(matches!(sink.finish(), Err(Error::Zarr { .. })));
        }
        drop(sink);
        assert!(!path.exists());
        assert!(ZarrSource::open(&path, "/").is_err());
    }
    assert!(
        entries(dir.path()).is_empty(),
        "no temp dirs left: {:?}",
        entries(dir.path())
    );
}

#[test]
fn write_chunk_checks_index_shape_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.zarr");
    let sink = ZarrSink::create(
        &path,
        "/",
        &[5, 4],
        DType::I64,
        &[2, 4],
        &ZarrWriteOptions::default(),
    )
    .unwrap();
    let err = sink
        .write_chunk(&[3, 0], &ChunkData::zeros(DType::I64, &[2, 4]))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // The last row of chunks is ragged: 1 x 4.
    let err = sink
        .write_chunk(&[2, 0], &ChunkData::zeros(DType::I64, &[2, 4]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, actual, .. } if expected == &vec![1, 4] && actual == &vec![2, 4]),
        "{err:?}"
    );
    let err = sink
        .write_chunk(&[0, 0], &ChunkData::zeros(DType::F64, &[2, 4]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ZarrDTypeMismatch {
                given: DType::F64,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        ZarrSink::create(
            dir.path().join("d.zarr"),
            "/",
            &[4],
            DType::U8,
            &[0],
            &ZarrWriteOptions::default()
        ),
        Err(Error::InvalidChunks { .. })
    ));
    assert!(matches!(
        ZarrSink::create(
            dir.path().join("e.zarr"),
            "/",
            &[4],
            DType::U8,
            &[2],
            &ZarrWriteOptions::default().fill_value(300)
        ),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!dir.path().join("d.zarr").exists() && !dir.path().join("e.zarr").exists());
}

// ---------------------------------------------------------------------------------------------
// Region writes

fn make_store(
    path: &Path,
    shape: &[usize],
    chunks: &[usize],
    opts: &ZarrWriteOptions,
) -> ChunkData {
    let data = full(DType::I32, shape);
    let sink = ZarrSink::create(path, "/", shape, DType::I32, chunks, opts).unwrap();
    write_all(&sink, &data, 2);
    sink.finish().unwrap();
    data
}

/// `data` with `region` replaced by `value + the element's offset in the region`.
fn expected_after(data: &ChunkData, region: &Region, patch: &ChunkData) -> ChunkData {
    let (ChunkData::I32(d), ChunkData::I32(p)) = (data, patch) else {
        panic!()
    };
    let mut d = d.clone();
    let info: Vec<ndarray::SliceInfoElem> = (0..region.ndim())
        .map(|a| ndarray::Slice::from(region.start()[a]..region.end(a)).into())
        .collect();
    d.slice_mut(info.as_slice()).assign(p);
    ChunkData::I32(d)
}

fn patch(region: &Region) -> ChunkData {
    let n = region.len();
    ChunkData::I32(
        ArrayD::from_shape_vec(
            IxDyn(region.shape()),
            (0..n as i32).map(|v| -1000 - v).collect(),
        )
        .unwrap(),
    )
}

fn write_region(path: &Path, region: &Region, data: &ChunkData) {
    let sink = ZarrSink::open_region(path, "/", region, DType::I32).unwrap();
    assert_eq!(sink.grid().shape(), region.shape());
    write_all(&sink, data, 2);
    sink.finish().unwrap();
}

#[test]
fn region_writes_replace_exactly_the_region() {
    let dir = tempfile::tempdir().unwrap();
    for version in [ZarrVersion::V3, ZarrVersion::V2] {
        let path = dir.path().join(format!("r{version:?}.zarr"));
        let data = make_store(
            &path,
            &[20, 9],
            &[4, 3],
            &ZarrWriteOptions::default().version(version),
        );
        // Interior, aligned on both ends.
        let r = Region::new(vec![4, 3], vec![8, 6]);
        let p = patch(&r);
        write_region(&path, &r, &p);
        let data = expected_after(&data, &r, &p);
        assert_eq!(read_all(&path, "/"), data, "{version:?}");
        // Ending at the array's end with a ragged last chunk (20 = 4*5 rows; 9 = 3*3 cols;
        // take a region ending at the end on both axes, starting aligned).
        let r = Region::new(vec![16, 6], vec![4, 3]);
        let p = patch(&r);
        write_region(&path, &r, &p);
        assert_eq!(read_all(&path, "/"), expected_after(&data, &r, &p));
    }
    // Ragged last chunk: shape 10 with chunks of 4 -> a region 8..10 is the edge chunk.
    let path = dir.path().join("ragged.zarr");
    let data = make_store(&path, &[10], &[4], &ZarrWriteOptions::default());
    let r = Region::new(vec![4], vec![6]);
    let p = patch(&r);
    write_region(&path, &r, &p);
    assert_eq!(read_all(&path, "/"), expected_after(&data, &r, &p));
}

#[test]
fn region_writes_into_sharded_arrays_are_aligned_to_shards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sr.zarr");
    let data = make_store(
        &path,
        &[12, 8],
        &[2, 2],
        &ZarrWriteOptions::default().shards(vec![4, 4]),
    );
    let err = ZarrSink::open_region(&path, "/", &Region::new(vec![2, 0], vec![2, 4]), DType::I32)
        .unwrap_err();
    assert!(
        matches!(err, Error::ZarrRegion { .. }),
        "inner-chunk alignment is not enough: {err:?}"
    );
    let r = Region::new(vec![4, 4], vec![8, 4]);
    let p = patch(&r);
    write_region(&path, &r, &p);
    assert_eq!(read_all(&path, "/"), expected_after(&data, &r, &p));
}

#[test]
fn bad_region_writes_are_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.zarr");
    let data = make_store(&path, &[10, 6], &[4, 3], &ZarrWriteOptions::default());
    let cases: Vec<(Region, &str)> = vec![
        (Region::new(vec![1, 0], vec![3, 3]), "misaligned start"),
        (Region::new(vec![0, 0], vec![6, 3]), "misaligned end"),
        (Region::new(vec![8, 0], vec![4, 3]), "outside"),
        (Region::new(vec![0], vec![4]), "rank"),
    ];
    for (r, what) in cases {
        let err = ZarrSink::open_region(&path, "/", &r, DType::I32).unwrap_err();
        let Error::ZarrRegion { path: p, .. } = &err else {
            panic!("{what}: {err:?}")
        };
        assert_eq!(p, &path, "{what}");
        assert!(
            err.to_string().contains("[10, 6]"),
            "{what}: the message gives the shape: {err}"
        );
    }
    let err = ZarrSink::open_region(&path, "/", &Region::new(vec![0, 0], vec![4, 3]), DType::F64)
        .unwrap_err();
    assert!(
        matches!(&err, Error::ZarrDTypeMismatch { stored, given: DType::F64, .. } if stored == "int32"),
        "{err:?}"
    );
    let err = ZarrSink::open_region(
        dir.path().join("nope.zarr"),
        "/",
        &Region::new(vec![0], vec![1]),
        DType::I32,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    // A region sink checks the shape of every chunk it gets.
    let sink = ZarrSink::open_region(&path, "/", &Region::new(vec![4, 0], vec![6, 6]), DType::I32)
        .unwrap();
    let err = sink
        .write_chunk(&[1, 0], &ChunkData::zeros(DType::I32, &[4, 3]))
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_eq!(read_all(&path, "/"), data, "nothing changed");
}

// ---------------------------------------------------------------------------------------------
// Groups

#[test]
fn groups_hold_several_arrays_with_consolidated_metadata() {
    let dir = tempfile::tempdir().unwrap();
    for version in [ZarrVersion::V3, ZarrVersion::V2] {
        let path = dir.path().join(format!("g{version:?}.zarr"));
        let gopts = ZarrWriteOptions::default()
            .version(version)
            .attribute("title", "t");
        let group = ZarrGroupWriter::create(&path, &gopts).unwrap();
        let o = ZarrWriteOptions::default().version(version);
        let temp = group
            .array(
                "temp",
                &[6, 5],
                DType::F64,
                &[4, 2],
                &o.clone().dimension_names(["y", "x"]),
            )
            .unwrap();
        let counts = group
            .array(
                "sub/counts",
                &[9],
                DType::I64,
                &[4],
                &o.clone().dimension_names(["t"]),
            )
            .unwrap();
        let (t, c) = (full(DType::F64, &[6, 5]), full(DType::I64, &[9]));
        // Both arrays written at the same time, as one executor run would.
        std::thread::scope(|s| {
            s.spawn(|| write_all(&temp, &t, 2));
            s.spawn(|| write_all(&counts, &c, 2));
        });
        assert!(
            matches!(group.finish(), Err(Error::Zarr { .. })),
            "members unfinished"
        );
        assert!(!path.exists());
        temp.finish().unwrap();
        counts.finish().unwrap();
        assert!(!path.exists(), "the group appears only with its own finish");
        group.finish().unwrap();
        assert_eq!(list_arrays(&path).unwrap(), vec!["/sub/counts", "/temp"]);
        assert_eq!(read_all(&path, "/temp"), t);
        assert_eq!(read_all(&path, "/sub/counts"), c);
        let consolidated: Value = match version {
            ZarrVersion::V3 => {
                let root: Value =
                    serde_json::from_str(&std::fs::read_to_string(path.join("zarr.json")).unwrap())
                        .unwrap();
                assert_eq!(root["attributes"]["title"], "t");
                root["consolidated_metadata"]["metadata"].clone()
            }
            ZarrVersion::V2 => {
                let z: Value = serde_json::from_str(
                    &std::fs::read_to_string(path.join(".zmetadata")).unwrap(),
                )
                .unwrap();
                assert_eq!(z["zarr_consolidated_format"], 1);
                assert_eq!(z["metadata"][".zattrs"]["title"], "t");
                z["metadata"].clone()
            }
        };
        let mut keys: Vec<&String> = consolidated.as_object().unwrap().keys().collect();
        keys.sort();
        let want: Vec<&str> = match version {
            ZarrVersion::V3 => vec!["sub", "sub/counts", "temp"],
            ZarrVersion::V2 => vec![
                ".zattrs",
                ".zgroup",
                "sub/.zgroup",
                "sub/counts/.zarray",
                "sub/counts/.zattrs",
                "temp/.zarray",
                "temp/.zattrs",
            ],
        };
        assert_eq!(keys, want, "{version:?}");
        assert_eq!(
            entries(dir.path())
                .iter()
                .filter(|e| e.starts_with('.'))
                .count(),
            0
        );
    }
}

#[test]
fn group_members_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.zarr");
    let group = ZarrGroupWriter::create(&path, &ZarrWriteOptions::default()).unwrap();
    let o = ZarrWriteOptions::default();
    let _a = group.array("a", &[2], DType::U8, &[2], &o).unwrap();
    assert!(matches!(
        group.array("a", &[2], DType::U8, &[2], &o),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        group.array("a/b", &[2], DType::U8, &[2], &o),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        group.array("/", &[2], DType::U8, &[2], &o),
        Err(Error::InvalidArgument(_))
    ));
    let v2 = o.clone().version(ZarrVersion::V2);
    assert!(matches!(
        group.array("b", &[2], DType::U8, &[2], &v2),
        Err(Error::InvalidArgument(_))
    ));
    group.group("sub", &serde_json::Map::new()).unwrap();
    assert!(matches!(
        group.group("sub", &serde_json::Map::new()),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn an_aborted_member_or_a_dropped_group_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ab.zarr");
    let group = ZarrGroupWriter::create(&path, &ZarrWriteOptions::default()).unwrap();
    let a = group
        .array("a", &[4], DType::F32, &[2], &ZarrWriteOptions::default())
        .unwrap();
    let b = group
        .array("b", &[4], DType::F32, &[2], &ZarrWriteOptions::default())
        .unwrap();
    write_all(&a, &full(DType::F32, &[4]), 1);
    a.finish().unwrap();
    b.abort();
    assert!(matches!(group.finish(), Err(Error::Zarr { .. })));
    assert!(!path.exists());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

    let group = ZarrGroupWriter::create(&path, &ZarrWriteOptions::default()).unwrap();
    let a = group
        .array("a", &[4], DType::F32, &[2], &ZarrWriteOptions::default())
        .unwrap();
    drop(group);
    let err = a
        .write_chunk(&[0], &ChunkData::zeros(DType::F32, &[2]))
        .unwrap_err();
    assert!(matches!(err, Error::Zarr { .. }), "{err:?}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn scalar_and_empty_arrays_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for version in [ZarrVersion::V3, ZarrVersion::V2] {
        let path = dir.path().join(format!("scalar{version:?}.zarr"));
        let opts = ZarrWriteOptions::default().version(version);
        let sink = ZarrSink::create(&path, "/", &[], DType::F64, &[], &opts).unwrap();
        assert_eq!(sink.grid().num_chunks(), 1);
        let data = ChunkData::from(ndarray::arr0(2.5f64).into_dyn());
        write_all(&sink, &data, 1);
        sink.finish().unwrap();
        assert_eq!(read_all(&path, "/"), data);

        let path = dir.path().join(format!("empty{version:?}.zarr"));
        let sink = ZarrSink::create(&path, "/", &[0, 3], DType::I32, &[2, 3], &opts).unwrap();
        assert_eq!(sink.grid().num_chunks(), 0);
        sink.finish().unwrap();
        let back = read_all(&path, "/");
        assert_eq!(back.shape(), &[0, 3]);
    }
}
