//! GGUF files: a strict reader over a memory map, a writer, ggml tensor types and the CPU
//! (de)quantisers that are the reference for the GPU kernels.

pub mod quant;
mod reader;
mod types;
mod value;
mod writer;

pub use reader::{DEFAULT_ALIGNMENT, FromValue, GGUF_MAGIC, Gguf, MAX_DIMS, TensorInfo};
pub use types::GgmlType;
pub use value::{Value, ValueType};
pub use writer::{GgufWriter, TensorData};

/// What can go wrong reading a GGUF file. Every variant names the file; parse errors give the
/// byte offset where the problem was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: not a GGUF file (starts with {found:?}, expected \"GGUF\")", found = String::from_utf8_lossy(found))]
    BadMagic { file: String, found: [u8; 4] },
    #[error("{file}: unsupported GGUF version {version}{note} (glimpse reads versions 2 and 3)")]
    Version { file: String, version: u32, note: &'static str },
    #[error("{file}: malformed GGUF at byte {offset}: {what}")]
    Malformed { file: String, offset: u64, what: String },
    #[error("{file}: tensor '{name}' {what}")]
    Tensor { file: String, name: String, what: String },
    #[error("{file}: metadata key '{key}' is missing")]
    MissingKey { file: String, key: String },
    #[error("{file}: metadata key '{key}' is {found}, expected {expected}")]
    WrongType { file: String, key: String, expected: &'static str, found: String },
    #[error("{file}: metadata key '{key}': {what}")]
    BadValue { file: String, key: String, what: String },
    #[error("{file}: tensor '{name}' is missing")]
    MissingTensor { file: String, name: String },
}

impl Error {
    pub(crate) fn malformed(file: &str, offset: u64, what: impl Into<String>) -> Error {
        Error::Malformed { file: file.to_string(), offset, what: what.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
