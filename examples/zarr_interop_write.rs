//! Writes a set of Zarr stores with spillway for zarr-python to check (`ci/check_zarr.py`).
//!
//! ```text
//! SPILLWAY_INTEROP_DIR=/tmp/interop cargo run --example zarr_interop_write
//! python ci/check_zarr.py /tmp/interop
//! ```
//!
//! Every codec in v3 and v2 (chunks encoded by zarrs and, where the codec allows, by
//! spillway's streaming encoder), sharded v3, a region write, chunks left at the fill value, and
//! groups with consolidated metadata. `expected.json` in the same directory lists each array
//! with its shape, dtype, chunking and values (computed here from the same formula, in memory,
//! not read back from the stores).

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use serde_json::{Map, Value, json};
use spillway::io::ChunkSink;
use spillway::io::zarr::{
    BloscCompressor, ZarrCompression, ZarrGroupWriter, ZarrSink, ZarrVersion, ZarrWriteOptions,
};
use spillway::{ChunkData, DType, Element, Region};

fn values(dtype: DType, shape: &[usize], seed: usize) -> ChunkData {
    fn make<T: Element>(dtype: DType, shape: &[usize], seed: usize) -> ChunkData {
        let n: usize = shape.iter().product();
        let v: Vec<T> = (0..n)
            .map(|k| {
                let k = k + seed;
                T::from_f64(match dtype {
                    DType::Bool => f64::from(u8::from(k.is_multiple_of(3))),
                    DType::U8 => ((k * 37 + 11) % 256) as f64,
                    DType::I32 => (((k * 37 + 11) % 101) as f64 - 50.0) * 1_000_003.0,
                    DType::I64 => (((k * 37 + 11) % 101) as f64 - 50.0) * 8_589_934_597.0,
                    DType::F32 => ((k * 37 + 11) % 101) as f64 * 0.25 - 12.5,
                    DType::F64 => ((k * 37 + 11) % 101) as f64 * 0.1 + k as f64 * 1e-3,
                })
            })
            .collect();
        T::into_chunk(ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape matches"))
    }
    spillway::dispatch_dtype!(dtype, T => make::<T>(dtype, shape, seed))
}

fn json_values(c: &ChunkData) -> Value {
    match c {
        ChunkData::Bool(a) => json!(a.iter().collect::<Vec<_>>()),
        ChunkData::U8(a) => json!(a.iter().collect::<Vec<_>>()),
        ChunkData::I32(a) => json!(a.iter().collect::<Vec<_>>()),
        ChunkData::I64(a) => json!(a.iter().collect::<Vec<_>>()),
        ChunkData::F32(a) => json!(a.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()),
        ChunkData::F64(a) => json!(a.iter().collect::<Vec<_>>()),
    }
}

fn write_all(sink: &ZarrSink, data: &ChunkData) -> spillway::Result<()> {
    // Two threads, as the executor would write.
    let chunks = sink.grid().chunk_indices();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let chunks = &chunks;
                s.spawn(move || -> spillway::Result<()> {
                    for (k, idx) in chunks.iter().enumerate().skip(t).step_by(2) {
                        let region = sink.grid().chunk_region(idx);
                        // Every other chunk goes through the streaming encoder where the
                        // codec allows it (the executor's path), one leading index at a
                        // time; the rest through zarrs.
                        let stream = if k % 2 == 0 {
                            sink.stream_chunk(idx)?
                        } else {
                            None
                        };
                        match stream {
                            Some(mut stream) => {
                                for i in region.start()[0]..region.end(0) {
                                    stream.write(&data.slice(&region.with_axis(0, i, 1)))?;
                                }
                                stream.finish()?;
                            }
                            _ => sink.write_chunk(idx, &data.slice(&region))?,
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread panicked"))
    })?;
    sink.finish()
}

struct Out {
    dir: PathBuf,
    expected: Map<String, Value>,
}

impl Out {
    fn record(
        &mut self,
        name: &str,
        store: &str,
        array_path: &str,
        data: &ChunkData,
        chunks: &[usize],
        extra: Value,
    ) {
        let mut e = json!({
            "store": store,
            "array_path": array_path,
            "dtype": data.dtype().name(),
            "shape": data.shape(),
            "chunks": chunks,
            "values": json_values(data),
        });
        if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
            m.extend(x);
        }
        self.expected.insert(name.to_string(), e);
    }

    fn array(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        chunks: &[usize],
        opts: &ZarrWriteOptions,
    ) -> spillway::Result<()> {
        let store = format!("{name}.zarr");
        let data = values(dtype, shape, name.len());
        let sink = ZarrSink::create(
            self.dir.join(&store),
            "/",
            shape,
            dtype,
            chunks,
            &opts.clone().overwrite(true),
        )?;
        write_all(&sink, &data)?;
        let extra = json!({
            "zarr_format": if opts.version == ZarrVersion::V2 { 2 } else { 3 },
            "shards": opts.shard_shape,
            "dimension_names": opts.dimension_names,
            "attributes": opts.attributes,
        });
        self.record(name, &store, "/", &data, chunks, extra);
        Ok(())
    }
}

fn run(dir: &Path) -> spillway::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| spillway::Error::Io {
        path: Some(dir.to_path_buf()),
        source: e,
    })?;
    let mut out = Out {
        dir: dir.to_path_buf(),
        expected: Map::new(),
    };
    let codecs = [
        ("zstd", ZarrCompression::Zstd { level: 3 }),
        ("gzip", ZarrCompression::Gzip { level: 5 }),
        (
            "blosc",
            ZarrCompression::Blosc {
                cname: BloscCompressor::Lz4,
                clevel: 5,
            },
        ),
        ("none", ZarrCompression::None),
    ];
    for version in [ZarrVersion::V3, ZarrVersion::V2] {
        let v = if version == ZarrVersion::V3 {
            "v3"
        } else {
            "v2"
        };
        for (cname, compression) in codecs {
            let opts = ZarrWriteOptions::default()
                .version(version)
                .compression(compression);
            // Every dtype with zstd; two dtypes with the other codecs. Ragged last chunks.
            let dtypes: &[DType] = if cname == "zstd" {
                &DType::ALL
            } else {
                &[DType::F64, DType::I32]
            };
            for &dtype in dtypes {
                out.array(
                    &format!("{v}_{cname}_{dtype}"),
                    &[13, 7],
                    dtype,
                    &[5, 3],
                    &opts,
                )?;
            }
        }
        let opts = ZarrWriteOptions::default()
            .version(version)
            .dimension_names(["t", "y", "x"])
            .attribute("units", "K")
            .attribute("note", "written by spillway");
        out.array(
            &format!("{v}_attrs_3d_f32"),
            &[4, 6, 5],
            DType::F32,
            &[2, 4, 5],
            &opts,
        )?;
    }
    // Sharded v3: shards of 2x2 inner chunks, ragged shards at both edges.
    let sharded = ZarrWriteOptions::default().shards(vec![8, 6]);
    out.array("v3_sharded_f64", &[19, 14], DType::F64, &[4, 3], &sharded)?;
    out.array(
        "v3_sharded_i64",
        &[19, 14],
        DType::I64,
        &[4, 3],
        &sharded
            .clone()
            .compression(ZarrCompression::Gzip { level: 3 }),
    )?;
    out.array(
        "v3_sharded_u8",
        &[30],
        DType::U8,
        &[4],
        &ZarrWriteOptions::default().shards(vec![8]),
    )?;

    // Chunks left at the fill value (not stored), v3 and v2.
    for (v, version) in [("v3", ZarrVersion::V3), ("v2", ZarrVersion::V2)] {
        let name = format!("{v}_fill_f64");
        let store = format!("{name}.zarr");
        let opts = ZarrWriteOptions::default()
            .version(version)
            .fill_value(-2.5)
            .overwrite(true);
        let sink = ZarrSink::create(dir.join(&store), "/", &[8, 6], DType::F64, &[4, 3], &opts)?;
        let mut data = values(DType::F64, &[8, 6], 3);
        if let ChunkData::F64(a) = &mut data {
            a.slice_mut(ndarray::s![4..8, 3..6]).fill(-2.5);
        }
        write_all(&sink, &data)?;
        out.record(
            &name,
            &store,
            "/",
            &data,
            &[4, 3],
            json!({"zarr_format": if v == "v3" { 3 } else { 2 }, "fill_value": -2.5}),
        );
    }

    // v2 integers get a `null` fill value by default (see ZarrWriteOptions::fill_value);
    // an all-zero chunk is then not stored and must read back as zeros.
    {
        let store = "v2_nullfill_i32.zarr";
        let opts = ZarrWriteOptions::default()
            .version(ZarrVersion::V2)
            .overwrite(true);
        let sink = ZarrSink::create(dir.join(store), "/", &[12], DType::I32, &[4], &opts)?;
        let data =
            ChunkData::from(ndarray::arr1(&[1i32, 2, 3, 4, 0, 0, 0, 0, -5, 6, 0, 8]).into_dyn());
        write_all(&sink, &data)?;
        out.record(
            "v2_nullfill_i32",
            store,
            "/",
            &data,
            &[4],
            json!({"zarr_format": 2}),
        );
    }

    // A region write into an existing v3 array.
    {
        let store = "v3_region_i32.zarr";
        let path = dir.join(store);
        let sink = ZarrSink::create(
            &path,
            "/",
            &[12, 9],
            DType::I32,
            &[4, 3],
            &ZarrWriteOptions::default().overwrite(true),
        )?;
        let mut data = values(DType::I32, &[12, 9], 0);
        write_all(&sink, &data)?;
        let region = Region::new(vec![4, 3], vec![8, 6]);
        let patch = values(DType::I32, region.shape(), 1000);
        let rs = ZarrSink::open_region(&path, "/", &region, DType::I32)?;
        write_all(&rs, &patch)?;
        if let (ChunkData::I32(a), ChunkData::I32(p)) = (&mut data, &patch) {
            a.slice_mut(ndarray::s![4..12, 3..9]).assign(p);
        }
        out.record(
            "v3_region_i32",
            store,
            "/",
            &data,
            &[4, 3],
            json!({"zarr_format": 3}),
        );
    }

    // Groups with consolidated metadata, for zarr.open_consolidated and xarray.open_zarr.
    for (v, version) in [("v3", ZarrVersion::V3), ("v2", ZarrVersion::V2)] {
        let store = format!("group_{v}.zarr");
        let g = ZarrGroupWriter::create(
            dir.join(&store),
            &ZarrWriteOptions::default()
                .version(version)
                .attribute("title", "spillway group")
                .overwrite(true),
        )?;
        let o = ZarrWriteOptions::default().version(version);
        let temp = g.array(
            "temp",
            &[6, 5],
            DType::F64,
            &[4, 2],
            &o.clone().dimension_names(["y", "x"]),
        )?;
        let mask = g.array(
            "mask",
            &[6, 5],
            DType::Bool,
            &[3, 5],
            &o.clone().dimension_names(["y", "x"]),
        )?;
        let counts = g.array(
            "sub/counts",
            &[9],
            DType::I64,
            &[4],
            &o.clone().dimension_names(["t"]),
        )?;
        let (td, md, cd) = (
            values(DType::F64, &[6, 5], 1),
            values(DType::Bool, &[6, 5], 2),
            values(DType::I64, &[9], 3),
        );
        write_all(&temp, &td)?;
        write_all(&mask, &md)?;
        write_all(&counts, &cd)?;
        g.finish()?;
        let extra = |dims: Value| json!({"zarr_format": if v == "v3" { 3 } else { 2 }, "group": true, "dimension_names": dims});
        out.record(
            &format!("group_{v}_temp"),
            &store,
            "/temp",
            &td,
            &[4, 2],
            extra(json!(["y", "x"])),
        );
        out.record(
            &format!("group_{v}_mask"),
            &store,
            "/mask",
            &md,
            &[3, 5],
            extra(json!(["y", "x"])),
        );
        out.record(
            &format!("group_{v}_counts"),
            &store,
            "/sub/counts",
            &cd,
            &[4],
            extra(json!(["t"])),
        );
    }

    let path = dir.join("expected.json");
    let text = serde_json::to_string_pretty(&Value::Object(out.expected)).expect("JSON");
    std::fs::write(&path, text).map_err(|e| spillway::Error::Io {
        path: Some(path.clone()),
        source: e,
    })?;
    println!("wrote stores and {}", path.display());
    Ok(())
}

fn main() {
    let Some(dir) = std::env::var_os("SPILLWAY_INTEROP_DIR").or_else(|| std::env::args_os().nth(1))
    else {
        eprintln!(
            "usage: SPILLWAY_INTEROP_DIR=<dir> cargo run --example zarr_interop_write  (or pass <dir>)"
        );
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(&dir)) {
        eprintln!("zarr_interop_write: {e}");
        std::process::exit(1);
    }
}
