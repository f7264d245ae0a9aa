//! Shapes, regions and regular chunk grids.
//!
//! A [`ChunkGrid`] cuts an array's shape into chunks of one uniform shape; the last chunk along
//! an axis may be shorter (ragged). A [`Region`] is a box of an array (start and shape per axis).
//! [`Chunks`] is how a user asks for a grid: a size per axis, "whole axis", or automatic.

use std::fmt;

use crate::error::{Error, Result};

/// The most dimensions an array may have.
pub const MAX_NDIM: usize = 32;

/// A box inside an array: a start and a shape per axis.
///
/// ```
/// use spillway::Region;
/// let r = Region::new(vec![2, 0], vec![3, 4]);
/// assert_eq!(r.len(), 12);
/// assert_eq!(r.end(0), 5);
/// let s = r.intersect(&Region::new(vec![4, 1], vec![10, 1])).unwrap();
/// assert_eq!(s, Region::new(vec![4, 1], vec![1, 1]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    start: Vec<usize>,
    shape: Vec<usize>,
}

impl Region {
    /// A region from its start and shape (same length).
    ///
    /// ```
    /// let r = spillway::Region::new(vec![0], vec![5]);
    /// assert_eq!(r.shape(), &[5]);
    /// ```
    pub fn new(start: Vec<usize>, shape: Vec<usize>) -> Region {
        assert_eq!(
            start.len(),
            shape.len(),
            "region start and shape must have the same length"
        );
        Region { start, shape }
    }

    /// The region covering a whole shape.
    ///
    /// ```
    /// assert_eq!(spillway::Region::whole(&[2, 3]).len(), 6);
    /// ```
    pub fn whole(shape: &[usize]) -> Region {
        Region {
            start: vec![0; shape.len()],
            shape: shape.to_vec(),
        }
    }

    /// Start per axis.
    pub fn start(&self) -> &[usize] {
        &self.start
    }

    /// Shape per axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// End (exclusive) along `axis`.
    pub fn end(&self, axis: usize) -> usize {
        self.start[axis] + self.shape[axis]
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the region holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The overlap with another region of the same rank, if any element is shared.
    pub fn intersect(&self, other: &Region) -> Option<Region> {
        let mut start = Vec::with_capacity(self.ndim());
        let mut shape = Vec::with_capacity(self.ndim());
        for a in 0..self.ndim() {
            let s = self.start[a].max(other.start[a]);
            let e = self.end(a).min(other.end(a));
            if e <= s && !(self.shape[a] == 0 && other.shape[a] == 0) {
                return None;
            }
            start.push(s);
            shape.push(e.saturating_sub(s));
        }
        Some(Region { start, shape })
    }

    /// This region's coordinates relative to the start of `outer`, which must contain it.
    pub fn relative_to(&self, outer: &Region) -> Region {
        Region {
            start: self
                .start
                .iter()
                .zip(&outer.start)
                .map(|(a, b)| a - b)
                .collect(),
            shape: self.shape.clone(),
        }
    }

    /// The same region moved by `offset` per axis.
    pub fn translated(&self, offset: &[usize]) -> Region {
        Region {
            start: self.start.iter().zip(offset).map(|(a, b)| a + b).collect(),
            shape: self.shape.clone(),
        }
    }

    /// Whether `other` lies entirely inside this region.
    pub fn contains(&self, other: &Region) -> bool {
        (0..self.ndim()).all(|a| other.start[a] >= self.start[a] && other.end(a) <= self.end(a))
    }

    /// The same region with axis `axis` replaced by `start..start + len`.
    ///
    /// ```
    /// use spillway::Region;
    /// let r = Region::new(vec![0, 0], vec![4, 3]).with_axis(0, 2, 1);
    /// assert_eq!((r.start(), r.shape()), (&[2, 0][..], &[1, 3][..]));
    /// ```
    pub fn with_axis(&self, axis: usize, start: usize, len: usize) -> Region {
        let mut r = self.clone();
        r.start[axis] = start;
        r.shape[axis] = len;
        r
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for a in 0..self.ndim() {
            if a > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}..{}", self.start[a], self.end(a))?;
        }
        f.write_str("]")
    }
}

/// A regular chunk grid: one chunk shape for the whole array, ragged at the far edges.
///
/// ```
/// use spillway::{ChunkGrid, Region};
/// let g = ChunkGrid::new(vec![10, 7], vec![4, 7]).unwrap();
/// assert_eq!(g.grid_shape(), vec![3, 1]);
/// assert_eq!(g.num_chunks(), 3);
/// assert_eq!(g.chunk_region(&[2, 0]), Region::new(vec![8, 0], vec![2, 7]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkGrid {
    shape: Vec<usize>,
    chunk_shape: Vec<usize>,
}

