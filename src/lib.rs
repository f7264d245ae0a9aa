//! spillway: chunked N-dimensional arrays larger than RAM.
//!
//! Describe a computation lazily on chunked arrays of any size; spillway plans it as chunk
//! tasks, projects its peak memory before running, runs it in parallel under a hard
//! `memory_limit` in a depth-first order, keeps intermediate chunks in a tiered store
//! (RAM → compressed RAM → disk), and fuses chains of element-wise operations into tasks that
//! walk their chunk in cache-sized tiles.
//!
//! ```
//! use spillway::Session;
//! let s = Session::builder().memory_limit("256MiB").build()?;
//! // x[i, j] = sin(i * 0.001 + j * 0.0007), 2_000 × 1_000 in 500-row chunks
//! let i = s.arange(2_000, [500])?.insert_axis(1)?;
//! let j = s.arange(1_000, [1_000])?.insert_axis(0)?;
//! let x = ((&i * 0.001) + (&j * 0.0007))?.sin()?;
//! let y = (&x * 2.5).mean(1)?.std(None, 0.0)?;
//! println!("{}", y.plan()?.explain());
//! let v: f64 = y.compute_scalar()?;
//! assert!(v > 0.0);
//! # Ok::<(), spillway::Error>(())
//! ```
#![warn(missing_docs)]

mod api;
pub mod chunk;
pub mod codec;
pub mod dtype;
pub mod error;
pub mod exec;
pub(crate) mod graph;
pub mod grid;
pub mod io;
pub(crate) mod kernels;
pub mod memory;
pub(crate) mod optimize;
pub(crate) mod plan;
pub(crate) mod pool;
pub mod report;
pub mod store;

pub use api::array::Array;
pub use api::ops::{Axes, Operand, ReduceOptions, Reduction};
pub use api::report::{MemoryReport, Plan};
pub use api::session::{MemoryLimit, Session, SessionBuilder};
pub use chunk::ChunkData;
pub use dtype::{DType, Element, Scalar};
pub use error::{Error, Result};
pub use exec::{MemorySample, RunObserver, RunStart, RunStats, TaskRecord};
pub use grid::{ChunkDim, ChunkGrid, Chunks, Region};
pub use memory::{MemoryBudget, Reservation, current_rss_bytes, parse_bytes, peak_rss_bytes};
pub use report::{ProgressMode, RunReport, StageSummary};
