//! Reads the pyarrow-written files in `fixtures/parquet/` (made by `generate.py` there) and
//! compares every value with `expected.json`, exactly.

use std::path::PathBuf;

use serde_json::Value;
use spillway::io::ChunkSource;
use spillway::io::parquet::{ParquetReadOptions, ParquetSource};
use spillway::{ChunkData, DType, Error, Region};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/parquet")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn column<'a>(exp: &'a Value, file: &str, col: &str) -> &'a Value {
    &exp[file]["columns"][col]
}

/// A value of expected.json as f64 (floats may be the strings "nan", "inf", "-inf").
fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_i64().map(|i| i as f64).or_else(|| n.as_f64()).unwrap(),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("unexpected value {other}"),
    }
}

/// The same number, bit for bit (NaN equals NaN; -0.0 differs from 0.0).
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Asserts that a 1-d chunk holds exactly `values` (compared in the chunk's own type).
fn assert_column(chunk: &ChunkData, values: &[Value], what: &str) {
    assert_eq!(chunk.shape(), &[values.len()], "{what}");
    match chunk {
        ChunkData::Bool(a) => {
            let want: Vec<bool> = values.iter().map(|v| v.as_bool().unwrap()).collect();
            assert_eq!(a.iter().copied().collect::<Vec<_>>(), want, "{what}");
        }
        ChunkData::U8(a) => {
            let want: Vec<u8> = values
                .iter()
                .map(|v| u8::try_from(v.as_u64().unwrap()).unwrap())
                .collect();
            assert_eq!(a.iter().copied().collect::<Vec<_>>(), want, "{what}");
        }
        ChunkData::I32(a) => {
            let want: Vec<i32> = values
                .iter()
                .map(|v| i32::try_from(v.as_i64().unwrap()).unwrap())
                .collect();
            assert_eq!(a.iter().copied().collect::<Vec<_>>(), want, "{what}");
        }
        ChunkData::I64(a) => {
            let want: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(a.iter().copied().collect::<Vec<_>>(), want, "{what}");
        }
        ChunkData::F32(a) => {
            for (i, (&got, want)) in a.iter().zip(values).enumerate() {
                let want = as_f64(want);
                assert_eq!(
                    want as f32 as f64, want,
                    "{what}: expected value {i} is not an f32"
                );
                assert!(same(f64::from(got), want), "{what}[{i}]: {got} != {want}");
            }
        }
        ChunkData::F64(a) => {
            for (i, (&got, want)) in a.iter().zip(values).enumerate() {
                assert!(same(got, as_f64(want)), "{what}[{i}]: {got} != {want}");
            }
        }
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().unwrap()
}

fn row_groups(exp: &Value, file: &str) -> Vec<usize> {
    arr(&exp[file]["row_groups"])
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

const ALL_DTYPES: [(&str, DType); 6] = [
    ("b", DType::Bool),
    ("u8", DType::U8),
    ("i32", DType::I32),
    ("i64", DType::I64),
    ("f32", DType::F32),
    ("f64", DType::F64),
];

#[test]
fn every_dtype_and_codec_reads_exactly() {
    let exp = expected();
    for codec in ["zstd", "snappy", "gzip", "none"] {
        let file = format!("all_dtypes_{codec}.parquet");
        assert_eq!(exp[&file]["compression"], codec);
        for (name, dtype) in ALL_DTYPES {
            let src = ParquetSource::open(dir().join(&file), Some(&[name])).unwrap();
            assert_eq!(src.dtype(), dtype, "{file}:{name}");
            assert_eq!(src.grid().shape(), &[23]);
            assert_eq!(
                src.grid().chunk_shape(),
                &[8],
                "chunks follow the first row group"
            );
            assert_eq!(src.row_group_rows(), row_groups(&exp, &file));
            let values = arr(&column(&exp, &file, name)["values"]);
            let all = src.read_region(&Region::whole(&[23])).unwrap();
            assert_column(&all, values, &format!("{file}:{name}"));
            // A range that starts and ends inside row groups and spans three of them.
            let part = src.read_region(&Region::new(vec![5], vec![12])).unwrap();
            assert_column(&part, &values[5..17], &format!("{file}:{name}[5..17]"));
            // Each chunk of the grid.
            for idx in src.grid().chunk_indices() {
                let r = src.grid().chunk_region(&idx);
                let c = src.read_region(&r).unwrap();
                let s = r.start()[0];
                assert_column(
                    &c,
                    &values[s..s + r.shape()[0]],
                    &format!("{file}:{name} chunk {idx:?}"),
                );
            }
        }
    }
}

#[test]
fn all_columns_form_a_promoted_2d_array() {
    let exp = expected();
    let file = "all_dtypes_zstd.parquet";
    let src = ParquetSource::open(dir().join(file), None).unwrap();
    assert_eq!(
        src.column_names(),
        vec!["b", "u8", "i32", "i64", "f32", "f64"]
    );
    assert_eq!(src.grid().shape(), &[23, 6]);
    assert_eq!(src.grid().chunk_shape(), &[8, 6]);
    assert_eq!(
        src.dtype(),
        DType::F64,
        "bool..i64 with f32 and f64 promote to f64"
    );
    let got = src
        .read_region(&Region::new(vec![6, 1], vec![11, 4]))
        .unwrap();
    assert_eq!(got.shape(), &[11, 4]);
    let got = got.to_f64_vec();
    for r in 0..11 {
        for (c, (name, _)) in ALL_DTYPES[1..5].iter().enumerate() {
            let want = as_f64(&arr(&column(&exp, file, name)["values"])[6 + r]);
            assert!(same(got[r * 4 + c], want), "row {} col {name}", 6 + r);
        }
    }
    // Columns in the order asked, including a repeat.
    let src = ParquetSource::open(dir().join(file), Some(&["i64", "i32", "i64"])).unwrap();
    assert_eq!(src.dtype(), DType::I64);
    let ChunkData::I64(a) = src.read_region(&Region::whole(&[23, 3])).unwrap() else {
        panic!("i64")
    };
    let i64s = arr(&column(&exp, file, "i64")["values"]);
    let i32s = arr(&column(&exp, file, "i32")["values"]);
    for r in 0..23 {
        assert_eq!(a[[r, 0]], i64s[r].as_i64().unwrap());
        assert_eq!(a[[r, 1]], i32s[r].as_i64().unwrap());
        assert_eq!(a[[r, 2]], i64s[r].as_i64().unwrap());
    }
}

#[test]
fn unequal_row_groups_read_any_row_range() {
    let exp = expected();
    let file = "uneven_row_groups.parquet";
    let src = ParquetSource::open(dir().join(file), None).unwrap();
    assert_eq!(src.row_group_rows(), vec![5, 10, 1, 7]);
    assert_eq!(src.grid().chunk_shape(), &[5, 2]);
    let xs: Vec<f64> = arr(&column(&exp, file, "x")["values"])
        .iter()
        .map(as_f64)
        .collect();
    let ys: Vec<f64> = arr(&column(&exp, file, "y")["values"])
        .iter()
        .map(as_f64)
        .collect();
    assert!(xs[3].is_nan() && xs[4] == f64::INFINITY && xs[6].to_bits() == (-0.0f64).to_bits());
    for r0 in 0..=23 {
        for r1 in r0..=23 {
            for (c0, nc) in [(0, 2), (0, 1), (1, 1)] {
                let got = src
                    .read_region(&Region::new(vec![r0, c0], vec![r1 - r0, nc]))
                    .unwrap()
                    .to_f64_vec();
                assert_eq!(got.len(), (r1 - r0) * nc);
                for r in r0..r1 {
                    for c in 0..nc {
                        let want = if c0 + c == 0 { xs[r] } else { ys[r] };
                        assert!(
                            same(got[(r - r0) * nc + c], want),
                            "rows {r0}..{r1} cols {c0}+{nc}: row {r}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn string_columns_are_skipped_or_refused() {
    let exp = expected();
    let file = "mixed_with_string.parquet";
    let src = ParquetSource::open(dir().join(file), None).unwrap();
    assert_eq!(src.column_names(), vec!["count", "ratio"]);
    assert_eq!(
        src.dtype(),
        DType::F64,
        "int32 with float32 promotes to float64"
    );
    let got = src
        .read_region(&Region::whole(&[23, 2]))
        .unwrap()
        .to_f64_vec();
    for r in 0..23 {
        assert_eq!(
            got[2 * r],
            as_f64(&arr(&column(&exp, file, "count")["values"])[r])
        );
        assert_eq!(
            got[2 * r + 1],
            as_f64(&arr(&column(&exp, file, "ratio")["values"])[r])
        );
    }
    let count = ParquetSource::open(dir().join(file), Some(&["count"])).unwrap();
    assert_eq!(count.dtype(), DType::I32);
    assert_column(
        &count.read_region(&Region::whole(&[23])).unwrap(),
        arr(&column(&exp, file, "count")["values"]),
        "count",
    );

    let err = ParquetSource::open(dir().join(file), Some(&["count", "label"])).unwrap_err();
    match err {
        Error::ParquetColumnType {
            column,
            arrow_type,
            path,
            ..
        } => {
            assert_eq!(column, "label");
            assert_eq!(arrow_type, "Utf8");
            assert!(path.ends_with(file));
        }
        other => panic!("expected ParquetColumnType, got {other:?}"),
    }
}

#[test]
fn narrow_and_unsigned_types_widen_losslessly() {
    let exp = expected();
    let file = "widening.parquet";
    for (name, dtype) in [
        ("i8", DType::I32),
        ("i16", DType::I32),
        ("u16", DType::I32),
        ("u32", DType::I64),
        ("f16", DType::F32),
    ] {
        let src = ParquetSource::open(dir().join(file), Some(&[name])).unwrap();
        assert_eq!(src.dtype(), dtype, "{name}");
        let got = src.read_region(&Region::whole(&[23])).unwrap();
        assert_column(&got, arr(&column(&exp, file, name)["values"]), name);
    }
    // uint32 values above i32::MAX survive.
    let u32s = arr(&column(&exp, file, "u32")["values"]);
    assert!(u32s.iter().any(|v| v.as_u64().unwrap() > i32::MAX as u64));

    let src = ParquetSource::open(dir().join(file), Some(&["i8", "u32", "f16"])).unwrap();
    assert_eq!(src.dtype(), DType::F64, "i32 + i64 + f32 promote to f64");

    for cols in [Some(&["u64"][..]), None] {
        match ParquetSource::open(dir().join(file), cols).unwrap_err() {
            Error::ParquetColumnType {
                column, arrow_type, ..
            } => {
                assert_eq!(column, "u64");
                assert_eq!(arrow_type, "UInt64");
            }
            other => panic!("expected ParquetColumnType for uint64, got {other:?}"),
        }
    }
}

fn expect_nulls(err: Error, col: &str, count: u64) {
    match err {
        Error::ParquetNulls {
            column, null_count, ..
        } => {
            assert_eq!(column, col);
            assert_eq!(null_count, count);
        }
        other => panic!("expected ParquetNulls, got {other:?}"),
    }
}

#[test]
fn nulls_are_an_error_or_filled_explicitly() {
    let exp = expected();
    let file = "nulls.parquet";
    assert_eq!(column(&exp, file, "has_nulls")["null_count"], 5);
    assert_eq!(column(&exp, file, "int_nulls")["null_count"], 2);
    let path = dir().join(file);
    expect_nulls(
        ParquetSource::open(&path, Some(&["has_nulls"])).unwrap_err(),
        "has_nulls",
        5,
    );
    expect_nulls(
        ParquetSource::open(&path, Some(&["int_nulls"])).unwrap_err(),
        "int_nulls",
        2,
    );
    expect_nulls(
        ParquetSource::open(&path, None).unwrap_err(),
        "has_nulls",
        5,
    );

    // Declared nullable but without nulls: fine.
    let ok = ParquetSource::open(&path, Some(&["no_nulls"])).unwrap();
    assert_column(
        &ok.read_region(&Region::whole(&[23])).unwrap(),
        arr(&column(&exp, file, "no_nulls")["values"]),
        "no_nulls",
    );

    // An explicit fill value replaces exactly the nulls.
    let opts = ParquetReadOptions {
        fill_nulls: Some(f64::NAN),
    };
    let src = ParquetSource::open_with(&path, Some(&["has_nulls"]), &opts).unwrap();
    let got = src.read_region(&Region::whole(&[23])).unwrap().to_f64_vec();
    for (r, v) in arr(&column(&exp, file, "has_nulls")["values"])
        .iter()
        .enumerate()
    {
        if v.is_null() {
            assert!(got[r].is_nan(), "row {r}");
        } else {
            assert_eq!(got[r], as_f64(v), "row {r}");
        }
    }
    let opts = ParquetReadOptions {
        fill_nulls: Some(-1.0),
    };
    let src = ParquetSource::open_with(&path, Some(&["int_nulls"]), &opts).unwrap();
    let ChunkData::I64(a) = src.read_region(&Region::new(vec![0], vec![23])).unwrap() else {
        panic!("i64")
    };
    for (r, v) in arr(&column(&exp, file, "int_nulls")["values"])
        .iter()
        .enumerate()
    {
        assert_eq!(a[r], v.as_i64().unwrap_or(-1), "row {r}");
    }
    // NaN cannot stand in for an integer null: it would become 0.
    let opts = ParquetReadOptions {
        fill_nulls: Some(f64::NAN),
    };
    assert!(matches!(
        ParquetSource::open_with(&path, Some(&["int_nulls"]), &opts),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn nulls_without_statistics_are_found_when_read() {
    let path = dir().join("nulls_no_stats.parquet");
    // Without null counts in the footer the open succeeds ...
    let src = ParquetSource::open(&path, Some(&["has_nulls"])).unwrap();
    // ... rows without nulls read fine (row 1 is the first null) ...
    assert_eq!(
        src.read_region(&Region::new(vec![0], vec![1]))
            .unwrap()
            .to_f64_vec(),
        vec![0.0]
    );
    // ... and a range holding nulls is refused, with the count in the range.
    expect_nulls(
        src.read_region(&Region::new(vec![0], vec![7])).unwrap_err(),
        "has_nulls",
        2,
    );
    expect_nulls(
        src.read_region(&Region::whole(&[23])).unwrap_err(),
        "has_nulls",
        5,
    );
}

#[test]
fn one_named_column_is_1d_all_columns_are_2d() {
    let exp = expected();
    let file = "single_column.parquet";
    let two_d = ParquetSource::open(dir().join(file), None).unwrap();
    assert_eq!(two_d.grid().shape(), &[10, 1]);
    let one_d = ParquetSource::open(dir().join(file), Some(&["v"])).unwrap();
    assert_eq!(one_d.grid().shape(), &[10]);
    assert_eq!(one_d.dtype(), DType::I64);
    assert_column(
        &one_d.read_region(&Region::whole(&[10])).unwrap(),
        arr(&column(&exp, file, "v")["values"]),
        "v",
    );
    assert_eq!(
        two_d
            .read_region(&Region::whole(&[10, 1]))
            .unwrap()
            .to_f64_vec(),
        one_d
            .read_region(&Region::whole(&[10]))
            .unwrap()
            .to_f64_vec()
    );
}

#[test]
fn a_pandas_index_column_is_not_data_unless_asked_for() {
    let path = dir().join("pandas_index.parquet");
    let src = ParquetSource::open(&path, None).unwrap();
    assert_eq!(src.column_names(), vec!["value"]);
    assert_eq!(src.grid().shape(), &[23, 1]);
    let idx = ParquetSource::open(&path, Some(&["__index_level_0__"])).unwrap();
    assert_eq!(idx.dtype(), DType::I64);
    let exp = expected();
    let values = arr(&column(&exp, "pandas_index.parquet", "__index_level_0__")["values"]);
    assert_column(
        &idx.read_region(&Region::whole(&[23])).unwrap(),
        values,
        "index",
    );
}

#[test]
fn bad_input_gives_typed_errors() {
    let missing = dir().join("no_such_file.parquet");
    match ParquetSource::open(&missing, None).unwrap_err() {
        Error::Io { path, source } => {
            assert_eq!(path.as_deref(), Some(missing.as_path()));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    let not_parquet = dir().join("not_parquet.parquet");
    match ParquetSource::open(&not_parquet, None).unwrap_err() {
        Error::Parquet { path, .. } => assert_eq!(path, not_parquet),
        other => panic!("expected Parquet, got {other:?}"),
    }
    match ParquetSource::open(dir(), None).unwrap_err() {
        Error::Parquet { message, .. } => assert!(message.contains("directory"), "{message}"),
        other => panic!("expected Parquet, got {other:?}"),
    }
    match ParquetSource::open(
        dir().join("all_dtypes_zstd.parquet"),
        Some(&["f64", "nope"]),
    )
    .unwrap_err()
    {
        Error::ParquetColumnNotFound {
            column, available, ..
        } => {
            assert_eq!(column, "nope");
            assert_eq!(available, vec!["b", "u8", "i32", "i64", "f32", "f64"]);
        }
        other => panic!("expected ParquetColumnNotFound, got {other:?}"),
    }
    assert!(matches!(
        ParquetSource::open(dir().join("all_dtypes_zstd.parquet"), Some(&[])),
        Err(Error::InvalidArgument(_))
    ));
    let src = ParquetSource::open(dir().join("all_dtypes_zstd.parquet"), None).unwrap();
    assert!(matches!(
        src.read_region(&Region::new(vec![20, 0], vec![4, 6])),
        Err(Error::InvalidRange { axis: 0, .. })
    ));
    assert!(matches!(
        src.read_region(&Region::new(vec![0, 5], vec![1, 2])),
        Err(Error::InvalidRange { axis: 1, .. })
    ));
    assert!(matches!(
        src.read_region(&Region::new(vec![0], vec![1])),
        Err(Error::ShapeMismatch { .. })
    ));
    // An empty region reads nothing and is fine.
    assert_eq!(
        src.read_region(&Region::new(vec![3, 0], vec![0, 6]))
            .unwrap()
            .shape(),
        &[0, 6]
    );
}