impl ChunkGrid {
    /// A grid over `shape` with chunks of `chunk_shape`.
    ///
    /// # Errors
    /// [`Error::InvalidChunks`] when the ranks differ or a chunk size is zero;
    /// [`Error::InvalidShape`] for more than [`MAX_NDIM`] axes.
    ///
    /// ```
    /// assert!(spillway::ChunkGrid::new(vec![4], vec![0]).is_err());
    /// ```
    pub fn new(shape: Vec<usize>, chunk_shape: Vec<usize>) -> Result<ChunkGrid> {
        check_shape(&shape)?;
        if chunk_shape.len() != shape.len() {
            return Err(Error::InvalidChunks {
                shape,
                chunks: format!("{chunk_shape:?}"),
                reason: "the chunk shape must have one size per axis".into(),
            });
        }
        if let Some(a) = chunk_shape.iter().position(|&c| c == 0) {
            return Err(Error::InvalidChunks {
                shape,
                chunks: format!("{chunk_shape:?}"),
                reason: format!("chunk size on axis {a} is zero"),
            });
        }
        let chunk_shape = chunk_shape
            .iter()
            .zip(&shape)
            .map(|(&c, &n)| c.min(n.max(1)))
            .collect();
        Ok(ChunkGrid { shape, chunk_shape })
    }

    /// A grid with a single chunk covering the whole shape.
    pub fn single(shape: &[usize]) -> ChunkGrid {
        ChunkGrid {
            shape: shape.to_vec(),
            chunk_shape: shape.iter().map(|&n| n.max(1)).collect(),
        }
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The (uniform) chunk shape.
    pub fn chunk_shape(&self) -> &[usize] {
        &self.chunk_shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of chunks along each axis.
    pub fn grid_shape(&self) -> Vec<usize> {
        self.shape
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&n, &c)| n.div_ceil(c))
            .collect()
    }

    /// Total number of chunks.
    pub fn num_chunks(&self) -> usize {
        self.grid_shape().iter().product()
    }

    /// The region of the chunk at a grid index (ragged at the edges).
    pub fn chunk_region(&self, index: &[usize]) -> Region {
        let start: Vec<usize> = index
            .iter()
            .zip(&self.chunk_shape)
            .map(|(&i, &c)| i * c)
            .collect();
        let shape = start
            .iter()
            .zip(&self.chunk_shape)
            .zip(&self.shape)
            .map(|((&s, &c), &n)| c.min(n - s))
            .collect();
        Region { start, shape }
    }

    /// All chunk indices in C order.
    pub fn chunk_indices(&self) -> Vec<Vec<usize>> {
        indices_in(&vec![0; self.ndim()], &self.grid_shape())
    }

    /// Indices of the chunks that overlap `region`, in C order.
    pub fn chunks_overlapping(&self, region: &Region) -> Vec<Vec<usize>> {
        if region.is_empty() {
            return Vec::new();
        }
        let lo: Vec<usize> = (0..self.ndim())
            .map(|a| region.start()[a] / self.chunk_shape[a])
            .collect();
        let hi: Vec<usize> = (0..self.ndim())
            .map(|a| (region.end(a) - 1) / self.chunk_shape[a] + 1)
            .collect();
        let counts: Vec<usize> = lo.iter().zip(&hi).map(|(l, h)| h - l).collect();
        indices_in(&lo, &counts)
    }

    /// Bytes of the largest chunk for elements of `elem_bytes` bytes.
    pub fn chunk_bytes(&self, elem_bytes: usize) -> u64 {
        self.chunk_shape.iter().product::<usize>() as u64 * elem_bytes as u64
    }

    /// The linear (C-order) number of a chunk index.
    pub fn linear_index(&self, index: &[usize]) -> usize {
        let g = self.grid_shape();
        index.iter().zip(&g).fold(0, |acc, (&i, &n)| acc * n + i)
    }
}

impl fmt::Display for ChunkGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} in chunks of {:?}", self.shape, self.chunk_shape)
    }
}

