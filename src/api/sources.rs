//! Array constructors on [`Session`].

use std::sync::Arc;

use ndarray::ArrayD;

use crate::api::array::Array;
use crate::api::session::Session;
use crate::chunk::ChunkData;
use crate::dtype::{DType, Element, Scalar};
use crate::error::{Error, Result};
use crate::graph::{self, Op};
use crate::grid::{ChunkGrid, Chunks, Region};
use crate::io::ChunkSource;
use crate::plan::eval::ElementFn;

impl Session {
    fn grid(&self, shape: &[usize], chunks: Chunks, dtype: DType) -> Result<ChunkGrid> {
        chunks.resolve(shape, dtype.size_bytes(), self.inner.chunk_target_bytes)
    }

    pub(crate) fn array(&self, node: graph::NodeRef) -> Array {
        Array {
            session: self.clone(),
            node,
        }
    }

    /// An array of one value.
    ///
    /// # Errors
    /// [`Error::InvalidChunks`] / [`Error::InvalidShape`] for a bad shape or chunking.
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.full(&[4, 4], 2.5, spillway::DType::F32, [2, 2]).unwrap();
    /// assert_eq!(x.dtype(), spillway::DType::F32);
    /// ```
    pub fn full(
        &self,
        shape: &[usize],
        value: impl Into<Scalar>,
        dtype: DType,
        chunks: impl Into<Chunks>,
    ) -> Result<Array> {
        let grid = self.grid(shape, chunks.into(), dtype)?;
        Ok(self.array(graph::node(dtype, grid, Op::Full(value.into()))))
    }

    /// An array of zeros of element type `T`.
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let z = s.zeros::<i32>(&[3], [2]).unwrap();
    /// assert_eq!(z.compute::<i32>().unwrap().as_slice().unwrap(), &[0, 0, 0]);
    /// ```
    pub fn zeros<T: Element>(&self, shape: &[usize], chunks: impl Into<Chunks>) -> Result<Array> {
        self.full(shape, Scalar::Int(0), T::DTYPE, chunks)
    }

    /// An array of ones of element type `T`.
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// assert_eq!(s.ones::<f64>(&[2, 2], [1, 2]).unwrap().sum(None).unwrap().compute_scalar::<f64>().unwrap(), 4.0);
    /// ```
    pub fn ones<T: Element>(&self, shape: &[usize], chunks: impl Into<Chunks>) -> Result<Array> {
        self.full(shape, Scalar::Int(1), T::DTYPE, chunks)
    }

    /// `0, 1, …, n-1` as `i64`, like `numpy.arange(n)`.
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// assert_eq!(s.arange(5, [2]).unwrap().compute::<i64>().unwrap().as_slice().unwrap(), &[0, 1, 2, 3, 4]);
    /// ```
    pub fn arange(&self, n: usize, chunks: impl Into<Chunks>) -> Result<Array> {
        let grid = self.grid(&[n], chunks.into(), DType::I64)?;
        Ok(self.array(graph::node(
            DType::I64,
            grid,
            Op::Arange {
                start: 0.0,
                step: 1.0,
                end: None,
            },
        )))
    }

