//! Reading Zarr arrays: [`ZarrSource`] and [`list_arrays`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::ArrayD;
use serde_json::{Map, Value};
use zarrs::array::data_type::{
    BoolDataType, Float32DataType, Float64DataType, Int32DataType, Int64DataType, UInt8DataType,
};
use zarrs::array::{Array, ArrayBytes, ArrayMetadata, ArraySubset};
use zarrs::filesystem::FilesystemStore;

use crate::chunk::ChunkData;
use crate::dtype::{DType, Element, Scalar};
use crate::error::{Error, Result};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;

use super::options::ZarrVersion;
use super::stream::{ChunkFileReader, STREAM_OVERHEAD_BYTES, StreamCodec};
use super::{codec_options, display_path, map_array_error, map_create_error, normalize_node_path};

/// One Zarr v2 or v3 array on the local filesystem, read region by region.
///
/// Opening reads only the metadata. The store's chunk grid is the source's grid, so a task
/// that reads one chunk of the grid decodes exactly one stored chunk (or, for a sharded
/// array, the inner chunks it needs out of one shard).
///
/// ```
/// use spillway::io::ChunkSource;
/// use spillway::io::zarr::{ZarrSink, ZarrSource, ZarrWriteOptions};
/// use spillway::{ChunkData, DType, Region};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("a.zarr");
/// // Write a 4x3 array of f64 in chunks of 2x3 ...
/// let sink = ZarrSink::create(&path, "/", &[4, 3], DType::F64, &[2, 3], &ZarrWriteOptions::default())?;
/// use spillway::io::ChunkSink;
/// for (i, idx) in sink.grid().chunk_indices().into_iter().enumerate() {
///     let data = ndarray::ArrayD::from_elem(vec![2, 3], i as f64);
///     sink.write_chunk(&idx, &ChunkData::from(data))?;
/// }
/// sink.finish()?;
/// // ... and read a region across both chunks back.
/// let src = ZarrSource::open(&path, "/")?;
/// assert_eq!(src.grid().chunk_shape(), &[2, 3]);
/// let r = src.read_region(&Region::new(vec![1, 0], vec![2, 1]))?;
/// assert_eq!(r.to_f64_vec(), vec![0.0, 1.0]);
/// # Ok::<(), spillway::Error>(())
/// ```
pub struct ZarrSource {
    array: Array<FilesystemStore>,
    grid: ChunkGrid,
    dtype: DType,
    store_path: PathBuf,
    node_path: String,
    display: PathBuf,
    /// How chunk files decode as streams, when the codec chain allows it.
    stream: Option<StreamCodec>,
    /// The stored chunk shape as the metadata gives it (the grid's may be clamped to the
    /// array's shape; a chunk file always holds this many elements).
    store_chunk: Vec<usize>,
}

/// Elements decoded at a time when a region is read by streaming.
const BAND_ELEMS: usize = 1 << 17;

impl std::fmt::Debug for ZarrSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrSource")
            .field("path", &self.display)
            .field("dtype", &self.dtype)
            .field("grid", &self.grid)
            .finish()
    }
}

/// The metadata document of a node directory, if any: `(zarr_format, node_type)`.
fn node_kind(dir: &Path) -> Option<(u8, &'static str)> {
    if let Ok(text) = fs::read_to_string(dir.join("zarr.json")) {
        let kind = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            v.get("node_type")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        return Some((
            3,
            if kind.as_deref() == Some("group") {
                "group"
            } else {
                "array"
            },
        ));
    }
    if dir.join(".zarray").is_file() {
        return Some((2, "array"));
    }
    if dir.join(".zgroup").is_file() {
        return Some((2, "group"));
    }
    None
}

fn walk(dir: &Path, node: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let name = child.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = if node == "/" {
            format!("/{name}")
        } else {
            format!("{node}/{name}")
        };
        match node_kind(&child.path()) {
            Some((_, "array")) => out.push(path),
            Some((_, _)) => walk(&child.path(), &path, out),
            None => {}
        }
    }
}

