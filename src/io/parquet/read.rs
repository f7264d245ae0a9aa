//! The Parquet source: numeric columns of a file as a 1-d or 2-d array, read row group by
//! row group with column projection.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type,
};
use arrow_array::{Array, ArrowPrimitiveType};
use arrow_schema::DataType;
use ndarray::{ArrayD, IxDyn};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};

use super::parquet_err;
use crate::chunk::{ChunkData, cast_elem};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;

/// Columns are read in batches whose decoded data and codecs take about this many bytes
/// (at least one column per batch).
const READ_BATCH_BYTES: u64 = 8 << 20;

/// What one projected column's page reader holds besides its pages and values: a codec
/// (zstd: a compression and a decompression context, 101 KB measured) and small buffers.
const READ_CODEC_BYTES: u64 = 128 << 10;

/// Rows decoded per Arrow batch (at most).
const READ_BATCH_ROWS: usize = 64 * 1024;

/// Largest page the reader is assumed to meet (arrow-rs and pyarrow write 1 MiB pages).
const READ_PAGE_BYTES: u64 = 1 << 20;

/// Options of a Parquet read.
///
/// ```
/// use spillway::io::parquet::ParquetReadOptions;
/// let opts = ParquetReadOptions { fill_nulls: Some(f64::NAN) };
/// assert!(ParquetReadOptions::default().fill_nulls.is_none());
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParquetReadOptions {
    /// The value that replaces nulls. `None` (the default) makes a column with nulls an
    /// [`Error::ParquetNulls`]: spillway arrays have no missing values, and silently
    /// reading zeros would corrupt results. The value must be exactly representable in the
    /// array's dtype (an integer for integer arrays, 0 or 1 for bool; any value, NaN
    /// included, for floats).
    pub fill_nulls: Option<f64>,
}

/// One requested column.
#[derive(Clone, Debug)]
struct SourceColumn {
    name: String,
    /// Index among the file's top-level fields (what a projection mask selects).
    root: usize,
    arrow_type: DataType,
}

/// The numeric columns of a Parquet file as a chunked array.
///
/// Chunks are `(rows of the first row group, all columns)`; a region can span several row
/// groups of any sizes, and only the row groups and columns it overlaps are read.
///
/// ```
/// use spillway::io::ChunkSource;
/// use spillway::io::parquet::{ParquetSink, ParquetSource, ParquetWriteOptions};
/// use spillway::io::ChunkSink;
/// use spillway::{ChunkData, DType, Region};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("t.parquet");
/// let opts = ParquetWriteOptions::default().column_names(["a", "b"]);
/// let sink = ParquetSink::create(&path, &[4, 2], DType::I32, 4, &opts).unwrap();
/// sink.write_chunk(&[0, 0], &ChunkData::from(ndarray::arr2(&[[1, 10], [2, 20], [3, 30], [4, 40]]).into_dyn())).unwrap();
/// sink.finish().unwrap();
///
/// // One column by name: a 1-d array.
/// let b = ParquetSource::open(&path, Some(&["b"])).unwrap();
/// assert_eq!(b.grid().shape(), &[4]);
/// assert_eq!(b.read_region(&Region::new(vec![1], vec![2])).unwrap().to_f64_vec(), vec![20.0, 30.0]);
/// // All numeric columns: a 2-d array.
/// let all = ParquetSource::open(&path, None).unwrap();
/// assert_eq!(all.grid().shape(), &[4, 2]);
/// assert_eq!(all.dtype(), DType::I32);
/// ```
#[derive(Clone, Debug)]
pub struct ParquetSource {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    grid: ChunkGrid,
    dtype: DType,
    one_d: bool,
    columns: Vec<SourceColumn>,
    /// First row of each row group, plus the total row count at the end.
    row_group_starts: Vec<usize>,
    fill_nulls: Option<f64>,
}

/// What an Arrow type reads as: the spillway dtype holding it losslessly, or why not.
fn readable_dtype(t: &DataType) -> std::result::Result<DType, &'static str> {
    Ok(match t {
        DataType::Boolean => DType::Bool,
        DataType::UInt8 => DType::U8,
        DataType::Int8 | DataType::Int16 | DataType::UInt16 | DataType::Int32 => DType::I32,
        DataType::UInt32 | DataType::Int64 => DType::I64,
        DataType::Float16 | DataType::Float32 => DType::F32,
        DataType::Float64 => DType::F64,
        DataType::UInt64 => {
            return Err(
                "uint64 values above i64::MAX have no lossless spillway dtype; write the \
                        column as int64 (or float64) instead",
            );
        }
        _ => return Err("not a numeric column (spillway reads bool, integer and float columns)"),
    })
}

