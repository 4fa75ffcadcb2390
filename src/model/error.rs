//! Errors of model loading and running.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::Error),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::Error),
    /// A model file the engine cannot run, or inputs it cannot take; the message says which.
    #[error("{0}")]
    Unsupported(String),
}