/// Cuts `region` into tiles of about `target` elements, splitting the outermost axes first so
/// that each tile is a run of whole inner rows when those fit. The tiles come in C order and
/// each is contiguous in the region's C order, so their elements, one tile after another, are
/// the region's elements in C order: what a streaming encoder or decoder needs.
pub(crate) fn c_order_tiles(region: &Region, target: usize) -> Vec<Region> {
    let n = region.ndim();
    if n == 0 || region.len() <= target {
        return vec![region.clone()];
    }
    // Find the outermost axis k such that the block of axes > k fits in the target.
    let mut inner = 1usize;
    let mut k = n;
    while k > 0 && inner * region.shape()[k - 1] <= target {
        inner *= region.shape()[k - 1];
        k -= 1;
    }
    if k == 0 {
        return vec![region.clone()];
    }
    let axis = k - 1;
    let step = (target / inner.max(1)).max(1);
    // Axes before `axis` are split into single indices; `axis` into runs of `step`.
    let outer_counts: Vec<usize> = region.shape()[..axis].to_vec();
    let mut out = Vec::new();
    for outer in indices_in(&vec![0; axis], &outer_counts) {
        let mut s = 0;
        while s < region.shape()[axis] {
            let len = step.min(region.shape()[axis] - s);
            let mut start = region.start().to_vec();
            let mut shape = region.shape().to_vec();
            for (a, &o) in outer.iter().enumerate() {
                start[a] += o;
                shape[a] = 1;
            }
            start[axis] += s;
            shape[axis] = len;
            out.push(Region::new(start, shape));
            s += len;
        }
    }
    out
}

/// All multi-indices `start + k` for `k` in the box `counts`, C order.
pub(crate) fn indices_in(start: &[usize], counts: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = counts.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let mut cur = vec![0usize; counts.len()];
    for _ in 0..total {
        out.push(cur.iter().zip(start).map(|(c, s)| c + s).collect());
        for a in (0..counts.len()).rev() {
            cur[a] += 1;
            if cur[a] < counts[a] {
                break;
            }
            cur[a] = 0;
        }
    }
    out
}

pub(crate) fn check_shape(shape: &[usize]) -> Result<()> {
    if shape.len() > MAX_NDIM {
        return Err(Error::InvalidShape {
            shape: shape.to_vec(),
            reason: format!("at most {MAX_NDIM} dimensions are supported"),
        });
    }
    if shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .is_none()
    {
        return Err(Error::InvalidShape {
            shape: shape.to_vec(),
            reason: "the element count overflows".into(),
        });
    }
    Ok(())
}

/// How to chunk one axis.
///
/// ```
/// use spillway::ChunkDim;
/// let dims = [ChunkDim::Size(1000), ChunkDim::Whole];
/// assert_eq!(dims[1], ChunkDim::Whole);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkDim {
    /// Chunks of this many elements along the axis (the last one may be shorter).
    Size(usize),
    /// One chunk spanning the whole axis.
    Whole,
    /// Chosen automatically together with the other automatic axes.
    Auto,
}

impl From<usize> for ChunkDim {
    fn from(n: usize) -> Self {
        ChunkDim::Size(n)
    }
}

/// A chunk specification: automatic, or one [`ChunkDim`] per axis.
///
/// Automatic chunks are the largest near-square chunks whose bytes stay under the session's
/// `chunk_target_bytes`, as dask's `chunks="auto"` chooses them.
///
/// ```
/// use spillway::{ChunkDim, Chunks};
/// let g = Chunks::from([5_000, 10_000]).resolve(&[50_000, 10_000], 8, 128 << 20).unwrap();
/// assert_eq!(g.chunk_shape(), &[5_000, 10_000]);
/// let g = Chunks::Auto.resolve(&[50_000, 10_000], 8, 8 << 20).unwrap();
/// assert!(g.chunk_bytes(8) <= 8 << 20);
/// let g = Chunks::PerAxis(vec![ChunkDim::Auto, ChunkDim::Whole]).resolve(&[1000, 10], 8, 800).unwrap();
/// assert_eq!(g.chunk_shape(), &[10, 10]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunks {
    /// Every axis automatic.
    Auto,
    /// One entry per axis.
    PerAxis(Vec<ChunkDim>),
}

impl<const N: usize> From<[usize; N]> for Chunks {
    fn from(v: [usize; N]) -> Self {
        Chunks::PerAxis(v.iter().map(|&n| ChunkDim::Size(n)).collect())
    }
}

impl From<&[usize]> for Chunks {
    fn from(v: &[usize]) -> Self {
        Chunks::PerAxis(v.iter().map(|&n| ChunkDim::Size(n)).collect())
    }
}

impl From<Vec<usize>> for Chunks {
    fn from(v: Vec<usize>) -> Self {
        Chunks::from(v.as_slice())
    }
}

