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
//! row group. The calling thread encodes it a few columns at a time, so several executor
//! threads encode different row groups at once. Parquet wants row groups, and each column
//! chunk inside one, contiguous and in order in the file:
//!
//! ```text
//!   row group k is next in the file:   take the file writer, append each group of columns
//!                                      as soon as it is encoded, then any waiting successors
//!   an earlier one is still missing:   encode into RAM while the sink's waiting allowance
//!                                      (one row group, at most 8 MiB, for all waiting row
//!                                      groups together) lasts, into a spill file beyond it;
//!                                      appended (pages streamed back) when its turn comes
//! ```
//!
//! A row group that was waiting and becomes next while it is still being encoded appends
//! what it has and streams the rest. The spill file is an unnamed temporary file next to the
//! output, emptied whenever nothing waits.
//!
//! ## Memory usage and limiting
//!
//! arrow-rs' `ArrowWriter` keeps a whole row group's pages in memory (its
//! `in_progress_size()` / `flush()` pair is how one bounds it there). Here a row group *is*
//! one chunk, and it never needs to be held encoded in full: in turn it streams into the
//! file; out of turn its pages wait in a bounded allowance or on disk. What encoding one row
//! group may hold beyond the chunk itself is reported through
//! [`ChunkSink::buffer_bytes_per_chunk`](crate::io::ChunkSink) for the planner to budget: the
//! Arrow copies of a block of columns, up to 8 live column writers (pages, codec contexts and
//! workspace), their encoded chunks until appended, the waiting allowance, and the footer
//! metadata (below). Choose the row-group size with [`RowGroupSize`] (rows or bytes): the
//! chunk itself is the largest part. [`ParquetSink::buffered_bytes`] reports the row groups
//! waiting, [`ParquetSink::spilled_bytes`] what went through the spill file.
//!
//! ## Wide tables
//!
//! With thousands of columns, memory is spent per column, not per byte. arrow-rs gives every
//! column writer and every column reader its own codec; for zstd that is a compression and a
//! decompression context, 101 KB allocated by C code (so no Rust allocator sees it), plus a
//! workspace once a page is compressed (0.2 MB at level 1, up to 18 MB at level 19 for a
//! 1 MiB page). Its row-group writer factory creates the writers of all columns at once, and
//! its reader one page reader per projected column: for 10,000 columns that was 1 GB per row
//! group, outside the budget (a 64 MB array written and read back peaked at 1.07 GB and
//! 1.68 GB RSS). So the sink keeps at most 8 column writers alive (each group of columns has
//! its own writer factories over a Parquet schema of just those columns), and the source
//! decodes a batch of columns of about 8 MiB at a time. What still grows with
//! columns × row groups is the footer metadata, which the file writer keeps for every column
//! chunk until `finish()`: about 0.75 KB each (60 MB for 10,000 columns × 8 row groups); the
//! sink declares 1.125 KiB each, which also covers a chunk waiting to be appended. Column chunks that fit in one page get chunk statistics but no page
//! index, which would only repeat them (88 bytes per column chunk). A reader holds the
//! footer too, about 0.5–0.7 KB per column chunk for as long as the source lives. Creating a
//! codec costs 20–35 µs per column and row group on a virtual machine (zstd runs `cpuid`
//! twice, and each exits to the hypervisor): 0.2–0.35 s per 10,000 columns, written or read.
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
//! outside the range; they decode batches of columns (about 8 MiB of values and codecs)
//! into the result, so a read holds its result plus that scratch, whatever the width. See
//! [`ParquetSource::open`] for the dtype rules.
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
