//! Streaming chunk encoding and decoding, for the codec chains that allow it.
//!
//! zarrs encodes and decodes a chunk as one buffer: writing a 400 MB chunk holds the chunk,
//! a copy in the codec's byte order and the compressed output at once (about 1.2 GB), and
//! reading one holds the compressed file and the decoded chunk. For the chains most arrays
//! use — `bytes` (little endian) alone or followed by `zstd` in v3, no compressor or `zstd`
//! with C order in v2 — a chunk file is just the element bytes in C order, or one zstd frame
//! of them. Such a chunk can be written from tiles as they are computed (the chunk never
//! exists in RAM) and read back band by band (the compressed file is never held whole).
//!
//! ```text
//!   tiles in C order ──▶ zstd stream encoder ──▶ chunk file        (write: a few MiB)
//!   chunk file ──▶ zstd stream decoder ──▶ bands of whole rows ──▶ consumer   (read)
//! ```
//!
//! Frames are written with their content size, as zarrs' bulk decoder and numcodecs expect.
//! Everything else (blosc, gzip, sharding, big-endian, F order, filters) goes through zarrs.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use zarrs::array::ArrayMetadata;

use crate::chunk::ChunkData;
use crate::codec::{chunk_bytes, chunk_from_bytes};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::io::ChunkStream;

/// Bytes a streaming encoder or decoder holds besides its band: zstd's context (a level-3
/// window is 2 MiB, its tables about as much) and the I/O buffers.
pub(crate) const STREAM_OVERHEAD_BYTES: u64 = 8 << 20;

/// How a chunk file's bytes relate to the chunk's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamCodec {
    /// The element bytes, little endian, C order.
    Raw,
    /// One zstd frame of them.
    Zstd {
        /// Compression level for writing.
        level: i32,
        /// Whether frames carry a content checksum.
        checksum: bool,
    },
}

