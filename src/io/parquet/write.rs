//! The Parquet sink: one row group per chunk of whole rows, encoded by the thread that
//! delivers it and appended in row order.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::{ArrayD, Ix1, Ix2};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriterOptions, PageStoreFactory,
    compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{
    DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT, EnabledStatistics, WriterProperties,
};
use parquet::file::writer::SerializedFileWriter;
use tempfile::TempPath;

use super::parquet_err;
use super::spill::{SpillFile, SpillStoreFactory};
use crate::chunk::ChunkData;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grid::ChunkGrid;
use crate::io::ChunkSink;

/// Page size the column writers aim for (arrow-rs' default data page size limit); used to
/// estimate the encoder's memory and to decide whether a page index is worth writing.
const PAGE_BYTES: u64 = 1 << 20;

/// At most this many columns have a live writer at once (each holds a codec, about 0.3 MB
/// for zstd level 1, and its page).
const MAX_GROUP_COLS: usize = 8;

/// Columns are encoded in groups of about this many raw bytes (at least one column, at most
/// [`MAX_GROUP_COLS`]).
const GROUP_BYTES: u64 = 256 * 1024;

/// Columns of a chunk whose rows are wider than a memory page are copied out in blocks of
/// whole groups of about this many bytes (at most [`MAX_BLOCK_COLS`] columns): such rows are
/// far apart, and copying one narrow group at a time fetched a cache line and a page-table
/// entry for a few values each time.
const BLOCK_BYTES: u64 = 4 << 20;
const MAX_BLOCK_COLS: usize = 64;

/// RAM the sink lets row groups encoded before their turn keep, all together (at most one
/// row group's worth); their other pages go to the spill file.
const WAITING_RAM_BYTES: u64 = 8 << 20;

/// A column writer's own state beyond its buffers (statistics, level encoders, page
/// metrics; measured about 2.1 KB in Rust allocations).
const WRITER_STATE_BYTES: u64 = 4096;

/// Metadata kept per column chunk until `finish()` (measured with glibc's `mallinfo2`: 764
/// bytes without a page index, 980 with one), or while it waits to be appended (1070 bytes
/// measured: an `ArrowColumnChunk` is 824 bytes, plus its page handles).
const META_PER_COLUMN_CHUNK: u64 = 1152;
const META_PER_COLUMN_CHUNK_WITH_PAGE_INDEX: u64 = 1408;

/// Schemas (the file's and each column group's, Arrow and Parquet) per column.
const SCHEMA_PER_COLUMN: u64 = 1024;

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

/// The mutable part of the sink, behind one lock.
///
/// The file writer is strictly sequential: the thread that appends row group `next` takes it
/// out of `writer` (which is `None` meanwhile) and puts it back once no waiting row group can
/// follow.
struct State {
    phase: Phase,
    writer: Option<SerializedFileWriter<File>>,
    /// Deletes the temporary file when dropped (abort, failure or an unfinished drop).
    temp: Option<TempPath>,
    /// The next row group the file needs.
    next: usize,
    /// Row groups being encoded right now (a second delivery of one is refused).
    in_flight: HashSet<usize>,
    /// Encoded row groups that arrived before their turn.
    pending: BTreeMap<usize, Encoded>,
    /// Bytes of waiting pages held in RAM (at most `ParquetSink::waiting_cap`); the rest
    /// spill.
    waiting_ram: u64,
    buffered_bytes: u64,
    peak_buffered_bytes: u64,
    largest_encoded_bytes: u64,
}

/// Encoded column chunks of one row group that are not in the file yet.
#[derive(Default)]
struct Encoded {
    /// By column group, each vector exactly as long as its group (a waiting column chunk is
    /// 824 bytes before its pages: one vector for all would hold up to twice that, and
    /// only be freed once the whole row group is appended).
    columns: Vec<Vec<ArrowColumnChunk>>,
    /// Their encoded size.
    bytes: u64,
    /// The part of `State::waiting_ram` they hold.
    ram_share: u64,
}

