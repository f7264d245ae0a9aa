//! Sources and sinks of chunked data outside the engine: Zarr stores, Parquet files, user
//! closures.
//!
//! A [`ChunkSource`] is an array that already exists somewhere and can be read region by
//! region. A [`ChunkSink`] receives the chunks of a result as the executor computes them, in
//! any order and from several threads, and makes the output complete only in
//! [`ChunkSink::finish`].

pub mod parquet;
pub mod zarr;

use crate::chunk::ChunkData;
use crate::dtype::DType;
use crate::error::Result;
use crate::grid::{ChunkGrid, Region};

/// A stored array that tasks read from.
pub trait ChunkSource: Send + Sync {
    /// Shape, dtype and the chunking the data is stored in.
    fn grid(&self) -> &ChunkGrid;
    /// The element type.
    fn dtype(&self) -> DType;
    /// Reads a region (fetching only the stored chunks that overlap it).
    ///
    /// # Errors
    /// Whatever the storage reports, as a typed error naming the path.
    fn read_region(&self, region: &Region) -> Result<ChunkData>;
    /// A short description for plans and errors, e.g. `zarr data.zarr/temp`.
    fn describe(&self) -> String;
}

/// A destination that the executor streams result chunks into.
pub trait ChunkSink: Send + Sync {
    /// The grid of the output: one write task per chunk of it.
    fn grid(&self) -> &ChunkGrid;
    /// The element type the sink stores.
    fn dtype(&self) -> DType;
    /// Writes one chunk (its region is `grid().chunk_region(index)`); called once per chunk,
    /// in any order, possibly concurrently.
    ///
    /// # Errors
    /// Storage errors.
    fn write_chunk(&self, index: &[usize], data: &ChunkData) -> Result<()>;
    /// Called once after every chunk was written: makes the output complete.
    ///
    /// # Errors
    /// Storage errors.
    fn finish(&self) -> Result<()>;
    /// Called instead of `finish` when the computation failed: must leave nothing that looks
    /// complete.
    fn abort(&self) {}
    /// A short description for plans and errors.
    fn describe(&self) -> String;
    /// Bytes the sink may buffer per chunk while writing, beyond the chunk itself (encoders,
    /// row-group buffers); the planner adds it to each write task's projected bytes.
    fn buffer_bytes_per_chunk(&self) -> u64 {
        0
    }
}
