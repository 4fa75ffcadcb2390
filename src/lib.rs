pub mod gguf;
pub mod inspect;
pub mod model;
