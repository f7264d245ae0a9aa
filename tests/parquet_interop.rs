//! Writes Parquet files for other readers to check (`ci/parquet_interop.sh` runs pyarrow on
//! them through `ci/check_parquet.py`).
//!
//! With `SPILLWAY_INTEROP_DIR` set, the files and an `expected.json` (values, Arrow types,
//! row-group sizes, codecs) go there. Without it they go to a temporary directory. Either
//! way the test reads every file back with spillway's own reader and checks the expected
//! layout, so it is a real test on its own too.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use serde_json::{Value, json};
use spillway::io::parquet::{ParquetCompression, ParquetSink, ParquetSource, ParquetWriteOptions};
use spillway::io::{ChunkSink, ChunkSource};
use spillway::{ChunkData, DType, Region};

/// One file to write.
struct Case {
    name: &'static str,
    data: ChunkData,
    row_group_rows: usize,
    names: Option<Vec<&'static str>>,
    compression: ParquetCompression,
    /// Delivery order of the row groups; `None` delivers them from 4 threads at once.
    order: Option<Vec<usize>>,
    /// Large files describe their values by a formula instead of listing them.
    affine: Option<(i64, i64, i64)>,
    /// Row groups that wait must go through the sink's spill file (others may too: the sink
    /// keeps about one row group of waiting pages in RAM).
    spills: bool,
}

/// pyarrow's name of the Arrow type of a dtype (`str(field.type)`).
fn pyarrow_type(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "bool",
        DType::U8 => "uint8",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::F32 => "float",
        DType::F64 => "double",
    }
}

fn pyarrow_codec(c: ParquetCompression) -> &'static str {
    match c {
        ParquetCompression::None => "UNCOMPRESSED",
        ParquetCompression::Snappy => "SNAPPY",
        ParquetCompression::Zstd(_) => "ZSTD",
    }
}

/// A JSON value for one element (non-finite floats as strings, which JSON lacks).
fn json_f64(v: f64) -> Value {
    if v.is_nan() {
        json!("nan")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(v)
    }
}

