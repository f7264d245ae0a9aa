//! The Parquet sink: one row group per chunk of whole rows, encoded by the thread that
//! delivers it and appended in row order.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::{ArrayD, Ix1, Ix2};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use tempfile::TempPath;

use super::parquet_err;
use crate::chunk::ChunkData;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::ChunkGrid;
use crate::io::ChunkSink;

/// Page size the column writers aim for (arrow-rs' default data page size limit); used only
/// to estimate the encoder's scratch memory.
const PAGE_BYTES: u64 = 1 << 20;

/// The compression codec of the pages.
///
/// ```
/// use spillway::io::parquet::ParquetCompression;
/// assert_eq!(ParquetCompression::default(), ParquetCompression::Zstd(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    /// No compression: the fastest to write and read (652 MB/s measured on f64 here).
    None,
    /// Snappy: fast (about 500 MB/s on f64 here) with a modest ratio; pandas' default.
    Snappy,
    /// Zstandard at a level from 1 to 22.
    ///
    /// The default is level 1: on full-precision f64 it wrote 277 MB/s against 233 MB/s for
    /// level 3, with the same file size (160 MB for 240 MB of data), because such data is
    /// mostly incompressible mantissa bits and higher levels only spend time on them.
    Zstd(i32),
}

impl Default for ParquetCompression {
    fn default() -> Self {
        ParquetCompression::Zstd(1)
    }
}

impl ParquetCompression {
    fn to_parquet(self) -> Result<Compression> {
        Ok(match self {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).map_err(|e| {
                    Error::InvalidArgument(format!("zstd level {level} for parquet: {e}"))
                })?)
            }
        })
    }
}

/// How many rows go into one row group.
///
/// ```
/// use spillway::DType;
/// use spillway::io::parquet::RowGroupSize;
/// assert_eq!(RowGroupSize::Rows(1000).resolve(3, DType::F64, 64).unwrap(), 1000);
/// // 3 f64 columns are 24 bytes a row: 1 MiB holds 43690 rows.
/// assert_eq!(RowGroupSize::Bytes(1 << 20).resolve(3, DType::F64, 64).unwrap(), 43690);
/// assert_eq!(RowGroupSize::FollowChunks.resolve(3, DType::F64, 64).unwrap(), 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowGroupSize {
    /// One row group per row chunk of the array (the default): no re-chunking is needed, so
    /// a row group is written as soon as its chunk is computed.
    #[default]
    FollowChunks,
    /// A fixed number of rows per row group (the last one may be shorter).
    Rows(usize),
    /// About this many uncompressed bytes per row group (at least one row).
    Bytes(u64),
}

impl RowGroupSize {
    /// The number of rows per row group for `ncols` columns of `dtype`, when the array's row
    /// chunks have `chunk_rows` rows.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `Rows(0)` or `Bytes(0)`.
    pub fn resolve(self, ncols: usize, dtype: DType, chunk_rows: usize) -> Result<usize> {
        match self {
            RowGroupSize::FollowChunks => Ok(chunk_rows.max(1)),
            RowGroupSize::Rows(0) | RowGroupSize::Bytes(0) => Err(Error::InvalidArgument(format!(
                "parquet row-group size {self:?} must be positive"
            ))),
            RowGroupSize::Rows(n) => Ok(n),
            RowGroupSize::Bytes(b) => {
                let row_bytes = (ncols.max(1) * dtype.size_bytes()) as u64;
                Ok(usize::try_from((b / row_bytes).max(1)).unwrap_or(usize::MAX))
            }
        }
    }
}

/// Options of a Parquet write.
///
/// ```
/// use spillway::io::parquet::{ParquetCompression, ParquetWriteOptions, RowGroupSize};
/// let opts = ParquetWriteOptions::default()
///     .compression(ParquetCompression::Snappy)
///     .row_groups(RowGroupSize::Rows(65536))
///     .column_names(["x", "y"])
///     .overwrite(true);
/// assert_eq!(opts.column_names.as_deref(), Some(&["x".to_string(), "y".to_string()][..]));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParquetWriteOptions {
    /// The page codec; zstd level 1 by default.
    pub compression: ParquetCompression,
    /// Rows per row group; by default one row group per row chunk.
    pub row_group_size: RowGroupSize,
    /// Column names; by default `c0`, `c1`, … (a 1-d array's one column is `c0`).
    pub column_names: Option<Vec<String>>,
    /// Replace an existing file (only once the new one is complete). Off by default: an
    /// existing path is an [`Error::PathExists`].
    pub overwrite: bool,
}

