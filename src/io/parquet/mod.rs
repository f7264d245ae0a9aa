//! Parquet files as chunk sources and sinks: one array column per Parquet column, one row
//! group per row chunk.
//!
//! ```text
//!   array (rows × cols)                 Parquet file
//!   ┌────────────┐ rows 0..R   ──────▶  row group 0: c0 │ c1 │ … (each column a chunk of pages)
//!   ├────────────┤ rows R..2R  ──────▶  row group 1
//!   ├────────────┤    …                 …
//!   └────────────┘ last rows   ──────▶  row group n-1 (may be shorter)
//!                                       footer (schema, row-group offsets, statistics)
//! ```
//!
//! # Writing: [`ParquetSink`]
//!
//! The sink's grid has whole rows as chunks, so every `write_chunk` call delivers one complete
//! row group. The calling thread encodes and compresses it (so several executor threads
//! encode different row groups at the same time), then appends it to the file as soon as
//! every earlier row group is in; a row group that arrives early waits in memory in its
//! *encoded* form. The Arrow arrays and pages of a row group are freed once it is on disk.
//!
//! ## Memory usage and limiting
//!
//! Parquet needs a whole row group in memory before it can be written (arrow-rs'
//! `ArrowWriter` buffers it the same way; its `in_progress_size()` / `flush()` pair is how
//! one bounds it there). Here the bound is structural: a row group *is* one chunk, so the
//! buffering per write task is the Arrow copy of the chunk plus its encoded pages, which the
//! sink reports through [`ChunkSink::buffer_bytes_per_chunk`](crate::io::ChunkSink) for the
//! planner to budget. Choose the row-group size with [`RowGroupSize`] (rows or bytes) to make
//! that bound fit the memory limit. Row groups that arrive out of order are kept encoded
//! until their turn; [`ParquetSink::buffered_bytes`] reports them.
//!
//! ## Safe writes
//!
//! The file is written under a hidden temporary sibling name (`.<name>.spillway-tmp-<random>`)
//! and only renamed onto the final path, after an fsync, in `finish()`. An existing path is
//! refused with [`Error::PathExists`] unless
//! [`ParquetWriteOptions::overwrite`] is set, and even then the old file is replaced only on a
//! successful finish. `abort()`, or dropping the sink unfinished, deletes the temporary file.
//!
//! # Reading: [`ParquetSource`]
//!
//! The numeric columns of a file become a 2-d array (rows × columns), or a 1-d array when
//! exactly one column is requested by name. Reads fetch only the requested columns
//! (projection) and only the row groups that overlap the rows asked for, skipping the rows
//! outside the range. See [`ParquetSource::open`] for the dtype rules.
//!
//! # Dtypes
//!
//! | spillway | Arrow / Parquet                | read also accepts (widened losslessly)          |
//! |----------|--------------------------------|-------------------------------------------------|
//! | `bool`   | `Boolean` / BOOLEAN            |                                                 |
//! | `u8`     | `UInt8` / INT32 (UINT_8)       |                                                 |
//! | `i32`    | `Int32` / INT32                | `Int8`, `Int16`, `UInt16`                       |
//! | `i64`    | `Int64` / INT64                | `UInt32`                                        |
//! | `f32`    | `Float32` / FLOAT              | `Float16`                                       |
//! | `f64`    | `Float64` / DOUBLE             |                                                 |
//!
//! `UInt64` is refused: values above `i64::MAX` have no lossless spillway dtype.

mod read;
mod spill;
mod write;

pub use read::{ParquetReadOptions, ParquetSource};
pub use write::{ParquetCompression, ParquetSink, ParquetWriteOptions, RowGroupSize};

use std::path::Path;

use crate::error::Error;

/// Wraps an arrow-rs Parquet error with the file's path.
fn parquet_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
