//! Reads every store in `fixtures/zarr/` (written by zarr-python 3.1.6 with numcodecs 0.16.6,
//! see `fixtures/zarr/generate.py`) and compares with `fixtures/zarr/expected.json`.

use std::path::PathBuf;

use serde_json::Value;
use spillway::io::ChunkSource;
use spillway::io::zarr::{ZarrSource, ZarrVersion, list_arrays};
use spillway::{ChunkData, Error, Region, Scalar};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("zarr")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid expected.json")
}

/// The values of a chunk as JSON values of the same kind as expected.json holds.
fn as_json(c: &ChunkData) -> Vec<Value> {
    match c {
        ChunkData::Bool(a) => a.iter().map(|&v| Value::from(v)).collect(),
        ChunkData::U8(a) => a.iter().map(|&v| Value::from(v)).collect(),
        ChunkData::I32(a) => a.iter().map(|&v| Value::from(v)).collect(),
        ChunkData::I64(a) => a.iter().map(|&v| Value::from(v)).collect(),
        ChunkData::F32(a) => a.iter().map(|&v| Value::from(f64::from(v))).collect(),
        ChunkData::F64(a) => a.iter().map(|&v| Value::from(v)).collect(),
    }
}

/// Expected values of `region` out of the C-order `all` of an array of `shape`.
fn slice_expected(all: &[Value], shape: &[usize], region: &Region) -> Vec<Value> {
    let mut out = Vec::with_capacity(region.len());
    let mut idx = region.start().to_vec();
    if region.is_empty() {
        return out;
    }
    loop {
        let lin = idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i);
        out.push(all[lin].clone());
        let mut a = shape.len();
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < region.end(a) {
                break;
            }
            idx[a] = region.start()[a];
        }
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn every_fixture_array_reads_back_exactly() {
    let exp = expected();
    let arrays = exp["arrays"].as_object().unwrap();
    assert!(
        arrays.len() >= 20,
        "the fixture set shrank: {}",
        arrays.len()
    );
    for (name, e) in arrays {
        let store = fixtures().join(e["store"].as_str().unwrap());
        let src = ZarrSource::open(&store, e["array_path"].as_str().unwrap())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let shape = usizes(&e["shape"]);
        assert_eq!(src.grid().shape(), shape.as_slice(), "{name}");
        assert_eq!(src.dtype().name(), e["dtype"].as_str().unwrap(), "{name}");
        assert_eq!(
            src.grid().chunk_shape(),
            usizes(&e["chunks"]).as_slice(),
            "{name}: chunking = the store's"
        );
        let fill = match (src.fill_value(), &e["fill_value"]) {
            (Scalar::Bool(b), Value::Bool(x)) => b == *x,
            (s, x) => s.as_f64() == x.as_f64().unwrap(),
        };
        assert!(
            fill,
            "{name}: fill value {:?} vs {}",
            src.fill_value(),
            e["fill_value"]
        );
        let version = if name.starts_with("v2") || name.starts_with("group_v2") {
            ZarrVersion::V2
        } else {
            ZarrVersion::V3
        };
        assert_eq!(src.version(), version, "{name}");

        let all = e["values"].as_array().unwrap();
        let whole = src.read_region(&Region::whole(&shape)).unwrap();
        assert_eq!(whole.shape(), shape.as_slice(), "{name}");
        assert_eq!(&as_json(&whole), all, "{name}: whole array");

        // Every chunk of the grid on its own, and one region that straddles chunk borders.
        for idx in src.grid().chunk_indices() {
            let r = src.grid().chunk_region(&idx);
            let got = src.read_region(&r).unwrap();
            assert_eq!(
                as_json(&got),
                slice_expected(all, &shape, &r),
                "{name}: chunk {idx:?}"
            );
        }
        let start: Vec<usize> = shape.iter().map(|&n| n / 3).collect();
        let len: Vec<usize> = shape
            .iter()
            .zip(&start)
            .map(|(&n, &s)| (n - s).min(n / 2 + 1))
            .collect();
        let r = Region::new(start, len);
        assert_eq!(
            as_json(&src.read_region(&r).unwrap()),
            slice_expected(all, &shape, &r),
            "{name}: region {r}"
        );
        assert!(
            src.describe().contains(e["store"].as_str().unwrap()),
            "{name}: {}",
            src.describe()
        );
    }
}

#[test]
fn missing_chunks_are_really_missing_and_read_as_fill() {
    let exp = expected();
    let mut seen = 0;
    for (name, e) in exp["arrays"].as_object().unwrap() {
        let Some(missing) = e.get("missing_chunks") else {
            continue;
        };
        let store = fixtures().join(e["store"].as_str().unwrap());
        for chunk in missing.as_array().unwrap() {
            let idx: Vec<String> = usizes(chunk).iter().map(|i| i.to_string()).collect();
            let key = if name.starts_with("v2") {
                idx.join(".")
            } else {
                format!("c/{}", idx.join("/"))
            };
            assert!(
                !store.join(&key).exists(),
                "{name}: chunk {key} should be absent"
            );
            seen += 1;
        }
        let src = ZarrSource::open(&store, "/").unwrap();
        let fill = src.fill_value().as_f64();
        let chunk = usizes(&missing[0]);
        let got = src.read_region(&src.grid().chunk_region(&chunk)).unwrap();
        assert!(
            got.to_f64_vec().iter().all(|&v| v == fill),
            "{name}: missing chunk reads as fill {fill}"
        );
    }
    assert_eq!(seen, 4);
}