impl ParquetWriteOptions {
    /// Sets the codec.
    pub fn compression(mut self, compression: ParquetCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the row-group size.
    pub fn row_groups(mut self, size: RowGroupSize) -> Self {
        self.row_group_size = size;
        self
    }

    /// Sets the column names (one per column).
    pub fn column_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.column_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Allows replacing an existing file.
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// Where the sink stands.
enum Phase {
    /// Accepting row groups.
    Open,
    /// The file is complete at its final path.
    Finished,
    /// Aborted or failed: the temporary file is gone; the message says why.
    Closed(String),
}

/// The mutable part of the sink, behind one lock: the file writer is strictly sequential.
struct State {
    phase: Phase,
    writer: Option<SerializedFileWriter<File>>,
    /// Deletes the temporary file when dropped (abort, failure or an unfinished drop).
    temp: Option<TempPath>,
    /// The next row group the file needs.
    next: usize,
    /// Encoded row groups that arrived before their turn.
    pending: BTreeMap<usize, EncodedRowGroup>,
    buffered_bytes: u64,
    peak_buffered_bytes: u64,
    largest_encoded_bytes: u64,
}

/// The compressed pages of one row group, ready to append.
struct EncodedRowGroup {
    columns: Vec<ArrowColumnChunk>,
    bytes: u64,
}

/// Streams a 1-d or 2-d array into a Parquet file, one row group per chunk of rows.
///
/// Each array column becomes a non-nullable Parquet column of the matching type (see the
/// [module docs](super) for the table). The grid is `(row_group_rows,)` or
/// `(row_group_rows, ncols)`: whole rows, so every chunk is exactly one row group.
///
/// ```
/// use spillway::io::ChunkSink;
/// use spillway::io::parquet::{ParquetSink, ParquetSource, ParquetWriteOptions};
/// use spillway::io::ChunkSource;
/// use spillway::{ChunkData, DType, Region};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.parquet");
/// let opts = ParquetWriteOptions::default().column_names(["a", "b"]);
/// let sink = ParquetSink::create(&path, &[3, 2], DType::F64, 2, &opts).unwrap();
/// assert_eq!(sink.grid().chunk_shape(), &[2, 2]);
/// // Row groups may arrive in any order.
/// sink.write_chunk(&[1, 0], &ChunkData::from(ndarray::arr2(&[[5.0, 6.0]]).into_dyn())).unwrap();
/// sink.write_chunk(&[0, 0], &ChunkData::from(ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn())).unwrap();
/// assert!(!path.exists()); // nothing at the final path before finish()
/// sink.finish().unwrap();
///
/// let src = ParquetSource::open(&path, None).unwrap();
/// let all = src.read_region(&Region::whole(&[3, 2])).unwrap();
/// assert_eq!(all.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// assert_eq!(src.row_group_rows(), vec![2, 1]);
/// ```
pub struct ParquetSink {
    path: PathBuf,
    grid: ChunkGrid,
    dtype: DType,
    one_d: bool,
    schema: SchemaRef,
    factory: ArrowRowGroupWriterFactory,
    overwrite: bool,
    num_row_groups: usize,
    buffer_bytes_per_chunk: u64,
    state: Mutex<State>,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("path", &self.path)
            .field("grid", &self.grid)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// The Arrow type a spillway dtype is written as.
pub(super) fn arrow_type(dtype: DType) -> DataType {
    match dtype {
        DType::Bool => DataType::Boolean,
        DType::U8 => DataType::UInt8,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::F32 => DataType::Float32,
        DType::F64 => DataType::Float64,
    }
}

impl ParquetSink {
    /// Creates the temporary file and the writer for an array of `shape` (1-d: one column;
    /// 2-d: one column per array column) with `row_group_rows` rows per row group.
    ///
    /// Nothing appears at `path` until [`finish`](ChunkSink::finish).
    /// `options.row_group_size` is not looked at here: the caller resolves it into
    /// `row_group_rows` with [`RowGroupSize::resolve`] (it needs the array's chunking).
    ///
    /// # Errors
    /// - [`Error::InvalidShape`] for more than 2 dimensions, 0 dimensions or 0 columns;
    /// - [`Error::ShapeMismatch`] when the number of column names is not the number of columns;
    /// - [`Error::InvalidArgument`] for duplicate column names or a bad zstd level;
    /// - [`Error::InvalidChunks`] for `row_group_rows == 0`;
    /// - [`Error::PathExists`] when `path` exists and `options.overwrite` is off;
    /// - [`Error::Io`] when the temporary file cannot be created (e.g. missing directory).
    pub fn create(
        path: impl AsRef<Path>,
        shape: &[usize],
        dtype: DType,
        row_group_rows: usize,
        options: &ParquetWriteOptions,
    ) -> Result<ParquetSink> {
        let path = path.as_ref().to_path_buf();
        let (rows, ncols, one_d) = match *shape {
            [n] => (n, 1, true),
            [n, c] => (n, c, false),
            _ => {
                return Err(Error::InvalidShape {
                    shape: shape.to_vec(),
                    reason: "a Parquet file holds a 1-d array (one column) or a 2-d array (one \
                             column per array column)"
                        .into(),
                });
            }
        };
        if ncols == 0 {
            return Err(Error::InvalidShape {
                shape: shape.to_vec(),
                reason: "a Parquet file needs at least one column".into(),
            });
        }
        let names: Vec<String> = match &options.column_names {
            Some(names) if names.len() != ncols => {
                return Err(Error::ShapeMismatch {
                    op: "parquet column names (one per column)".into(),
                    expected: vec![ncols],
                    actual: vec![names.len()],
                });
            }
            Some(names) => names.clone(),
            None => (0..ncols).map(|j| format!("c{j}")).collect(),
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "parquet column name {dup:?} is given more than once"
            )));
        }
        let grid = if one_d {
            ChunkGrid::new(vec![rows], vec![row_group_rows])?
        } else {
            ChunkGrid::new(vec![rows, ncols], vec![row_group_rows, ncols])?
        };
        let compression = options.compression.to_parquet()?;
        if path.symlink_metadata().is_ok() {
            if !options.overwrite {
                return Err(Error::PathExists { path });
            }
            if path.is_dir() {
                return Err(parquet_err(
                    &path,
                    "is a directory; refusing to replace it with a file",
                ));
            }
        }

        let file_name = path
            .file_name()
            .ok_or_else(|| parquet_err(&path, "the path has no file name"))?
            .to_string_lossy()
            .into_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let prefix = format!(".{file_name}.spillway-tmp-");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).rand_bytes(10);
        // tempfile makes owner-only files; the finished file should get the usual mode
        // (0o666 minus the umask), as `File::create` would give it.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        let (file, temp_path) = temp.into_parts();

