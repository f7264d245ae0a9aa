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
    /// Calls `f` with the elements of `region` in pieces, each with its global region (in no
    /// particular order; together they cover `region` exactly once), holding at most about
    /// `piece_elems` decoded elements besides what `f` keeps. A consumer that scatters the
    /// data elsewhere (a rechunk) then never holds the region whole. The default reads the
    /// region in one piece.
    ///
    /// # Errors
    /// As [`read_region`](Self::read_region), and whatever `f` returns.
    fn read_pieces(
        &self,
        region: &Region,
        piece_elems: usize,
        f: &mut dyn FnMut(&Region, ChunkData) -> Result<()>,
    ) -> Result<()> {
        let _ = piece_elems;
        f(region, self.read_region(region)?)
    }
    /// Bytes a read of `region` fetches and decodes: more than the region's when the store
    /// can only decode whole chunks. The planner weighs it when choosing how to rechunk.
    fn read_cost_bytes(&self, region: &Region) -> u64 {
        (region.len() * self.dtype().size_bytes()) as u64
    }
    /// Bytes a read of `region` holds besides its result (compressed input, decode buffers),
    /// for the planner's projection.
    fn read_overhead_bytes(&self, region: &Region) -> u64 {
        let _ = region;
        0
    }
}

/// The elements of one chunk arriving in C order, tile after tile, so that a sink can encode
/// and write them as they come instead of holding the whole chunk.
pub trait ChunkStream {
    /// The next elements, in C order (any shape; only their count and order matter).
    ///
    /// # Errors
    /// Storage errors; more elements than the chunk holds.
    fn write(&mut self, tile: &ChunkData) -> Result<()>;
    /// Every element was written: complete the chunk.
    ///
    /// # Errors
    /// Storage errors; fewer elements than the chunk holds.
    fn finish(self: Box<Self>) -> Result<()>;
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
    /// Whether [`stream_chunk`](Self::stream_chunk) gives a stream for this chunk (asked when
    /// planning, so that the task's projected bytes leave the chunk out).
    fn streams(&self, index: &[usize]) -> bool {
        let _ = index;
        false
    }
    /// A stream that takes the chunk's elements in C order, when the sink can encode them as
    /// they come (`None`: the chunk is given whole to [`write_chunk`](Self::write_chunk)).
    ///
    /// # Errors
    /// Storage errors opening the chunk.
    fn stream_chunk(&self, index: &[usize]) -> Result<Option<Box<dyn ChunkStream + '_>>> {
        let _ = index;
        Ok(None)
    }
    /// Bytes an open chunk stream holds (encoder state and buffers).
    fn stream_bytes(&self) -> u64 {
        0
    }
}
