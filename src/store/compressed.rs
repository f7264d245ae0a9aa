//! The compressed tier's payload: a chunk as a block-shuffled zstd stream, in RAM.

use crate::chunk::ChunkData;
use crate::codec::{
    chunk_bytes, chunk_from_bytes_into, compress_within, decompress_into, sample_ratio,
};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A compressed chunk. Immutable once made, so readers decode it outside the store's lock
/// through an `Arc`, and it can be written to a spill file as it is.
pub(crate) struct Blob {
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    /// Bytes of the decoded elements.
    pub(crate) raw_len: u64,
    /// The shuffled zstd stream.
    pub(crate) bytes: Vec<u8>,
}

impl Blob {
    /// Compresses a chunk at `level`.
    #[cfg(test)]
    pub(crate) fn encode(chunk: &ChunkData, level: i32) -> Result<Blob> {
        Self::encode_within(chunk, level, usize::MAX, &mut |_| true)
            .map(|b| b.expect("an unbounded compression always finishes"))
    }

    /// Compresses a chunk at `level` when its compressed stream stays under `max_len` bytes
    /// and `grow` grants the RAM for it as it is written (see [`compress_within`]); `None`
    /// otherwise.
    pub(crate) fn encode_within(
        chunk: &ChunkData,
        level: i32,
        max_len: usize,
        grow: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Option<Blob>> {
        let raw = chunk_bytes(chunk);
        let bytes = compress_within(&raw, chunk.dtype().size_bytes(), level, max_len, grow)
            .map_err(|e| Error::InvalidConfig {
                setting: "compression_level",
                reason: e.0,
            })?;
        Ok(bytes.map(|bytes| Blob {
            dtype: chunk.dtype(),
            shape: chunk.shape().to_vec(),
            raw_len: raw.len() as u64,
            bytes,
        }))
    }

    /// RAM the blob takes (what its reservation holds).
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Uncompressed over compressed bytes.
    pub(crate) fn ratio(&self) -> f64 {
        if self.bytes.is_empty() {
            1.0
        } else {
            self.raw_len as f64 / self.bytes.len() as f64
        }
    }

    /// Decodes the chunk into `into` when it is a block of the chunk's dtype and shape (a
    /// pooled buffer), else into a new buffer.
    ///
    /// # Errors
    /// [`Error::CorruptSpill`] when the stream does not decode to the recorded shape.
    pub(crate) fn decode_into(&self, key: u64, into: Option<ChunkData>) -> Result<ChunkData> {
        let elem = self.dtype.size_bytes();
        chunk_from_bytes_into(into, self.dtype, &self.shape, |buf| {
            decompress_into(&self.bytes[..], elem, buf)
        })
        .map_err(|e| Error::CorruptSpill {
            key,
            detail: format!("compressed chunk in RAM: {e}"),
        })
    }
}

/// Whether a chunk's sample compresses at least `min_ratio` at `level`.
pub(crate) fn worth_compressing(chunk: &ChunkData, level: i32, min_ratio: f64) -> Option<f64> {
    if chunk.is_empty() {
        return None;
    }
    let r = sample_ratio(&chunk_bytes(chunk), chunk.dtype().size_bytes(), level);
    (r >= min_ratio).then_some(r)
}
