//! Model families: configuration resolved from GGUF metadata, tensor names and layouts, GPU
//! weights, and the forward passes.

pub mod chat;
pub mod config;
pub mod error;
pub mod layout;
pub mod llm_drop;
pub mod names;
pub mod preprocess;
pub mod projector;
pub mod prompt;
pub mod sampler;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use error::Error;
