//! The hidden temp directory a store is written into, and its rename into place.
//!
//! See the module docs of [`crate::io::zarr`] for the scheme and what a reader sees.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use crate::error::{Error, Result};

/// Where a staged store is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StagingState {
    /// Being written; writes are accepted.
    Open,
    /// Renamed into place.
    Committed,
    /// Deleted (aborted, dropped, or a failed commit).
    Discarded,
}

/// A store being written under a hidden name next to its final path.
///
/// Writers hold a read guard ([`Staging::guard`]) while they write, and commit and discard
/// take the write lock, so the directory is never renamed or deleted under a running write.
/// Dropping an uncommitted `Staging` deletes the temp directory.
#[derive(Debug)]
pub(crate) struct Staging {
    tmp: PathBuf,
    final_path: PathBuf,
    overwrite: bool,
    state: RwLock<StagingState>,
}

/// Whether a path holds a Zarr node (or is an empty directory), i.e. is safe to overwrite.
fn is_replaceable(path: &Path) -> bool {
    if !path.is_dir() {
        return false;
    }
    ["zarr.json", ".zarray", ".zgroup"]
        .iter()
        .any(|m| path.join(m).is_file())
        || fs::read_dir(path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
}

fn check_target(final_path: &Path, overwrite: bool) -> Result<()> {
    if fs::symlink_metadata(final_path).is_ok() {
        if !overwrite {
            return Err(Error::PathExists {
                path: final_path.to_path_buf(),
            });
        }
        if !is_replaceable(final_path) {
            return Err(Error::NotZarr {
                path: final_path.to_path_buf(),
                reason:
                    "it exists and is neither a Zarr store nor an empty directory, so overwrite \
                         refuses to replace it"
                        .into(),
            });
        }
    }
    Ok(())
}

impl Staging {
    /// Checks the final path and creates the hidden temp directory beside it.
    ///
    /// # Errors
    /// [`Error::PathExists`] when the path exists and `overwrite` is off; [`Error::NotZarr`]
    /// when overwriting something that is not a Zarr store; I/O errors.
    pub(crate) fn create(final_path: &Path, overwrite: bool) -> Result<Staging> {
        check_target(final_path, overwrite)?;
        let name = final_path
            .file_name()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no file name to write a store to",
                    final_path.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let parent = match final_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.spillway-tmp-"))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?
            .keep();
        Ok(Staging {
            tmp,
            final_path: final_path.to_path_buf(),
            overwrite,
            state: RwLock::new(StagingState::Open),
        })
    }

    /// The temp directory that the store is written into.
    pub(crate) fn dir(&self) -> &Path {
        &self.tmp
    }

    /// The path the store appears at once committed.
    pub(crate) fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// A guard to hold while writing into the temp directory.
    ///
    /// # Errors
    /// [`Error::Zarr`] when the store was already committed or discarded.
    pub(crate) fn guard(&self) -> Result<RwLockReadGuard<'_, StagingState>> {
        let g = self.state.read().unwrap_or_else(|p| p.into_inner());
        match *g {
            StagingState::Open => Ok(g),
            s => Err(Error::Zarr {
                path: self.final_path.clone(),
                message: format!(
                    "the store is no longer being written ({}); no more chunks are accepted",
                    if s == StagingState::Committed {
                        "already finished"
                    } else {
                        "aborted"
                    }
                ),
            }),
        }
    }

    /// Renames the temp directory into place, replacing an old store if allowed.
    ///
    /// On failure the temp directory is deleted and an existing store is left as it was.
    ///
    /// # Errors
    /// [`Error::PathExists`] when something appeared at the path meanwhile and overwrite is
    /// off; I/O errors of the renames.
    pub(crate) fn commit(&self) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if *state != StagingState::Open {
            return Err(Error::Zarr {
                path: self.final_path.clone(),
                message: "finish() called on a store that is not being written".into(),
            });
        }
        let result = self.rename_into_place();
        if result.is_err() {
            let _ = fs::remove_dir_all(&self.tmp);
            *state = StagingState::Discarded;
        } else {
            *state = StagingState::Committed;
        }
        result
    }

    fn rename_into_place(&self) -> Result<()> {
        check_target(&self.final_path, self.overwrite)?;
        let exists = fs::symlink_metadata(&self.final_path).is_ok();
        if !exists {
            return fs::rename(&self.tmp, &self.final_path)
                .map_err(|e| Error::io(&self.final_path, e));
        }
        // Move the old store aside under a hidden name, put the new one in place, then delete
        // the old one. If the second rename fails, the old store goes back.
        let mut old = self.tmp.clone().into_os_string();
        old.push(".old");
        let old = PathBuf::from(old);
        fs::rename(&self.final_path, &old).map_err(|e| Error::io(&self.final_path, e))?;
        if let Err(e) = fs::rename(&self.tmp, &self.final_path) {
            let _ = fs::rename(&old, &self.final_path);
            return Err(Error::io(&self.final_path, e));
        }
        fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
    }

    /// Deletes the temp directory unless the store was committed.
    pub(crate) fn discard(&self) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if *state == StagingState::Open {
            let _ = fs::remove_dir_all(&self.tmp);
            *state = StagingState::Discarded;
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_discard_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.zarr");
        let s = Staging::create(&target, false).unwrap();
        assert!(
            s.dir()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".a.zarr.spillway-tmp-")
        );
        fs::write(s.dir().join("zarr.json"), "{}").unwrap();
        assert!(!target.exists());
        s.commit().unwrap();
        assert!(target.join("zarr.json").exists());
        assert!(s.guard().is_err());

        assert!(matches!(
            Staging::create(&target, false),
            Err(Error::PathExists { .. })
        ));
        let s = Staging::create(&target, true).unwrap();
        let tmp = s.dir().to_path_buf();
        drop(s);
        assert!(!tmp.exists());
        assert!(
            target.join("zarr.json").exists(),
            "dropping the new store leaves the old one"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no leftovers");
    }

    #[test]
    fn overwrite_refuses_unrelated_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("home");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("notes.txt"), "precious").unwrap();
        assert!(matches!(
            Staging::create(&target, true),
            Err(Error::NotZarr { .. })
        ));
        assert!(target.join("notes.txt").exists());
    }
}