    /// `start, start+step, …` below `stop` as `f64`, like `numpy.arange(start, stop, step)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero or non-finite step; chunk errors as
    /// [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = s.arange_f64(0.0, 1.0, 0.25, [3]).unwrap().compute::<f64>().unwrap();
    /// assert_eq!(a.as_slice().unwrap(), &[0.0, 0.25, 0.5, 0.75]);
    /// ```
    pub fn arange_f64(
        &self,
        start: f64,
        stop: f64,
        step: f64,
        chunks: impl Into<Chunks>,
    ) -> Result<Array> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "arange_f64({start}, {stop}, {step}): the step must be finite and non-zero"
            )));
        }
        let n = ((stop - start) / step).ceil().max(0.0) as usize;
        let grid = self.grid(&[n], chunks.into(), DType::F64)?;
        Ok(self.array(graph::node(
            DType::F64,
            grid,
            Op::Arange {
                start,
                step,
                end: None,
            },
        )))
    }

    /// `num` evenly spaced values from `start` to `stop` inclusive, like `numpy.linspace`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for non-finite ends; chunk errors as [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = s.linspace(0.0, 1.0, 5, [2]).unwrap().compute::<f64>().unwrap();
    /// assert_eq!(a.as_slice().unwrap(), &[0.0, 0.25, 0.5, 0.75, 1.0]);
    /// ```
    pub fn linspace(
        &self,
        start: f64,
        stop: f64,
        num: usize,
        chunks: impl Into<Chunks>,
    ) -> Result<Array> {
        if !start.is_finite() || !stop.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "linspace({start}, {stop}, {num}): the ends must be finite"
            )));
        }
        let step = if num > 1 {
            (stop - start) / (num - 1) as f64
        } else {
            0.0
        };
        let grid = self.grid(&[num], chunks.into(), DType::F64)?;
        let end = (num > 1).then_some(stop);
        Ok(self.array(graph::node(
            DType::F64,
            grid,
            Op::Arange { start, step, end },
        )))
    }

    /// An array whose element at global index `idx` is `f(idx)`. The closure runs on worker
    /// threads, once per element, possibly more than once for the same element.
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.from_fn(&[2, 3], [1, 3], |ix| (ix[0] * 10 + ix[1]) as i32).unwrap();
    /// assert_eq!(x.compute::<i32>().unwrap(), ndarray::arr2(&[[0, 1, 2], [10, 11, 12]]).into_dyn());
    /// ```
    pub fn from_fn<T: Element, F>(
        &self,
        shape: &[usize],
        chunks: impl Into<Chunks>,
        f: F,
    ) -> Result<Array>
    where
        F: Fn(&[usize]) -> T + Send + Sync + 'static,
    {
        let grid = self.grid(shape, chunks.into(), T::DTYPE)?;
        let f = Arc::new(ElementFn {
            f,
            _t: std::marker::PhantomData,
        });
        Ok(self.array(graph::node(T::DTYPE, grid, Op::FromFn(f))))
    }

    /// An array whose chunks are filled by `f(region)`, called once per chunk with the chunk's
    /// region in global coordinates. It must return an array of exactly the region's shape.
    ///
    /// # Errors
    /// As [`full`](Self::full); at run time, a wrong block shape is [`Error::ShapeMismatch`].
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let x = s.from_blocks(&[4], [2], |r| Ok(ndarray::ArrayD::from_elem(r.shape(), r.start()[0] as f64))).unwrap();
    /// assert_eq!(x.compute::<f64>().unwrap().as_slice().unwrap(), &[0.0, 0.0, 2.0, 2.0]);
    /// ```
    pub fn from_blocks<T: Element, F>(
        &self,
        shape: &[usize],
        chunks: impl Into<Chunks>,
        f: F,
    ) -> Result<Array>
    where
        F: Fn(&Region) -> Result<ArrayD<T>> + Send + Sync + 'static,
    {
        let grid = self.grid(shape, chunks.into(), T::DTYPE)?;
        self.from_source(Arc::new(BlockSource {
            grid,
            f,
            _t: std::marker::PhantomData,
        }))
    }

    /// Uniform random numbers in `[0, 1)`. Each element depends only on the seed and its index,
    /// so the same seed gives the same numbers whatever the chunking, threads or order.
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = s.random_uniform(&[100], [7], 42).unwrap().compute::<f64>().unwrap();
    /// let b = s.random_uniform(&[100], [50], 42).unwrap().compute::<f64>().unwrap();
    /// assert_eq!(a, b);
    /// assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
    /// ```
    pub fn random_uniform(
        &self,
        shape: &[usize],
        chunks: impl Into<Chunks>,
        seed: u64,
    ) -> Result<Array> {
        let grid = self.grid(shape, chunks.into(), DType::F64)?;
        Ok(self.array(graph::node(
            DType::F64,
            grid,
            Op::Random {
                seed,
                normal: false,
            },
        )))
    }

    /// Standard normal random numbers (Box–Muller), reproducible like
    /// [`random_uniform`](Self::random_uniform).
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let m = s.random_normal(&[10_000], [1000], 7).unwrap().mean(None).unwrap().compute_scalar::<f64>().unwrap();
    /// assert!(m.abs() < 0.05);
    /// ```
    pub fn random_normal(
        &self,
        shape: &[usize],
        chunks: impl Into<Chunks>,
        seed: u64,
    ) -> Result<Array> {
        let grid = self.grid(shape, chunks.into(), DType::F64)?;
        Ok(self.array(graph::node(
            DType::F64,
            grid,
            Op::Random { seed, normal: true },
        )))
    }

    /// A lazy array over an in-memory ndarray (shared, not copied).
    ///
    /// # Errors
    /// As [`full`](Self::full).
    ///
    /// ```
    /// let s = spillway::Session::new().unwrap();
    /// let a = ndarray::Array2::<f64>::from_shape_fn((3, 4), |(i, j)| (i + j) as f64).into_dyn();
    /// let x = s.from_ndarray(a.clone(), [2, 2]).unwrap();
    /// assert_eq!(x.compute::<f64>().unwrap(), a);
    /// ```
    pub fn from_ndarray<T: Element>(
        &self,
        data: ArrayD<T>,
        chunks: impl Into<Chunks>,
    ) -> Result<Array> {
        let shape = data.shape().to_vec();
        let grid = self.grid(&shape, chunks.into(), T::DTYPE)?;
        let data = if data.is_standard_layout() {
            data
        } else {
            data.as_standard_layout().into_owned()
        };
        Ok(self.array(graph::node(
            T::DTYPE,
            grid,
            Op::Memory(Arc::new(ChunkData::from(data))),
        )))
    }

    /// A lazy array over any [`ChunkSource`], chunked as the source is stored.
    ///
    /// # Errors
    /// None today; reserved for sources whose metadata is checked on use.
    pub fn from_source(&self, source: Arc<dyn ChunkSource>) -> Result<Array> {
        let grid = source.grid().clone();
        Ok(self.array(graph::node(source.dtype(), grid, Op::External(source))))
    }
}

