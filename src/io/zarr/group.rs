//! Writing several arrays into one Zarr group: [`ZarrGroupWriter`].

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::dtype::DType;
use crate::error::{Error, Result};

use super::normalize_node_path;
use super::options::{Layout, ZarrVersion, ZarrWriteOptions, array_metadata_json};
use super::sink::{SinkState, ZarrSink, ancestors, write_group_metadata};
use super::staging::Staging;

/// What the group writer and its member sinks share.
pub(crate) struct GroupShared {
    pub(crate) staging: Staging,
    version: ZarrVersion,
    inner: Mutex<GroupInner>,
}

#[derive(Default)]
struct GroupInner {
    /// Group nodes written so far (always holds `/`).
    groups: BTreeSet<String>,
    /// Array nodes and the state of their sinks, by slot.
    arrays: Vec<(String, SinkState)>,
    /// `finish` has started: no new members.
    finishing: bool,
}

impl GroupShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn member_finished(&self, slot: usize) -> Result<()> {
        // The group must still be open: finishing a member of an abandoned group is an error.
        drop(self.staging.guard()?);
        self.lock().arrays[slot].1 = SinkState::Finished;
        Ok(())
    }

    /// One member failed: the group can never be complete, so its temp dir goes now.
    pub(crate) fn member_aborted(&self, slot: usize) {
        self.lock().arrays[slot].1 = SinkState::Aborted;
        self.staging.discard();
    }
}

/// Writes a Zarr group holding several arrays (and subgroups) in one go, with consolidated
/// metadata so that `xarray.open_zarr` opens it with one read and without warnings.
///
/// Create the writer, take one [`ZarrSink`] per array with [`array`](Self::array) (they may be
/// written concurrently, by one executor run), finish every sink, then
/// [`finish`](Self::finish) the group. Everything is written into one hidden temp directory
/// that `finish` renames into place, so the group — all its arrays — appears at once, and only
/// when complete. Dropping the writer (or aborting it, or aborting any member sink) without
/// finishing deletes everything.
///
/// For xarray, give every array `dimension_names` in its options.
///
/// ```
/// use spillway::io::ChunkSink;
/// use spillway::io::zarr::{list_arrays, ZarrGroupWriter, ZarrWriteOptions};
/// use spillway::{ChunkData, DType};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ds.zarr");
/// let group = ZarrGroupWriter::create(&path, &ZarrWriteOptions::default().attribute("title", "demo"))?;
/// let temp = group.array("temp", &[2, 3], DType::F32, &[2, 3],
///                        &ZarrWriteOptions::default().dimension_names(["y", "x"]))?;
/// let time = group.array("time", &[2], DType::I64, &[2],
///                        &ZarrWriteOptions::default().dimension_names(["y"]))?;
/// temp.write_chunk(&[0, 0], &ChunkData::from(ndarray::ArrayD::<f32>::zeros(vec![2, 3])))?;
/// time.write_chunk(&[0], &ChunkData::from(ndarray::arr1(&[10i64, 20]).into_dyn()))?;
/// temp.finish()?;
/// time.finish()?;
/// group.finish()?;
/// assert_eq!(list_arrays(&path)?, vec!["/temp", "/time"]);
/// # Ok::<(), spillway::Error>(())
/// ```
pub struct ZarrGroupWriter {
    shared: Arc<GroupShared>,
}

impl std::fmt::Debug for ZarrGroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrGroupWriter")
            .field("path", &self.shared.staging.final_path())
            .finish()
    }
}

