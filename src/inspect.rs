//! `glimpse inspect`: what a GGUF file holds — a one-line summary of the model, its metadata and
//! its tensor table — as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::gguf::{GgmlType, Gguf};
use crate::model::config::{ProjectorKind, TextConfig, VisionConfig};
use crate::model::names::{ARCH_CLIP, GENERAL_ARCHITECTURE};

/// What kind of model a file is, as far as glimpse can tell.
pub enum ModelKind {
    Text(TextConfig),
    Mmproj(VisionConfig),
    /// Parsed as GGUF but not a model glimpse runs; the reason says why.
    Other(String),
}

impl ModelKind {
    pub fn of(g: &Gguf) -> ModelKind {
        let arch = match g.get_str(GENERAL_ARCHITECTURE) {
            Ok(a) => a,
            Err(e) => return ModelKind::Other(e.to_string()),
        };
        let result = if arch == ARCH_CLIP {
            VisionConfig::from_gguf(g).map(ModelKind::Mmproj)
        } else {
            TextConfig::from_gguf(g).map(ModelKind::Text)
        };
        result.unwrap_or_else(|e| ModelKind::Other(e.to_string()))
    }

    /// One line: what the model is and how many visual tokens an image becomes.
    pub fn summary(&self) -> String {
        match self {
            ModelKind::Text(c) => format!(
                "text model, {}: {} layers, n_embd {}, {} heads / {} kv heads (head_dim {}), ffn {}, vocab {}, \
                 rope {:?} base {}, {} output",
                c.arch.name(),
                c.n_layer,
                c.n_embd,
                c.n_head,
                c.n_head_kv,
                c.head_dim,
                c.n_ff,
                c.n_vocab,
                c.rope_mode,
                c.rope_base,
                if c.tied_embeddings { "tied" } else { "separate" },
            ),
            ModelKind::Mmproj(c) => {
                let tower = if c.has_cls { "CLIP-style ViT with CLS" } else { "SigLIP-style ViT, no CLS" };
                let projector = match c.projector {
                    ProjectorKind::Mlp => "mlp".to_string(),
                    ProjectorKind::Idefics3 => format!("idefics3 (pixel shuffle x{})", c.scale_factor),
                };
                format!(
                    "mmproj {projector}: {tower}, {} blocks, n_embd {}, {} heads; {} px / patch {} = {} patches \
                     -> {} visual tokens per tile, projected to {}",
                    c.n_layer,
                    c.n_embd,
                    c.n_head,
                    c.image_size,
                    c.patch_size,
                    c.n_patches(),
                    c.tokens_per_tile(),
                    c.projection_dim,
                )
            }
            ModelKind::Other(why) => format!("not a model glimpse runs: {why}"),
        }
    }
}

/// Bytes of tensor data per ggml type, largest first.
fn bytes_by_type(g: &Gguf) -> Vec<(GgmlType, u64)> {
    let mut by: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for t in g.tensors() {
        *by.entry(t.ty).or_default() += t.n_bytes;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|&(_, b)| std::cmp::Reverse(b));
    v
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The text report.
pub fn render_text(g: &Gguf) -> String {
    let mut s = String::new();
    let kind = ModelKind::of(g);
    let total: u64 = g.tensors().iter().map(|t| t.n_bytes).sum();
    let _ = writeln!(
        s,
        "{}: GGUF v{}, {}, {} metadata keys, {} tensors ({}), alignment {}",
        g.name(),
        g.version(),
        human_bytes(g.file_size()),
        g.metadata().len(),
        g.tensors().len(),
        human_bytes(total),
        g.alignment()
    );
    let _ = writeln!(s, "{}", kind.summary());
    let types: Vec<String> =
        bytes_by_type(g).iter().map(|(t, b)| format!("{t} {:.1}%", 100.0 * *b as f64 / total.max(1) as f64)).collect();
    if !types.is_empty() {
        let _ = writeln!(s, "weights by bytes: {}", types.join(", "));
    }

    let _ = writeln!(s, "\nmetadata");
    let key_w = g.metadata().iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in g.metadata() {
        let _ = writeln!(s, "  {k:key_w$}  {:<16} {}", v.type_name(), v.summary(80));
    }

    let _ = writeln!(s, "\ntensors");
    let name_w = g.tensors().iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let shape_w = g.tensors().iter().map(|t| t.shape_string().len()).max().unwrap_or(5).max(18);
    let _ = writeln!(s, "  {:name_w$}  {:<5}  {:shape_w$}  {:>12}", "name", "type", "shape (ggml order)", "bytes");
    for t in g.tensors() {
        let _ = writeln!(
            s,
            "  {:name_w$}  {:<5}  {:shape_w$}  {:>12}",
            t.name,
            t.ty.to_string(),
            t.shape_string(),
            t.n_bytes
        );
    }
    s
}

/// The JSON report. Arrays longer than `MAX_JSON_ITEMS` are cut, with their full length given.
pub fn render_json(g: &Gguf) -> serde_json::Value {
    const MAX_JSON_ITEMS: usize = 64;
    let kind = ModelKind::of(g);
    let metadata: serde_json::Map<String, serde_json::Value> = g
        .metadata()
        .iter()
        .map(|(k, v)| {
            let value = match v {
                crate::gguf::Value::Array(_, items) if items.len() > MAX_JSON_ITEMS => serde_json::json!({
                    "len": items.len(),
                    "first": items.iter().take(MAX_JSON_ITEMS).map(|i| i.to_json()).collect::<Vec<_>>(),
                }),
                v => v.to_json(),
            };
            (k.clone(), serde_json::json!({ "type": v.type_name(), "value": value }))
        })
        .collect();
    let tensors: Vec<serde_json::Value> = g
        .tensors()
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name, "type": t.ty.to_string(), "shape": t.dims, "bytes": t.n_bytes, "offset": t.offset,
            })
        })
        .collect();
    let config = match &kind {
        ModelKind::Text(c) => serde_json::json!({ "text": c }),
        ModelKind::Mmproj(c) => serde_json::json!({ "mmproj": c, "tokens_per_tile": c.tokens_per_tile() }),
        ModelKind::Other(why) => serde_json::json!({ "unsupported": why }),
    };
    serde_json::json!({
        "file": g.name(),
        "version": g.version(),
        "file_bytes": g.file_size(),
        "alignment": g.alignment(),
        "summary": kind.summary(),
        "config": config,
        "metadata": metadata,
        "tensors": tensors,
    })
}
