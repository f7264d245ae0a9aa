//! Parquet on [`Array`] and [`Session`]: `to_parquet`, `to_parquet_columns`, `from_parquet`.

use std::path::Path;
use std::sync::Arc;

use crate::api::array::Array;
use crate::api::session::Session;
use crate::error::{Error, Result};
use crate::exec::RunStats;
use crate::io::parquet::{ParquetReadOptions, ParquetSink, ParquetSource, ParquetWriteOptions};

impl Session {
    /// A lazy array over numeric columns of a Parquet file: one column requested by name gives
    /// a 1-d array, otherwise a 2-d array (rows × columns); one chunk per row group. Tasks read
    /// only the requested columns and the row groups they need. Nulls are an error unless
    /// `options.fill_nulls` is given.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file, [`Error::Parquet`] for a file that is not Parquet,
    /// [`Error::ParquetColumnNotFound`], [`Error::ParquetColumnType`], [`Error::ParquetNulls`].
    ///
    /// ```
    /// use spillway::io::parquet::{ParquetReadOptions, ParquetWriteOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.arange(1000, [250]).unwrap().astype(spillway::DType::F64);
    /// x.to_parquet(dir.path().join("x.parquet"), &ParquetWriteOptions::default()).unwrap();
    /// let back = s.from_parquet(dir.path().join("x.parquet"), Some(&["c0"]), &ParquetReadOptions::default()).unwrap();
    /// assert_eq!(back.chunk_shape(), &[250]);
    /// assert_eq!(back.sum(None).unwrap().compute_scalar::<f64>().unwrap(), 499_500.0);
    /// ```
    pub fn from_parquet(
        &self,
        path: impl AsRef<Path>,
        columns: Option<&[&str]>,
        options: &ParquetReadOptions,
    ) -> Result<Array> {
        self.from_source(Arc::new(ParquetSource::open_with(path, columns, options)?))
    }
}

impl Array {
    /// Streams a 1-d array (one column, `c0`) or a 2-d array (one column per array column,
    /// `c0`, `c1`, … unless `options.column_names` are given) into a Parquet file, one row
    /// group per row chunk unless `options.row_group_size` says otherwise. Row groups are
    /// encoded and appended as they are computed; the file appears at `path` only when
    /// complete.
    ///
    /// # Errors
    /// [`Error::InvalidShape`] for 0-d or more than 2-d arrays; [`Error::PathExists`] unless
    /// `options.overwrite`; any error of the computation (nothing is left at `path`).
    ///
    /// ```
    /// use spillway::io::parquet::{ParquetWriteOptions, RowGroupSize};
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.random_uniform(&[1000, 3], [100, 3], 9).unwrap();
    /// let opts = ParquetWriteOptions::default().row_groups(RowGroupSize::Rows(400)).column_names(["a", "b", "c"]);
    /// x.to_parquet(dir.path().join("x.parquet"), &opts).unwrap();
    /// ```
    pub fn to_parquet(
        &self,
        path: impl AsRef<Path>,
        options: &ParquetWriteOptions,
    ) -> Result<RunStats> {
        if self.ndim() == 0 || self.ndim() > 2 {
            return Err(Error::InvalidShape {
                shape: self.shape().to_vec(),
                reason: "Parquet holds 1-d arrays (one column) or 2-d arrays (one column per array column)".into(),
            });
        }
        let ncols = if self.ndim() == 2 { self.shape()[1] } else { 1 };
        let rows = options
            .row_group_size
            .resolve(ncols, self.dtype(), self.chunk_shape()[0])?;
        let sink = ParquetSink::create(path, self.shape(), self.dtype(), rows, options)?;
        self.write_to(Arc::new(sink))
    }

    /// Writes several 1-d arrays of equal length as named columns of one Parquet file (their
    /// dtypes promote to one).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for arrays of different lengths, [`Error::InvalidShape`] for
    /// arrays that are not 1-d; otherwise as [`to_parquet`](Self::to_parquet).
    ///
    /// ```
    /// use spillway::io::parquet::ParquetWriteOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = spillway::Session::new().unwrap();
    /// let t = s.linspace(0.0, 1.0, 100, [50]).unwrap();
    /// let v = t.sin().unwrap();
    /// spillway::Array::to_parquet_columns(dir.path().join("tv.parquet"), &[("t", &t), ("v", &v)], &ParquetWriteOptions::default()).unwrap();
    /// ```
    pub fn to_parquet_columns(
        path: impl AsRef<Path>,
        columns: &[(&str, &Array)],
        options: &ParquetWriteOptions,
    ) -> Result<RunStats> {
        if let Some((_, a)) = columns.iter().find(|(_, a)| a.ndim() != 1) {
            return Err(Error::InvalidShape {
                shape: a.shape().to_vec(),
                reason: "to_parquet_columns takes 1-d arrays".into(),
            });
        }
        let arrays: Vec<&Array> = columns.iter().map(|c| c.1).collect();
        let table = Array::stack(&arrays, 1)?;
        let names: Vec<String> = columns.iter().map(|c| c.0.to_string()).collect();
        table.to_parquet(path, &options.clone().column_names(names))
    }
}