struct BlockSource<T, F> {
    grid: ChunkGrid,
    f: F,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element, F: Fn(&Region) -> Result<ArrayD<T>> + Send + Sync> ChunkSource
    for BlockSource<T, F>
{
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn dtype(&self) -> DType {
        T::DTYPE
    }

    fn read_region(&self, region: &Region) -> Result<ChunkData> {
        let mut out: Option<ChunkData> = None;
        let idxs = self.grid.chunks_overlapping(region);
        for idx in idxs {
            let cr = self.grid.chunk_region(&idx);
            let block = (self.f)(&cr)?;
            if block.shape() != cr.shape() {
                return Err(Error::ShapeMismatch {
                    op: "from_blocks".into(),
                    expected: cr.shape().to_vec(),
                    actual: block.shape().to_vec(),
                });
            }
            let block = ChunkData::from(block);
            let ov = cr.intersect(region).expect("overlapping chunk");
            if ov == *region {
                return Ok(if cr == *region {
                    block
                } else {
                    block.slice(&ov.relative_to(&cr))
                });
            }
            let o = out.get_or_insert_with(|| ChunkData::zeros(T::DTYPE, region.shape()));
            o.assign_region(&ov.relative_to(region), &block.slice(&ov.relative_to(&cr)));
        }
        Ok(out.unwrap_or_else(|| ChunkData::zeros(T::DTYPE, region.shape())))
    }

    fn describe(&self) -> String {
        "from_blocks".into()
    }
}