/// Column `j` of a chunk (all of it when 1-d) as JSON values, exactly.
fn column_json(data: &ChunkData, j: usize) -> Vec<Value> {
    let col = |d: &ChunkData| -> ChunkData {
        if d.shape().len() == 1 {
            d.clone()
        } else {
            d.slice(&Region::new(vec![0, j], vec![d.shape()[0], 1]))
        }
    };
    match col(data) {
        ChunkData::Bool(a) => a.iter().map(|&v| json!(v)).collect(),
        ChunkData::U8(a) => a.iter().map(|&v| json!(v)).collect(),
        ChunkData::I32(a) => a.iter().map(|&v| json!(v)).collect(),
        ChunkData::I64(a) => a.iter().map(|&v| json!(v)).collect(),
        ChunkData::F32(a) => a.iter().map(|&v| json_f64(f64::from(v))).collect(),
        ChunkData::F64(a) => a.iter().map(|&v| json_f64(v)).collect(),
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let n = 1000;
    let codecs = [
        ParquetCompression::Zstd(1),
        ParquetCompression::Snappy,
        ParquetCompression::None,
    ];
    let i = || (0..n).map(|i| i as i64);
    let dtype_data: Vec<(&'static str, ChunkData)> = vec![
        (
            "bool_1d.parquet",
            ChunkData::from(
                ArrayD::from_shape_vec(IxDyn(&[n]), i().map(|i| i % 3 == 1).collect()).unwrap(),
            ),
        ),
        (
            "u8_1d.parquet",
            ChunkData::from(
                ArrayD::from_shape_vec(IxDyn(&[n]), i().map(|i| (i * 7 % 256) as u8).collect())
                    .unwrap(),
            ),
        ),
        (
            "i32_1d.parquet",
            ChunkData::from(
                ArrayD::from_shape_vec(
                    IxDyn(&[n]),
                    i().map(|i| (i as i32 - 500) * 4_000_000).collect(),
                )
                .unwrap(),
            ),
        ),
        (
            "i64_1d.parquet",
            ChunkData::from(
                ArrayD::from_shape_vec(
                    IxDyn(&[n]),
                    i().map(|i| (i - 500) * 9_000_000_000_000_001).collect(),
                )
                .unwrap(),
            ),
        ),
        (
            "f32_1d.parquet",
            ChunkData::from(
                ArrayD::from_shape_vec(
                    IxDyn(&[n]),
                    i().map(|i| (i as f32 - 500.0) / 3.0).collect(),
                )
                .unwrap(),
            ),
        ),
        (
            "f64_1d.parquet",
            ChunkData::from(
                ArrayD::from_shape_vec(
                    IxDyn(&[n]),
                    i().map(|i| (i as f64 * 0.37).sin() * 1e6).collect(),
                )
                .unwrap(),
            ),
        ),
    ];
    for (k, (name, data)) in dtype_data.into_iter().enumerate() {
        cases.push(Case {
            name,
            data,
            row_group_rows: 300,
            names: None,
            compression: codecs[k % 3],
            order: Some(vec![0, 1, 2, 3]),
            affine: None,
            spills: false,
        });
    }
    // Special float values.
    let special = vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        5e-324,
    ];
    cases.push(Case {
        name: "f64_special.parquet",
        data: ChunkData::from(ArrayD::from_shape_vec(IxDyn(&[special.len()]), special).unwrap()),
        row_group_rows: 3,
        names: Some(vec!["special"]),
        compression: ParquetCompression::Zstd(3),
        order: Some(vec![2, 0, 1]),
        affine: None,
        spills: false,
    });
    // 2-d with names, written in reverse row-group order.
    cases.push(Case {
        name: "named_2d.parquet",
        data: ChunkData::from(ArrayD::from_shape_fn(IxDyn(&[95, 3]), |ix| {
            (ix[0] as f64 - 40.0) * 0.125 + ix[1] as f64 * 1000.0
        })),
        row_group_rows: 20,
        names: Some(vec!["x", "y", "z"]),
        compression: ParquetCompression::Zstd(1),
        order: Some(vec![4, 3, 2, 1, 0]),
        affine: None,
        spills: false,
    });
    // 2-d int32 with default names.
    cases.push(Case {
        name: "default_names_i32.parquet",
        data: ChunkData::from(ArrayD::from_shape_fn(IxDyn(&[50, 4]), |ix| {
            (ix[0] * 10 + ix[1]) as i32 - 100
        })),
        row_group_rows: 16,
        names: None,
        compression: ParquetCompression::Zstd(9),
        order: Some(vec![1, 3, 0, 2]),
        affine: None,
        spills: false,
    });
    // Large enough for several pages per column chunk, written concurrently.
    let (rows, cols) = (400_000usize, 2usize);
    let (mul, add, div) = (3i64, 11i64, 8i64);
    cases.push(Case {
        name: "large_concurrent.parquet",
        data: ChunkData::from(ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |ix| {
            ((ix[0] * cols + ix[1]) as i64 * mul + add) as f64 / div as f64
        })),
        row_group_rows: 150_000,
        names: None,
        compression: ParquetCompression::Zstd(1),
        order: None,
        affine: Some((mul, add, div)),
        spills: false,
    });
    // Wide: 2_000 columns of single-page chunks (no page index), written in reverse so the
    // waiting row groups overflow the sink's RAM allowance into its spill file.
    let (rows, cols) = (2_400usize, 2_000usize);
    let (mul, add, div) = (5i64, -7i64, 4i64);
    cases.push(Case {
        name: "wide_spilled.parquet",
        data: ChunkData::from(ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |ix| {
            ((ix[0] * cols + ix[1]) as i64 * mul + add) as f64 / div as f64
        })),
        row_group_rows: 600,
        names: None,
        compression: ParquetCompression::Zstd(1),
        order: Some(vec![3, 2, 1, 0]),
        affine: Some((mul, add, div)),
        spills: true,
    });
    cases
}

