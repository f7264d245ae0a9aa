//! Write options and the Zarr metadata documents they turn into.
//!
//! The metadata is built as JSON in the exact form zarr-python writes (codec names and
//! configuration keys included) and then handed to zarrs, which validates it and encodes the
//! chunks. Building the JSON ourselves keeps the output byte-compatible with zarr-python in
//! both formats, including Zarr v2, which zarrs' builder does not create.

use serde_json::{Map, Value, json};

use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};

/// The Zarr format version to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZarrVersion {
    /// Zarr v2 (`.zarray`, `.zattrs`, `.zgroup`, `.zmetadata`): for tools that predate v3.
    V2,
    /// Zarr v3 (`zarr.json`), the default.
    #[default]
    V3,
}

/// The compressor Blosc uses internally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BloscCompressor {
    /// LZ4: zarr-python 2's default (`Blosc(cname="lz4")`), fast.
    #[default]
    Lz4,
    /// LZ4HC: slower to write, smaller.
    Lz4hc,
    /// Blosc's own compressor.
    Blosclz,
    /// Zstandard inside Blosc.
    Zstd,
    /// zlib inside Blosc.
    Zlib,
}

impl BloscCompressor {
    fn name(self) -> &'static str {
        match self {
            BloscCompressor::Lz4 => "lz4",
            BloscCompressor::Lz4hc => "lz4hc",
            BloscCompressor::Blosclz => "blosclz",
            BloscCompressor::Zstd => "zstd",
            BloscCompressor::Zlib => "zlib",
        }
    }
}

/// How each chunk is compressed.
///
/// ```
/// use spillway::io::zarr::ZarrCompression;
/// assert_eq!(ZarrCompression::default(), ZarrCompression::Zstd { level: 3 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZarrCompression {
    /// No compression: the raw little-endian bytes.
    None,
    /// Zstandard at `level` (1..=22; 3 is zarr's and dask's usual choice and the default here).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// gzip (deflate) at `level` (0..=9).
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// Blosc with byte shuffle, the codec of most zarr-python 2 data.
    Blosc {
        /// The compressor inside Blosc.
        cname: BloscCompressor,
        /// Compression level (0..=9).
        clevel: u8,
    },
}

impl Default for ZarrCompression {
    fn default() -> Self {
        ZarrCompression::Zstd { level: 3 }
    }
}

/// Options for writing a Zarr array or group.
///
/// Every field has a sensible default (Zarr v3, zstd level 3, no sharding, no attributes, no
/// overwrite); set fields directly or chain the builder methods.
///
/// ```
/// use spillway::io::zarr::{ZarrCompression, ZarrVersion, ZarrWriteOptions};
/// let opts = ZarrWriteOptions::default()
///     .version(ZarrVersion::V3)
///     .zstd(5)
///     .shards(vec![256, 256])
///     .dimension_names(["y", "x"])
///     .attribute("units", "K")
///     .overwrite(true);
/// assert_eq!(opts.compression, ZarrCompression::Zstd { level: 5 });
/// assert!(opts.overwrite);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZarrWriteOptions {
    /// The format version (v3 unless asked otherwise).
    pub version: ZarrVersion,
    /// The chunk compression.
    pub compression: ZarrCompression,
    /// A chunk shape that replaces the one given to the sink (the array's own chunks).
    pub chunk_shape: Option<Vec<usize>>,
    /// Write shards of this shape, each holding inner chunks of the chunk shape (v3 only).
    /// Each shard is one file, so far fewer files are written for small chunks.
    pub shard_shape: Option<Vec<usize>>,
    /// User attributes stored with the array (or with the group for
    /// [`ZarrGroupWriter::create`](super::ZarrGroupWriter::create)).
    pub attributes: Map<String, Value>,
    /// One name per axis; xarray needs them to open the array (stored as `dimension_names`
    /// in v3 and as the `_ARRAY_DIMENSIONS` attribute in v2).
    pub dimension_names: Option<Vec<String>>,
    /// The fill value; default NaN for floats, 0 for integers, `false` for bool. Chunks that
    /// hold only the fill value are not stored, and read back as the fill value.
    ///
    /// In Zarr v2, integer and bool arrays without an explicit fill value get `null` (read as
    /// 0 / `false`), because xarray treats a v2 `fill_value` as `_FillValue` and would mask
    /// every 0 as missing.
    pub fill_value: Option<Scalar>,
    /// Replace an existing store at the path (only once the new one is complete).
    pub overwrite: bool,
}