/// The paths of every array inside a Zarr store (v2 or v3), e.g. `["/sub/counts", "/temp"]`,
/// sorted; `["/"]` when the store is a single array.
///
/// Use a path from this list as the `array_path` of [`ZarrSource::open`].
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use spillway::io::zarr::{list_arrays, ZarrGroupWriter, ZarrWriteOptions};
/// use spillway::io::ChunkSink;
/// let path = dir.path().join("g.zarr");
/// let g = ZarrGroupWriter::create(&path, &ZarrWriteOptions::default())?;
/// let a = g.array("b/x", &[2], spillway::DType::U8, &[2], &ZarrWriteOptions::default())?;
/// a.write_chunk(&[0], &spillway::ChunkData::from(ndarray::arr1(&[1u8, 2]).into_dyn()))?;
/// a.finish()?;
/// g.finish()?;
/// assert_eq!(list_arrays(&path)?, vec!["/b/x".to_string()]);
/// # Ok::<(), spillway::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the path does not exist, [`Error::NotZarr`] when it is not a Zarr
/// store.
pub fn list_arrays(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    fs::metadata(path).map_err(|e| Error::io(path, e))?;
    match node_kind(path) {
        Some((_, "array")) => Ok(vec!["/".into()]),
        Some(_) => {
            let mut out = Vec::new();
            walk(path, "/", &mut out);
            Ok(out)
        }
        None => Err(Error::NotZarr {
            path: path.to_path_buf(),
            reason: "no zarr.json, .zarray or .zgroup".into(),
        }),
    }
}

/// The spillway dtype of a zarrs data type, if it has one.
fn dtype_of(array: &Array<FilesystemStore>) -> Option<DType> {
    let dt = array.data_type();
    Some(if dt.is::<BoolDataType>() {
        DType::Bool
    } else if dt.is::<UInt8DataType>() {
        DType::U8
    } else if dt.is::<Int32DataType>() {
        DType::I32
    } else if dt.is::<Int64DataType>() {
        DType::I64
    } else if dt.is::<Float32DataType>() {
        DType::F32
    } else if dt.is::<Float64DataType>() {
        DType::F64
    } else {
        return None;
    })
}

/// The data type as the metadata names it (`complex128`, `string`; `<c8 (complex64)` for v2).
fn dtype_name(array: &Array<FilesystemStore>) -> String {
    use zarrs::plugin::ExtensionName;
    match array.metadata() {
        ArrayMetadata::V3(m) => m.data_type.name().to_string(),
        ArrayMetadata::V2(m) => {
            let raw = serde_json::to_value(&m.dtype)
                .map(|v| v.to_string().trim_matches('"').to_string())
                .unwrap_or_default();
            match array.data_type().name(zarrs::plugin::ZarrVersion::V3) {
                Some(v3) => format!("{raw} ({v3})"),
                None => raw,
            }
        }
    }
}

/// The regular chunk shape of an array, or the name of its irregular grid.
pub(super) fn regular_chunk_shape(
    array: &Array<FilesystemStore>,
) -> std::result::Result<Vec<usize>, String> {
    match array.metadata() {
        ArrayMetadata::V2(m) => Ok(m.chunks.iter().map(|c| c.get() as usize).collect()),
        ArrayMetadata::V3(m) => {
            let name = m.chunk_grid.name();
            if name != "regular" {
                return Err(name.to_string());
            }
            let shape = m
                .chunk_grid
                .configuration()
                .and_then(|c| c.get("chunk_shape"))
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_u64)
                        .map(|c| c as usize)
                        .collect::<Vec<_>>()
                });
            match shape {
                Some(s) if s.len() == array.dimensionality() && s.iter().all(|&c| c > 0) => Ok(s),
                _ => Err(format!("{name} (without a valid chunk_shape)")),
            }
        }
    }
}

