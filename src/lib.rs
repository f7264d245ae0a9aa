//! spillway: chunked N-dimensional arrays larger than RAM.
#![warn(missing_docs)]

pub mod chunk;
pub mod codec;
pub mod dtype;
pub mod error;
pub mod grid;
pub mod io;
pub mod memory;
pub mod store;

pub use chunk::ChunkData;
pub use dtype::{DType, Element, Scalar};
pub use error::{Error, Result};
pub use grid::{ChunkDim, ChunkGrid, Chunks, Region};
pub use memory::{MemoryBudget, Reservation, parse_bytes};