        let schema: SchemaRef = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, arrow_type(dtype), false))
                .collect::<Vec<_>>(),
        ));
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(row_group_rows))
            // Dictionary encoding roughly halves the write speed of floats and rarely pays
            // off on them (measured: 127 vs 233 MB/s, and a larger file). Integers keep it:
            // they are often labels or counts with few distinct values.
            .set_dictionary_enabled(!dtype.is_float())
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
            .map_err(|e| parquet_err(&path, e))?;
        // The low-level writer lets each row group be encoded on the thread that delivers it
        // and appended later; ArrowWriter itself would encode everything under one lock.
        let (writer, factory) = writer
            .into_serialized_writer()
            .map_err(|e| parquet_err(&path, e))?;

        let chunk_rows = grid.chunk_shape()[0] as u64;
        let raw = chunk_rows * (ncols * dtype.size_bytes()) as u64;
        let column_raw = chunk_rows * dtype.size_bytes() as u64;
        // Encoded pages of the whole row group (at worst about the raw size, plus headers),
        // the Arrow copy of the one column being encoded, and the column writer's page and
        // compression buffers (twice a page; a dictionary page for integers).
        let scratch =
            2 * column_raw.min(PAGE_BYTES) + if dtype.is_float() { 0 } else { PAGE_BYTES };
        let buffer_bytes_per_chunk = raw + raw / 64 + column_raw + scratch + 64 * 1024;

        Ok(ParquetSink {
            num_row_groups: grid.grid_shape()[0],
            path,
            grid,
            dtype,
            one_d,
            schema,
            factory,
            overwrite: options.overwrite,
            buffer_bytes_per_chunk,
            state: Mutex::new(State {
                phase: Phase::Open,
                writer: Some(writer),
                temp: Some(temp_path),
                next: 0,
                pending: BTreeMap::new(),
                buffered_bytes: 0,
                peak_buffered_bytes: 0,
                largest_encoded_bytes: 0,
            }),
        })
    }

    /// The final path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The column names, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// Encoded bytes of row groups that arrived early and wait for an earlier one.
    pub fn buffered_bytes(&self) -> u64 {
        self.lock().buffered_bytes
    }

    /// The most encoded bytes that ever waited at once.
    pub fn peak_buffered_bytes(&self) -> u64 {
        self.lock().peak_buffered_bytes
    }

    /// The number of row groups appended to the file so far.
    pub fn row_groups_written(&self) -> usize {
        self.lock().next
    }

    /// The largest encoded row group seen so far, in bytes (for checking the buffer estimate).
    pub fn largest_encoded_bytes(&self) -> u64 {
        self.lock().largest_encoded_bytes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed_error(&self, why: &str) -> Error {
        parquet_err(&self.path, format!("the sink is closed: {why}"))
    }

    /// Encodes one chunk into the compressed pages of a row group.
    fn encode(&self, k: usize, data: &ChunkData) -> Result<EncodedRowGroup> {
        let mut writers = self
            .factory
            .create_column_writers(k)
            .map_err(|e| parquet_err(&self.path, e))?;
        for (j, (writer, field)) in writers.iter_mut().zip(self.schema.fields()).enumerate() {
            // One column's Arrow copy at a time, freed once its pages are encoded.
            let array = column_array(data, j, self.one_d);
            for leaf in compute_leaves(field, &array).map_err(|e| parquet_err(&self.path, e))? {
                writer
                    .write(&leaf)
                    .map_err(|e| parquet_err(&self.path, e))?;
            }
        }
        let columns = writers
            .into_iter()
            .map(|w| w.close())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet_err(&self.path, e))?;
        let bytes = columns.iter().map(|c| c.close().bytes_written).sum();
        Ok(EncodedRowGroup { columns, bytes })
    }

    /// Appends one encoded row group to the file.
    fn append(
        path: &Path,
        writer: &mut SerializedFileWriter<File>,
        group: EncodedRowGroup,
    ) -> Result<()> {
        let mut rg = writer.next_row_group().map_err(|e| parquet_err(path, e))?;
        for column in group.columns {
            column
                .append_to_row_group(&mut rg)
                .map_err(|e| parquet_err(path, e))?;
        }
        rg.close().map_err(|e| parquet_err(path, e))?;
        Ok(())
    }

    /// Appends `group` (row group `k`, which is `state.next`) and every waiting successor.
    fn append_in_order(&self, st: &mut State, group: EncodedRowGroup) -> Result<()> {
        let writer = st.writer.as_mut().expect("an open sink has a writer");
        Self::append(&self.path, writer, group)?;
        st.next += 1;
        while let Some(group) = st.pending.remove(&st.next) {
            st.buffered_bytes -= group.bytes;
            let writer = st.writer.as_mut().expect("an open sink has a writer");
            Self::append(&self.path, writer, group)?;
            st.next += 1;
        }
        Ok(())
    }

    /// Drops the writer and the temporary file, and remembers why.
    fn close_with(st: &mut State, why: String) {
        st.writer = None;
        st.pending.clear();
        st.buffered_bytes = 0;
        st.temp = None; // TempPath's drop deletes the file.
        st.phase = Phase::Closed(why);
    }
}