impl ZarrSource {
    /// Opens the array at `array_path` (`"/"` for a store that is one array, `"/group/name"`
    /// inside a group) of the store at `path`; Zarr v2 and v3 are told apart by their
    /// metadata files.
    ///
    /// # Errors
    /// - [`Error::Io`] (kind `NotFound`) when `path` does not exist;
    /// - [`Error::NotZarr`] when it (or `array_path` in it) holds no array — a plain directory,
    ///   a group (the message lists its arrays), a missing member;
    /// - [`Error::ZarrMetadata`] for metadata that is not valid JSON or not valid Zarr;
    /// - [`Error::ZarrUnsupportedDType`] for data types other than the six spillway has;
    /// - [`Error::ZarrUnsupported`] for unknown codecs and non-regular chunk grids.
    pub fn open(path: impl AsRef<Path>, array_path: &str) -> Result<ZarrSource> {
        let store_path = path.as_ref().to_path_buf();
        let node_path = normalize_node_path(&store_path, array_path)?;
        let display = display_path(&store_path, &node_path);
        let meta = fs::metadata(&store_path).map_err(|e| Error::io(&store_path, e))?;
        if !meta.is_dir() {
            return Err(Error::NotZarr {
                path: store_path,
                reason: "it is a file, not a Zarr store directory".into(),
            });
        }
        let node_dir = store_path.join(node_path.trim_start_matches('/'));
        match node_kind(&node_dir) {
            Some((_, "array")) => {}
            Some((_, _)) => {
                let mut arrays = Vec::new();
                walk(&node_dir, &node_path, &mut arrays);
                return Err(Error::NotZarr {
                    path: display,
                    reason: format!("it is a group; its arrays are {arrays:?}"),
                });
            }
            None if !node_dir.exists() => {
                let arrays = list_arrays(&store_path).unwrap_or_default();
                return Err(Error::NotZarr {
                    path: display,
                    reason: if node_kind(&store_path).is_some() {
                        format!("the store has no node {node_path}; its arrays are {arrays:?}")
                    } else {
                        "no Zarr metadata in the directory or at the node path".into()
                    },
                });
            }
            None => {
                return Err(Error::NotZarr {
                    path: display,
                    reason: "no zarr.json, .zarray or .zgroup in the directory".into(),
                });
            }
        }
        let store = FilesystemStore::new(&store_path).map_err(|e| Error::Zarr {
            path: store_path.clone(),
            message: e.to_string(),
        })?;
        let array =
            Array::open(Arc::new(store), &node_path).map_err(|e| map_create_error(&display, e))?;
        let dtype = dtype_of(&array).ok_or_else(|| Error::ZarrUnsupportedDType {
            path: display.clone(),
            dtype: dtype_name(&array),
        })?;
        let chunk_shape = regular_chunk_shape(&array).map_err(|name| Error::ZarrUnsupported {
            path: display.clone(),
            what: format!("chunk grid `{name}`"),
        })?;
        let shape: Vec<usize> = array.shape().iter().map(|&n| n as usize).collect();
        let grid = ChunkGrid::new(shape, chunk_shape.clone())?;
        let stream = StreamCodec::of(array.metadata());
        Ok(ZarrSource {
            array,
            grid,
            dtype,
            store_path,
            node_path,
            display,
            stream,
            store_chunk: chunk_shape,
        })
    }

