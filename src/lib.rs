pub mod gguf;
pub mod model;