impl ZarrGroupWriter {
    /// Starts a new group at `path`. Of `options`, `version`, `overwrite` and `attributes`
    /// (the group's own attributes) are used.
    ///
    /// # Errors
    /// [`Error::PathExists`] when the path exists and `overwrite` is off; I/O errors.
    pub fn create(path: impl AsRef<Path>, options: &ZarrWriteOptions) -> Result<ZarrGroupWriter> {
        let staging = Staging::create(path.as_ref(), options.overwrite)?;
        write_group_metadata(staging.dir(), "/", options.version, &options.attributes)?;
        let mut inner = GroupInner::default();
        inner.groups.insert("/".into());
        Ok(ZarrGroupWriter {
            shared: Arc::new(GroupShared {
                staging,
                version: options.version,
                inner: Mutex::new(inner),
            }),
        })
    }

    /// The path the group appears at once finished.
    pub fn path(&self) -> &Path {
        self.shared.staging.final_path()
    }

    /// Adds a subgroup (for its attributes; groups on the way to an array are created anyway).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is taken; I/O errors.
    pub fn group(&self, name: &str, attributes: &Map<String, Value>) -> Result<()> {
        let node = self.member_path(name)?;
        let _open = self.shared.staging.guard()?;
        let mut inner = self.shared.lock();
        Self::check_free(&inner, &node, self.path())?;
        self.ensure_ancestors(&mut inner, &node)?;
        write_group_metadata(
            self.shared.staging.dir(),
            &node,
            self.shared.version,
            attributes,
        )?;
        inner.groups.insert(node);
        Ok(())
    }

    /// Adds an array at `name` (`"temp"`, or `"sub/counts"` inside a subgroup) and returns
    /// the sink to stream its chunks into; arguments as for [`ZarrSink::create`]. The array's
    /// `options.version` must be the group's; its `overwrite` is ignored (the group decides).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is taken or the version differs; what
    /// [`ZarrSink::create`] reports for the shapes and options.
    pub fn array(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        chunk_shape: &[usize],
        options: &ZarrWriteOptions,
    ) -> Result<ZarrSink> {
        let node = self.member_path(name)?;
        if options.version != self.shared.version {
            return Err(Error::InvalidArgument(format!(
                "array {node} is {:?} but the group at {} is {:?}; one group holds one Zarr version",
                options.version,
                self.path().display(),
                self.shared.version
            )));
        }
        let layout = Layout::resolve(shape, chunk_shape, options)?;
        let meta = array_metadata_json(dtype, &layout, options)?;
        let _open = self.shared.staging.guard()?;
        let mut inner = self.shared.lock();
        Self::check_free(&inner, &node, self.path())?;
        self.ensure_ancestors(&mut inner, &node)?;
        let slot = inner.arrays.len();
        let sink = ZarrSink::create_member(&self.shared, slot, &node, dtype, &layout, meta)?;
        inner.arrays.push((node, SinkState::Open));
        Ok(sink)
    }

    fn member_path(&self, name: &str) -> Result<String> {
        let node = normalize_node_path(self.path(), name)?;
        if node == "/" {
            return Err(Error::InvalidArgument(format!(
                "a member of the group at {} needs a name",
                self.path().display()
            )));
        }
        Ok(node)
    }

    fn check_free(inner: &GroupInner, node: &str, path: &Path) -> Result<()> {
        if inner.finishing {
            return Err(Error::InvalidArgument(format!(
                "the group at {} is being finished",
                path.display()
            )));
        }
        let taken = inner.groups.contains(node) || inner.arrays.iter().any(|(a, _)| a == node);
        let under_array = inner
            .arrays
            .iter()
            .any(|(a, _)| node.starts_with(&format!("{a}/")));
        if taken || under_array {
            return Err(Error::InvalidArgument(format!(
                "{node} is already {} in the group at {}",
                if taken { "taken" } else { "inside an array" },
                path.display()
            )));
        }
        Ok(())
    }

    fn ensure_ancestors(&self, inner: &mut GroupInner, node: &str) -> Result<()> {
        for g in ancestors(node) {
            if inner.arrays.iter().any(|(a, _)| *a == g) {
                return Err(Error::InvalidArgument(format!(
                    "{node} would be inside the array {g}"
                )));
            }
            if !inner.groups.contains(&g) {
                write_group_metadata(
                    self.shared.staging.dir(),
                    &g,
                    self.shared.version,
                    &Map::new(),
                )?;
                inner.groups.insert(g);
            }
        }
        Ok(())
    }