fn write_case(dir: &Path, case: &Case) -> PathBuf {
    let path = dir.join(case.name);
    let mut opts = ParquetWriteOptions::default()
        .compression(case.compression)
        .overwrite(true);
    if let Some(names) = &case.names {
        opts = opts.column_names(names.iter().copied());
    }
    let sink = ParquetSink::create(
        &path,
        case.data.shape(),
        case.data.dtype(),
        case.row_group_rows,
        &opts,
    )
    .unwrap();
    let indices = sink.grid().chunk_indices();
    let put = |k: usize| {
        let r = sink.grid().chunk_region(&indices[k]);
        sink.write_chunk(&indices[k], &case.data.slice(&r)).unwrap();
    };
    match &case.order {
        Some(order) => {
            assert_eq!(order.len(), indices.len(), "{}", case.name);
            order.iter().for_each(|&k| put(k));
        }
        None => std::thread::scope(|s| {
            let n = indices.len();
            for t in 0..4 {
                let put = &put;
                s.spawn(move || (0..n).filter(|k| k % 4 == t).rev().for_each(put));
            }
        }),
    }
    if case.spills {
        assert!(sink.spilled_bytes() > 0, "{}", case.name);
    }
    sink.finish().unwrap();
    path
}

#[test]
fn write_files_for_other_readers() {
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("SPILLWAY_INTEROP_DIR")
        .map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();

    let mut files = serde_json::Map::new();
    for case in cases() {
        let path = write_case(&dir, &case);
        let shape = case.data.shape().to_vec();
        let ncols = if shape.len() == 1 { 1 } else { shape[1] };
        let names: Vec<String> = match &case.names {
            Some(n) => n.iter().map(|s| s.to_string()).collect(),
            None => (0..ncols).map(|j| format!("c{j}")).collect(),
        };
        let rows = shape[0];
        let mut row_groups = vec![case.row_group_rows; rows / case.row_group_rows];
        if rows % case.row_group_rows != 0 {
            row_groups.push(rows % case.row_group_rows);
        }

        // Our own reader must agree before anyone else is asked.
        let src = if shape.len() == 1 {
            ParquetSource::open(&path, Some(&[names[0].as_str()])).unwrap()
        } else {
            ParquetSource::open(&path, None).unwrap()
        };
        assert_eq!(src.row_group_rows(), row_groups, "{}", case.name);
        assert_eq!(
            src.column_names(),
            names.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(src.dtype(), case.data.dtype());
        let back = src.read_region(&Region::whole(src.grid().shape())).unwrap();
        if case.data.dtype().is_float() {
            // Bit for bit (NaN has no equality; -0.0 must keep its sign); f32 -> f64 is exact.
            let (got, want) = (back.to_f64_vec(), case.data.to_f64_vec());
            assert_eq!(got.len(), want.len());
            let same =
                |(a, b): (&f64, &f64)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(got.iter().zip(&want).all(same), "{}", case.name);
        } else {
            assert_eq!(back, case.data, "{}", case.name);
        }

        let columns: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let mut c = json!({ "name": name, "arrow_type": pyarrow_type(case.data.dtype()) });
                match case.affine {
                    // value[row] = ((row * ncols + j) * mul + add) / div, exact in f64.
                    Some((mul, add, div)) => {
                        c["affine"] =
                            json!({ "mul": mul, "add": add, "div": div, "ncols": ncols, "col": j })
                    }
                    None => c["values"] = Value::Array(column_json(&case.data, j)),
                }
                c
            })
            .collect();
        files.insert(
            case.name.to_string(),
            json!({
                "num_rows": rows,
                "row_groups": row_groups,
                "compression": pyarrow_codec(case.compression),
                "columns": columns,
            }),
        );
    }
    let expected = json!({ "writer": "spillway", "files": files });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();

    // Nothing but the finished files and expected.json: no temporary files left behind.
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let mut want: Vec<String> = files
        .keys()
        .cloned()
        .chain(["expected.json".to_string()])
        .collect();
    want.sort();
    assert_eq!(entries, want);
}
