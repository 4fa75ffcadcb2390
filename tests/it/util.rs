//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A fresh, empty directory under the target dir for one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test temp dir");
    dir
}

/// True when a test that needs an optional tool (Python's gguf package, a GPU) must fail rather
/// than skip: set `GLIMPSE_REQUIRE_<WHAT>=1` (CI does).
pub fn required(what: &str) -> bool {
    std::env::var(format!("GLIMPSE_REQUIRE_{what}")).is_ok_and(|v| v == "1")
}

/// The path to a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