impl<const N: usize> From<[ChunkDim; N]> for Chunks {
    fn from(v: [ChunkDim; N]) -> Self {
        Chunks::PerAxis(v.to_vec())
    }
}

impl From<Vec<ChunkDim>> for Chunks {
    fn from(v: Vec<ChunkDim>) -> Self {
        Chunks::PerAxis(v)
    }
}

impl Chunks {
    /// The grid this specification gives for `shape` with elements of `elem_bytes` bytes,
    /// aiming automatic axes at `target_bytes` per chunk.
    ///
    /// # Errors
    /// [`Error::InvalidChunks`] for a wrong number of axes or a zero size.
    ///
    /// ```
    /// assert!(spillway::Chunks::from([0usize]).resolve(&[4], 8, 1024).is_err());
    /// ```
    pub fn resolve(
        &self,
        shape: &[usize],
        elem_bytes: usize,
        target_bytes: u64,
    ) -> Result<ChunkGrid> {
        check_shape(shape)?;
        let dims = match self {
            Chunks::Auto => vec![ChunkDim::Auto; shape.len()],
            Chunks::PerAxis(d) => d.clone(),
        };
        if dims.len() != shape.len() {
            return Err(Error::InvalidChunks {
                shape: shape.to_vec(),
                chunks: format!("{self:?}"),
                reason: format!("{} chunk entries for {} axes", dims.len(), shape.len()),
            });
        }
        let mut chunk = vec![0usize; shape.len()];
        let mut fixed_elems: f64 = 1.0;
        let mut auto_axes = Vec::new();
        for (a, d) in dims.iter().enumerate() {
            match *d {
                ChunkDim::Size(0) => {
                    return Err(Error::InvalidChunks {
                        shape: shape.to_vec(),
                        chunks: format!("{self:?}"),
                        reason: format!("chunk size on axis {a} is zero"),
                    });
                }
                ChunkDim::Size(n) => chunk[a] = n.min(shape[a].max(1)),
                ChunkDim::Whole => chunk[a] = shape[a].max(1),
                ChunkDim::Auto => auto_axes.push(a),
            }
            if !matches!(d, ChunkDim::Auto) {
                fixed_elems *= chunk[a] as f64;
            }
        }
        let target_elems = (target_bytes as f64 / elem_bytes.max(1) as f64).max(1.0);
        let mut remaining = (target_elems / fixed_elems).max(1.0);
        auto_axes.sort_by_key(|&a| shape[a]);
        let mut left = auto_axes.len();
        for &a in &auto_axes {
            let ideal = remaining.powf(1.0 / left as f64);
            let len = shape[a].max(1);
            let size = if (len as f64) <= ideal {
                len
            } else {
                (ideal.floor() as usize).max(1)
            };
            chunk[a] = size;
            remaining = (remaining / size as f64).max(1.0);
            left -= 1;
        }
        ChunkGrid::new(shape.to_vec(), chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_chunks_cover_region() {
        let g = ChunkGrid::new(vec![10, 10], vec![3, 4]).unwrap();
        let r = Region::new(vec![2, 3], vec![5, 2]);
        let idx = g.chunks_overlapping(&r);
        assert_eq!(
            idx,
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![1, 0],
                vec![1, 1],
                vec![2, 0],
                vec![2, 1]
            ]
        );
    }

    #[test]
    fn ragged_last_chunk() {
        let g = ChunkGrid::new(vec![10], vec![4]).unwrap();
        assert_eq!(g.chunk_region(&[2]).shape(), &[2]);
        assert_eq!(g.chunk_indices().len(), 3);
    }

    #[test]
    fn zero_length_axis_has_no_chunks() {
        let g = ChunkGrid::new(vec![0, 5], vec![3, 5]).unwrap();
        assert_eq!(g.num_chunks(), 0);
    }

    #[test]
    fn zero_d_grid_has_one_chunk() {
        let g = ChunkGrid::new(vec![], vec![]).unwrap();
        assert_eq!(g.num_chunks(), 1);
        assert_eq!(g.chunk_indices(), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn auto_chunks_are_near_square_and_under_target() {
        let g = Chunks::Auto
            .resolve(&[100_000, 100_000], 8, 128 << 20)
            .unwrap();
        let c = g.chunk_shape();
        assert!(g.chunk_bytes(8) <= 128 << 20);
        assert!(c[0].abs_diff(c[1]) <= 1, "{c:?}");
        assert!(g.chunk_bytes(8) > 100 << 20);
    }
}
