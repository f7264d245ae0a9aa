//! The header of a spill record.

use super::{CodecError, checksum};
use crate::dtype::DType;

const MAGIC: [u8; 8] = *b"SPWYREC1";
const FIXED: usize = 40;

/// How a record's payload encodes the chunk's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The raw element bytes (C order, native endian): for data that does not compress.
    Raw,
    /// Block-shuffled zstd, as made by [`compress`](super::compress).
    ShuffledZstd,
}

/// What a spill record says about the chunk it holds.
///
/// Layout (little endian): magic `SPWYREC1`, key `u64`, payload length `u64`, raw length `u64`,
/// payload crc32c `u32`, dtype `u8`, encoding `u8`, ndim `u16`, the shape as `u64`s, and a
/// crc32c of all the header bytes before it.
///
/// ```
/// use spillway::DType;
/// use spillway::codec::{Encoding, RecordHeader};
/// let h = RecordHeader { key: 7, dtype: DType::F32, shape: vec![2, 3], encoding: Encoding::Raw,
///     payload_len: 24, raw_len: 24, payload_crc: 99 };
/// let bytes = h.encode();
/// assert_eq!(bytes.len(), h.encoded_len());
/// assert_eq!(RecordHeader::decode(&bytes).unwrap(), h);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The chunk's key.
    pub key: u64,
    /// Element type.
    pub dtype: DType,
    /// Shape of the chunk.
    pub shape: Vec<usize>,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Bytes of payload following the header.
    pub payload_len: u64,
    /// Bytes of the decoded elements.
    pub raw_len: u64,
    /// crc32c of the payload.
    pub payload_crc: u32,
}

impl RecordHeader {
    /// Bytes the encoded header takes: 44 plus 8 per dimension.
    pub fn encoded_len(&self) -> usize {
        Self::len_for_ndim(self.shape.len())
    }

    /// Header bytes for a chunk of `ndim` dimensions.
    pub fn len_for_ndim(ndim: usize) -> usize {
        FIXED + 8 * ndim + 4
    }

    /// The header as bytes.
    ///
    /// # Panics
    /// With more than 65535 dimensions (ndarray cannot build such arrays in practice).
    pub fn encode(&self) -> Vec<u8> {
        let ndim = u16::try_from(self.shape.len()).expect("at most 65535 dimensions");
        let mut b = Vec::with_capacity(self.encoded_len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&self.key.to_le_bytes());
        b.extend_from_slice(&self.payload_len.to_le_bytes());
        b.extend_from_slice(&self.raw_len.to_le_bytes());
        b.extend_from_slice(&self.payload_crc.to_le_bytes());
        b.push(dtype_code(self.dtype));
        b.push(match self.encoding {
            Encoding::Raw => 0,
            Encoding::ShuffledZstd => 1,
        });
        b.extend_from_slice(&ndim.to_le_bytes());
        for &d in &self.shape {
            b.extend_from_slice(&(d as u64).to_le_bytes());
        }
        let crc = checksum(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks a header from the start of `bytes`.
    ///
    /// # Errors
    /// A [`CodecError`] for a short buffer, a wrong magic or header checksum, or an unknown
    /// dtype or encoding.
    pub fn decode(bytes: &[u8]) -> Result<RecordHeader, CodecError> {
        if bytes.len() < FIXED + 4 {
            return Err(CodecError(format!(
                "header is {} bytes, shorter than the minimum {}",
                bytes.len(),
                FIXED + 4
            )));
        }
        if bytes[..8] != MAGIC {
            return Err(CodecError(
                "record does not start with the spill magic".into(),
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let ndim = u16::from_le_bytes([bytes[38], bytes[39]]) as usize;
        let len = Self::len_for_ndim(ndim);
        if bytes.len() < len {
            return Err(CodecError(format!(
                "header of {ndim} dimensions needs {len} bytes, got {}",
                bytes.len()
            )));
        }
        let stored = u32_at(len - 4);
        let actual = checksum(&bytes[..len - 4]);
        if stored != actual {
            return Err(CodecError(format!(
                "header checksum {actual:#010x} does not match the stored {stored:#010x}"
            )));
        }
        let dtype = *DType::ALL
            .get(bytes[36] as usize)
            .ok_or_else(|| CodecError(format!("unknown dtype code {}", bytes[36])))?;
        let encoding = match bytes[37] {
            0 => Encoding::Raw,
            1 => Encoding::ShuffledZstd,
            e => return Err(CodecError(format!("unknown encoding code {e}"))),
        };
        let shape = (0..ndim)
            .map(|i| {
                usize::try_from(u64_at(FIXED + 8 * i))
                    .map_err(|_| CodecError("dimension exceeds usize".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordHeader {
            key: u64_at(8),
            dtype,
            shape,
            encoding,
            payload_len: u64_at(16),
            raw_len: u64_at(24),
            payload_crc: u32_at(32),
        })
    }
}

fn dtype_code(d: DType) -> u8 {
    DType::ALL
        .iter()
        .position(|&x| x == d)
        .expect("every dtype is in ALL") as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordHeader {
        RecordHeader {
            key: 42,
            dtype: DType::F64,
            shape: vec![3, 0, 5, 1],
            encoding: Encoding::ShuffledZstd,
            payload_len: 1234,
            raw_len: 0,
            payload_crc: 0xDEAD_BEEF,
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = header().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                RecordHeader::decode(&b).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert!(RecordHeader::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(RecordHeader::decode(&bytes).unwrap(), header());
    }

    #[test]
    fn zero_dimensional_header() {
        let h = RecordHeader {
            shape: vec![],
            ..header()
        };
        assert_eq!(h.encoded_len(), 44);
        assert_eq!(RecordHeader::decode(&h.encode()).unwrap(), h);
    }
}
