//! Pure compute on chunk data: element-wise kernels and reduction accumulators.
//!
//! Nothing here knows about graphs, tasks or the store; every function takes owned or borrowed
//! [`ChunkData`](crate::ChunkData) and returns new data, reusing input buffers where it can.

pub(crate) mod elementwise;
pub(crate) mod reduce;
