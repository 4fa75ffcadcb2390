//! Model families: configuration resolved from GGUF metadata, tensor names and layouts, GPU
//! weights, and the forward passes.

pub mod config;
pub mod error;
pub mod layout;
pub mod names;
pub mod weights;

pub use error::Error;