    /// Writes the consolidated metadata and renames the group into place. Every member sink
    /// must have been finished.
    ///
    /// # Errors
    /// [`Error::Zarr`] when a member is unfinished or was aborted (the group is then
    /// discarded) or the group was already finished; [`Error::PathExists`] if the path
    /// appeared meanwhile; I/O errors.
    pub fn finish(&self) -> Result<()> {
        let staging = &self.shared.staging;
        // Lock order everywhere: the staging guard first, then `inner`; never `inner` while
        // waiting for the staging write lock (commit/discard).
        let pending = self
            .shared
            .lock()
            .arrays
            .iter()
            .find(|(_, s)| *s != SinkState::Finished)
            .cloned();
        if let Some((name, state)) = pending {
            if state == SinkState::Aborted {
                staging.discard();
            }
            return Err(Error::Zarr {
                path: self.path().to_path_buf(),
                message: format!(
                    "cannot finish the group: its array {name} is {state:?}, not finished"
                ),
            });
        }
        let result = {
            let _open = staging.guard()?;
            let mut inner = self.shared.lock();
            inner.finishing = true;
            consolidate(staging.dir(), self.shared.version, &inner)
        };
        match result {
            Ok(()) => staging.commit(),
            Err(e) => {
                staging.discard();
                Err(e)
            }
        }
    }

    /// Deletes everything written so far; member sinks then refuse further chunks.
    pub fn abort(&self) {
        self.shared.staging.discard();
    }
}

impl Drop for ZarrGroupWriter {
    fn drop(&mut self) {
        // Member sinks may outlive the writer, but without it the group can never finish.
        self.shared.staging.discard();
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::ZarrMetadata {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Zarr {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes consolidated metadata in the form zarr-python writes and reads: inline in the root
/// `zarr.json` for v3, a `.zmetadata` file for v2 (keys relative to the root).
fn consolidate(dir: &Path, version: ZarrVersion, inner: &GroupInner) -> Result<()> {
    let nodes: BTreeSet<&str> = inner
        .groups
        .iter()
        .map(String::as_str)
        .chain(inner.arrays.iter().map(|(a, _)| a.as_str()))
        .filter(|n| *n != "/")
        .collect();
    let node_dir = |n: &str| -> PathBuf { dir.join(n.trim_start_matches('/')) };
    match version {
        ZarrVersion::V3 => {
            let mut metadata = Map::new();
            for n in &nodes {
                let p = node_dir(n).join("zarr.json");
                let v = read_json(&p)?.ok_or_else(|| Error::Zarr {
                    path: p.clone(),
                    message: "missing node metadata".into(),
                })?;
                metadata.insert(n.trim_start_matches('/').to_string(), v);
            }
            let root = dir.join("zarr.json");
            let mut v = read_json(&root)?.ok_or_else(|| Error::Zarr {
                path: root.clone(),
                message: "missing group metadata".into(),
            })?;
            v["consolidated_metadata"] =
                json!({"kind": "inline", "must_understand": false, "metadata": metadata});
            write_json(&root, &v)
        }
        ZarrVersion::V2 => {
            let mut metadata = Map::new();
            for n in std::iter::once("/").chain(nodes.iter().copied()) {
                let prefix = if n == "/" {
                    String::new()
                } else {
                    format!("{}/", n.trim_start_matches('/'))
                };
                for file in [".zgroup", ".zarray", ".zattrs"] {
                    if let Some(v) = read_json(&node_dir(n).join(file))? {
                        metadata.insert(format!("{prefix}{file}"), v);
                    }
                }
            }
            write_json(
                &dir.join(".zmetadata"),
                &json!({"metadata": metadata, "zarr_consolidated_format": 1}),
            )
        }
    }
}