/// Whether a type counts as numeric when all columns are asked for (those that are not are
/// skipped; numeric ones that cannot be read are errors).
fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || matches!(t, DataType::Boolean)
}

impl ParquetSource {
    /// Opens `path` and reads its footer (nothing else until
    /// [`read_region`](ChunkSource::read_region)).
    ///
    /// - `columns: Some(names)`: those columns, in that order; **exactly one name gives a 1-d
    ///   array**, two or more a 2-d array.
    /// - `columns: None`: every numeric (bool, integer, float) top-level column, in file
    ///   order, **always as a 2-d array** (so the rank does not depend on the file); other
    ///   columns (strings, dates, nested, …) and pandas' `__index_level_N__` index columns
    ///   are skipped.
    ///
    /// The dtype is the numpy-style promotion ([`DType::promote`]) of the columns' dtypes,
    /// so `int32` + `float32` columns read as `f64`, like `DataFrame.to_numpy()`. Int8,
    /// Int16 and UInt16 widen to `i32`, UInt32 to `i64`, Float16 to `f32`, all losslessly;
    /// UInt64 is refused.
    ///
    /// A column with nulls is an error unless a fill value is given (see
    /// [`open_with`](Self::open_with)): the check uses the file's null-count statistics here,
    /// and, for files without them, the data at read time.
    ///
    /// # Errors
    /// - [`Error::Io`] (kind `NotFound`) for a missing file;
    /// - [`Error::Parquet`] for a file that is not Parquet (or a directory), or has no
    ///   numeric column;
    /// - [`Error::ParquetColumnNotFound`] for a requested column the file lacks;
    /// - [`Error::ParquetColumnType`] for a requested column that is not numeric, or UInt64;
    /// - [`Error::ParquetNulls`] for a column with nulls and no fill value.
    pub fn open(path: impl AsRef<Path>, columns: Option<&[&str]>) -> Result<ParquetSource> {
        Self::open_with(path, columns, &ParquetReadOptions::default())
    }

    /// [`open`](Self::open) with options (a fill value for nulls).
    ///
    /// # Errors
    /// As [`open`](Self::open), plus [`Error::InvalidArgument`] for a fill value that the
    /// array's dtype cannot hold exactly.
    pub fn open_with(
        path: impl AsRef<Path>,
        columns: Option<&[&str]>,
        options: &ParquetReadOptions,
    ) -> Result<ParquetSource> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        if path.is_dir() {
            return Err(parquet_err(
                &path,
                "is a directory (a partitioned dataset?); open one of its files",
            ));
        }
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map_err(|e| parquet_err(&path, e))?;
        let schema = metadata.schema();
        let fields = schema.fields();

        let type_error = |name: &str, t: &DataType, reason: &str| Error::ParquetColumnType {
            path: path.clone(),
            column: name.to_string(),
            arrow_type: t.to_string(),
            reason: reason.to_string(),
        };
        let mut selected = Vec::new();
        match columns {
            Some(names) => {
                if names.is_empty() {
                    return Err(Error::InvalidArgument(format!(
                        "no columns requested from {}; pass None for all numeric columns",
                        path.display()
                    )));
                }
                for &name in names {
                    let root = fields
                        .iter()
                        .position(|f| f.name() == name)
                        .ok_or_else(|| Error::ParquetColumnNotFound {
                            path: path.clone(),
                            column: name.to_string(),
                            available: fields.iter().map(|f| f.name().clone()).collect(),
                        })?;
                    selected.push(root);
                }
            }
            None => selected.extend((0..fields.len()).filter(|&i| {
                // pandas stores a non-default index as `__index_level_0__`: not data.
                is_numeric(fields[i].data_type()) && !fields[i].name().starts_with("__index_level_")
            })),
        }
        if selected.is_empty() {
            return Err(parquet_err(
                &path,
                "the file has no numeric (bool, integer or float) column",
            ));
        }

        let mut cols = Vec::with_capacity(selected.len());
        let mut dtype: Option<DType> = None;
        for root in selected {
            let field = &fields[root];
            let d = readable_dtype(field.data_type())
                .map_err(|r| type_error(field.name(), field.data_type(), r))?;
            dtype = Some(dtype.map_or(d, |acc| acc.promote(d)));
            cols.push(SourceColumn {
                name: field.name().clone(),
                root,
                arrow_type: field.data_type().clone(),
            });
        }
        let dtype = dtype.expect("at least one column");

        if let Some(v) = options.fill_nulls {
            check_fill(v, dtype)?;
        } else {
            check_nulls_from_statistics(&path, &metadata, &cols)?;
        }

