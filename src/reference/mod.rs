//! The CPU reference: the same forward pass as the GPU, in plain f32 Rust written for clarity.
//! It reads GGUF weights (dequantised once, with `gguf::quant`) and never touches the GPU; the
//! GPU tests compare against it. It shares configs, tensor layouts and (later) tokenizer and
//! preprocessing with the model code, never computation.

pub mod ops;
pub mod pipeline;
pub mod projector;
pub mod prune;
pub mod text;
pub mod vision;
pub mod weights;
