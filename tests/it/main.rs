//! Integration tests, built as one binary (ripgrep's layout).
//!
//! - `gguf`: reader/writer round trips and the malformed files under `tests/data/gguf-bad/`.
//! - `quant`: CPU (de)quantisers against gguf-py (llama.cpp's numpy port) and round-trip error bounds.
//! - `forge`: forged models have the names, shapes, types and metadata of llama.cpp's converters.
//! - `kernels`: every WGSL kernel against `reference::ops` on awkward shapes, every weight type.
//! - `bundled`: the trained bundled model's held-out accuracy through the GPU engine.
//! - `cli`: the `glimpse` binary end to end (exit codes, stdout/stderr discipline).
//! - `app` (feature `app`): the desktop app driven through egui_kittest, with snapshots.

#[cfg(feature = "app")]
mod app;
mod bundled;
mod cli;
mod engine;
mod forge;
mod gguf;
mod gpu;
mod kernels;
mod model;
mod quant;
mod shaders;
mod tokenize;
mod util;
