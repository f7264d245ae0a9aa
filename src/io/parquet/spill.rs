//! A [`PageStore`] that keeps the encoded pages of a row group that arrived before its turn
//! in a temporary file instead of RAM.
//!
//! Parquet needs each row group, and each column chunk inside it, contiguous in the file. A
//! row group encoded while an earlier one is still being written cannot go to the file yet;
//! its pages wait. Small waits stay in memory; beyond the sink's in-memory allowance the
//! pages go here, and are read back one page at a time when the row group is appended.
//!
//! One spill file serves the whole sink: pages are appended at its end and read back by
//! offset. When the last page still waiting has been taken, the file is truncated to zero, so
//! it holds at most the pages of the row groups waiting at one time. It is an unnamed
//! temporary file in the output's directory: the operating system deletes it when the sink is
//! dropped, even after a crash.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use parquet::arrow::arrow_writer::{PageKey, PageStore, PageStoreArgs, PageStoreFactory};
use parquet::errors::{ParquetError, Result as ParquetResult};

/// The spill file shared by the page stores of one sink.
#[derive(Debug)]
pub(super) struct SpillFile {
    dir: PathBuf,
    inner: Mutex<SpillInner>,
}

#[derive(Debug, Default)]
struct SpillInner {
    /// Created on the first page that spills.
    file: Option<File>,
    /// Where the next page goes.
    end: u64,
    /// Bytes of pages written and not yet taken back.
    waiting: u64,
    /// Bytes ever written (for reports and tests).
    total: u64,
}

impl SpillFile {
    /// A spill file to be created in `dir` when first needed.
    pub(super) fn new(dir: PathBuf) -> SpillFile {
        SpillFile {
            dir,
            inner: Mutex::new(SpillInner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SpillInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes ever written to the file.
    pub(super) fn total_bytes(&self) -> u64 {
        self.lock().total
    }

    /// Appends `page`; returns its offset.
    fn put(&self, page: &[u8]) -> std::io::Result<u64> {
        let mut st = self.lock();
        if st.file.is_none() {
            st.file = Some(tempfile::tempfile_in(&self.dir)?);
        }
        let offset = st.end;
        let file = st.file.as_mut().expect("created above");
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(page)?;
        let n = page.len() as u64;
        st.end += n;
        st.waiting += n;
        st.total += n;
        Ok(offset)
    }

    /// Reads back the page at `offset` and forgets it.
    fn take(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let mut st = self.lock();
        let file = st
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("spill file missing"))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf)?;
        Self::forget(&mut st, len);
        Ok(buf)
    }

    /// Forgets a page that will not be read (its row group was dropped).
    fn release(&self, len: u64) {
        let mut st = self.lock();
        Self::forget(&mut st, len);
    }

    fn forget(st: &mut SpillInner, len: u64) {
        st.waiting -= len;
        if st.waiting == 0 && st.end > 0 {
            // Nothing waits any more: give the disk space back.
            if let Some(f) = st.file.as_mut() {
                // Best effort: if truncation fails the file just stays larger.
                if f.set_len(0).is_ok() {
                    st.end = 0;
                }
            }
        }
    }
}

/// Creates a [`SpillStore`] per column chunk, all writing to one [`SpillFile`].
#[derive(Debug)]
pub(super) struct SpillStoreFactory(pub(super) Arc<SpillFile>);

impl PageStoreFactory for SpillStoreFactory {
    fn create(&self, _args: &PageStoreArgs<'_>) -> ParquetResult<Box<dyn PageStore>> {
        Ok(Box::new(SpillStore {
            file: Arc::clone(&self.0),
            pages: Vec::new(),
        }))
    }
}

/// The pages of one column chunk, in the spill file.
struct SpillStore {
    file: Arc<SpillFile>,
    /// Offset and length of each page not yet taken.
    pages: Vec<Option<(u64, u64)>>,
}

impl PageStore for SpillStore {
    fn put(&mut self, value: Bytes) -> ParquetResult<PageKey> {
        let offset = self.file.put(&value)?;
        self.pages.push(Some((offset, value.len() as u64)));
        Ok(PageKey::new(self.pages.len() as u64 - 1))
    }

    fn take(&mut self, key: PageKey) -> ParquetResult<Bytes> {
        let (offset, len) = usize::try_from(key.get())
            .ok()
            .and_then(|i| self.pages.get_mut(i))
            .and_then(Option::take)
            .ok_or_else(|| ParquetError::General(format!("invalid spilled page {}", key.get())))?;
        Ok(Bytes::from(self.file.take(offset, len)?))
    }
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        for (_, len) in self.pages.iter().flatten() {
            self.file.release(*len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip_and_the_file_empties_when_nothing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(SpillFile::new(dir.path().to_path_buf()));
        let mut a = SpillStore {
            file: Arc::clone(&file),
            pages: Vec::new(),
        };
        let mut b = SpillStore {
            file: Arc::clone(&file),
            pages: Vec::new(),
        };
        let ka = a.put(Bytes::from_static(b"hello")).unwrap();
        b.put(Bytes::from_static(b"world!")).unwrap();
        let ka2 = a.put(Bytes::from_static(b"again")).unwrap();
        assert_eq!(file.lock().waiting, 16);
        assert_eq!(&a.take(ka2).unwrap()[..], b"again");
        assert_eq!(&a.take(ka).unwrap()[..], b"hello");
        assert!(a.take(ka).is_err(), "a page is taken once");
        assert_eq!(file.lock().end, 16, "b's page still waits");
        drop(b); // never taken: released on drop
        assert_eq!(file.lock().waiting, 0);
        assert_eq!(file.lock().end, 0, "truncated once nothing waits");
        assert_eq!(file.total_bytes(), 16);
        // Nothing named is left in the directory (the file is unnamed).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
