//! One error type for the whole crate.
//!
//! Every variant carries the numbers a user needs to fix the problem (shapes, axes, byte
//! counts, paths). Nothing in spillway panics on user input: a mistake becomes one of these.

use std::path::PathBuf;

use crate::dtype::DType;

/// The error type of every fallible spillway operation.
///
/// ```
/// use spillway::{Error, Session};
/// let err = Session::builder().memory_limit("lots").build().unwrap_err();
/// assert!(matches!(err, Error::InvalidMemoryLimit { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes cannot be broadcast together (numpy rules).
    #[error("cannot broadcast shapes {left:?} and {right:?} in `{op}`")]
    BroadcastMismatch {
        /// The operation that combined them.
        op: String,
        /// Shape of the left operand.
        left: Vec<usize>,
        /// Shape of the right operand.
        right: Vec<usize>,
    },
    /// Shapes that must agree exactly do not (concatenate, stack, region writes, …).
    #[error("shape mismatch in `{op}`: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        /// The operation.
        op: String,
        /// The shape that was required.
        expected: Vec<usize>,
        /// The shape that was given.
        actual: Vec<usize>,
    },
    /// An axis index is not below the number of dimensions.
    #[error("axis {axis} is out of range for an array of {ndim} dimensions")]
    AxisOutOfRange {
        /// The axis given.
        axis: usize,
        /// The number of dimensions of the array.
        ndim: usize,
    },
    /// The same axis was named twice.
    #[error("axis {axis} is given more than once")]
    DuplicateAxis {
        /// The repeated axis.
        axis: usize,
    },
    /// A shape is not acceptable (too many dimensions, empty where not allowed, too large).
    #[error("invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The shape given.
        shape: Vec<usize>,
        /// Why it was refused.
        reason: String,
    },
    /// A chunk specification does not fit the shape.
    #[error("invalid chunks {chunks} for shape {shape:?}: {reason}")]
    InvalidChunks {
        /// The array's shape.
        shape: Vec<usize>,
        /// The chunk specification, as given.
        chunks: String,
        /// Why it was refused.
        reason: String,
    },
    /// Two dtypes cannot be combined by an operation.
    #[error("`{op}` is not defined for dtypes {left} and {right}")]
    DTypeMismatch {
        /// The operation.
        op: String,
        /// Left dtype.
        left: DType,
        /// Right dtype.
        right: DType,
    },
    /// An operation does not accept this dtype.
    #[error("`{op}` does not accept dtype {dtype}{hint}")]
    UnsupportedDType {
        /// The operation.
        op: String,
        /// The dtype given.
        dtype: DType,
        /// A suggestion, starting with "; " when present.
        hint: String,
    },
    /// A memory size string or number could not be used.
    #[error("invalid memory limit {input:?}: {reason}")]
    InvalidMemoryLimit {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A session setting is invalid.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidConfig {
        /// The setting's name.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A slice or region does not lie inside the array.
    #[error("invalid range {start}..{end} on axis {axis} of length {len}")]
    InvalidRange {
        /// The axis.
        axis: usize,
        /// Start of the range.
        start: usize,
        /// End of the range (exclusive).
        end: usize,
        /// Length of that axis.
        len: usize,
    },
    /// An argument is invalid for a reason not covered by a more specific variant.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested in-memory result would take too large a share of the memory limit.
    #[error(
        "the result would take {result_bytes} bytes, more than the {allowed_bytes} bytes allowed \
         for in-memory results (memory limit {limit_bytes}); write it out with `to_zarr` or \
         `to_parquet` instead, or raise `max_result_fraction`"
    )]
    ResultTooLarge {
        /// Bytes the result would need.
        result_bytes: u64,
        /// Bytes allowed for results.
        allowed_bytes: u64,
        /// The session's memory limit.
        limit_bytes: u64,
    },
    /// A single task of the plan cannot fit the memory limit; the plan is refused before any work.
    #[error(
        "task `{task}` needs {projected_bytes} bytes but the memory limit is {limit_bytes} bytes; \
         {suggestion}"
    )]
    TaskExceedsBudget {
        /// A description of the task.
        task: String,
        /// Its projected bytes.
        projected_bytes: u64,
        /// The memory limit.
        limit_bytes: u64,
        /// How to make it fit (e.g. a smaller chunking).
        suggestion: String,
    },
    /// A reservation could not be granted right now.
    #[error("cannot reserve {requested} bytes: {available} of {limit} bytes available")]
    BudgetExhausted {
        /// Bytes asked for.
        requested: u64,
        /// Bytes still free.
        available: u64,
        /// The limit of the budget.
        limit: u64,
    },
    /// The configured cap on spilled bytes would be exceeded.
    #[error(
        "spilling {requested} more bytes would exceed max_spill_bytes = {max} ({used} already spilled)"
    )]
    SpillLimitExceeded {
        /// Bytes that were to be written.
        requested: u64,
        /// Bytes on disk already.
        used: u64,
        /// The configured cap.
        max: u64,
    },
    /// Spilled data failed its integrity check.
    #[error("corrupt spill record for chunk {key}: {detail}")]
    CorruptSpill {
        /// The chunk key.
        key: u64,
        /// What was wrong.
        detail: String,
    },
    /// A chunk key is not in the store.
    #[error("chunk {0} is not in the store")]
    MissingChunk(u64),
    /// Arrays from different sessions were combined.
    #[error("arrays belong to different sessions")]
    SessionMismatch,
    /// A user-supplied closure panicked while a task ran.
    #[error("a user function panicked in task `{task}`: {message}")]
    UserFunctionPanicked {
        /// The task.
        task: String,
        /// The panic message.
        message: String,
    },
    /// An I/O error, with the path when one is known.
    #[error("I/O error{}: {source}", path.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    Io {
        /// The path involved, if any.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A path exists and overwriting was not requested.
    #[error("{} already exists; pass overwrite to replace it", path.display())]
    PathExists {
        /// The path.
        path: PathBuf,
    },
    /// A Zarr store could not be read or written.
    #[error("zarr error at {}: {message}", path.display())]
    Zarr {
        /// The store or array path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A path exists but holds no Zarr array (or no Zarr node at all) where one was expected.
    #[error("{} is not a Zarr array: {reason}", path.display())]
    NotZarr {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// What was found instead (a plain directory, a group and its members, ...).
        reason: String,
    },
    /// Zarr metadata (`zarr.json`, `.zarray`, ...) is not valid JSON or not valid metadata.
    #[error("invalid zarr metadata at {}: {detail}", path.display())]
    ZarrMetadata {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// What the parser reported.
        detail: String,
    },
    /// A Zarr array has a data type spillway does not support.
    #[error(
        "zarr array at {} has data type {dtype}, which spillway does not support \
         (supported: bool, uint8, int32, int64, float32, float64)",
        path.display()
    )]
    ZarrUnsupportedDType {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// The Zarr data type, as named in the metadata.
        dtype: String,
    },
    /// A Zarr array needs a codec or chunk grid spillway cannot decode.
    #[error("zarr array at {} uses {what}, which spillway cannot read", path.display())]
    ZarrUnsupported {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// The codec or chunk grid, e.g. ``codec `lzma` `` or ``chunk grid `rectilinear` ``.
        what: String,
    },
    /// A stored Zarr chunk could not be decoded: truncated, corrupt, or a failed checksum.
    #[error(
        "corrupt zarr chunk{} at {}: {detail}",
        chunk.as_ref().map(|c| format!(" {c:?}")).unwrap_or_default(),
        path.display()
    )]
    ZarrCorruptChunk {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// The chunk's grid index, when it could be located.
        chunk: Option<Vec<u64>>,
        /// What the decoder reported.
        detail: String,
    },
    /// A region write does not fit the existing Zarr array (outside it, not chunk-aligned, wrong
    /// rank or shape).
    #[error("cannot write region {region} into zarr array at {}: {reason}", path.display())]
    ZarrRegion {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// The region, as `[start..end, ...]`.
        region: String,
        /// Why it was refused, with the array's shape and chunk shape.
        reason: String,
    },
    /// Data of one dtype was to be written into a Zarr array of another.
    #[error("zarr array at {} stores {stored}, but the data is {given}", path.display())]
    ZarrDTypeMismatch {
        /// The store path, with the array path inside it.
        path: PathBuf,
        /// The array's data type.
        stored: String,
        /// The dtype of the data.
        given: DType,
    },
    /// A run report could not be read from JSON or drawn.
    #[error("run report: cannot {action}: {reason}")]
    Report {
        /// What was being done: `parse JSON`, `draw the memory chart`, ….
        action: String,
        /// What went wrong.
        reason: String,
    },
    /// A Parquet file could not be read or written.
    #[error("parquet error at {}: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A requested Parquet column is not in the file.
    #[error("parquet file {} has no column {column:?}; its columns are {available:?}", path.display())]
    ParquetColumnNotFound {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The top-level columns the file has.
        available: Vec<String>,
    },
    /// A Parquet column has a type that spillway cannot read as numbers.
    #[error("parquet column {column:?} in {} has type {arrow_type}: {reason}", path.display())]
    ParquetColumnType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The column's Arrow type, as Arrow prints it.
        arrow_type: String,
        /// Why it cannot be read, and what to do instead.
        reason: String,
    },
    /// A Parquet column holds nulls and no fill value was given.
    #[error(
        "parquet column {column:?} in {} holds {null_count} nulls; spillway arrays have no \
         missing values, so pass a fill value (ParquetReadOptions::fill_nulls)",
        path.display()
    )]
    ParquetNulls {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// How many nulls were found (in the whole file, or in the rows read when the file
        /// carries no null-count statistics).
        null_count: u64,
    },
}

/// The result type of spillway.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with a path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io { path: None, source }
    }
}
