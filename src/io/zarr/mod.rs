//! Zarr v2 and v3 stores on the local filesystem, read and written through
//! [zarrs](https://docs.rs/zarrs).
//!
//! # Reading
//!
//! [`ZarrSource`] opens one array (v2 or v3, detected from the metadata) and serves regions of
//! it. The store's regular chunk grid becomes the array's chunking; a region read fetches and
//! decodes only the stored chunks that overlap the region, and chunks that were never written
//! read as the fill value. Anything spillway cannot represent is refused when the array is
//! opened, not when a task first touches it: data types other than bool, uint8, int32, int64,
//! float32 and float64 ([`Error::ZarrUnsupportedDType`]), unknown codecs and irregular chunk
//! grids ([`Error::ZarrUnsupported`]), invalid metadata ([`Error::ZarrMetadata`]), paths that
//! hold no array ([`Error::NotZarr`]). A chunk that fails to decode is an
//! [`Error::ZarrCorruptChunk`] naming the chunk.
//!
//! # Writing, and how an incomplete store is told apart
//!
//! ```text
//!   ZarrSink::create("out.zarr")                finish()
//!        │                                         │
//!        ▼                                         ▼
//!   .out.zarr.spillway-tmp-XXXXXX/  ──chunks──▶  rename ──▶ out.zarr/   (complete)
//!        │            (metadata + every chunk)
//!        └── abort() / drop without finish / crash: the hidden temp dir is removed
//!            (or, after a crash, left behind under its hidden name); nothing at out.zarr
//! ```
//!
//! A [`ZarrSink`] (or a [`ZarrGroupWriter`]) writes the whole store — metadata and every chunk
//! — into a hidden sibling directory `.<name>.spillway-tmp-<random>` and renames it to the
//! final path in `finish()`, after the last chunk was written. So **a store exists at the final
//! path only once it is complete**: a reader that finds nothing there knows the write did not
//! finish, and a reader never sees a half-written store under the name it asked for. With
//! `overwrite`, the old store is moved aside to `.<name>.spillway-old-<random>` only in
//! `finish()`, the new one renamed into place, and the old one deleted; if that rename fails
//! the old store is put back. (Between the two renames there is a moment with nothing at the
//! path, never a partial store.) Overwriting refuses a path that is neither a Zarr node nor an
//! empty directory, so a typo cannot delete an unrelated directory. A process killed mid-write
//! leaves only the hidden temp directory, which is safe to delete. (Files are not
//! `fsync`ed: the scheme protects against failed and killed writes, not against power loss.)
//!
//! Each chunk is encoded and written when [`ChunkSink::write_chunk`](crate::io::ChunkSink)
//! receives it, then dropped: the sink buffers nothing but the chunk being encoded. zarrs'
//! own codec parallelism is set to one thread per call, because the executor already writes
//! several chunks in parallel and two levels of parallelism would multiply peak memory.
//!
//! Region writes ([`ZarrSink::open_region`], dask's `region=`) write into an existing array in
//! place. They are checked (dtype, bounds, chunk alignment) before anything is written, so bad
//! input changes nothing; but a computation that fails midway leaves the chunks written so
//! far, exactly as dask does.

mod group;
mod options;
mod sink;
mod source;
mod staging;
mod stream;

use std::path::{Path, PathBuf};

pub use group::ZarrGroupWriter;
pub use options::{BloscCompressor, ZarrCompression, ZarrVersion, ZarrWriteOptions};
pub use sink::ZarrSink;
pub use source::{ZarrSource, list_arrays};

use zarrs::array::{ArrayCreateError, ArrayError, CodecOptions};
use zarrs::plugin::PluginCreateError;
use zarrs::storage::StorageError;

use crate::error::Error;