    /// The store directory.
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }

    /// The array's path inside the store (`/` or `/group/name`).
    pub fn array_path(&self) -> &str {
        &self.node_path
    }

    /// The format version of the store.
    pub fn version(&self) -> ZarrVersion {
        match self.array.metadata() {
            ArrayMetadata::V2(_) => ZarrVersion::V2,
            ArrayMetadata::V3(_) => ZarrVersion::V3,
        }
    }

    /// The user attributes (`attributes` in v3, `.zattrs` in v2).
    pub fn attributes(&self) -> &Map<String, Value> {
        self.array.attributes()
    }

    /// The dimension names: `dimension_names` in v3, the `_ARRAY_DIMENSIONS` attribute xarray
    /// writes in v2; `None` when the store names no dimensions.
    pub fn dimension_names(&self) -> Option<Vec<Option<String>>> {
        if let Some(names) = self.array.dimension_names() {
            return Some(names.clone());
        }
        let dims = self
            .array
            .attributes()
            .get("_ARRAY_DIMENSIONS")?
            .as_array()?;
        Some(dims.iter().map(|d| d.as_str().map(str::to_owned)).collect())
    }

    /// The fill value that unwritten chunks read as.
    pub fn fill_value(&self) -> Scalar {
        let b = self.array.fill_value().as_ne_bytes();
        let get = |n: usize| -> Option<&[u8]> { b.get(..n) };
        match self.dtype {
            DType::Bool => Scalar::Bool(get(1).is_some_and(|b| b[0] != 0)),
            DType::U8 => Scalar::Int(get(1).map_or(0, |b| i64::from(b[0]))),
            DType::I32 => Scalar::Int(get(4).map_or(0, |b| {
                i64::from(i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
            })),
            DType::I64 => Scalar::Int(
                get(8).map_or(0, |b| i64::from_ne_bytes(b.try_into().unwrap_or([0; 8]))),
            ),
            DType::F32 => Scalar::Float(get(4).map_or(0.0, |b| {
                f64::from(f32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
            })),
            DType::F64 => Scalar::Float(
                get(8).map_or(0.0, |b| f64::from_ne_bytes(b.try_into().unwrap_or([0; 8]))),
            ),
        }
    }

    /// The zarrs array, for a region writer.
    pub(super) fn into_array(self) -> Array<FilesystemStore> {
        self.array
    }

    /// Finds the first chunk overlapping `region` that fails to decode (error path only).
    fn locate_bad_chunk(&self, region: &Region) -> Option<Vec<u64>> {
        let opts = codec_options();
        self.grid
            .chunks_overlapping(region)
            .into_iter()
            .map(|i| i.iter().map(|&c| c as u64).collect::<Vec<u64>>())
            .find(|idx| {
                self.array
                    .retrieve_chunk_opt::<ArrayBytes<'static>>(idx, &opts)
                    .is_err()
            })
    }

    /// Streams the stored chunks overlapping `region` through their decoders, calling `f`
    /// with each band's part inside `region` (chunks never written give fill). Reading stops
    /// after the last band a chunk contributes.
    /// With `whole_chunks`, a stored chunk that lies entirely inside `region` is decoded in
    /// one piece straight into its own buffer (for a read that returns the region anyway).
    fn stream_pieces(
        &self,
        codec: StreamCodec,
        region: &Region,
        band_elems: usize,
        whole_chunks: bool,
        f: &mut dyn FnMut(&Region, ChunkData) -> Result<()>,
    ) -> Result<()> {
        let chunk_shape = self.store_chunk.clone();
        for idx in self.grid.chunks_overlapping(region) {
            let origin: Vec<usize> = idx.iter().zip(&chunk_shape).map(|(i, c)| i * c).collect();
            let stored = Region::new(origin, chunk_shape.clone());
            let Some(want) = stored.intersect(region).filter(|w| !w.is_empty()) else {
                continue;
            };
            let chunk: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
            let key = self.array.chunk_key(&chunk);
            let path = self
                .store_path
                .join(key.as_str().strip_prefix('/').unwrap_or(key.as_str()));
            let Some(mut reader) = ChunkFileReader::open(path, &self.display, chunk, codec)? else {
                let fill = self.fill_value();
                for t in crate::grid::c_order_tiles(&want, band_elems) {
                    f(&t, ChunkData::full(self.dtype, t.shape(), fill))?;
                }
                continue;
            };
            if whole_chunks && want == stored {
                // The whole stored chunk: decode it straight into its own buffer.
                let data = reader.next(self.dtype, stored.shape())?;
                reader.finish()?;
                f(&want, data)?;
                continue;
            }
            let bands = crate::grid::c_order_tiles(&stored, band_elems);
            let last = bands
                .iter()
                .rposition(|b| b.intersect(&want).is_some_and(|o| !o.is_empty()))
                .unwrap_or(0);
            for b in &bands[..=last] {
                let data = reader.next(self.dtype, b.shape())?;
                if let Some(ov) = b.intersect(&want).filter(|o| !o.is_empty()) {
                    let piece = if ov == *b {
                        data
                    } else {
                        data.slice(&ov.relative_to(b))
                    };
                    f(&ov, piece)?;
                }
            }
            if last + 1 == bands.len() {
                reader.finish()?;
            }
        }
        Ok(())
    }

    fn check_region(&self, region: &Region) -> Result<()> {
        let shape = self.grid.shape();
        if region.ndim() != shape.len() {
            return Err(Error::InvalidArgument(format!(
                "region {region} has {} axes but the zarr array at {} has {}",
                region.ndim(),
                self.display.display(),
                shape.len()
            )));
        }
        for (a, &len) in shape.iter().enumerate() {
            if region.end(a) > len {
                return Err(Error::InvalidRange {
                    axis: a,
                    start: region.start()[a],
                    end: region.end(a),
                    len,
                });
            }
        }
        Ok(())
    }
}

fn read_typed<T>(
    array: &Array<FilesystemStore>,
    subset: &ArraySubset,
) -> std::result::Result<ChunkData, zarrs::array::ArrayError>
where
    T: Element + zarrs::array::ElementOwned,
{
    let a: ArrayD<T> = array.retrieve_array_subset_opt(subset, &codec_options())?;
    Ok(T::into_chunk(a))
}

impl ChunkSource for ZarrSource {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    /// Reads `region`, decoding only the stored chunks that overlap it; unwritten chunks read
    /// as the fill value.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] for a region outside the array; [`Error::ZarrCorruptChunk`]
    /// (naming the chunk) when a stored chunk does not decode; [`Error::Io`] for read errors.
    fn read_region(&self, region: &Region) -> Result<ChunkData> {
        self.check_region(region)?;
        if let Some(codec) = self.stream {
            let mut out: Option<ChunkData> = None;
            self.stream_pieces(codec, region, BAND_ELEMS, true, &mut |r, data| {
                if r == region {
                    out = Some(data);
                } else {
                    out.get_or_insert_with(|| ChunkData::zeros(self.dtype, region.shape()))
                        .assign_region(&r.relative_to(region), &data);
                }
                Ok(())
            })?;
            return Ok(out.unwrap_or_else(|| ChunkData::zeros(self.dtype, region.shape())));
        }
        let ranges: Vec<std::ops::Range<u64>> = (0..region.ndim())
            .map(|a| region.start()[a] as u64..region.end(a) as u64)
            .collect();
        let subset = ArraySubset::new_with_ranges(&ranges);
        let result = crate::dispatch_dtype!(self.dtype, T => read_typed::<T>(&self.array, &subset));
        result.map_err(|e| {
            let chunk = if matches!(e, zarrs::array::ArrayError::CodecError(_)) {
                self.locate_bad_chunk(region)
            } else {
                None
            };
            map_array_error(&self.display, chunk, e)
        })
    }

    fn read_pieces(
        &self,
        region: &Region,
        piece_elems: usize,
        f: &mut dyn FnMut(&Region, ChunkData) -> Result<()>,
    ) -> Result<()> {
        self.check_region(region)?;
        match self.stream {
            Some(codec) => self.stream_pieces(codec, region, piece_elems.max(1), false, f),
            None => f(region, self.read_region(region)?),
        }
    }

    /// Whole stored chunks are decoded (a streamed read stops after the last band it needs,
    /// but a column slice needs every band).
    fn read_cost_bytes(&self, region: &Region) -> u64 {
        let chunk = self.store_chunk.iter().product::<usize>() * self.dtype.size_bytes();
        (self.grid.chunks_overlapping(region).len() * chunk) as u64
    }

    /// A streamed read holds a decoder and one band; zarrs holds a chunk's compressed bytes
    /// and, for a chunk only partly inside the region, the whole decoded chunk.
    fn read_overhead_bytes(&self, region: &Region) -> u64 {
        let _ = region;
        match self.stream {
            Some(_) => STREAM_OVERHEAD_BYTES + (BAND_ELEMS * self.dtype.size_bytes()) as u64,
            None => {
                2 * self.grid.chunk_shape().iter().product::<usize>() as u64
                    * self.dtype.size_bytes() as u64
            }
        }
    }

    fn describe(&self) -> String {
        let v = match self.version() {
            ZarrVersion::V2 => "v2",
            ZarrVersion::V3 => "v3",
        };
        format!(
            "zarr {} ({v}, {} {:?}, chunks {:?})",
            self.display.display(),
            self.dtype,
            self.grid.shape(),
            self.grid.chunk_shape()
        )
    }
}