impl ZarrWriteOptions {
    /// Sets the format version.
    pub fn version(mut self, version: ZarrVersion) -> Self {
        self.version = version;
        self
    }

    /// Sets the compression.
    pub fn compression(mut self, compression: ZarrCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Zstandard at `level`.
    pub fn zstd(self, level: i32) -> Self {
        self.compression(ZarrCompression::Zstd { level })
    }

    /// Replaces the chunk shape.
    pub fn chunk_shape(mut self, chunk_shape: impl Into<Vec<usize>>) -> Self {
        self.chunk_shape = Some(chunk_shape.into());
        self
    }

    /// Writes shards of `shard_shape` (a multiple of the chunk shape on every axis).
    pub fn shards(mut self, shard_shape: impl Into<Vec<usize>>) -> Self {
        self.shard_shape = Some(shard_shape.into());
        self
    }

    /// Adds one attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Replaces all attributes.
    pub fn attributes(mut self, attributes: Map<String, Value>) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets the dimension names.
    pub fn dimension_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.dimension_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the fill value.
    pub fn fill_value(mut self, fill: impl Into<Scalar>) -> Self {
        self.fill_value = Some(fill.into());
        self
    }

    /// Allows replacing an existing store.
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// The resolved layout of an array to be written.
#[derive(Debug)]
pub(crate) struct Layout {
    /// Shape of the array.
    pub shape: Vec<usize>,
    /// Shape of the stored chunks (the inner chunks when sharded).
    pub chunk_shape: Vec<usize>,
    /// Shape of the shards, when sharded.
    pub shard_shape: Option<Vec<usize>>,
}

impl Layout {
    /// Checks the shapes against each other and the options.
    pub(crate) fn resolve(
        shape: &[usize],
        chunk_shape: &[usize],
        opts: &ZarrWriteOptions,
    ) -> Result<Layout> {
        let chunk_shape = opts
            .chunk_shape
            .clone()
            .unwrap_or_else(|| chunk_shape.to_vec());
        let bad = |reason: String| Error::InvalidChunks {
            shape: shape.to_vec(),
            chunks: format!("{chunk_shape:?}"),
            reason,
        };
        if chunk_shape.len() != shape.len() {
            return Err(bad(format!(
                "{} chunk sizes for {} axes",
                chunk_shape.len(),
                shape.len()
            )));
        }
        if let Some(a) = chunk_shape.iter().position(|&c| c == 0) {
            return Err(bad(format!("chunk size on axis {a} is zero")));
        }
        if let Some(shard) = &opts.shard_shape {
            if opts.version == ZarrVersion::V2 {
                return Err(Error::InvalidArgument(
                    "sharding needs Zarr v3; Zarr v2 has no shards".into(),
                ));
            }
            if shard.len() != shape.len() {
                return Err(bad(format!(
                    "shard shape {shard:?} has {} axes, the array {}",
                    shard.len(),
                    shape.len()
                )));
            }
            for a in 0..shape.len() {
                if shard[a] == 0 || shard[a] % chunk_shape[a] != 0 {
                    return Err(bad(format!(
                        "shard shape {shard:?} must be a non-zero multiple of the chunk shape on every axis \
                         (axis {a}: {} is not a multiple of {})",
                        shard[a], chunk_shape[a]
                    )));
                }
            }
        }
        if let Some(names) = &opts.dimension_names
            && names.len() != shape.len()
        {
            return Err(Error::InvalidArgument(format!(
                "{} dimension names {names:?} for an array of {} axes",
                names.len(),
                shape.len()
            )));
        }
        Ok(Layout {
            shape: shape.to_vec(),
            chunk_shape,
            shard_shape: opts.shard_shape.clone(),
        })
    }

    /// The shape of one stored object (a shard when sharded, else a chunk): one write task each.
    pub(crate) fn write_shape(&self) -> &[usize] {
        self.shard_shape.as_deref().unwrap_or(&self.chunk_shape)
    }
}

/// The default fill value of a dtype: NaN for floats (a missing chunk then reads as missing
/// data), zero / `false` otherwise.
pub(crate) fn default_fill(dtype: DType) -> Scalar {
    match dtype {
        DType::F32 | DType::F64 => Scalar::Float(f64::NAN),
        DType::Bool => Scalar::Bool(false),
        _ => Scalar::Int(0),
    }
}

/// The fill value as zarr JSON for `dtype` (`"NaN"`, `"Infinity"` for non-finite floats).
pub(crate) fn fill_json(dtype: DType, fill: Scalar) -> Result<Value> {
    Ok(match dtype {
        DType::Bool => Value::Bool(fill.to::<bool>()),
        DType::F32 | DType::F64 => {
            let v = fill.as_f64();
            if v.is_nan() {
                json!("NaN")
            } else if v == f64::INFINITY {
                json!("Infinity")
            } else if v == f64::NEG_INFINITY {
                json!("-Infinity")
            } else if dtype == DType::F32 {
                json!(v as f32 as f64)
            } else {
                json!(v)
            }
        }
        DType::U8 | DType::I32 | DType::I64 => {
            let int = match fill {
                Scalar::Int(i) => i,
                Scalar::Bool(b) => i64::from(b),
                Scalar::Float(f) if f.fract() == 0.0 && f.is_finite() => f as i64,
                Scalar::Float(f) => {
                    return Err(Error::InvalidArgument(format!(
                        "fill value {f} is not an integer for dtype {dtype}"
                    )));
                }
            };
            let (lo, hi) = match dtype {
                DType::U8 => (0, i64::from(u8::MAX)),
                DType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                _ => (i64::MIN, i64::MAX),
            };
            if int < lo || int > hi {
                return Err(Error::InvalidArgument(format!(
                    "fill value {int} does not fit dtype {dtype}"
                )));
            }
            json!(int)
        }
    })
}

/// The v3 `bytes` codec (endianness only matters for multi-byte types).
fn bytes_codec(dtype: DType) -> Value {
    if dtype.size_bytes() > 1 {
        json!({"name": "bytes", "configuration": {"endian": "little"}})
    } else {
        json!({"name": "bytes"})
    }
}

/// The v3 bytes-to-bytes codec for a compression, as zarr-python names and configures it.
fn compressor_v3(c: ZarrCompression, dtype: DType) -> Option<Value> {
    match c {
        ZarrCompression::None => None,
        ZarrCompression::Zstd { level } => {
            Some(json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}))
        }
        ZarrCompression::Gzip { level } => {
            Some(json!({"name": "gzip", "configuration": {"level": level}}))
        }
        ZarrCompression::Blosc { cname, clevel } => {
            Some(json!({"name": "blosc", "configuration": {
            "cname": cname.name(), "clevel": clevel, "shuffle": "shuffle",
            "typesize": dtype.size_bytes(), "blocksize": 0}}))
        }
    }
}