/// The Arrow array of column `j` of a chunk (the whole chunk for a 1-d sink).
fn column_array(data: &ChunkData, j: usize, one_d: bool) -> ArrayRef {
    /// Copies one column out through a fixed-rank view: iterating an `IxDyn` view element
    /// by element ran at under 200 MB/s and dominated the write (measured with
    /// `benches/parquet_io.rs`); a 1-d or 2-d view iterates with plain strides.
    fn col<T: Copy>(a: &ArrayD<T>, j: usize, one_d: bool) -> Vec<T> {
        if one_d {
            let v = a
                .view()
                .into_dimensionality::<Ix1>()
                .expect("a 1-d sink gets 1-d chunks");
            match v.as_slice() {
                Some(s) => s.to_vec(),
                None => v.iter().copied().collect(),
            }
        } else {
            let v = a
                .view()
                .into_dimensionality::<Ix2>()
                .expect("a 2-d sink gets 2-d chunks");
            v.column(j).iter().copied().collect()
        }
    }
    match data {
        ChunkData::Bool(a) => Arc::new(BooleanArray::from(col(a, j, one_d))),
        ChunkData::U8(a) => Arc::new(UInt8Array::from(col(a, j, one_d))),
        ChunkData::I32(a) => Arc::new(Int32Array::from(col(a, j, one_d))),
        ChunkData::I64(a) => Arc::new(Int64Array::from(col(a, j, one_d))),
        ChunkData::F32(a) => Arc::new(Float32Array::from(col(a, j, one_d))),
        ChunkData::F64(a) => Arc::new(Float64Array::from(col(a, j, one_d))),
    }
}