/// Normalises an array path inside a store to `/a/b` form (`/` for the root).
///
/// Refuses empty, `.` and `..` components so that a path cannot escape the store.
pub(crate) fn normalize_node_path(store: &Path, array_path: &str) -> Result<String, Error> {
    let mut parts = Vec::new();
    for part in array_path.split('/') {
        match part {
            "" => {}
            "." | ".." => {
                return Err(Error::InvalidArgument(format!(
                    "zarr node path {array_path:?} in {} may not contain `.` or `..`",
                    store.display()
                )));
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The path of a node for messages: the store path joined with the node path.
pub(crate) fn display_path(store: &Path, node_path: &str) -> PathBuf {
    let rel = node_path.trim_start_matches('/');
    if rel.is_empty() {
        store.to_path_buf()
    } else {
        store.join(rel)
    }
}

/// Codec options for one encode or decode call: one codec thread, because the executor
/// parallelises over chunks already (see the module docs).
pub(crate) fn codec_options() -> CodecOptions {
    CodecOptions::default().with_concurrent_target(1)
}

/// Maps an error from opening or creating a zarrs array to a typed spillway error.
pub(crate) fn map_create_error(path: &Path, e: ArrayCreateError) -> Error {
    let path = path.to_path_buf();
    match e {
        ArrayCreateError::DataTypeCreateError(p) => match p {
            PluginCreateError::Unsupported(u) => {
                let what = unsupported_name(&u);
                let dtype = what.strip_prefix("data type ").unwrap_or(&what).to_string();
                Error::ZarrUnsupportedDType { path, dtype }
            }
            other => Error::ZarrMetadata {
                path,
                detail: format!("invalid data type: {other}"),
            },
        },
        ArrayCreateError::CodecsCreateError(p) => plugin_error(path, "codec", p),
        ArrayCreateError::ChunkGridCreateError(p) => plugin_error(path, "chunk grid", p),
        ArrayCreateError::ChunkKeyEncodingCreateError(p) => {
            plugin_error(path, "chunk key encoding", p)
        }
        ArrayCreateError::StorageTransformersCreateError(p) => {
            plugin_error(path, "storage transformer", p)
        }
        ArrayCreateError::UnsupportedZarrV2Array(msg) => {
            if msg.contains("data type") || msg.contains("dtype") {
                Error::ZarrUnsupportedDType { path, dtype: msg }
            } else {
                let what = msg.strip_suffix(" is not supported").unwrap_or(&msg);
                let what = match what.split_once(' ') {
                    Some((kind, name)) if !name.contains(' ') => format!("{kind} `{name}`"),
                    _ => what.to_string(),
                };
                Error::ZarrUnsupported { path, what }
            }
        }
        ArrayCreateError::MissingMetadata => Error::NotZarr {
            path,
            reason: "no zarr.json or .zarray metadata".into(),
        },
        ArrayCreateError::StorageError(s) => map_storage_error(path, s),
        other @ (ArrayCreateError::InvalidFillValue { .. }
        | ArrayCreateError::InvalidFillValueMetadata { .. }
        | ArrayCreateError::InvalidChunkGridDimensionality(..)
        | ArrayCreateError::InvalidDimensionNames(..)
        | ArrayCreateError::InvalidSubchunkShape(..)
        | ArrayCreateError::AdditionalFieldUnsupportedError(..)
        | ArrayCreateError::NodePathError(..)) => Error::ZarrMetadata {
            path,
            detail: other.to_string(),
        },
    }
}

fn plugin_error(path: PathBuf, kind: &str, p: PluginCreateError) -> Error {
    match p {
        PluginCreateError::Unsupported(u) => {
            let what = unsupported_name(&u);
            let name = what.strip_prefix(kind).map(str::trim).unwrap_or(&what);
            Error::ZarrUnsupported {
                path,
                what: format!("{kind} `{name}`"),
            }
        }
        other => Error::ZarrMetadata {
            path,
            detail: format!("invalid {kind}: {other}"),
        },
    }
}

/// `"codec foo is not supported"` -> `"codec foo"` (zarrs' error has no accessors).
fn unsupported_name(u: &zarrs::plugin::PluginUnsupportedError) -> String {
    let s = u.to_string();
    s.strip_suffix(" is not supported")
        .unwrap_or(&s)
        .to_string()
}

/// Maps a zarrs storage error to a typed spillway error.
pub(crate) fn map_storage_error(path: PathBuf, e: StorageError) -> Error {
    match e {
        StorageError::IOError(io) => Error::Io {
            path: Some(path),
            source: std::io::Error::new(io.kind(), io.to_string()),
        },
        StorageError::InvalidMetadata(key, msg) => Error::ZarrMetadata {
            path,
            detail: format!("{key}: {msg}"),
        },
        StorageError::MissingMetadata(prefix) => Error::NotZarr {
            path,
            reason: format!("no zarr metadata under `{prefix}`"),
        },
        other => Error::Zarr {
            path,
            message: other.to_string(),
        },
    }
}

/// Maps an error from reading or writing array data to a typed spillway error.
///
/// Codec errors mean the stored bytes did not decode: a truncated or corrupt chunk.
pub(crate) fn map_array_error(path: &Path, chunk: Option<Vec<u64>>, e: ArrayError) -> Error {
    let path = path.to_path_buf();
    match e {
        ArrayError::CodecError(c) => Error::ZarrCorruptChunk {
            path,
            chunk,
            detail: c.to_string(),
        },
        ArrayError::StorageError(s) => map_storage_error(path, s),
        other => Error::Zarr {
            path,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_paths_are_normalised_and_cannot_escape() {
        let s = Path::new("s.zarr");
        assert_eq!(normalize_node_path(s, "/").unwrap(), "/");
        assert_eq!(normalize_node_path(s, "").unwrap(), "/");
        assert_eq!(normalize_node_path(s, "a/b/").unwrap(), "/a/b");
        assert_eq!(normalize_node_path(s, "//a").unwrap(), "/a");
        assert!(matches!(
            normalize_node_path(s, "/a/../b"),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(display_path(s, "/"), PathBuf::from("s.zarr"));
        assert_eq!(display_path(s, "/g/a"), PathBuf::from("s.zarr/g/a"));
    }
}
