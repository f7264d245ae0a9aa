//! The disk tier: checksummed records appended to spill files in a private temporary folder.
//!
//! ```text
//!   spillway-XXXXXX/            a tempfile::TempDir: removed with the store, errors or not
//!     spill-000000.bin          [header|payload][header|payload]...   rotated at ~256 MiB
//!     spill-000001.bin          (the active file: new records are appended here)
//! ```
//!
//! Lifetimes are RAII all the way down, as DataFusion does with its spill files: a
//! [`SpillRecord`] holds its [`SpillFile`]; a file that is no longer the active one is deleted
//! when its last record drops. The active file, once every record in it is gone, is reused
//! from its start (overwritten in place) instead of growing. `max_spill_bytes` caps the bytes of the files that exist
//! (live records plus dead ones waiting for their file to empty).
//!
//! Writes go through `pwrite` at an offset reserved under a short lock, so workers write in
//! parallel and never hold the store's lock during I/O.
//!
//! Reading back: see [`SpillRead`] for the two ways and which one keeps peak RSS lower.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::chunk::ChunkData;
use crate::codec::{
    CodecError, Encoding, RecordHeader, checksum, chunk_from_bytes, chunk_from_bytes_into,
    decompress_into,
};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// How spilled records are read back.
///
/// Measured by `tests/store_rss.rs`: a child process spills 256 MiB through a 64 MiB budget in
/// 8 MiB chunks and reads all of it back; its `ru_maxrss` above a baseline child was +72.0 MiB
/// with `pread` and +80.0 MiB with per-record maps (glibc's mmap threshold fixed, so allocator
/// slack does not blur the figures). That is the budget plus the one decoded chunk for
/// `pread`, and one more record's worth for maps: the mapped pages are touched while decoding
/// and count in RSS, and in its peak, until the map is dropped, however soon that is. So
/// [`SpillRead::Pread`] is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpillRead {
    /// `pread` straight into the decoded chunk (raw records) or through a 1 MiB buffer into
    /// the decompressor (compressed records).
    #[default]
    Pread,
    /// Map just the record with `memmap2`, decode from the map, unmap right after.
    Mmap,
}

/// Buffer between the file and the zstd decoder when reading compressed records.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// One spill file. Deleted when its last handle (the active slot or a record) drops.
pub(crate) struct SpillFile {
    path: PathBuf,
    file: File,
    /// Where the next record goes. Changed only under the tier's state lock.
    end: AtomicU64,
    /// Bytes the file takes: the most `end` has ever been. A reused file is overwritten in
    /// place, so its size does not shrink until it is deleted.
    size: AtomicU64,
    /// The tier's count of bytes in existing files.
    used: Arc<AtomicU64>,
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // Best effort: the folder itself goes with the TempDir in any case.
        let _ = std::fs::remove_file(&self.path);
        self.used
            .fetch_sub(self.size.load(Ordering::Acquire), Ordering::AcqRel);
    }
}

/// A record in a spill file. Dropping the last handle releases its bytes (and the file, once
/// it holds no other record and is no longer the active one).
pub(crate) struct SpillRecord {
    file: Arc<SpillFile>,
    offset: u64,
    pub(crate) header: RecordHeader,
}

impl SpillRecord {
    /// Bytes of header and payload.
    pub(crate) fn len(&self) -> u64 {
        self.header.encoded_len() as u64 + self.header.payload_len
    }

    /// Where the record lives (for messages).
    fn describe(&self) -> String {
        format!("{} at offset {}", self.file.path.display(), self.offset)
    }
}