impl ChunkSink for ParquetSink {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    /// Encodes the row group on the calling thread, then appends it (and any waiting
    /// successors) if every earlier row group is in the file; otherwise keeps it, encoded,
    /// until then.
    fn write_chunk(&self, index: &[usize], data: &ChunkData) -> Result<()> {
        let valid = index.len() == self.grid.ndim()
            && index[0] < self.num_row_groups
            && (self.one_d || index[1] == 0);
        if !valid {
            return Err(Error::InvalidArgument(format!(
                "chunk index {index:?} is not in the grid {} of parquet sink {}",
                self.grid,
                self.path.display()
            )));
        }
        let k = index[0];
        let region = self.grid.chunk_region(index);
        if data.shape() != region.shape() {
            return Err(Error::ShapeMismatch {
                op: format!("parquet row group {k} of {}", self.path.display()),
                expected: region.shape().to_vec(),
                actual: data.shape().to_vec(),
            });
        }
        let duplicate = |st: &State| k < st.next || st.pending.contains_key(&k);
        {
            let st = self.lock();
            if let Phase::Closed(why) = &st.phase {
                return Err(self.closed_error(why));
            }
            if duplicate(&st) {
                return Err(Error::InvalidArgument(format!(
                    "row group {k} of {} was written twice",
                    self.path.display()
                )));
            }
        }
        let group = if data.dtype() == self.dtype {
            self.encode(k, data)?
        } else {
            self.encode(k, &data.cast(self.dtype))?
        };

        let mut st = self.lock();
        match &st.phase {
            Phase::Open => {}
            Phase::Finished => return Err(self.closed_error("finish() was called")),
            Phase::Closed(why) => return Err(self.closed_error(why)),
        }
        if duplicate(&st) {
            return Err(Error::InvalidArgument(format!(
                "row group {k} of {} was written twice",
                self.path.display()
            )));
        }
        st.largest_encoded_bytes = st.largest_encoded_bytes.max(group.bytes);
        if k == st.next {
            if let Err(e) = self.append_in_order(&mut st, group) {
                Self::close_with(&mut st, format!("appending row group {k} failed: {e}"));
                return Err(e);
            }
        } else {
            st.buffered_bytes += group.bytes;
            st.peak_buffered_bytes = st.peak_buffered_bytes.max(st.buffered_bytes);
            st.pending.insert(k, group);
        }
        Ok(())
    }

