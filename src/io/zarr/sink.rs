//! Writing Zarr arrays: [`ZarrSink`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use zarrs::array::{
    Array, ArrayError, ArrayMetadata, ArrayMetadataV2, ArrayMetadataV3, ArraySubset,
};
use zarrs::filesystem::FilesystemStore;

use crate::chunk::ChunkData;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::{ChunkGrid, Region};
use crate::io::{ChunkSink, ChunkSource, ChunkStream};

use super::group::GroupShared;
use super::options::{Layout, ZarrVersion, ZarrWriteOptions, array_metadata_json};
use super::source::{ZarrSource, regular_chunk_shape};
use super::staging::Staging;
use super::stream::{ChunkFileWriter, STREAM_OVERHEAD_BYTES, StreamCodec};
use super::{
    codec_options, display_path, map_create_error, map_storage_error, normalize_node_path,
};

/// Where a sink is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SinkState {
    /// Accepting chunks.
    Open,
    /// `finish()` succeeded.
    Finished,
    /// Aborted, or `finish()` failed.
    Aborted,
}

/// Who makes the written data visible.
enum Owner {
    /// A store of its own in a hidden temp dir, renamed into place by `finish()`; dropping
    /// the `Staging` without a commit deletes it.
    Standalone(Staging),
    /// An array inside a [`ZarrGroupWriter`](super::ZarrGroupWriter)'s temp dir; the group
    /// renames it into place.
    Member {
        group: Arc<GroupShared>,
        slot: usize,
    },
    /// A region of an existing array, written in place.
    Region,
}

/// Streams result chunks into a Zarr v3 or v2 array, one stored chunk (or shard) per
/// [`write_chunk`](ChunkSink::write_chunk), encoded and written at once.
///
/// Created with [`ZarrSink::create`] (a new store), by
/// [`ZarrGroupWriter::array`](super::ZarrGroupWriter::array) (an array inside a new group)
/// or with [`ZarrSink::open_region`] (part of an existing array). New stores appear at their
/// path only in [`finish`](ChunkSink::finish); see the [module docs](super) for the scheme.
///
/// `write_chunk` may be called concurrently for different chunks of [`grid`](ChunkSink::grid):
/// each grid chunk is exactly one stored object (a chunk, or a whole shard when sharding), so
/// no two calls touch the same file.
///
/// ```
/// use spillway::io::ChunkSink;
/// use spillway::io::zarr::{ZarrSink, ZarrVersion, ZarrWriteOptions};
/// use spillway::{ChunkData, DType};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("t.zarr");
/// let opts = ZarrWriteOptions::default().version(ZarrVersion::V2).dimension_names(["t"]);
/// let sink = ZarrSink::create(&path, "/", &[5], DType::I32, &[2], &opts)?;
/// assert_eq!(sink.grid().num_chunks(), 3);
/// for idx in sink.grid().chunk_indices() {
///     let r = sink.grid().chunk_region(&idx);
///     let v: Vec<i32> = (r.start()[0]..r.start()[0] + r.shape()[0]).map(|i| i as i32).collect();
///     sink.write_chunk(&idx, &ChunkData::from(ndarray::Array1::from(v).into_dyn()))?;
/// }
/// assert!(!path.exists(), "nothing at the path before finish");
/// sink.finish()?;
/// assert!(path.join(".zarray").exists());
/// # Ok::<(), spillway::Error>(())
/// ```
pub struct ZarrSink {
    array: Array<FilesystemStore>,
    /// One write task per chunk of this grid (relative to `offset`).
    grid: ChunkGrid,
    /// Where the grid starts in the stored array (non-zero for region writes).
    offset: Vec<usize>,
    /// The stored chunk (or shard) shape, as in the metadata (not clamped to the array).
    store_chunk: Vec<usize>,
    dtype: DType,
    display: PathBuf,
    owner: Owner,
    state: RwLock<SinkState>,
    /// The root of the filesystem store the array lives in (chunk keys are relative to it).
    store_root: PathBuf,
    /// How chunks stream to their files, when the codec chain allows it.
    stream: Option<StreamCodec>,
    /// Partial files of chunk streams still open; `finish` and `abort` delete them, so a
    /// stream left open cannot leave its file inside the finished store.
    open_streams: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl std::fmt::Debug for ZarrSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrSink")
            .field("path", &self.display)
            .field("dtype", &self.dtype)
            .field("grid", &self.grid)
            .finish()
    }
}