/// What a record's payload is made of.
pub(crate) enum Payload<'a> {
    /// Raw element bytes.
    Raw(&'a [u8]),
    /// A shuffled-zstd stream of `raw_len` decoded bytes.
    Zstd { bytes: &'a [u8], raw_len: u64 },
}

struct DiskState {
    active: Option<Arc<SpillFile>>,
    next_id: u64,
}

/// The spill files of one store.
pub(crate) struct DiskTier {
    state: Mutex<DiskState>,
    used: Arc<AtomicU64>,
    max_bytes: Option<u64>,
    file_bytes: u64,
    read_mode: SpillRead,
    // Declared last so it is dropped after every file handle above.
    dir: tempfile::TempDir,
}

impl DiskTier {
    pub(crate) fn new(
        parent: Option<&Path>,
        max_bytes: Option<u64>,
        file_bytes: u64,
        read_mode: SpillRead,
    ) -> Result<DiskTier> {
        let mut b = tempfile::Builder::new();
        b.prefix("spillway-");
        let dir = match parent {
            Some(p) => b.tempdir_in(p).map_err(|e| Error::io(p, e))?,
            None => b
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?,
        };
        Ok(DiskTier {
            state: Mutex::new(DiskState {
                active: None,
                next_id: 0,
            }),
            used: Arc::new(AtomicU64::new(0)),
            max_bytes,
            file_bytes: file_bytes.max(1),
            read_mode,
            dir,
        })
    }

    /// The private folder of the spill files.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes of the spill files that exist now.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn allocate(&self, len: u64) -> Result<(Arc<SpillFile>, u64)> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = &st.active {
            let end = a.end.load(Ordering::Acquire);
            // Only the active slot holds the file: no record and no writer is in it, so
            // every byte is dead. Start over at its beginning rather than grow it, and
            // overwrite in place: rewriting page-cached pages is cheaper than truncating
            // and allocating them again (stale bytes past the cursor are never read: each
            // record is found by its offset and checked by its header and checksum).
            if end > 0 && Arc::strong_count(a) == 1 {
                a.end.store(0, Ordering::Release);
            } else if end > 0 && end + len > self.file_bytes {
                st.active = None;
            }
        }
        let growth = match &st.active {
            Some(a) => {
                (a.end.load(Ordering::Acquire) + len).saturating_sub(a.size.load(Ordering::Acquire))
            }
            None => len,
        };
        let used = self.used.load(Ordering::Acquire);
        if let Some(max) = self.max_bytes
            && used + growth > max
        {
            return Err(Error::SpillLimitExceeded {
                requested: len,
                used,
                max,
            });
        }
        let file = match &st.active {
            Some(a) => Arc::clone(a),
            None => {
                let path = self.dir.path().join(format!("spill-{:06}.bin", st.next_id));
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                st.next_id += 1;
                let f = Arc::new(SpillFile {
                    path,
                    file,
                    end: AtomicU64::new(0),
                    size: AtomicU64::new(0),
                    used: Arc::clone(&self.used),
                });
                st.active = Some(Arc::clone(&f));
                f
            }
        };
        let offset = file.end.fetch_add(len, Ordering::AcqRel);
        file.size.fetch_max(offset + len, Ordering::AcqRel);
        self.used.fetch_add(growth, Ordering::AcqRel);
        Ok((file, offset))
    }

    /// Appends a record. On any error nothing refers to the bytes reserved for it, so they
    /// are reclaimed with their file.
    pub(crate) fn write(
        &self,
        key: u64,
        dtype: DType,
        shape: &[usize],
        payload: Payload<'_>,
    ) -> Result<Arc<SpillRecord>> {
        let (encoding, bytes, raw_len) = match payload {
            Payload::Raw(b) => (Encoding::Raw, b, b.len() as u64),
            Payload::Zstd { bytes, raw_len } => (Encoding::ShuffledZstd, bytes, raw_len),
        };
        let header = RecordHeader {
            key,
            dtype,
            shape: shape.to_vec(),
            encoding,
            payload_len: bytes.len() as u64,
            raw_len,
            payload_crc: checksum(bytes),
        };
        let head = header.encode();
        let (file, offset) = self.allocate(head.len() as u64 + bytes.len() as u64)?;
        let rec = Arc::new(SpillRecord {
            file,
            offset,
            header,
        });
        let f = &rec.file;
        f.file
            .write_all_at(&head, offset)
            .map_err(|e| Error::io(&f.path, e))?;
        f.file
            .write_all_at(bytes, offset + head.len() as u64)
            .map_err(|e| Error::io(&f.path, e))?;
        Ok(rec)
    }

    /// Reads a record back and checks it against what the store expects.
    ///
    /// # Errors
    /// [`Error::CorruptSpill`] for a short read, a header that is not the expected one, a
    /// payload checksum mismatch or an undecodable payload; [`Error::Io`] for other I/O
    /// failures.
    #[cfg(test)]
    pub(crate) fn read(&self, rec: &SpillRecord) -> Result<ChunkData> {
        self.read_into(rec, None)
    }

    /// Reads a record into `into` when it is a block of the record's dtype and shape (a
    /// pooled buffer), else into a new buffer.
    pub(crate) fn read_into(
        &self,
        rec: &SpillRecord,
        into: Option<ChunkData>,
    ) -> Result<ChunkData> {
        match self.read_mode {
            SpillRead::Pread => read_pread(rec, into),
            SpillRead::Mmap => read_mmap(rec),
        }
    }
}

fn corrupt(rec: &SpillRecord, detail: impl std::fmt::Display) -> Error {
    Error::CorruptSpill {
        key: rec.header.key,
        detail: format!("{} ({})", detail, rec.describe()),
    }
}

fn io_or_short(rec: &SpillRecord, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        corrupt(rec, "short read: the file ends inside the record")
    } else {
        Error::io(&rec.file.path, e)
    }
}

fn check_header(rec: &SpillRecord, bytes: &[u8]) -> Result<()> {
    let found = RecordHeader::decode(bytes).map_err(|e| corrupt(rec, e))?;
    if found != rec.header {
        return Err(corrupt(
            rec,
            format!(
                "record header {found:?} is not the expected {:?}",
                rec.header
            ),
        ));
    }
    Ok(())
}