        let md = metadata.metadata();
        let mut row_group_starts = Vec::with_capacity(md.num_row_groups() + 1);
        let mut total = 0usize;
        for rg in md.row_groups() {
            row_group_starts.push(total);
            total += usize::try_from(rg.num_rows())
                .map_err(|_| parquet_err(&path, "negative row count"))?;
        }
        row_group_starts.push(total);
        let chunk_rows = md
            .row_groups()
            .first()
            .map_or(1, |rg| (rg.num_rows() as usize).max(1));

        let one_d = matches!(columns, Some(names) if names.len() == 1);
        let grid = if one_d {
            ChunkGrid::new(vec![total], vec![chunk_rows])?
        } else {
            ChunkGrid::new(vec![total, cols.len()], vec![chunk_rows, cols.len()])?
        };
        Ok(ParquetSource {
            path,
            metadata,
            grid,
            dtype,
            one_d,
            columns: cols,
            row_group_starts,
            fill_nulls: options.fill_nulls,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the columns, in array-column order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The number of rows in each row group of the file.
    pub fn row_group_rows(&self) -> Vec<usize> {
        self.row_group_starts
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect()
    }

    /// The total number of rows.
    pub fn num_rows(&self) -> usize {
        *self
            .row_group_starts
            .last()
            .expect("starts end with the total")
    }

    fn check_region(&self, region: &Region) -> Result<()> {
        if region.ndim() != self.grid.ndim() {
            return Err(Error::ShapeMismatch {
                op: format!("read region of {}", self.describe()),
                expected: self.grid.shape().to_vec(),
                actual: region.shape().to_vec(),
            });
        }
        for (axis, &len) in self.grid.shape().iter().enumerate() {
            if region.end(axis) > len {
                return Err(Error::InvalidRange {
                    axis,
                    start: region.start()[axis],
                    end: region.end(axis),
                    len,
                });
            }
        }
        Ok(())
    }
}

/// Refuses a fill value the dtype would change (NaN into an integer would become 0: the
/// silent zeros this option exists to avoid).
fn check_fill(v: f64, dtype: DType) -> Result<()> {
    let exact = match dtype {
        DType::F64 => true,
        DType::F32 => v.is_nan() || v.is_infinite() || v.abs() <= f32::MAX as f64,
        // 2^63 itself would saturate to i64::MAX and still compare equal as f64.
        DType::I64 => {
            v.is_finite() && v.fract() == 0.0 && (-(2f64.powi(63))..2f64.powi(63)).contains(&v)
        }
        _ => crate::dispatch_dtype!(dtype, T => v.is_finite() && T::from_f64(v).to_f64() == v),
    };
    if exact {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "the null fill value {v} cannot be stored exactly as {dtype}"
        )))
    }
}

/// Uses the row groups' null counts (pyarrow and arrow-rs write them) to refuse columns
/// with nulls before any data is read.
fn check_nulls_from_statistics(
    path: &Path,
    metadata: &ArrowReaderMetadata,
    cols: &[SourceColumn],
) -> Result<()> {
    let schema = metadata.schema();
    let descr = metadata.parquet_schema();
    for col in cols {
        if !schema.field(col.root).is_nullable() {
            continue;
        }
        // A numeric top-level column is a single leaf; find it.
        let Some(leaf) =
            (0..descr.num_columns()).find(|&l| descr.get_column_root_idx(l) == col.root)
        else {
            continue;
        };
        let nulls: u64 = metadata
            .metadata()
            .row_groups()
            .iter()
            .filter_map(|rg| {
                rg.column(leaf)
                    .statistics()
                    .and_then(|s| s.null_count_opt())
            })
            .sum();
        if nulls > 0 {
            return Err(Error::ParquetNulls {
                path: path.to_path_buf(),
                column: col.name.clone(),
                null_count: nulls,
            });
        }
    }
    Ok(())
}

impl ChunkSource for ParquetSource {
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    /// Reads rows `r0..r1` (and, for a 2-d array, columns `c0..c1`): only the overlapping
    /// row groups and only those columns are fetched and decoded; rows outside the range in
    /// the first and last row group are skipped.
    fn read_region(&self, region: &Region) -> Result<ChunkData> {
        self.check_region(region)?;
        let (r0, nrows) = (region.start()[0], region.shape()[0]);
        let (c0, ncols) = if self.one_d {
            (0, 1)
        } else {
            (region.start()[1], region.shape()[1])
        };
        crate::dispatch_dtype!(self.dtype, T => {
            let mut out = vec![T::default(); nrows * ncols];
            if nrows > 0 && ncols > 0 {
                self.read_into::<T>(r0, nrows, &self.columns[c0..c0 + ncols], &mut out)?;
            }
            let shape: &[usize] = if self.one_d { &[nrows] } else { &[nrows, ncols] };
            let a = ArrayD::from_shape_vec(IxDyn(shape), out).expect("buffer matches the region");
            Ok(T::into_chunk(a))
        })
    }

