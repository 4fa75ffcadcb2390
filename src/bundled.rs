//! The bundled demo model: a small LLaVA-style VLM trained on glimpse's generated scenes
//! (`crate::dataset`), shipped in `models/shapes-vlm/` and used whenever no `--model` is given.

use std::path::{Path, PathBuf};

/// The bundled model's directory, relative to the repository root.
pub const DIR: &str = "models/shapes-vlm";
/// The text model and projector file names (Q8_0; `*-f16.gguf` beside them hold F16 weights).
pub const TEXT: &str = "text-q8_0.gguf";
pub const MMPROJ: &str = "mmproj-q8_0.gguf";

/// The bundled (text, mmproj) pair: from `GLIMPSE_MODEL_DIR` when set, else `models/shapes-vlm`
/// under the working directory, the source tree this binary was built from, or the binary's
/// directory. The error lists where it looked.
pub fn model_pair() -> Result<(PathBuf, PathBuf), String> {
    let mut tried = Vec::new();
    let candidates: Vec<PathBuf> = match std::env::var_os("GLIMPSE_MODEL_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let mut c = vec![PathBuf::from(DIR), Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR)];
            if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
                c.push(exe_dir.join("shapes-vlm"));
            }
            c
        }
    };
    for dir in candidates {
        let (text, mmproj) = (dir.join(TEXT), dir.join(MMPROJ));
        if text.is_file() && mmproj.is_file() {
            return Ok((text, mmproj));
        }
        tried.push(dir.display().to_string());
    }
    Err(format!(
        "no bundled model found (looked for {TEXT} and {MMPROJ} in {}); pass --model and --mmproj, or set GLIMPSE_MODEL_DIR",
        tried.join(", ")
    ))
}