/// A run of adjacent columns whose writers exist at the same time.
///
/// Each group has its own writer factories, built over a Parquet schema of just its columns
/// (the column descriptors compare equal to the file's, so the chunks append to the file's
/// row groups): arrow-rs' factory otherwise creates the writers of *every* column at once.
struct ColumnGroup {
    columns: Range<usize>,
    schema: SchemaRef,
    /// Keeps the encoded pages in memory.
    in_memory: ArrowRowGroupWriterFactory,
    /// Sends the encoded pages to the spill file.
    spilling: ArrowRowGroupWriterFactory,
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
    groups: Vec<ColumnGroup>,
    /// Runs of adjacent groups (indices into `groups`) whose columns are copied out of a
    /// chunk together.
    blocks: Vec<Range<usize>>,
    /// Estimated encoded bytes of one column chunk (the RAM a waiting column takes).
    encoded_column_bytes: u64,
    /// RAM all waiting row groups may keep together; the rest of their pages spill.
    waiting_cap: u64,
    spill: Arc<SpillFile>,
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

/// What the encoder of one row group may hold in memory, by part; see
/// [`ParquetSink::buffer_bytes_per_chunk`](ChunkSink::buffer_bytes_per_chunk).
#[derive(Clone, Copy, Debug)]
struct BufferModel {
    ncols: u64,
    num_row_groups: u64,
    /// Bytes of one column of one row group, unencoded.
    column_raw: u64,
    /// Columns whose writers exist at once.
    group_cols: u64,
    /// Columns copied out of the chunk together.
    block_cols: u64,
    dictionary: bool,
    page_index: bool,
    compression: ParquetCompression,
}

impl BufferModel {
    /// The uncompressed bytes of one page.
    fn page(&self) -> u64 {
        self.column_raw.min(PAGE_BYTES)
    }

    /// An encoded column chunk in memory at worst (incompressible data): the values, the
    /// codec's frame overhead, the spare capacity of the page buffers and the page headers
    /// (measured: 4.2 KB in RAM for a 3.2 KB column), and a dictionary page for integers.
    fn encoded_column(&self) -> u64 {
        let dict = if self.dictionary { self.page() } else { 0 };
        self.column_raw + self.column_raw / 32 + 2048 + dict
    }

    /// One live column writer: the page being built (a growing buffer: up to twice its
    /// content) and its compressed copy, a dictionary for integers, the codec's contexts
    /// (allocated by C code, invisible to Rust's allocator) and the writer's own state.
    fn writer(&self) -> u64 {
        let dict = if self.dictionary { 2 * self.page() } else { 0 };
        3 * self.page() + dict + codec_bytes(self.compression, self.page()) + WRITER_STATE_BYTES
    }

    /// Footer metadata the file writer keeps for every column chunk until `finish()` (a bit
    /// more while a chunk waits to be appended), plus the schemas.
    fn metadata(&self) -> u64 {
        let per_chunk = if self.page_index {
            META_PER_COLUMN_CHUNK_WITH_PAGE_INDEX
        } else {
            META_PER_COLUMN_CHUNK
        };
        self.ncols * (self.num_row_groups * per_chunk + SCHEMA_PER_COLUMN)
    }

    /// RAM that row groups encoded before their turn may keep, all together: one row
    /// group's pages, at most [`WAITING_RAM_BYTES`].
    fn waiting(&self) -> u64 {
        (self.ncols * self.encoded_column()).min(WAITING_RAM_BYTES)
    }