    /// The column reader of one batch of columns (see [`read_region`](Self::read_region)):
    /// about 8 MiB whatever the width, less for a narrow read.
    fn read_overhead_bytes(&self, region: &Region) -> u64 {
        let ncols = if self.one_d { 1 } else { region.shape()[1] };
        self.read_plan(region.shape()[0], ncols).2
    }

    fn describe(&self) -> String {
        format!("parquet {}", self.path.display())
    }
}

impl ParquetSource {
    /// How a read of `nrows` rows of `ncols` columns proceeds: rows per Arrow batch, columns
    /// per reader, and the bytes the reader holds besides the result. Per column of a batch:
    /// a compressed and a decompressed page (at most a column chunk, assumed at most 1 MiB),
    /// the decoded Arrow values, and the codec.
    fn read_plan(&self, nrows: usize, ncols: usize) -> (usize, usize, u64) {
        let size = self.dtype.size_bytes() as u64;
        let batch_rows = nrows.clamp(1, READ_BATCH_ROWS);
        let longest_group = self
            .row_group_starts
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0) as u64;
        let page = (longest_group * size).min(READ_PAGE_BYTES);
        let per_column = 2 * page + batch_rows as u64 * size + READ_CODEC_BYTES;
        let batch = usize::try_from(READ_BATCH_BYTES / per_column)
            .unwrap_or(usize::MAX)
            .clamp(1, ncols.max(1));
        (batch_rows, batch, batch as u64 * per_column)
    }

    /// Decodes rows `r0..r0+nrows` of `cols` into `out` (row-major, `cols.len()` per row).
    fn read_into<T: Element>(
        &self,
        r0: usize,
        nrows: usize,
        cols: &[SourceColumn],
        out: &mut [T],
    ) -> Result<()> {
        let r1 = r0 + nrows;
        let groups: Vec<usize> = (0..self.row_group_starts.len() - 1)
            .filter(|&g| self.row_group_starts[g] < r1 && self.row_group_starts[g + 1] > r0)
            .collect();
        let first = self.row_group_starts[groups[0]];
        let last_end = self.row_group_starts[groups[groups.len() - 1] + 1];
        let selectors: Vec<RowSelector> = [
            RowSelector::skip(r0 - first),
            RowSelector::select(nrows),
            RowSelector::skip(last_end - r1),
        ]
        .into_iter()
        .filter(|s| s.row_count > 0)
        .collect();

        // The projection yields the selected roots in file order, once each.
        let mut roots: Vec<usize> = cols.iter().map(|c| c.root).collect();
        roots.sort_unstable();
        roots.dedup();
        // Every projected column gets its own page reader and codec (zstd's contexts alone
        // are 101 KB, allocated by C code), so a wide file is read a batch of columns at a
        // time: the reader's memory stays about READ_BATCH_BYTES, whatever the width.
        let (batch_rows, batch, _) = self.read_plan(nrows, roots.len());
        let ncols = cols.len();
        for batch_roots in roots.chunks(batch) {
            let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
            let mask =
                ProjectionMask::roots(self.metadata.parquet_schema(), batch_roots.iter().copied());
            let reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                    .with_row_groups(groups.clone())
                    .with_projection(mask)
                    .with_row_selection(RowSelection::from(selectors.clone()))
                    .with_batch_size(batch_rows)
                    .build()
                    .map_err(|e| parquet_err(&self.path, e))?;
            // The array columns this batch fills, with their position in the batch.
            let targets: Vec<(usize, &SourceColumn, usize)> = cols
                .iter()
                .enumerate()
                .filter_map(|(j, c)| batch_roots.binary_search(&c.root).ok().map(|p| (j, c, p)))
                .collect();
            let mut row = 0usize;
            for batch in reader {
                let batch = batch.map_err(|e| parquet_err(&self.path, e))?;
                let n = batch.num_rows();
                if row + n > nrows {
                    return Err(parquet_err(
                        &self.path,
                        format!("read {} rows where {nrows} were asked", row + n),
                    ));
                }
                for &(j, col, pos) in &targets {
                    let array = batch.column(pos);
                    let put = |r: usize, v: T| out[(row + r) * ncols + j] = v;
                    copy_column(&self.path, col, array.as_ref(), self.fill_nulls, put)?;
                }
                row += n;
            }
            if row != nrows {
                return Err(parquet_err(
                    &self.path,
                    format!("read {row} rows where {nrows} were asked"),
                ));
            }
        }
        Ok(())
    }
}

