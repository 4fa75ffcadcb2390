pub mod engine;
pub mod forge;
pub mod gguf;
pub mod gpu;
pub mod inspect;
pub mod model;
pub mod reference;
