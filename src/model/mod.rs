//! Model families: configuration read from GGUF metadata, tensor names, and (later) the forward
//! passes. This module is pure for now (no GPU).

pub mod config;
pub mod names;