/// Converts one Arrow column into spillway elements, replacing nulls by the fill value or
/// refusing them.
fn copy_column<T: Element>(
    path: &Path,
    col: &SourceColumn,
    array: &dyn Array,
    fill: Option<f64>,
    mut put: impl FnMut(usize, T),
) -> Result<()> {
    let nulls = array.null_count();
    let fill: Option<T> = match (nulls, fill) {
        (0, _) => None,
        (_, Some(v)) => Some(T::from_f64(v)),
        (n, None) => {
            return Err(Error::ParquetNulls {
                path: path.to_path_buf(),
                column: col.name.clone(),
                null_count: n as u64,
            });
        }
    };
    let is_null = |r: usize| fill.is_some() && array.is_null(r);

    /// Copies a primitive array through the lossless source element type `S`.
    fn prim<A: ArrowPrimitiveType, S: Element, T: Element>(
        array: &dyn Array,
        conv: impl Fn(A::Native) -> S,
        fill: Option<T>,
        is_null: impl Fn(usize) -> bool,
        put: &mut impl FnMut(usize, T),
    ) {
        let a = array.as_primitive::<A>();
        for (r, &v) in a.values().iter().enumerate() {
            let x = if is_null(r) {
                fill.expect("nulls only with a fill")
            } else {
                cast_elem::<S, T>(conv(v))
            };
            put(r, x);
        }
    }

    match &col.arrow_type {
        DataType::Boolean => {
            let a = array.as_boolean();
            for (r, v) in a.values().iter().enumerate() {
                let x = if is_null(r) {
                    fill.expect("nulls only with a fill")
                } else {
                    cast_elem::<bool, T>(v)
                };
                put(r, x);
            }
        }
        DataType::UInt8 => prim::<UInt8Type, u8, T>(array, |v| v, fill, is_null, &mut put),
        DataType::Int8 => prim::<Int8Type, i32, T>(array, i32::from, fill, is_null, &mut put),
        DataType::Int16 => prim::<Int16Type, i32, T>(array, i32::from, fill, is_null, &mut put),
        DataType::UInt16 => prim::<UInt16Type, i32, T>(array, i32::from, fill, is_null, &mut put),
        DataType::Int32 => prim::<Int32Type, i32, T>(array, |v| v, fill, is_null, &mut put),
        DataType::UInt32 => prim::<UInt32Type, i64, T>(array, i64::from, fill, is_null, &mut put),
        DataType::Int64 => prim::<Int64Type, i64, T>(array, |v| v, fill, is_null, &mut put),
        DataType::Float16 => {
            prim::<Float16Type, f32, T>(array, |v| v.to_f32(), fill, is_null, &mut put)
        }
        DataType::Float32 => prim::<Float32Type, f32, T>(array, |v| v, fill, is_null, &mut put),
        DataType::Float64 => prim::<Float64Type, f64, T>(array, |v| v, fill, is_null, &mut put),
        other => {
            return Err(Error::ParquetColumnType {
                path: path.to_path_buf(),
                column: col.name.clone(),
                arrow_type: other.to_string(),
                reason: "not readable as numbers".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_values_must_be_exact_in_the_dtype() {
        assert!(check_fill(f64::NAN, DType::F64).is_ok());
        assert!(check_fill(f64::NAN, DType::F32).is_ok());
        assert!(check_fill(1e300, DType::F32).is_err());
        assert!(check_fill(-1.0, DType::I32).is_ok());
        assert!(check_fill(f64::NAN, DType::I64).is_err());
        assert!(check_fill(0.5, DType::I32).is_err());
        assert!(check_fill(300.0, DType::U8).is_err());
        assert!(check_fill(255.0, DType::U8).is_ok());
        assert!(check_fill(1.0, DType::Bool).is_ok());
        assert!(check_fill(2.0, DType::Bool).is_err());
    }

    #[test]
    fn type_mapping_is_lossless_or_refused() {
        assert_eq!(readable_dtype(&DataType::Int16), Ok(DType::I32));
        assert_eq!(readable_dtype(&DataType::UInt32), Ok(DType::I64));
        assert_eq!(readable_dtype(&DataType::Float16), Ok(DType::F32));
        assert!(readable_dtype(&DataType::UInt64).is_err());
        assert!(readable_dtype(&DataType::Utf8).is_err());
        assert!(is_numeric(&DataType::UInt64));
        assert!(!is_numeric(&DataType::Utf8));
    }
}