/// The v2 `compressor` object, as numcodecs names and configures it.
fn compressor_v2(c: ZarrCompression) -> Value {
    match c {
        ZarrCompression::None => Value::Null,
        ZarrCompression::Zstd { level } => json!({"id": "zstd", "level": level}),
        ZarrCompression::Gzip { level } => json!({"id": "gzip", "level": level}),
        ZarrCompression::Blosc { cname, clevel } => {
            json!({"id": "blosc", "cname": cname.name(), "clevel": clevel, "shuffle": 1, "blocksize": 0})
        }
    }
}

/// The numpy type string of a dtype in v2 metadata (little-endian).
fn dtype_v2(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

/// The array metadata document (`zarr.json` contents for v3, `.zarray` plus attributes for
/// v2) for an array of `dtype` with `layout`.
pub(crate) fn array_metadata_json(
    dtype: DType,
    layout: &Layout,
    opts: &ZarrWriteOptions,
) -> Result<Value> {
    let fill = match (opts.version, opts.fill_value) {
        // xarray reads a v2 `fill_value` as `_FillValue` and masks every element equal to it
        // (turning a bool or int array into floats with NaN), so v2 integer and bool arrays
        // get `null` unless a fill value is asked for; readers then use 0 / false.
        (ZarrVersion::V2, None) if !dtype.is_float() => Value::Null,
        (_, fill) => fill_json(dtype, fill.unwrap_or_else(|| default_fill(dtype)))?,
    };
    Ok(match opts.version {
        ZarrVersion::V3 => {
            let mut inner = vec![bytes_codec(dtype)];
            inner.extend(compressor_v3(opts.compression, dtype));
            let (grid_shape, codecs) = match &layout.shard_shape {
                None => (layout.chunk_shape.clone(), inner),
                Some(shard) => (
                    shard.clone(),
                    vec![json!({"name": "sharding_indexed", "configuration": {
                        "chunk_shape": layout.chunk_shape,
                        "codecs": inner,
                        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                        "index_location": "end"}})],
                ),
            };
            let mut m = json!({
                "zarr_format": 3,
                "node_type": "array",
                "shape": layout.shape,
                "data_type": dtype.name(),
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid_shape}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": fill,
                "codecs": codecs,
                "attributes": opts.attributes,
            });
            if let Some(names) = &opts.dimension_names {
                m["dimension_names"] = json!(names);
            }
            m
        }
        ZarrVersion::V2 => {
            let mut attributes = opts.attributes.clone();
            if let Some(names) = &opts.dimension_names {
                attributes.insert("_ARRAY_DIMENSIONS".into(), json!(names));
            }
            json!({
                "zarr_format": 2,
                "shape": layout.shape,
                "chunks": layout.chunk_shape,
                "dtype": dtype_v2(dtype),
                "compressor": compressor_v2(opts.compression),
                "fill_value": fill,
                "order": "C",
                "filters": null,
                "dimension_separator": ".",
                "attributes": attributes,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_values_are_checked_and_spelled_as_zarr_does() {
        assert_eq!(
            fill_json(DType::F64, Scalar::Float(f64::NAN)).unwrap(),
            json!("NaN")
        );
        assert_eq!(
            fill_json(DType::F32, Scalar::Float(f64::NEG_INFINITY)).unwrap(),
            json!("-Infinity")
        );
        assert_eq!(
            fill_json(DType::F64, Scalar::Float(-1.5)).unwrap(),
            json!(-1.5)
        );
        assert_eq!(fill_json(DType::I32, Scalar::Int(-7)).unwrap(), json!(-7));
        assert_eq!(
            fill_json(DType::Bool, Scalar::Bool(true)).unwrap(),
            json!(true)
        );
        assert!(matches!(
            fill_json(DType::U8, Scalar::Int(256)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            fill_json(DType::I32, Scalar::Float(0.5)),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn layouts_refuse_bad_shards_and_names() {
        let o = ZarrWriteOptions::default().shards(vec![8, 7]);
        assert!(matches!(
            Layout::resolve(&[16, 14], &[4, 2], &o),
            Err(Error::InvalidChunks { .. })
        ));
        let o = ZarrWriteOptions::default()
            .shards(vec![8, 8])
            .version(ZarrVersion::V2);
        assert!(matches!(
            Layout::resolve(&[16, 16], &[4, 4], &o),
            Err(Error::InvalidArgument(_))
        ));
        let o = ZarrWriteOptions::default().dimension_names(["x"]);
        assert!(matches!(
            Layout::resolve(&[4, 4], &[2, 2], &o),
            Err(Error::InvalidArgument(_))
        ));
        let o = ZarrWriteOptions::default()
            .chunk_shape(vec![3, 3])
            .shards(vec![6, 9]);
        let l = Layout::resolve(&[10, 10], &[5, 5], &o).unwrap();
        assert_eq!(l.chunk_shape, vec![3, 3]);
        assert_eq!(l.write_shape(), &[6, 9]);
    }

    #[test]
    fn metadata_matches_zarr_python_spelling() {
        let l = Layout::resolve(&[10], &[4], &ZarrWriteOptions::default()).unwrap();
        let m = array_metadata_json(DType::F32, &l, &ZarrWriteOptions::default()).unwrap();
        assert_eq!(m["data_type"], "float32");
        assert_eq!(m["fill_value"], "NaN");
        assert_eq!(
            m["codecs"][1],
            json!({"name": "zstd", "configuration": {"level": 3, "checksum": false}})
        );
        let o = ZarrWriteOptions::default()
            .version(ZarrVersion::V2)
            .compression(ZarrCompression::Blosc {
                cname: BloscCompressor::Lz4,
                clevel: 5,
            })
            .dimension_names(["t"]);
        let m = array_metadata_json(DType::I64, &l, &o).unwrap();
        assert_eq!(m["dtype"], "<i8");
        assert_eq!(m["compressor"]["cname"], "lz4");
        assert_eq!(m["attributes"]["_ARRAY_DIMENSIONS"], json!(["t"]));
    }
}