fn check_crc(rec: &SpillRecord, crc: u32) -> std::result::Result<(), CodecError> {
    if crc != rec.header.payload_crc {
        return Err(CodecError(format!(
            "payload checksum {crc:#010x} does not match the stored {:#010x}",
            rec.header.payload_crc
        )));
    }
    Ok(())
}

/// Reads the file from `pos` up to `end`, checksumming what passes.
struct PosReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    crc: u32,
    /// The file ended before `end`.
    short: bool,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            self.short = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file ends inside the record",
            ));
        }
        self.crc = crc32c::crc32c_append(self.crc, &buf[..got]);
        self.pos += got as u64;
        Ok(got)
    }
}

fn read_pread(rec: &SpillRecord, into: Option<ChunkData>) -> Result<ChunkData> {
    let h = &rec.header;
    let file = &rec.file.file;
    let mut head = vec![0u8; h.encoded_len()];
    file.read_exact_at(&mut head, rec.offset)
        .map_err(|e| io_or_short(rec, e))?;
    check_header(rec, &head)?;
    let start = rec.offset + head.len() as u64;
    let elem = h.dtype.size_bytes();
    // I/O errors inside the fill closure travel as CodecError; keep the real one aside.
    let mut io_error = None;
    let chunk = chunk_from_bytes_into(into, h.dtype, &h.shape, |buf| {
        if buf.len() as u64 != h.raw_len {
            return Err(CodecError(format!(
                "shape holds {} bytes but the record says {}",
                buf.len(),
                h.raw_len
            )));
        }
        match h.encoding {
            Encoding::Raw => {
                // Straight into the chunk's own buffer: no copy, no extra resident bytes.
                if let Err(e) = file.read_exact_at(buf, start) {
                    let msg = e.to_string();
                    io_error = Some(e);
                    return Err(CodecError(msg));
                }
                check_crc(rec, checksum(buf))
            }
            Encoding::ShuffledZstd => {
                let reader = PosReader {
                    file,
                    pos: start,
                    end: start + h.payload_len,
                    crc: 0,
                    short: false,
                };
                let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
                let decoded = decompress_into(&mut reader, elem, buf).and_then(|()| {
                    // Drain what follows the frame so the checksum covers the whole payload.
                    std::io::copy(&mut reader, &mut std::io::sink())
                        .map(drop)
                        .map_err(|e| CodecError(e.to_string()))
                });
                let inner = reader.into_inner();
                match decoded {
                    Err(_) if inner.short => Err(CodecError(
                        "short read: the file ends inside the record".into(),
                    )),
                    Err(e) => Err(e),
                    Ok(()) => check_crc(rec, inner.crc),
                }
            }
        }
    });
    match (chunk, io_error) {
        (Ok(c), _) => Ok(c),
        (Err(_), Some(e)) => Err(io_or_short(rec, e)),
        (Err(e), None) => Err(corrupt(rec, e)),
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

fn read_mmap(rec: &SpillRecord) -> Result<ChunkData> {
    let h = &rec.header;
    let file = &rec.file.file;
    let len = rec.len();
    // A mapping past the end of the file faults (SIGBUS) when touched: check first.
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(&rec.file.path, e))?
        .len();
    if file_len < rec.offset + len {
        return Err(corrupt(
            rec,
            format!(
                "short read: the file has {file_len} bytes, the record ends at {}",
                rec.offset + len
            ),
        ));
    }
    let page = page_size();
    let start = rec.offset / page * page;
    let delta = (rec.offset - start) as usize;
    // SAFETY: the file is private to this store (a fresh temp folder) and the record is never
    // rewritten while a handle to it exists, so the mapped bytes do not change under us.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(start)
            .len(delta + len as usize)
            .map(file)
    }
    .map_err(|e| Error::io(&rec.file.path, e))?;
    let bytes = &map[delta..];
    let hl = h.encoded_len();
    check_header(rec, &bytes[..hl])?;
    let payload = &bytes[hl..];
    check_crc(rec, checksum(payload)).map_err(|e| corrupt(rec, e))?;
    let elem = h.dtype.size_bytes();
    let chunk = chunk_from_bytes(h.dtype, &h.shape, |buf| {
        if buf.len() as u64 != h.raw_len {
            return Err(CodecError(format!(
                "shape holds {} bytes but the record says {}",
                buf.len(),
                h.raw_len
            )));
        }
        match h.encoding {
            Encoding::Raw => {
                if payload.len() != buf.len() {
                    return Err(CodecError(format!(
                        "raw payload of {} bytes for {} bytes of elements",
                        payload.len(),
                        buf.len()
                    )));
                }
                buf.copy_from_slice(payload);
                Ok(())
            }
            Encoding::ShuffledZstd => decompress_into(payload, elem, buf),
        }
    })
    .map_err(|e| corrupt(rec, e));
    // Unmap now: the record's pages leave RSS as soon as the map is gone.
    drop(map);
    chunk
}