/// Writes the metadata of an empty group at `node` under `dir`.
pub(crate) fn write_group_metadata(
    dir: &Path,
    node: &str,
    version: ZarrVersion,
    attributes: &serde_json::Map<String, Value>,
) -> Result<()> {
    let node_dir = dir.join(node.trim_start_matches('/'));
    fs::create_dir_all(&node_dir).map_err(|e| Error::io(&node_dir, e))?;
    let write = |name: &str, v: Value| {
        let p = node_dir.join(name);
        let text = serde_json::to_string_pretty(&v).map_err(|e| Error::Zarr {
            path: p.clone(),
            message: e.to_string(),
        })?;
        fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    match version {
        ZarrVersion::V3 => write(
            "zarr.json",
            json!({"zarr_format": 3, "node_type": "group", "attributes": attributes}),
        ),
        ZarrVersion::V2 => {
            write(".zgroup", json!({"zarr_format": 2}))?;
            if attributes.is_empty() {
                Ok(())
            } else {
                write(".zattrs", Value::Object(attributes.clone()))
            }
        }
    }
}

/// Writes an array's metadata document: `zarr.json` for v3; `.zarray` plus `.zattrs` (the
/// `attributes` member, when not empty) for v2.
fn write_array_metadata(node_dir: &Path, meta: &Value) -> Result<()> {
    fs::create_dir_all(node_dir).map_err(|e| Error::io(node_dir, e))?;
    let write = |name: &str, v: &Value| {
        let p = node_dir.join(name);
        let text = serde_json::to_string_pretty(v).map_err(|e| Error::Zarr {
            path: p.clone(),
            message: e.to_string(),
        })?;
        fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    if meta["zarr_format"] == 2 {
        let mut zarray = meta.clone();
        let attributes = zarray.as_object_mut().and_then(|m| m.remove("attributes"));
        write(".zarray", &zarray)?;
        match attributes {
            Some(Value::Object(a)) if !a.is_empty() => write(".zattrs", &Value::Object(a)),
            _ => Ok(()),
        }
    } else {
        write("zarr.json", meta)
    }
}

/// The ancestors of a node path, root first: `/a/b/c` -> `["/", "/a", "/a/b"]`.
pub(crate) fn ancestors(node: &str) -> Vec<String> {
    let parts: Vec<&str> = node.split('/').filter(|p| !p.is_empty()).collect();
    (0..parts.len())
        .map(|n| format!("/{}", parts[..n].join("/")))
        .collect()
}

fn map_write_error(path: &Path, chunk: &[u64], e: ArrayError) -> Error {
    match e {
        ArrayError::StorageError(s) => map_storage_error(path.to_path_buf(), s),
        ArrayError::CodecError(c) => Error::Zarr {
            path: path.to_path_buf(),
            message: format!("encoding chunk {chunk:?}: {c}"),
        },
        other => Error::Zarr {
            path: path.to_path_buf(),
            message: format!("writing chunk {chunk:?}: {other}"),
        },
    }
}

impl ZarrSink {
    /// Creates a new store at `path` holding one array at `array_path` (`"/"` for a store
    /// that is just the array, `"/a/b"` to put it inside groups), to be written chunk by chunk.
    ///
    /// `chunk_shape` is the chunking of the data that will arrive (normally the computed
    /// array's chunks); `options.chunk_shape` replaces it. With `options.shard_shape`, each
    /// write task is one whole shard ([`grid`](ChunkSink::grid) is the shard grid) holding
    /// inner chunks of the chunk shape.
    ///
    /// # Errors
    /// [`Error::PathExists`] when `path` exists and `options.overwrite` is off (checked now
    /// and again in `finish`); [`Error::InvalidChunks`] for chunk or shard shapes that do not
    /// fit; [`Error::InvalidArgument`] for a bad fill value, dimension names of the wrong
    /// length, or sharding with Zarr v2; I/O errors.
    pub fn create(
        path: impl AsRef<Path>,
        array_path: &str,
        shape: &[usize],
        dtype: DType,
        chunk_shape: &[usize],
        options: &ZarrWriteOptions,
    ) -> Result<ZarrSink> {
        let path = path.as_ref();
        let node = normalize_node_path(path, array_path)?;
        let layout = Layout::resolve(shape, chunk_shape, options)?;
        let meta = array_metadata_json(dtype, &layout, options)?;
        let staging = Staging::create(path, options.overwrite)?;
        for group in ancestors(&node) {
            write_group_metadata(
                staging.dir(),
                &group,
                options.version,
                &serde_json::Map::new(),
            )?;
        }
        let dir = staging.dir().to_path_buf();
        Self::new_in(
            &dir,
            &node,
            display_path(path, &node),
            dtype,
            &layout,
            meta,
            Owner::Standalone(staging),
        )
    }

    /// Creates an array inside a group writer's temp directory.
    pub(crate) fn create_member(
        group: &Arc<GroupShared>,
        slot: usize,
        node: &str,
        dtype: DType,
        layout: &Layout,
        meta: Value,
    ) -> Result<ZarrSink> {
        let display = display_path(group.staging.final_path(), node);
        let dir = group.staging.dir().to_path_buf();
        Self::new_in(
            &dir,
            node,
            display,
            dtype,
            layout,
            meta,
            Owner::Member {
                group: Arc::clone(group),
                slot,
            },
        )
    }

    fn new_in(
        dir: &Path,
        node: &str,
        display: PathBuf,
        dtype: DType,
        layout: &Layout,
        meta: Value,
        owner: Owner,
    ) -> Result<ZarrSink> {
        let store = FilesystemStore::new(dir).map_err(|e| Error::Zarr {
            path: display.clone(),
            message: e.to_string(),
        })?;
        let invalid = |e: serde_json::Error| Error::Zarr {
            path: display.clone(),
            message: format!("building metadata: {e}"),
        };
        let meta_json = meta.clone();
        let metadata = if meta["zarr_format"] == 2 {
            ArrayMetadata::V2(serde_json::from_value::<ArrayMetadataV2>(meta).map_err(invalid)?)
        } else {
            ArrayMetadata::V3(serde_json::from_value::<ArrayMetadataV3>(meta).map_err(invalid)?)
        };
        // zarrs validates the metadata and encodes the chunks ...
        let array = Array::new_with_metadata(Arc::new(store), node, metadata)
            .map_err(|e| map_create_error(&display, e))?;
        // ... but the metadata files are written from our JSON, which is spelled exactly as
        // zarr-python spells it (zarrs would shorten `{"name": "bytes"}` to `"bytes"`, which
        // zarr-python 3.1 rejects, and would add a `_zarrs` attribute).
        write_array_metadata(&dir.join(node.trim_start_matches('/')), &meta_json)?;
        let grid = ChunkGrid::new(layout.shape.clone(), layout.write_shape().to_vec())?;
        let stream = StreamCodec::of(array.metadata());
        Ok(ZarrSink {
            array,
            grid,
            offset: vec![0; layout.shape.len()],
            store_chunk: layout.write_shape().to_vec(),
            dtype,
            display,
            owner,
            state: RwLock::new(SinkState::Open),
            store_root: dir.to_path_buf(),
            stream,
            open_streams: Default::default(),
        })
    }

    /// Opens an existing array to write `region` of it in place (dask's `region=`).
    ///
    /// The region must lie inside the array and be aligned to its stored chunks (shards for a
    /// sharded array): every start a multiple of the chunk shape, every end a multiple of it or
    /// the end of the array. Then each write task covers whole stored chunks and no two tasks
    /// (nor a concurrent writer of a neighbouring region) share one. [`grid`](ChunkSink::grid)
    /// is over the region's shape with the store's chunk shape, and `write_chunk(index)`
    /// writes the store chunk that grid chunk maps to. Data is written in place: see the
    /// [module docs](super) for what a failure leaves.
    ///
    /// ```
    /// use spillway::io::{ChunkSink, ChunkSource};
    /// use spillway::io::zarr::{ZarrSink, ZarrSource, ZarrWriteOptions};
    /// use spillway::{ChunkData, DType, Region};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("r.zarr");
    /// let opts = ZarrWriteOptions::default().fill_value(0.0);
    /// ZarrSink::create(&path, "/", &[6], DType::F64, &[2], &opts)?.finish()?; // all fill
    /// let region = Region::new(vec![2], vec![4]);
    /// let sink = ZarrSink::open_region(&path, "/", &region, DType::F64)?;
    /// for idx in sink.grid().chunk_indices() {
    ///     sink.write_chunk(&idx, &ChunkData::from(ndarray::ArrayD::from_elem(vec![2], 7.0)))?;
    /// }
    /// sink.finish()?;
    /// let all = ZarrSource::open(&path, "/")?.read_region(&Region::whole(&[6]))?;
    /// assert_eq!(all.to_f64_vec(), vec![0.0, 0.0, 7.0, 7.0, 7.0, 7.0]);
    /// // A region that starts inside a chunk is refused before anything is written.
    /// let bad = ZarrSink::open_region(&path, "/", &Region::new(vec![1], vec![2]), DType::F64);
    /// assert!(matches!(bad, Err(spillway::Error::ZarrRegion { .. })));
    /// # Ok::<(), spillway::Error>(())
    /// ```
    ///
    /// # Errors
    /// What [`ZarrSource::open`] reports for the array; [`Error::ZarrDTypeMismatch`] when the
    /// array stores another dtype; [`Error::ZarrRegion`] when the region has the wrong rank,
    /// reaches outside the array, or is not chunk-aligned.
    pub fn open_region(
        path: impl AsRef<Path>,
        array_path: &str,
        region: &Region,
        dtype: DType,
    ) -> Result<ZarrSink> {
        let source = ZarrSource::open(path, array_path)?;
        let display = display_path(source.store_path(), source.array_path());
        if ChunkSource::dtype(&source) != dtype {
            return Err(Error::ZarrDTypeMismatch {
                path: display,
                stored: ChunkSource::dtype(&source).name().into(),
                given: dtype,
            });
        }
        let store_root = source.store_path().to_path_buf();
        let array = source.into_array();
        let shape: Vec<usize> = array.shape().iter().map(|&n| n as usize).collect();
        let store_chunk = regular_chunk_shape(&array).map_err(|name| Error::ZarrUnsupported {
            path: display.clone(),
            what: format!("chunk grid `{name}`"),
        })?;
        let refuse = |reason: String| Error::ZarrRegion {
            path: display.clone(),
            region: region.to_string(),
            reason,
        };
        if region.ndim() != shape.len() {
            return Err(refuse(format!(
                "the region has {} axes, the array {} (shape {shape:?})",
                region.ndim(),
                shape.len()
            )));
        }
        for a in 0..shape.len() {
            let (start, end, c) = (region.start()[a], region.end(a), store_chunk[a]);
            if end > shape[a] {
                return Err(refuse(format!(
                    "axis {a} ends at {end}, past the array's length {} (shape {shape:?})",
                    shape[a]
                )));
            }
            if start % c != 0 || (end % c != 0 && end != shape[a]) {
                return Err(refuse(format!(
                    "axis {a} ({start}..{end}) is not aligned to the stored chunks of {c} (shape {shape:?}, chunks \
                     {store_chunk:?}): starts must be multiples of the chunk size and ends too, unless at the array's end"
                )));
            }
        }
        let grid = ChunkGrid::new(region.shape().to_vec(), store_chunk.clone())?;
        let stream = StreamCodec::of(array.metadata());
        Ok(ZarrSink {
            array,
            grid,
            offset: region.start().to_vec(),
            store_chunk,
            dtype,
            display,
            owner: Owner::Region,
            state: RwLock::new(SinkState::Open),
            store_root,
            stream,
            open_streams: Default::default(),
        })
    }

    /// The array's path for messages (the final store path joined with the array path).
    pub fn path(&self) -> &Path {
        &self.display
    }

    /// The stored chunk a grid chunk maps to, and the region it covers in the array.
    fn stored_chunk(&self, index: &[usize]) -> (Vec<u64>, Region) {
        let region = self.grid.chunk_region(index).translated(&self.offset);
        let chunk = (0..region.ndim())
            .map(|a| (region.start()[a] / self.store_chunk[a]) as u64)
            .collect();
        (chunk, region)
    }

    /// One element of the fill value, as the chunk bytes hold it (little endian).
    fn fill_bytes(&self) -> Vec<u8> {
        self.array.fill_value().as_ne_bytes().to_vec()
    }

    /// Holds a new store's staging folder open (not renamed nor deleted) while writing.
    fn staging_guard(
        &self,
    ) -> Result<Option<std::sync::RwLockReadGuard<'_, super::staging::StagingState>>> {
        Ok(match &self.owner {
            Owner::Standalone(s) => Some(s.guard()?),
            Owner::Member { group, .. } => Some(group.staging.guard()?),
            Owner::Region => None,
        })
    }

    fn streams_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<PathBuf>> {
        self.open_streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deletes the partial files of streams still open (they can no longer complete).
    fn drop_open_streams(&self) {
        for p in self.streams_lock().drain() {
            let _ = fs::remove_file(p);
        }
    }

    fn check_open(&self) -> Result<()> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if *state != SinkState::Open {
            return Err(Error::Zarr {
                path: self.display.clone(),
                message: format!("write_chunk after the sink was {state:?}"),
            });
        }
        Ok(())
    }

    fn check_chunk(&self, index: &[usize], data: &ChunkData) -> Result<Region> {
        let grid_shape = self.grid.grid_shape();
        if index.len() != grid_shape.len() || index.iter().zip(&grid_shape).any(|(&i, &n)| i >= n) {
            return Err(Error::InvalidArgument(format!(
                "chunk index {index:?} is outside the write grid {grid_shape:?} of {}",
                self.display.display()
            )));
        }
        if data.dtype() != self.dtype {
            return Err(Error::ZarrDTypeMismatch {
                path: self.display.clone(),
                stored: self.dtype.name().into(),
                given: data.dtype(),
            });
        }
        let region = self.grid.chunk_region(index);
        if data.shape() != region.shape() {
            return Err(Error::ShapeMismatch {
                op: format!("zarr write_chunk {index:?} to {}", self.display.display()),
                expected: region.shape().to_vec(),
                actual: data.shape().to_vec(),
            });
        }
        Ok(region)
    }
}

impl ChunkSink for ZarrSink {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    /// Encodes one chunk (a whole shard when sharding) and writes it.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] or [`Error::ZarrDTypeMismatch`] when `data` does not fit the
    /// grid chunk, [`Error::InvalidArgument`] for an index outside the grid, [`Error::Zarr`]
    /// after `finish`/`abort`, I/O and encoding errors.
    fn write_chunk(&self, index: &[usize], data: &ChunkData) -> Result<()> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if *state != SinkState::Open {
            return Err(Error::Zarr {
                path: self.display.clone(),
                message: format!("write_chunk after the sink was {state:?}"),
            });
        }
        // Hold the staging directory open (not renamed nor deleted) while writing into it.
        let _staging = match &self.owner {
            Owner::Standalone(s) => Some(s.guard()?),
            Owner::Member { group, .. } => Some(group.staging.guard()?),
            Owner::Region => None,
        };
        let region = self.check_chunk(index, data)?.translated(&self.offset);
        let chunk: Vec<u64> = (0..region.ndim())
            .map(|a| (region.start()[a] / self.store_chunk[a]) as u64)
            .collect();
        let whole = region.shape() == self.store_chunk.as_slice();
        let opts = codec_options();
        let result = if whole {
            crate::dispatch_chunk!(data, a, T => self.array.store_chunk_opt(&chunk, a, &opts))
        } else {
            // An edge chunk (cut by the array's end): zarrs fills the rest with the fill value.
            let ranges: Vec<std::ops::Range<u64>> = (0..region.ndim())
                .map(|a| region.start()[a] as u64..region.end(a) as u64)
                .collect();
            let subset = ArraySubset::new_with_ranges(&ranges);
            crate::dispatch_chunk!(data, a, T => self.array.store_array_subset_opt(&subset, a, &opts))
        };
        result.map_err(|e| map_write_error(&self.display, &chunk, e))
    }

    /// Makes the output complete: renames a new store into place (after which it opens as a
    /// complete array), or marks a group member done. Call once, after every chunk.
    ///
    /// # Errors
    /// [`Error::PathExists`] if something appeared at the path meanwhile and overwrite is off;
    /// [`Error::Zarr`] when called twice or after `abort`; I/O errors of the rename.
    fn finish(&self) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if *state != SinkState::Open {
            return Err(Error::Zarr {
                path: self.display.clone(),
                message: format!("finish() on a sink that is {state:?}"),
            });
        }
        self.drop_open_streams();
        let result = match &self.owner {
            Owner::Standalone(s) => s.commit(),
            Owner::Member { group, slot } => group.member_finished(*slot),
            Owner::Region => Ok(()),
        };
        *state = if result.is_ok() {
            SinkState::Finished
        } else {
            SinkState::Aborted
        };
        result
    }

    /// Deletes a new store's temp directory (a group member abandons its whole group); for a
    /// region write, stops accepting chunks (the chunks already written stay).
    fn abort(&self) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if *state != SinkState::Open {
            return;
        }
        *state = SinkState::Aborted;
        self.drop_open_streams();
        match &self.owner {
            Owner::Standalone(s) => s.discard(),
            Owner::Member { group, slot } => group.member_aborted(*slot),
            Owner::Region => {}
        }
    }

    fn describe(&self) -> String {
        let v = match self.array.metadata() {
            ArrayMetadata::V2(_) => "v2",
            ArrayMetadata::V3(_) => "v3",
        };
        let what = if matches!(self.owner, Owner::Region) {
            "zarr region write"
        } else {
            "zarr write"
        };
        format!(
            "{what} {} ({v}, {} {:?}, write chunks {:?})",
            self.display.display(),
            self.dtype,
            self.grid.shape(),
            self.store_chunk
        )
    }

    /// About two stored chunks' worth: the encoder's output buffer, plus the decoded chunk
    /// zarrs builds for an edge chunk (or a non-contiguous input) before encoding it.
    fn buffer_bytes_per_chunk(&self) -> u64 {
        2 * self.store_chunk.iter().product::<usize>() as u64 * self.dtype.size_bytes() as u64
    }

    /// Chunks stream when the codec chain is plain bytes (+ zstd) and only the first axis of
    /// the chunk may be cut by the array's end (the overhang is then a run of fill at the end
    /// of the chunk's C order).
    fn streams(&self, index: &[usize]) -> bool {
        if self.stream.is_none() || index.len() != self.grid.ndim() {
            return false;
        }
        let (_, region) = self.stored_chunk(index);
        region
            .shape()
            .iter()
            .skip(1)
            .eq(self.store_chunk.iter().skip(1))
    }

    /// Opens the chunk's file (in the staging folder of a new store) and returns a stream
    /// that encodes the elements as they come; `None` where [`streams`](Self::streams) is
    /// false.
    ///
    /// ```
    /// use spillway::io::ChunkSink;
    /// use spillway::io::zarr::{ZarrSink, ZarrSource, ZarrWriteOptions};
    /// use spillway::io::ChunkSource;
    /// use spillway::{ChunkData, DType, Region};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("s.zarr");
    /// let sink = ZarrSink::create(&path, "/", &[5, 2], DType::F64, &[3, 2], &ZarrWriteOptions::default())?;
    /// for idx in sink.grid().chunk_indices() {
    ///     let r = sink.grid().chunk_region(&idx);
    ///     let mut s = sink.stream_chunk(&idx)?.expect("bytes + zstd streams");
    ///     for row in r.start()[0]..r.end(0) {  // one row at a time
    ///         s.write(&ChunkData::from(ndarray::ArrayD::from_elem(vec![2], row as f64)))?;
    ///     }
    ///     s.finish()?;
    /// }
    /// sink.finish()?;
    /// let back = ZarrSource::open(&path, "/")?.read_region(&Region::whole(&[5, 2]))?;
    /// assert_eq!(back.to_f64_vec(), vec![0., 0., 1., 1., 2., 2., 3., 3., 4., 4.]);
    /// # Ok::<(), spillway::Error>(())
    /// ```
    fn stream_chunk(&self, index: &[usize]) -> Result<Option<Box<dyn ChunkStream + '_>>> {
        let Some(codec) = self.stream else {
            return Ok(None);
        };
        if !self.streams(index) {
            return Ok(None);
        }
        self.check_open()?;
        let _staging = self.staging_guard()?;
        let (chunk, region) = self.stored_chunk(index);
        let key = self.array.chunk_key(&chunk);
        let path = self
            .store_root
            .join(key.as_str().strip_prefix('/').unwrap_or(key.as_str()));
        let stored: u64 = self.store_chunk.iter().map(|&c| c as u64).product();
        let writer = ChunkFileWriter::create(
            path,
            codec,
            self.dtype,
            stored,
            region.len() as u64,
            self.fill_bytes(),
        )?;
        self.streams_lock()
            .insert(writer.partial_path().to_path_buf());
        Ok(Some(Box::new(GuardedStream {
            writer: Some(Box::new(writer)),
            sink: self,
        })))
    }

    fn stream_bytes(&self) -> u64 {
        STREAM_OVERHEAD_BYTES
    }
}