#[test]
fn group_arrays_are_listed_and_carry_their_metadata() {
    for (store, dims_v3) in [("group_v3.zarr", true), ("group_v2.zarr", false)] {
        let path = fixtures().join(store);
        assert_eq!(
            list_arrays(&path).unwrap(),
            vec!["/sub/counts", "/temp"],
            "{store}"
        );
        let temp = ZarrSource::open(&path, "temp").unwrap();
        assert_eq!(temp.array_path(), "/temp");
        assert_eq!(
            temp.dimension_names(),
            Some(vec![Some("y".to_string()), Some("x".to_string())]),
            "{store}"
        );
        let counts = ZarrSource::open(&path, "/sub/counts").unwrap();
        assert_eq!(counts.dimension_names().is_some(), dims_v3, "{store}");
    }
    assert_eq!(
        list_arrays(fixtures().join("v3_zstd_f64.zarr")).unwrap(),
        vec!["/"]
    );
    let src = ZarrSource::open(fixtures().join("v3_zstd_f64.zarr"), "/").unwrap();
    assert_eq!(
        src.dimension_names(),
        Some(vec![Some("y".into()), Some("x".into())])
    );
}

#[test]
fn every_error_fixture_gives_its_typed_error() {
    let exp = expected();
    let errors = exp["errors"].as_object().unwrap();
    for (name, e) in errors {
        let store = fixtures().join(e["store"].as_str().unwrap());
        let array_path = e["array_path"].as_str().unwrap();
        let kind = e["kind"].as_str().unwrap();
        let err = match ZarrSource::open(&store, array_path) {
            Err(err) => {
                assert_ne!(
                    kind, "corrupt_chunk",
                    "{name}: corrupt chunks must open and fail on read"
                );
                err
            }
            Ok(src) => {
                assert_eq!(kind, "corrupt_chunk", "{name}: opened but expected {kind}");
                if let Some(good) = e.get("good_region") {
                    // Region reads fetch only the chunks they need: the good chunk still reads.
                    let r = Region::new(usizes(&good[0]), usizes(&good[1]));
                    src.read_region(&r)
                        .unwrap_or_else(|err| panic!("{name}: good region: {err}"));
                }
                src.read_region(&Region::whole(src.grid().shape()))
                    .unwrap_err()
            }
        };
        let msg = err.to_string();
        eprintln!("{name}: {msg}");
        assert!(
            msg.contains(e["store"].as_str().unwrap()),
            "{name}: message names the path: {msg}"
        );
        match kind {
            "unsupported_dtype" => {
                let Error::ZarrUnsupportedDType { dtype, .. } = &err else {
                    panic!("{name}: {err:?}")
                };
                assert!(
                    dtype.contains(e["dtype"].as_str().unwrap()),
                    "{name}: {dtype}"
                );
            }
            "unsupported" => {
                let Error::ZarrUnsupported { what, .. } = &err else {
                    panic!("{name}: {err:?}")
                };
                assert!(what.contains(e["what"].as_str().unwrap()), "{name}: {what}");
            }
            "corrupt_chunk" => {
                let Error::ZarrCorruptChunk { chunk, .. } = &err else {
                    panic!("{name}: {err:?}")
                };
                let want: Vec<u64> = usizes(&e["chunk"]).iter().map(|&c| c as u64).collect();
                assert_eq!(chunk.as_ref(), Some(&want), "{name}");
            }
            "metadata" => assert!(matches!(err, Error::ZarrMetadata { .. }), "{name}: {err:?}"),
            "not_zarr" => assert!(matches!(err, Error::NotZarr { .. }), "{name}: {err:?}"),
            "not_found" => {
                let Error::Io { source, path } = &err else {
                    panic!("{name}: {err:?}")
                };
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
                assert_eq!(path.as_deref(), Some(store.as_path()));
            }
            other => panic!("unknown error kind {other} in expected.json"),
        }
    }
    assert!(errors.len() >= 14);
}

#[test]
fn a_group_error_lists_its_arrays() {
    let err = ZarrSource::open(fixtures().join("group_v3.zarr"), "/").unwrap_err();
    let Error::NotZarr { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("/temp") && reason.contains("/sub/counts"),
        "{reason}"
    );
}

#[test]
fn regions_outside_the_array_are_refused() {
    let src = ZarrSource::open(fixtures().join("v3_zstd_f64.zarr"), "/").unwrap();
    let err = src
        .read_region(&Region::new(vec![8, 0], vec![3, 7]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidRange {
                axis: 0,
                start: 8,
                end: 11,
                len: 10
            }
        ),
        "{err:?}"
    );
    let err = src.read_region(&Region::new(vec![0], vec![1])).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}