impl StreamCodec {
    /// The streaming codec of an array's metadata, if its chain is one that streams.
    pub(crate) fn of(metadata: &ArrayMetadata) -> Option<StreamCodec> {
        if !cfg!(target_endian = "little") {
            return None;
        }
        let m = match metadata {
            ArrayMetadata::V3(m) => serde_json::to_value(m).ok()?,
            ArrayMetadata::V2(m) => serde_json::to_value(m).ok()?,
        };
        if m["zarr_format"] == 3 {
            let codecs = m["codecs"].as_array()?;
            let (first, rest) = codecs.split_first()?;
            let name = |c: &Value| -> Option<String> {
                match c {
                    Value::String(s) => Some(s.clone()),
                    _ => c["name"].as_str().map(str::to_owned),
                }
            };
            if name(first)? != "bytes" {
                return None;
            }
            let endian = first
                .get("configuration")
                .and_then(|c| c.get("endian"))
                .and_then(Value::as_str);
            if endian.is_some_and(|e| e != "little") {
                return None;
            }
            match rest {
                [] => Some(StreamCodec::Raw),
                [z] if name(z)? == "zstd" => {
                    let conf = z.get("configuration");
                    let level = conf
                        .and_then(|c| c.get("level"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let checksum = conf
                        .and_then(|c| c.get("checksum"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    Some(StreamCodec::Zstd {
                        level: level as i32,
                        checksum,
                    })
                }
                _ => None,
            }
        } else {
            if m["order"] != "C" {
                return None;
            }
            match &m["filters"] {
                Value::Null => {}
                Value::Array(f) if f.is_empty() => {}
                _ => return None,
            }
            let dt = m["dtype"].as_str()?;
            if !(dt.starts_with('<') || dt.starts_with('|')) {
                return None;
            }
            match &m["compressor"] {
                Value::Null => Some(StreamCodec::Raw),
                c if c["id"] == "zstd" => Some(StreamCodec::Zstd {
                    level: c["level"].as_i64().unwrap_or(0) as i32,
                    checksum: c["checksum"].as_bool().unwrap_or(false),
                }),
                _ => None,
            }
        }
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

enum Sink {
    Raw(std::io::BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, File>),
}

/// Writes one stored chunk from its elements in C order, tile after tile, then pads the
/// stored chunk's remaining elements (the overhang of an edge chunk) with the fill value.
///
/// The bytes go to a hidden file beside the chunk's, renamed over it only when the chunk is
/// complete: a failed or abandoned stream never leaves a truncated chunk (which matters when
/// writing a region of an existing array in place).
pub(crate) struct ChunkFileWriter {
    path: PathBuf,
    partial: PathBuf,
    sink: Option<Sink>,
    dtype: DType,
    /// Bytes the stored chunk holds.
    total: u64,
    written: u64,
    /// Bytes of data (the region inside the array); the rest is padding.
    data: u64,
    fill: Vec<u8>,
}

impl ChunkFileWriter {
    /// Creates the chunk file (and its folders). `data_elems` of the `stored_elems` come from
    /// [`write`](ChunkStream::write); the rest are `fill` (one element's bytes).
    pub(crate) fn create(
        path: PathBuf,
        codec: StreamCodec,
        dtype: DType,
        stored_elems: u64,
        data_elems: u64,
        fill: Vec<u8>,
    ) -> Result<ChunkFileWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = path.with_file_name(format!(".{name}.spillway-partial"));
        let file = File::create(&partial).map_err(|e| io_err(&partial, e))?;
        let size = dtype.size_bytes() as u64;
        let total = stored_elems * size;
        let sink = match codec {
            StreamCodec::Raw => Sink::Raw(std::io::BufWriter::with_capacity(1 << 20, file)),
            StreamCodec::Zstd { level, checksum } => {
                let mut enc =
                    zstd::stream::write::Encoder::new(file, level).map_err(|e| io_err(&path, e))?;
                enc.include_checksum(checksum)
                    .and_then(|_| enc.include_contentsize(true))
                    .and_then(|_| enc.set_pledged_src_size(Some(total)))
                    .map_err(|e| io_err(&path, e))?;
                Sink::Zstd(enc)
            }
        };
        Ok(ChunkFileWriter {
            path,
            partial,
            sink: Some(sink),
            dtype,
            total,
            written: 0,
            data: data_elems * size,
            fill,
        })
    }

    /// The hidden file the bytes go to until the chunk is complete.
    pub(crate) fn partial_path(&self) -> &Path {
        &self.partial
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let r = match self.sink.as_mut().expect("open until finish") {
            Sink::Raw(w) => w.write_all(bytes),
            Sink::Zstd(e) => e.write_all(bytes),
        };
        r.map_err(|e| io_err(&self.path, e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

impl ChunkStream for ChunkFileWriter {
    fn write(&mut self, tile: &ChunkData) -> Result<()> {
        if tile.dtype() != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "chunk stream of {} got a {} tile",
                self.dtype,
                tile.dtype()
            )));
        }
        let bytes = chunk_bytes(tile);
        if self.written + bytes.len() as u64 > self.data {
            return Err(Error::InvalidArgument(format!(
                "chunk stream to {} got {} bytes more than its {} bytes of data",
                self.path.display(),
                self.written + bytes.len() as u64 - self.data,
                self.data
            )));
        }
        self.put(&bytes)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        if self.written != self.data {
            return Err(Error::InvalidArgument(format!(
                "chunk stream to {} ended after {} of {} bytes",
                self.path.display(),
                self.written,
                self.data
            )));
        }
        if self.total > self.data {
            let block: Vec<u8> = self
                .fill
                .iter()
                .copied()
                .cycle()
                .take(self.fill.len() * 8192)
                .collect();
            while self.written < self.total {
                let n = (self.total - self.written).min(block.len() as u64) as usize;
                self.put(&block[..n])?;
            }
        }
        let partial = self.partial.clone();
        match self.sink.take().expect("open until finish") {
            Sink::Raw(w) => w
                .into_inner()
                .map_err(|e| io_err(&partial, e.into_error()))?
                .flush()
                .map_err(|e| io_err(&partial, e))?,
            Sink::Zstd(e) => {
                e.finish().map_err(|e| io_err(&partial, e))?;
            }
        }
        std::fs::rename(&partial, &self.path).map_err(|e| io_err(&self.path, e))
    }
}

impl Drop for ChunkFileWriter {
    /// An unfinished stream removes its partial file.
    fn drop(&mut self) {
        if self.sink.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Reads one stored chunk as consecutive runs of elements in C order.
pub(crate) struct ChunkFileReader {
    display: PathBuf,
    chunk: Vec<u64>,
    reader: Option<Box<dyn Read + Send>>,
}

impl ChunkFileReader {
    /// Opens the file of chunk `chunk` (its grid index, for messages); `None` when it does not
    /// exist (the chunk reads as fill).
    pub(crate) fn open(
        path: PathBuf,
        display: &Path,
        chunk: Vec<u64>,
        codec: StreamCodec,
    ) -> Result<Option<ChunkFileReader>> {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let reader: Box<dyn Read + Send> = match codec {
            StreamCodec::Raw => Box::new(BufReader::with_capacity(1 << 20, file)),
            StreamCodec::Zstd { .. } => Box::new(
                zstd::stream::read::Decoder::new(file)
                    .map_err(|e| io_err(&path, e))?
                    .single_frame(),
            ),
        };
        Ok(Some(ChunkFileReader {
            display: display.to_path_buf(),
            chunk,
            reader: Some(reader),
        }))
    }

    /// Reads the next `shape` elements (in C order) as a chunk.
    ///
    /// # Errors
    /// [`Error::ZarrCorruptChunk`] when the file ends early or does not decode.
    pub(crate) fn next(&mut self, dtype: DType, shape: &[usize]) -> Result<ChunkData> {
        let reader = self.reader.as_mut().expect("open");
        chunk_from_bytes(dtype, shape, |buf| {
            reader
                .read_exact(buf)
                .map_err(|e| crate::codec::CodecError(e.to_string()))
        })
        .map_err(|e| Error::ZarrCorruptChunk {
            path: self.display.clone(),
            chunk: Some(self.chunk.clone()),
            detail: e.0,
        })
    }

    /// Checks that nothing follows the last element.
    pub(crate) fn finish(mut self) -> Result<()> {
        let mut reader = self.reader.take().expect("open");
        let mut extra = [0u8; 1];
        match reader.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(Error::ZarrCorruptChunk {
                path: self.display.clone(),
                chunk: Some(self.chunk.clone()),
                detail: "the chunk holds more bytes than its shape".into(),
            }),
            Err(e) => Err(Error::ZarrCorruptChunk {
                path: self.display.clone(),
                chunk: Some(self.chunk.clone()),
                detail: e.to_string(),
            }),
        }
    }
}
