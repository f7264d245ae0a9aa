//! Encodings of chunk bytes: byte shuffle, shuffled zstd streams, and the checksummed records
//! of spill files.
//!
//! The store's compressed tier and its spill files share one payload format, so a chunk can
//! move from compressed RAM to disk without being decoded or re-encoded:
//!
//! ```text
//! raw elements (C order, native endian)
//!   -> split into blocks of BLOCK_BYTES, each block byte-shuffled on its own
//!   -> all blocks fed to one zstd frame           = "shuffled zstd" payload
//! ```
//!
//! Shuffling block by block keeps the scratch buffer small (1 MiB, not a second chunk-sized
//! allocation) and, at that block size, costs nothing measurable in ratio or speed next to
//! shuffling the whole chunk (see [`BLOCK_BYTES`]).
//!
//! A spill record is a [`RecordHeader`] followed by its payload (raw bytes or shuffled zstd);
//! the header names the chunk and carries the payload's length and crc32c, and a crc32c of its
//! own, so a short, torn or overwritten record is always detected.

mod bytes;
mod record;
mod shuffle;
mod stream;

pub(crate) use bytes::chunk_from_bytes_into;
pub use bytes::{chunk_bytes, chunk_from_bytes};
pub use record::{Encoding, RecordHeader};
pub use shuffle::{shuffle, unshuffle};
pub(crate) use stream::compress_within;
pub use stream::{BLOCK_BYTES, compress, decompress_into, sample_ratio};

/// A payload that cannot be decoded: truncated, corrupt, or not what its header says.
///
/// The store turns it into [`Error::CorruptSpill`](crate::Error::CorruptSpill) with the chunk's
/// key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// The crc32c (Castagnoli) checksum of `bytes`, hardware-accelerated where the CPU has it.
///
/// ```
/// assert_eq!(spillway::codec::checksum(b"123456789"), 0xE306_9283);
/// ```
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
