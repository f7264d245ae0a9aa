//! The lazy public surface: [`Session`] and [`Array`].

pub(crate) mod array;
pub(crate) mod ops;
pub(crate) mod parquet;
pub(crate) mod report;
pub(crate) mod session;
pub(crate) mod sources;
pub(crate) mod zarr;