    fn total(&self) -> u64 {
        let waiting = self.waiting();
        self.block_cols * self.column_raw
            + self.group_cols * (self.writer() + self.encoded_column())
            + waiting
            + self.metadata()
            + 64 * 1024
    }
}

/// Bytes a codec holds while a writer lives: zstd keeps a compression and a decompression
/// context (101 KB together, measured) and, once it compressed a page, a workspace that grows
/// with the level and the page size (measured with glibc's `mallinfo2` for 40 KB and 1 MiB
/// pages; the figures here round up).
fn codec_bytes(compression: ParquetCompression, page: u64) -> u64 {
    const K: u64 = 1024;
    match compression {
        ParquetCompression::None => 0,
        ParquetCompression::Snappy => 64 * K,
        ParquetCompression::Zstd(level) => {
            let small = page <= 64 * K;
            let workspace = match level {
                ..=1 => [256 * K, 640 * K],
                2 => [320 * K, 832 * K],
                3 | 4 => [640 * K, 1408 * K],
                5..=7 => [896 * K, 6 * K * K],
                8..=12 => [1280 * K, 11 * K * K + 512 * K],
                _ => [1792 * K, 19 * K * K],
            };
            104 * K + workspace[usize::from(!small)]
        }
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
        let mut seen = HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "parquet column name {dup:?} is given more than once"
            )));
        }
        drop(seen);
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
        let chunk_rows = grid.chunk_shape()[0];
        let column_raw = (chunk_rows * dtype.size_bytes()) as u64;
        // A column chunk that fits one page gains nothing from a page index (column index
        // and offset index): its statistics and its one page's offset are in the column
        // chunk's metadata already. With thousands of columns the index is a sizeable part of
        // the metadata the writer keeps until `finish()` (measured: 88 of 824 bytes per
        // column chunk), so it is written only when chunks have several pages.
        let page_index = column_raw > PAGE_BYTES || chunk_rows > DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT;
        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(row_group_rows))
            // Dictionary encoding roughly halves the write speed of floats and rarely pays
            // off on them (measured: 127 vs 233 MB/s, and a larger file). Integers keep it:
            // they are often labels or counts with few distinct values.
            .set_dictionary_enabled(!dtype.is_float());
        if !page_index {
            props = props
                .set_statistics_enabled(EnabledStatistics::Chunk)
                .set_offset_index_disabled(true);
        }
        let props = props.build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props.clone()))
            .map_err(|e| parquet_err(&path, e))?;
        // The low-level writer lets each row group be encoded on the thread that delivers it
        // and appended in order, column group by column group.
        let (writer, _) = writer
            .into_serialized_writer()
            .map_err(|e| parquet_err(&path, e))?;

        // A few live writers at a time: fewer when columns are long.
        let group_cols = usize::try_from(GROUP_BYTES / column_raw.max(1))
            .unwrap_or(MAX_GROUP_COLS)
            .clamp(1, MAX_GROUP_COLS)
            .min(ncols);
        // Rows narrower than a memory page are copied group by group; wider ones in blocks.
        let row_bytes = (ncols * dtype.size_bytes()) as u64;
        let block_groups = if row_bytes <= 4096 {
            1
        } else {
            usize::try_from(BLOCK_BYTES / (group_cols as u64 * column_raw).max(1))
                .unwrap_or(usize::MAX)
                .clamp(1, (MAX_BLOCK_COLS / group_cols).max(1))
        };
        let spill = Arc::new(SpillFile::new(dir));
        let spill_factory: Arc<dyn PageStoreFactory> =
            Arc::new(SpillStoreFactory(Arc::clone(&spill)));
        let groups = (0..ncols)
            .step_by(group_cols)
            .map(|j0| {
                let columns = j0..(j0 + group_cols).min(ncols);
                let schema: SchemaRef =
                    Arc::new(Schema::new(schema.fields()[columns.clone()].to_vec()));
                // Only the factories are kept: they hold the group's schema and properties.
                let carrier = ArrowWriter::try_new_with_options(
                    std::io::sink(),
                    Arc::clone(&schema),
                    ArrowWriterOptions::new()
                        .with_properties(props.clone())
                        .with_skip_arrow_metadata(true),
                )?;
                let (carrier, in_memory) = carrier.into_serialized_writer()?;
                let spilling = ArrowRowGroupWriterFactory::new(&carrier, Arc::clone(&schema))
                    .with_page_store_factory(Arc::clone(&spill_factory));
                Ok(ColumnGroup {
                    columns,
                    schema,
                    in_memory,
                    spilling,
                })
            })
            .collect::<std::result::Result<Vec<_>, parquet::errors::ParquetError>>()
            .map_err(|e| parquet_err(&path, e))?;

        let blocks: Vec<Range<usize>> = (0..groups.len())
            .step_by(block_groups)
            .map(|g| g..(g + block_groups).min(groups.len()))
            .collect();
        let block_cols = blocks
            .iter()
            .map(|b| groups[b.end - 1].columns.end - groups[b.start].columns.start)
            .max()
            .unwrap_or(1);

        let num_row_groups = grid.grid_shape()[0];
        let model = BufferModel {
            ncols: ncols as u64,
            num_row_groups: num_row_groups as u64,
            column_raw,
            group_cols: group_cols as u64,
            block_cols: block_cols as u64,
            dictionary: !dtype.is_float(),
            page_index,
            compression: options.compression,
        };

        Ok(ParquetSink {
            num_row_groups,
            path,
            grid,
            dtype,
            one_d,
            schema,
            groups,
            blocks,
            encoded_column_bytes: model.encoded_column(),
            waiting_cap: model.waiting(),
            spill,
            overwrite: options.overwrite,
            buffer_bytes_per_chunk: model.total(),
            state: Mutex::new(State {
                phase: Phase::Open,
                writer: Some(writer),
                temp: Some(temp_path),
                next: 0,
                in_flight: HashSet::new(),
                pending: BTreeMap::new(),
                waiting_ram: 0,
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

    /// Encoded bytes of row groups that arrived early and wait for an earlier one (in RAM up
    /// to a fixed allowance, in the spill file beyond it).
    pub fn buffered_bytes(&self) -> u64 {
        self.lock().buffered_bytes
    }

    /// The most encoded bytes that ever waited at once.
    pub fn peak_buffered_bytes(&self) -> u64 {
        self.lock().peak_buffered_bytes
    }

    /// Bytes of encoded pages that went through the spill file because their row group was
    /// encoded before its turn and the in-memory allowance was taken.
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.total_bytes()
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

    /// An error unless the sink accepts row groups.
    fn check_open(&self, st: &State) -> Result<()> {
        match &st.phase {
            Phase::Open => Ok(()),
            Phase::Finished => Err(self.closed_error("finish() was called")),
            Phase::Closed(why) => Err(self.closed_error(why)),
        }
    }

    /// Takes the file writer to append row group `st.next`.
    fn take_writer(&self, st: &mut State) -> Result<SerializedFileWriter<File>> {
        st.writer.take().ok_or_else(|| {
            parquet_err(
                &self.path,
                "the file writer is gone: an earlier append did not complete",
            )
        })
    }

    /// Encodes the column groups of `block` for row group `k`: copies their columns out of
    /// the chunk in one pass over its rows, then encodes group by group (pages in memory or
    /// in the spill file), handing each group's closed column chunks to `emit`. Returns
    /// their encoded bytes.
    fn encode_block(
        &self,
        block: Range<usize>,
        spill: bool,
        k: usize,
        data: &ChunkData,
        mut emit: impl FnMut(Vec<ArrowColumnChunk>) -> Result<()>,
    ) -> Result<u64> {
        let err = |e| parquet_err(&self.path, e);
        let groups = &self.groups[block];
        let (first, last) = (&groups[0], &groups[groups.len() - 1]);
        let mut arrays =
            column_arrays(data, first.columns.start..last.columns.end, self.one_d).into_iter();
        let mut bytes = 0;
        for group in groups {
            let factory = if spill {
                &group.spilling
            } else {
                &group.in_memory
            };
            let mut writers = factory.create_column_writers(k).map_err(err)?;
            for (writer, field) in writers.iter_mut().zip(group.schema.fields()) {
                // Each Arrow copy is freed once its values are in the writer's page.
                let array = arrays.next().expect("one array per column");
                for leaf in compute_leaves(field, &array).map_err(err)? {
                    writer.write(&leaf).map_err(err)?;
                }
            }
            let mut columns = writers
                .into_iter()
                .map(|w| {
                    let c = w.close()?;
                    bytes += c.close().bytes_written;
                    Ok(c)
                })
                .collect::<std::result::Result<Vec<_>, parquet::errors::ParquetError>>()
                .map_err(err)?;
            // The collect reused the writers' larger allocation; a waiting row group keeps
            // these vectors (measured: 1.8 instead of 1.07 KB per waiting column chunk).
            columns.shrink_to_fit();
            emit(columns)?;
        }
        Ok(bytes)
    }

    /// Appends row group `k` to the file: the column chunks encoded before it was its turn,
    /// then the blocks from `from` on, each column group appended as soon as it is encoded.
    /// Returns the encoded bytes of those blocks.
    fn stream_row_group(
        &self,
        writer: &mut SerializedFileWriter<File>,
        encoded: Vec<Vec<ArrowColumnChunk>>,
        from: usize,
        k: usize,
        data: &ChunkData,
    ) -> Result<u64> {
        let err = |e| parquet_err(&self.path, e);
        let mut rg = writer.next_row_group().map_err(err)?;
        for column in encoded.into_iter().flatten() {
            column.append_to_row_group(&mut rg).map_err(err)?;
        }
        let mut bytes = 0;
        for block in &self.blocks[from..] {
            bytes += self.encode_block(block.clone(), false, k, data, |columns| {
                for column in columns {
                    column.append_to_row_group(&mut rg).map_err(err)?;
                }
                Ok(())
            })?;
        }
        rg.close().map_err(err)?;
        Ok(bytes)
    }

    /// Appends a row group that waited, fully encoded.
    fn append_encoded(
        &self,
        writer: &mut SerializedFileWriter<File>,
        columns: Vec<Vec<ArrowColumnChunk>>,
    ) -> Result<()> {
        let err = |e| parquet_err(&self.path, e);
        let mut rg = writer.next_row_group().map_err(err)?;
        for column in columns.into_iter().flatten() {
            column.append_to_row_group(&mut rg).map_err(err)?;
        }
        rg.close().map_err(err)?;
        Ok(())
    }

    /// Encodes row group `k` and gets it into the file, or into `pending` if an earlier row
    /// group is not in yet.
    ///
    /// Until it is this row group's turn, each column group is encoded into RAM while the
    /// sink's waiting allowance lasts, and into the spill file after that. Once it is its
    /// turn, the thread takes the file writer, appends what it encoded so far and streams the
    /// remaining column groups straight into the file; then it appends the waiting row groups
    /// that follow.
    fn write_row_group(&self, k: usize, data: &ChunkData) -> Result<()> {
        let mut own = Encoded::default();
        let mut from = 0;
        let mut writer = None;
        while from < self.blocks.len() {
            let block = self.blocks[from].clone();
            let spill = {
                let mut st = self.lock();
                if let Err(e) = self.check_open(&st) {
                    st.waiting_ram = st.waiting_ram.saturating_sub(own.ram_share);
                    return Err(e);
                }
                if st.next == k {
                    writer = Some(self.take_writer(&mut st)?);
                    break;
                }
                let columns =
                    self.groups[block.end - 1].columns.end - self.groups[block.start].columns.start;
                let want = columns as u64 * self.encoded_column_bytes;
                if st.waiting_ram + want <= self.waiting_cap {
                    st.waiting_ram += want;
                    own.ram_share += want;
                    false
                } else {
                    true
                }
            };
            let encoded = &mut own.columns;
            let result = self.encode_block(block, spill, k, data, |columns| {
                encoded.push(columns);
                Ok(())
            });
            match result {
                Ok(bytes) => own.bytes += bytes,
                Err(e) => {
                    let mut st = self.lock();
                    st.waiting_ram = st.waiting_ram.saturating_sub(own.ram_share);
                    return Err(e);
                }
            }
            from += 1;
        }

        let mut writer = match writer {
            Some(w) => w,
            None => {
                let mut st = self.lock();
                if let Err(e) = self.check_open(&st) {
                    st.waiting_ram = st.waiting_ram.saturating_sub(own.ram_share);
                    return Err(e);
                }
                st.largest_encoded_bytes = st.largest_encoded_bytes.max(own.bytes);
                if st.next != k {
                    st.buffered_bytes += own.bytes;
                    st.peak_buffered_bytes = st.peak_buffered_bytes.max(st.buffered_bytes);
                    st.pending.insert(k, own);
                    return Ok(());
                }
                self.take_writer(&mut st)?
            }
        };

        // This thread holds the file writer: row group k goes in now.
        let ram_share = own.ram_share;
        let done = own.bytes;
        let mut result = self
            .stream_row_group(&mut writer, own.columns, from, k, data)
            .map(|streamed| done + streamed);
        let mut st = self.lock();
        st.waiting_ram = st.waiting_ram.saturating_sub(ram_share);
        if let Ok(bytes) = result {
            st.largest_encoded_bytes = st.largest_encoded_bytes.max(bytes);
        }
        let mut current = k;
        loop {
            if let Err(e) = result {
                Self::close_with(
                    &mut st,
                    format!("appending row group {current} failed: {e}"),
                );
                return Err(e);
            }
            st.next += 1;
            // Aborted meanwhile: the temporary file is gone; the writer is dropped.
            self.check_open(&st)?;
            current = st.next;
            let Some(waiting) = st.pending.remove(&current) else {
                break;
            };
            st.buffered_bytes -= waiting.bytes;
            drop(st);
            result = self
                .append_encoded(&mut writer, waiting.columns)
                .map(|()| 0);
            st = self.lock();
            st.waiting_ram = st.waiting_ram.saturating_sub(waiting.ram_share);
        }
        st.writer = Some(writer);
        Ok(())
    }

    /// Drops the writer and the temporary file, and remembers why.
    fn close_with(st: &mut State, why: String) {
        st.writer = None;
        st.pending.clear();
        st.buffered_bytes = 0;
        st.waiting_ram = 0;
        st.temp = None; // TempPath's drop deletes the file.
        st.phase = Phase::Closed(why);
    }
}

/// The Arrow arrays of columns `cols` of a chunk (the whole chunk for a 1-d sink), copied in
/// one pass over the rows.
fn column_arrays(data: &ChunkData, cols: Range<usize>, one_d: bool) -> Vec<ArrayRef> {
    /// Copies the columns out through a fixed-rank view: iterating an `IxDyn` view element
    /// by element ran at under 200 MB/s and dominated the write (measured with
    /// `benches/parquet_io.rs`); a 1-d or 2-d view iterates with plain strides. A row-major
    /// chunk is transposed a tile of rows at a time: in a wide chunk the rows are far apart,
    /// and copying column by column fetched a cache line and a page-table entry per value
    /// (the copy then took 16% of a wide write's time).
    fn copy<T: Copy>(a: &ArrayD<T>, cols: Range<usize>, one_d: bool) -> Vec<Vec<T>> {
        if one_d {
            let v = a
                .view()
                .into_dimensionality::<Ix1>()
                .expect("a 1-d sink gets 1-d chunks");
            return vec![match v.as_slice() {
                Some(s) => s.to_vec(),
                None => v.iter().copied().collect(),
            }];
        }
        let v = a
            .view()
            .into_dimensionality::<Ix2>()
            .expect("a 2-d sink gets 2-d chunks");
        let (rows, ncols) = v.dim();
        match v.as_slice() {
            Some(s) => {
                // A cache-blocked transpose: the row segments of a tile of rows stay in cache
                // while each column takes its values from them.
                const TILE: usize = 64;
                let mut out: Vec<Vec<T>> = cols.clone().map(|_| Vec::with_capacity(rows)).collect();
                for r0 in (0..rows).step_by(TILE) {
                    let n = TILE.min(rows - r0);
                    for (col, j) in out.iter_mut().zip(cols.clone()) {
                        let src = s[r0 * ncols + j..].iter().step_by(ncols).take(n);
                        col.extend(src.copied());
                    }
                }
                out
            }
            None => {
                let mut out: Vec<Vec<T>> = cols.clone().map(|_| Vec::with_capacity(rows)).collect();
                for row in v.rows() {
                    for (o, j) in out.iter_mut().zip(cols.clone()) {
                        o.push(row[j]);
                    }
                }
                out
            }
        }
    }
    fn arrays<T: Copy, A: arrow_array::Array + From<Vec<T>> + 'static>(
        v: Vec<Vec<T>>,
    ) -> Vec<ArrayRef> {
        v.into_iter()
            .map(|c| Arc::new(A::from(c)) as ArrayRef)
            .collect()
    }
    match data {
        ChunkData::Bool(a) => arrays::<_, BooleanArray>(copy(a, cols, one_d)),
        ChunkData::U8(a) => arrays::<_, UInt8Array>(copy(a, cols, one_d)),
        ChunkData::I32(a) => arrays::<_, Int32Array>(copy(a, cols, one_d)),
        ChunkData::I64(a) => arrays::<_, Int64Array>(copy(a, cols, one_d)),
        ChunkData::F32(a) => arrays::<_, Float32Array>(copy(a, cols, one_d)),
        ChunkData::F64(a) => arrays::<_, Float64Array>(copy(a, cols, one_d)),
    }
}

impl ChunkSink for ParquetSink {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    /// Encodes the row group on the calling thread, a few columns at a time. If every earlier
    /// row group is in the file, each group of columns is appended as soon as it is encoded,
    /// followed by any waiting successors; otherwise the row group waits, encoded, in RAM up
    /// to a fixed allowance and in the spill file beyond it.
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
        {
            let mut st = self.lock();
            self.check_open(&st)?;
            if k < st.next || st.pending.contains_key(&k) || !st.in_flight.insert(k) {
                return Err(Error::InvalidArgument(format!(
                    "row group {k} of {} was written twice",
                    self.path.display()
                )));
            }
        }
        let result = if data.dtype() == self.dtype {
            self.write_row_group(k, data)
        } else {
            self.write_row_group(k, &data.cast(self.dtype))
        };
        self.lock().in_flight.remove(&k);
        result
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
        if st.next != self.num_row_groups || st.writer.is_none() {
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
            let writer = st.writer.take().expect("checked above");
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

    /// What encoding one row group may hold beyond the chunk itself, for the planner to
    /// budget. Only the metadata grows with the number of columns:
    ///
    /// | part | bytes |
    /// |---|---|
    /// | Arrow copies of the columns being encoded | a group of columns, or a block of up to 64 when rows are wider than a page |
    /// | live column writers (up to 8) | per column: its page and the compressed page, the codec's contexts and workspace (about 0.36 MB for zstd 1 and small pages), a dictionary for integers |
    /// | their closed column chunks, until appended | per column: the encoded column (about its raw size at worst) |
    /// | row groups encoded before their turn | their pages up to one row group's worth (at most 8 MiB) in RAM, for the whole sink; the rest goes to the spill file |
    /// | footer metadata kept until `finish()`, or while a chunk waits | 1.125 KiB per column chunk (columns × row groups), 1.375 KiB with a page index, plus 1 KiB per column of schemas |
    ///
    /// The metadata and the waiting pages belong to the sink rather than to one task, so
    /// every write task declares all of them: counted twice when two write tasks run, but
    /// never missing from the budget while one does.
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
