//! Zarr on [`Array`] and [`Session`]: `to_zarr`, `to_zarr_region`, `to_zarr_group`, `from_zarr`.

use std::path::Path;
use std::sync::Arc;

use crate::api::array::Array;
use crate::api::session::Session;
use crate::error::{Error, Result};
use crate::exec::RunStats;
use crate::grid::Region;
use crate::io::ChunkSink;
use crate::io::zarr::{ZarrGroupWriter, ZarrSink, ZarrSource, ZarrWriteOptions};
use crate::plan::Target;

impl Session {
    /// A lazy array over a Zarr v2 or v3 array; `array_path` is `"/"` for a store that is one
    /// array, or the array's path inside a group (`"temp"`, `"/sub/counts"`). The array's chunks
    /// are the store's (its shards, for a sharded array); tasks read only the chunks they need.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing path, [`Error::NotZarr`], [`Error::ZarrMetadata`],
    /// [`Error::ZarrUnsupportedDType`], [`Error::ZarrUnsupported`] (a codec or grid spillway
    /// cannot decode).
    ///
    /// ```
    /// use spillway::io::zarr::ZarrWriteOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = spillway::Session::new().unwrap();
    /// s.arange(10, [4]).unwrap().to_zarr(dir.path().join("a.zarr"), &ZarrWriteOptions::default()).unwrap();
    /// let a = s.from_zarr(dir.path().join("a.zarr"), "/").unwrap();
    /// assert_eq!(a.sum(None).unwrap().compute_scalar::<i64>().unwrap(), 45);
    /// ```
    pub fn from_zarr(&self, path: impl AsRef<Path>, array_path: &str) -> Result<Array> {
        self.from_source(Arc::new(ZarrSource::open(path, array_path)?))
    }
}

impl Array {
    /// Streams the array into a new Zarr store at `path`: v3 with zstd by default, v2 on
    /// request; chunks are the array's unless `options` gives others; optional sharding.
    /// Each chunk is encoded and written as soon as it is computed; the store appears at
    /// `path` only once every chunk is written (until then it is a hidden sibling folder).
    ///
    /// # Errors
    /// [`Error::PathExists`] unless `options.overwrite`; option errors of
    /// [`ZarrSink::create`]; any error of the computation (nothing is left at `path`).
    ///
    /// ```
    /// use spillway::io::zarr::ZarrWriteOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.random_uniform(&[100, 50], [30, 50], 3).unwrap();
    /// x.to_zarr(dir.path().join("x.zarr"), &ZarrWriteOptions::default().zstd(1)).unwrap();
    /// assert!(x.to_zarr(dir.path().join("x.zarr"), &ZarrWriteOptions::default()).is_err());
    /// ```
    pub fn to_zarr(&self, path: impl AsRef<Path>, options: &ZarrWriteOptions) -> Result<RunStats> {
        let chunks = options
            .chunk_shape
            .clone()
            .unwrap_or_else(|| self.chunk_shape().to_vec());
        let sink = ZarrSink::create(path, "/", self.shape(), self.dtype(), &chunks, options)?;
        self.write_to(Arc::new(sink))
    }

    /// Writes the array into the region starting at `start` of an existing Zarr array (dask's
    /// `region=`). The region must be aligned to the stored chunks.
    ///
    /// # Errors
    /// [`Error::ZarrDTypeMismatch`], [`Error::ZarrRegion`] (outside the array, misaligned),
    /// open errors of [`ZarrSource::open`]; any error of the computation.
    pub fn to_zarr_region(
        &self,
        path: impl AsRef<Path>,
        array_path: &str,
        start: &[usize],
    ) -> Result<RunStats> {
        if start.len() != self.ndim() {
            return Err(Error::InvalidArgument(format!(
                "region start {start:?} has {} entries for {} axes",
                start.len(),
                self.ndim()
            )));
        }
        let region = Region::new(start.to_vec(), self.shape().to_vec());
        let sink = ZarrSink::open_region(path, array_path, &region, self.dtype())?;
        self.write_to(Arc::new(sink))
    }

    /// Computes several arrays in one run into one Zarr group with consolidated metadata, so
    /// that `xarray.open_zarr(path)` opens it. Each entry is `(name, array, options)`; the
    /// group-level `options` give the version, overwrite and the group's attributes.
    ///
    /// # Errors
    /// As [`to_zarr`](Self::to_zarr); [`Error::SessionMismatch`] for arrays of different
    /// sessions; nothing is left at `path` on error.
    pub fn to_zarr_group(
        path: impl AsRef<Path>,
        arrays: &[(&str, &Array, ZarrWriteOptions)],
        options: &ZarrWriteOptions,
    ) -> Result<RunStats> {
        let Some((_, first, _)) = arrays.first() else {
            return Err(Error::InvalidArgument(
                "to_zarr_group needs at least one array".into(),
            ));
        };
        let group = ZarrGroupWriter::create(path, options)?;
        let mut targets = Vec::new();
        for (name, a, opts) in arrays {
            if !a.session.same(&first.session) {
                group.abort();
                return Err(Error::SessionMismatch);
            }
            let chunks = opts
                .chunk_shape
                .clone()
                .unwrap_or_else(|| a.chunk_shape().to_vec());
            let sink = match group.array(name, a.shape(), a.dtype(), &chunks, opts) {
                Ok(s) => s,
                Err(e) => {
                    group.abort();
                    return Err(e);
                }
            };
            targets.push(Target::Sink(
                Arc::clone(&a.node),
                Arc::new(sink) as Arc<dyn ChunkSink>,
            ));
        }
        match first.run(&targets) {
            Ok((_, stats)) => {
                group.finish()?;
                Ok(stats)
            }
            Err(e) => {
                group.abort();
                Err(e)
            }
        }
    }
}
