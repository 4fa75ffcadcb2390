//! `glimpse forge`: random-weight model pairs (a text GGUF + an mmproj GGUF) laid out exactly as
//! llama.cpp's converters write them — names, ggml dim order, tensor types, metadata keys and
//! value types (shared-notes/smolvlm-gguf.md, research/formats-and-models.md §A) — so tests and
//! benchmarks need no downloads and llama.cpp could load the same files.
//!
//! `ForgeSpec::preset` -> `set` / `set_qtype` overrides -> `plan` (cheap: metadata and tensor
//! table) -> `forge` (writes, generating one tensor at a time from (seed, tensor name)).

mod overrides;
mod plan;
mod presets;
mod rng;
mod spec;
mod text;
mod tokenizer;
mod vision;

use std::path::{Path, PathBuf};

use crate::gguf::GgmlType;

pub use plan::{FilePlan, Init, TensorPlan, fit_type, llama_ftype};
pub use spec::{ChatTemplate, ForgeSpec, Projector, TextArch, TextSpec, TextTypes, VisionSpec, VisionTypes};
pub use tokenizer::{MIN_VOCAB, Vocab, byte_symbols, chat_template, vocab};

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("unknown preset '{name}' (presets: {presets})")]
    UnknownPreset { name: String, presets: String },
    #[error("unknown setting '{key}' (settings: {keys})")]
    UnknownKey { key: String, keys: String },
    #[error("bad value '{value}' for {key}: {expected}")]
    BadValue { key: String, value: String, expected: String },
    #[error("inconsistent model spec: {0}")]
    Inconsistent(String),
    #[error("cannot make {ty} tensors: {msg}")]
    Quantize { ty: GgmlType, msg: String },
    #[error("{0}")]
    Plan(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// The two files `forge` wrote.
#[derive(Clone, Debug)]
pub struct Forged {
    pub text: PathBuf,
    pub mmproj: PathBuf,
}

/// Both files of a spec, before writing.
#[derive(Clone, Debug)]
pub struct Plan {
    pub text: FilePlan,
    pub mmproj: FilePlan,
}

/// The metadata and tensor table of both files (no tensor data is made).
pub fn plan(spec: &ForgeSpec) -> Result<Plan, ForgeError> {
    spec.validate()?;
    Ok(Plan {
        text: text::text_plan(&spec.text),
        mmproj: vision::mmproj_plan(&spec.vision, spec.text.n_embd, spec.text.n_vocab),
    })
}

/// Writes `out_dir/text.gguf` and `out_dir/mmproj.gguf` (creating `out_dir`).
pub fn forge(spec: &ForgeSpec, out_dir: &Path) -> Result<Forged, ForgeError> {
    let plan = plan(spec)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ForgeError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let forged = Forged { text: out_dir.join("text.gguf"), mmproj: out_dir.join("mmproj.gguf") };
    plan.text.into_writer(spec.seed)?.write_file(&forged.text).map_err(io(&forged.text))?;
    plan.mmproj.into_writer(spec.seed)?.write_file(&forged.mmproj).map_err(io(&forged.mmproj))?;
    Ok(forged)
}