    /// Writes the footer, fsyncs, and renames the temporary file onto the final path (then
    /// fsyncs the directory so the rename survives a crash).
    fn finish(&self) -> Result<()> {
        let mut st = self.lock();
        match &st.phase {
            Phase::Open => {}
            Phase::Finished => return Err(self.closed_error("finish() was already called")),
            Phase::Closed(why) => return Err(self.closed_error(why)),
        }
        if st.next != self.num_row_groups {
            let e = parquet_err(
                &self.path,
                format!(
                    "finish() called with {} of {} row groups written ({} waiting out of order)",
                    st.next,
                    self.num_row_groups,
                    st.pending.len()
                ),
            );
            Self::close_with(&mut st, e.to_string());
            return Err(e);
        }
        let result = (|| {
            let writer = st.writer.take().expect("an open sink has a writer");
            let file = writer
                .into_inner()
                .map_err(|e| parquet_err(&self.path, e))?;
            file.sync_all().map_err(|e| Error::io(&self.path, e))?;
            drop(file);
            let temp = st.temp.take().expect("an open sink has a temporary file");
            let persisted = if self.overwrite {
                temp.persist(&self.path)
            } else {
                temp.persist_noclobber(&self.path)
            };
            // On failure the returned TempPath is dropped here, deleting the temporary file.
            persisted.map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::PathExists {
                        path: self.path.clone(),
                    }
                } else {
                    Error::io(&self.path, e.error)
                }
            })?;
            sync_parent_dir(&self.path);
            Ok(())
        })();
        match result {
            Ok(()) => st.phase = Phase::Finished,
            Err(ref e) => Self::close_with(&mut st, format!("finish() failed: {e}")),
        }
        result
    }

    fn abort(&self) {
        let mut st = self.lock();
        if matches!(st.phase, Phase::Open) {
            Self::close_with(&mut st, "abort() was called".into());
        }
    }

    fn describe(&self) -> String {
        format!("parquet {}", self.path.display())
    }

    fn buffer_bytes_per_chunk(&self) -> u64 {
        self.buffer_bytes_per_chunk
    }
}

/// Makes a rename durable. Best effort: some filesystems refuse to fsync a directory, and
/// the file itself is already complete and synced.
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_group_size_resolution() {
        assert_eq!(
            RowGroupSize::FollowChunks
                .resolve(2, DType::I32, 0)
                .unwrap(),
            1
        );
        assert_eq!(
            RowGroupSize::Bytes(10).resolve(4, DType::F64, 5).unwrap(),
            1
        );
        assert_eq!(
            RowGroupSize::Bytes(800).resolve(1, DType::F64, 5).unwrap(),
            100
        );
        assert!(matches!(
            RowGroupSize::Rows(0).resolve(1, DType::U8, 5),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            RowGroupSize::Bytes(0).resolve(1, DType::U8, 5),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn zstd_level_out_of_range_is_refused() {
        assert!(matches!(
            ParquetCompression::Zstd(99).to_parquet(),
            Err(Error::InvalidArgument(_))
        ));
        assert!(ParquetCompression::Zstd(3).to_parquet().is_ok());
    }

    #[test]
    fn buffer_estimate_covers_incompressible_row_groups() {
        // Pseudo-random bits do not compress: the encoded row group is about the raw size,
        // the worst case the estimate must cover.
        let dir = tempfile::tempdir().unwrap();
        for (codec, dtype) in [
            (ParquetCompression::None, DType::F64),
            (ParquetCompression::Zstd(1), DType::F64),
            (ParquetCompression::Snappy, DType::I64),
        ] {
            let path = dir.path().join(format!("{codec:?}-{dtype}.parquet"));
            let (rows, cols) = (50_000, 3);
            let opts = ParquetWriteOptions::default().compression(codec);
            let sink = ParquetSink::create(&path, &[rows, cols], dtype, rows, &opts).unwrap();
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let bits = ArrayD::from_shape_fn(ndarray::IxDyn(&[rows, cols]), |_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            });
            let chunk = match dtype {
                DType::F64 => {
                    ChunkData::from(bits.mapv(|b| f64::from_bits((b >> 2) | 0x3000_0000_0000_0000)))
                }
                _ => ChunkData::from(bits.mapv(|b| b as i64)),
            };
            sink.write_chunk(&[0, 0], &chunk).unwrap();
            let encoded = sink.largest_encoded_bytes();
            let raw = chunk.nbytes();
            assert!(
                encoded > raw / 2,
                "{codec:?}: {encoded} of {raw} bytes: data should not compress"
            );
            assert!(
                encoded + raw / cols as u64 <= sink.buffer_bytes_per_chunk(),
                "{codec:?}: encoded {encoded} + column copy exceed the estimate {}",
                sink.buffer_bytes_per_chunk()
            );
            sink.finish().unwrap();
        }
    }
}