/// A chunk stream that completes its chunk only while the staging folder is still open.
///
/// The staging guard is held while opening and while completing the chunk, not in between:
/// a stream left open (a leaked or forgotten one) must not block `finish` or `abort` forever.
/// A stream whose store was committed or discarded meanwhile fails to complete.
struct GuardedStream<'a> {
    writer: Option<Box<ChunkFileWriter>>,
    sink: &'a ZarrSink,
}

impl ChunkStream for GuardedStream<'_> {
    fn write(&mut self, tile: &ChunkData) -> Result<()> {
        self.writer.as_mut().expect("open until finish").write(tile)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let writer = self.writer.take().expect("open until finish");
        let partial = writer.partial_path().to_path_buf();
        let _staging = self.sink.staging_guard()?;
        // Still registered means the sink was neither finished nor aborted meanwhile.
        if !self.sink.streams_lock().remove(&partial) {
            return Err(Error::Zarr {
                path: self.sink.display.clone(),
                message: "the store was finished or aborted while this chunk was being written"
                    .into(),
            });
        }
        writer.finish()
    }
}

impl Drop for GuardedStream<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            self.sink.streams_lock().remove(w.partial_path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_listed_root_first() {
        assert_eq!(ancestors("/"), Vec::<String>::new());
        assert_eq!(ancestors("/a"), vec!["/"]);
        assert_eq!(ancestors("/a/b/c"), vec!["/", "/a", "/a/b"]);
    }
}
