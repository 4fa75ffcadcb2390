//! `glimpse::forge`: forged pairs have the tensor names, ggml shapes, types and metadata of
//! llama.cpp's converters. The SmolVLM-256M golden lists below are written from
//! shared-notes/smolvlm-gguf.md (§1a, §1b, §3), independently of the forge code; the tiny presets
//! are written, re-opened and compared with their plans; determinism, the BPE vocabulary,
//! overrides and errors; and a cross-read with gguf-py when it is installed.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use glimpse::forge::{self, ForgeError, ForgeSpec, Plan, Projector, TextArch};
use glimpse::gguf::{GgmlType, Gguf, Value, ValueType};
use glimpse::model::config::{TextConfig, VisionConfig};

use crate::util::{required, temp_dir};

/// A tensor's ne (ggml order) and type.
type Entry = (Vec<u64>, GgmlType);
/// Tensor name -> entry.
type Table = BTreeMap<String, Entry>;

const TINY_PRESETS: [&str; 3] = ["tiny", "tiny-qwen2", "tiny-llava"];

fn preset(name: &str) -> ForgeSpec {
    ForgeSpec::preset(name).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(spec: &ForgeSpec) -> Plan {
    forge::plan(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// name -> (ne, type) of a plan file.
fn table(f: &forge::FilePlan) -> Table {
    f.tensors.iter().map(|t| (t.name.clone(), (t.dims.clone(), t.ty))).collect()
}

/// Compares two tensor tables and reports every difference.
fn assert_tables_eq(what: &str, got: &Table, want: &Table) {
    let mut diffs = Vec::new();
    for (name, w) in want {
        match got.get(name) {
            None => diffs.push(format!("missing {name} {w:?}")),
            Some(g) if g != w => diffs.push(format!("{name}: got {g:?}, want {w:?}")),
            _ => {}
        }
    }
    diffs.extend(got.keys().filter(|n| !want.contains_key(*n)).map(|n| format!("unexpected {n}")));
    assert!(diffs.is_empty(), "{what}: {} differences:\n{}", diffs.len(), diffs.join("\n"));
}

fn value<'a>(f: &'a forge::FilePlan, key: &str) -> &'a Value {
    f.get(key).unwrap_or_else(|| panic!("key {key} missing"))
}

fn u32s(pairs: &[(&str, u32)]) -> Vec<(String, Value)> {
    pairs.iter().map(|(k, v)| (k.to_string(), Value::U32(*v))).collect()
}

fn tensor_bytes(f: &forge::FilePlan) -> u64 {
    f.tensors.iter().map(|t| t.ty.row_bytes(t.dims[0]).unwrap() * t.dims[1..].iter().product::<u64>()).sum()
}

// ---------------------------------------------------------------------------------------------
// SmolVLM-256M at Q8_0 against the notes

/// smolvlm-gguf.md §1a: 273 tensors; F32 norms, Q8_0 everything else, output.weight present.
fn golden_smolvlm_256m_text() -> Table {
    use GgmlType::{F32, Q8_0};
    let mut t = BTreeMap::new();
    let mut add = |name: String, ne: &[u64], ty| t.insert(name, (ne.to_vec(), ty));
    add("token_embd.weight".into(), &[576, 49280], Q8_0);
    add("output.weight".into(), &[576, 49280], Q8_0);
    add("output_norm.weight".into(), &[576], F32);
    for i in 0..30 {
        add(format!("blk.{i}.attn_norm.weight"), &[576], F32);
        add(format!("blk.{i}.attn_q.weight"), &[576, 576], Q8_0);
        add(format!("blk.{i}.attn_k.weight"), &[576, 192], Q8_0);
        add(format!("blk.{i}.attn_v.weight"), &[576, 192], Q8_0);
        add(format!("blk.{i}.attn_output.weight"), &[576, 576], Q8_0);
        add(format!("blk.{i}.ffn_norm.weight"), &[576], F32);
        add(format!("blk.{i}.ffn_gate.weight"), &[576, 1536], Q8_0);
        add(format!("blk.{i}.ffn_up.weight"), &[576, 1536], Q8_0);
        add(format!("blk.{i}.ffn_down.weight"), &[1536, 576], Q8_0);
    }
    t
}

/// smolvlm-gguf.md §1b: 198 tensors; `.embeddings.` forced F32, 1-D F32, the rest Q8_0.
fn golden_smolvlm_256m_mmproj() -> Table {
    use GgmlType::{F32, Q8_0};
    let mut t = BTreeMap::new();
    let mut add = |name: String, ne: &[u64], ty| t.insert(name, (ne.to_vec(), ty));
    add("v.patch_embd.weight".into(), &[16, 16, 3, 768], F32);
    add("v.patch_embd.bias".into(), &[768], F32);
    add("v.position_embd.weight".into(), &[768, 1024], F32);
    for i in 0..12 {
        for w in ["attn_q", "attn_k", "attn_v", "attn_out"] {
            add(format!("v.blk.{i}.{w}.weight"), &[768, 768], Q8_0);
            add(format!("v.blk.{i}.{w}.bias"), &[768], F32);
        }
        for ln in ["ln1", "ln2"] {
            add(format!("v.blk.{i}.{ln}.weight"), &[768], F32);
            add(format!("v.blk.{i}.{ln}.bias"), &[768], F32);
        }
        add(format!("v.blk.{i}.ffn_up.weight"), &[768, 3072], Q8_0);
        add(format!("v.blk.{i}.ffn_up.bias"), &[3072], F32);
        add(format!("v.blk.{i}.ffn_down.weight"), &[3072, 768], Q8_0);
        add(format!("v.blk.{i}.ffn_down.bias"), &[768], F32);
    }
    add("v.post_ln.weight".into(), &[768], F32);
    add("v.post_ln.bias".into(), &[768], F32);
    add("mm.model.fc.weight".into(), &[12288, 576], Q8_0);
    t
}

const SMOLVLM_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/// Every key of §1a with its value type and value (tokenizer arrays checked by length below).
fn golden_smolvlm_256m_text_keys() -> Vec<(String, Value)> {
    let mut keys = vec![
        ("general.architecture".to_string(), Value::from("llama")),
        ("general.type".into(), Value::from("model")),
        ("llama.rope.freq_base".into(), Value::F32(100_000.0)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-5)),
        ("tokenizer.ggml.model".into(), Value::from("gpt2")),
        ("tokenizer.ggml.pre".into(), Value::from("smollm")),
        ("tokenizer.chat_template".into(), Value::from(SMOLVLM_TEMPLATE)),
    ];
    keys.extend(u32s(&[
        ("llama.block_count", 30),
        ("llama.context_length", 8192),
        ("llama.embedding_length", 576),
        ("llama.feed_forward_length", 1536),
        ("llama.attention.head_count", 9),
        ("llama.attention.head_count_kv", 3),
        ("llama.attention.key_length", 64),
        ("llama.attention.value_length", 64),
        ("general.file_type", 7),
        ("llama.vocab_size", 49280),
        ("llama.rope.dimension_count", 64),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 49279),
        ("tokenizer.ggml.unknown_token_id", 0),
        ("tokenizer.ggml.padding_token_id", 2),
        ("general.quantization_version", 2),
    ]));
    keys
}

/// Every key of §1b with its value type and value.
fn golden_smolvlm_256m_mmproj_keys() -> Vec<(String, Value)> {
    let mut keys = vec![
        ("general.architecture".to_string(), Value::from("clip")),
        ("general.type".into(), Value::from("mmproj")),
        ("clip.has_vision_encoder".into(), Value::Bool(true)),
        ("clip.vision.image_mean".into(), Value::from(vec![0.5f32, 0.5, 0.5])),
        ("clip.vision.image_std".into(), Value::from(vec![0.5f32, 0.5, 0.5])),
        ("clip.projector_type".into(), Value::from("idefics3")),
        ("clip.vision.attention.layer_norm_epsilon".into(), Value::F32(1e-6)),
        ("clip.use_gelu".into(), Value::Bool(true)),
    ];
    keys.extend(u32s(&[
        ("general.file_type", 7),
        ("clip.vision.projection_dim", 576),
        ("clip.vision.image_size", 512),
        ("clip.vision.patch_size", 16),
        ("clip.vision.embedding_length", 768),
        ("clip.vision.feed_forward_length", 3072),
        ("clip.vision.block_count", 12),
        ("clip.vision.attention.head_count", 12),
        ("clip.vision.projector.scale_factor", 4),
        ("clip.vision.preproc_image_size", 2048),
        ("general.quantization_version", 2),
    ]));
    keys
}

fn assert_keys(what: &str, f: &forge::FilePlan, want: &[(String, Value)]) {
    for (key, w) in want {
        let got = value(f, key);
        assert_eq!(
            got,
            w,
            "{what}: {key} is {} {}, want {} {}",
            got.type_name(),
            got.summary(60),
            w.type_name(),
            w.summary(60)
        );
    }
}

#[test]
fn forge_smolvlm_256m_q8_0_matches_the_notes() {
    let p = plan(&preset("smolvlm-256m"));
    assert_tables_eq("text", &table(&p.text), &golden_smolvlm_256m_text());
    assert_tables_eq("mmproj", &table(&p.mmproj), &golden_smolvlm_256m_mmproj());
    assert_eq!((p.text.tensors.len(), p.mmproj.tensors.len()), (273, 198));
    assert_keys("text", &p.text, &golden_smolvlm_256m_text_keys());
    assert_keys("mmproj", &p.mmproj, &golden_smolvlm_256m_mmproj_keys());
    assert!(value(&p.text, "general.name").as_str().is_some());
    for (key, ty, len) in [
        ("tokenizer.ggml.tokens", ValueType::String, 49280),
        ("tokenizer.ggml.token_type", ValueType::I32, 49280),
        ("tokenizer.ggml.merges", ValueType::String, 0),
    ] {
        let Value::Array(t, items) = value(&p.text, key) else { panic!("{key} is not an array") };
        assert_eq!(*t, ty, "{key} element type");
        assert!(len == 0 || items.len() == len, "{key}: {} items, want {len}", items.len());
    }
    // The notes' size arithmetic: tensor data of the real files (headers excluded).
    assert_eq!(tensor_bytes(&p.text), 173_263_104);
    assert_eq!(tensor_bytes(&p.mmproj), 103_756_800);
}

/// The legacy LLaVA script's 19 keys (notes §5: a real LLaVA-1.5 mmproj has n_kv = 19), plus
/// the quantization version every forged file carries.
#[test]
fn forge_legacy_mmproj_has_the_legacy_scripts_keys() {
    let p = plan(&preset("llava"));
    let keys: Vec<&str> = p.mmproj.metadata.iter().map(|(k, _)| k.as_str()).collect();
    let want = [
        "general.architecture",
        "clip.has_text_encoder",
        "clip.has_vision_encoder",
        "clip.has_llava_projector",
        "general.file_type",
        "general.name",
        "general.description",
        "clip.projector_type",
        "clip.vision.image_size",
        "clip.vision.patch_size",
        "clip.vision.embedding_length",
        "clip.vision.feed_forward_length",
        "clip.vision.projection_dim",
        "clip.vision.attention.head_count",
        "clip.vision.attention.layer_norm_epsilon",
        "clip.vision.block_count",
        "clip.vision.image_mean",
        "clip.vision.image_std",
        "clip.use_gelu",
        "general.quantization_version",
    ];
    assert_eq!(keys, want);
    assert_eq!(value(&p.mmproj, "general.file_type"), &Value::U32(1), "the legacy script writes f16 files");
    assert_eq!(value(&p.mmproj, "clip.has_text_encoder"), &Value::Bool(false));
    assert_eq!(value(&p.mmproj, "clip.projector_type"), &Value::from("mlp"));
}

#[test]
fn forge_smolvlm_500m_has_smollm2_360m_shapes() {
    let p = plan(&preset("smolvlm-500m"));
    let t = table(&p.text);
    assert_eq!(t["token_embd.weight"], (vec![960, 49280], GgmlType::Q8_0));
    assert_eq!(t["blk.31.attn_k.weight"], (vec![960, 320], GgmlType::Q8_0));
    assert_eq!(t["blk.31.ffn_down.weight"], (vec![2560, 960], GgmlType::Q8_0));
    assert!(t.contains_key("output.weight"));
    assert_eq!(value(&p.text, "llama.attention.head_count"), &Value::U32(15));
    assert_eq!(value(&p.text, "llama.attention.head_count_kv"), &Value::U32(5));
    assert_eq!(table(&p.mmproj)["mm.model.fc.weight"], (vec![12288, 960], GgmlType::Q8_0));
    assert_eq!(value(&p.mmproj, "clip.vision.projection_dim"), &Value::U32(960));
}

#[test]
fn forge_llava_preset_keeps_577_positions() {
    let p = plan(&preset("llava"));
    let m = table(&p.mmproj);
    let d = match value(&p.mmproj, "clip.vision.embedding_length") {
        Value::U32(d) => *d as u64,
        v => panic!("embedding_length is {v:?}"),
    };
    assert_eq!(m["v.position_embd.weight"], (vec![d, 577], GgmlType::F16));
    assert_eq!(m["v.patch_embd.weight"], (vec![14, 14, 3, d], GgmlType::F16));
    assert_eq!(m["v.class_embd"], (vec![d], GgmlType::F32));
    assert_eq!(value(&p.mmproj, "clip.vision.image_size"), &Value::U32(336));
    assert_eq!(value(&p.mmproj, "clip.use_gelu"), &Value::Bool(false));
}

/// K-quants fall back as llama-quant does when 256 does not divide the row (576, 960).
#[test]
fn forge_k_quant_falls_back_like_llama_quant() {
    let mut spec = preset("smolvlm-256m");
    spec.set_qtype(GgmlType::Q4K);
    let p = plan(&spec);
    let (t, m) = (table(&p.text), table(&p.mmproj));
    assert_eq!(t["blk.0.attn_q.weight"].1, GgmlType::Q5_0, "576 % 256 != 0: Q4_K -> Q5_0");
    assert_eq!(t["blk.0.ffn_down.weight"].1, GgmlType::Q4K, "1536 % 256 == 0");
    assert_eq!(m["v.blk.0.attn_q.weight"].1, GgmlType::Q4K, "768 % 256 == 0");
    assert_eq!(m["v.patch_embd.weight"].1, GgmlType::F32, "forced by the converter, not --qtype");
    assert_eq!(value(&p.text, "general.file_type"), &Value::U32(15), "MOSTLY_Q4_K_M");
    use GgmlType::*;
    for (asked, ne0, got) in
        [(Q5K, 576, Q5_1), (Q6K, 576, Q8_0), (Q6K, 48, F16), (Q4K, 16, F16), (Q8_0, 16, F16), (Q8_0, 64, Q8_0)]
    {
        assert_eq!(forge::fit_type(asked, ne0), got, "{asked} on rows of {ne0}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny presets, written and read back

/// What each tiny preset must hold beyond matching its plan (ggml order).
fn tiny_expectations(name: &str) -> Vec<(&'static str, Option<Entry>)> {
    use GgmlType::{F16, F32};
    let common = vec![
        ("token_embd.weight", Some((vec![64, 576], F16))),
        ("blk.1.attn_k.weight", Some((vec![64, 32], F16))),
        ("blk.1.ffn_down.weight", Some((vec![128, 64], F16))),
        ("output_norm.weight", Some((vec![64], F32))),
    ];
    let specific = match name {
        "tiny" => vec![
            ("output.weight", None),
            ("blk.0.attn_q.bias", None),
            ("v.patch_embd.weight", Some((vec![8, 8, 3, 64], F32))),
            ("v.position_embd.weight", Some((vec![64, 64], F32))),
            ("v.class_embd", None),
            ("v.post_ln.weight", Some((vec![64], F32))),
            ("v.blk.1.ffn_up.weight", Some((vec![64, 256], F16))),
            ("mm.model.fc.weight", Some((vec![256, 64], F16))),
        ],
        "tiny-qwen2" => vec![
            ("output.weight", Some((vec![64, 576], F16))),
            ("blk.2.attn_q.bias", Some((vec![64], F32))),
            ("blk.2.attn_k.bias", Some((vec![32], F32))),
            ("v.class_embd", None),
            ("v.post_ln.weight", None),
            ("v.patch_embd.bias", Some((vec![64], F32))),
            ("mm.0.weight", Some((vec![64, 64], F16))),
            ("mm.2.bias", Some((vec![64], F32))),
            ("mm.model.fc.weight", None),
        ],
        "tiny-llava" => vec![
            ("output.weight", Some((vec![64, 576], F16))),
            ("v.class_embd", Some((vec![64], F32))),
            ("v.patch_embd.weight", Some((vec![8, 8, 3, 64], F16))),
            ("v.patch_embd.bias", None),
            ("v.position_embd.weight", Some((vec![64, 65], F16))),
            ("v.pre_ln.weight", Some((vec![64], F32))),
            ("v.post_ln.weight", None),
            // Legacy naming: fc1 is stored as ffn_down, fc2 as ffn_up.
            ("v.blk.2.ffn_down.weight", Some((vec![64, 256], F16))),
            ("v.blk.2.ffn_down.bias", Some((vec![256], F32))),
            ("v.blk.2.ffn_up.weight", Some((vec![256, 64], F16))),
            ("mm.0.weight", Some((vec![64, 64], F16))),
        ],
        other => panic!("no expectations for {other}"),
    };
    common.into_iter().chain(specific).collect()
}

/// The file holds exactly the plan: tensors in order with shapes and types, keys in order with
/// value types and values.
fn assert_file_matches_plan(g: &Gguf, f: &forge::FilePlan) {
    let got: Vec<_> = g.tensors().iter().map(|t| (t.name.as_str(), t.dims.clone(), t.ty)).collect();
    let want: Vec<_> = f.tensors.iter().map(|t| (t.name.as_str(), t.dims.clone(), t.ty)).collect();
    assert_eq!(got, want, "{}: tensor table", g.name());
    assert_eq!(g.metadata(), f.metadata.as_slice(), "{}: metadata", g.name());
}

#[test]
fn forge_tiny_presets_read_back_with_converter_layout() {
    for name in TINY_PRESETS {
        let spec = preset(name);
        let dir = temp_dir(&format!("forge_tiny_{name}"));
        let start = Instant::now();
        let forged = forge::forge(&spec, &dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("forged {name} in {:?}", start.elapsed());
        let p = plan(&spec);
        let (text, mmproj) = (Gguf::open(&forged.text).unwrap(), Gguf::open(&forged.mmproj).unwrap());
        assert_file_matches_plan(&text, &p.text);
        assert_file_matches_plan(&mmproj, &p.mmproj);
        for (tensor, want) in tiny_expectations(name) {
            let g = if tensor.starts_with("v.") || tensor.starts_with("mm.") { &mmproj } else { &text };
            let got = g.find_tensor(tensor).map(|t| (t.dims.clone(), t.ty));
            assert_eq!(got, want, "{name}: {tensor}");
        }

        // Value types the converters use.
        let arch = text.get_str("general.architecture").unwrap().to_string();
        assert_eq!(arch, if name == "tiny-qwen2" { "qwen2" } else { "llama" });
        for key in ["block_count", "embedding_length", "attention.head_count_kv"] {
            assert_eq!(text.get(&format!("{arch}.{key}")).unwrap().value_type(), ValueType::U32, "{name} {key}");
        }
        assert_eq!(text.get(&format!("{arch}.attention.layer_norm_rms_epsilon")).unwrap().value_type(), ValueType::F32);
        assert!(matches!(text.get("tokenizer.ggml.token_type"), Some(Value::Array(ValueType::I32, _))));
        assert!(matches!(mmproj.get("clip.vision.image_mean"), Some(Value::Array(ValueType::F32, v)) if v.len() == 3));
        assert_eq!(mmproj.get_str("general.architecture").unwrap(), "clip");
        assert_eq!(mmproj.get("clip.use_gelu").unwrap().value_type(), ValueType::Bool);
        let legacy = name == "tiny-llava";
        assert_eq!(mmproj.get("general.type").and_then(Value::as_str), (!legacy).then_some("mmproj"), "{name}");
        assert_eq!(mmproj.get("clip.has_llava_projector").is_some(), legacy, "{name}");
        assert_eq!(mmproj.get_u32("clip.vision.block_count").unwrap(), spec.vision.n_layer);

        // The model's own config reader accepts the pair.
        let tc = TextConfig::from_gguf(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((tc.n_embd, tc.n_vocab, tc.head_dim), (64, 576, 16));
        assert_eq!(tc.tied_embeddings, spec.text.tied);
        assert_eq!(tc.qkv_bias, spec.text.arch == TextArch::Qwen2);
        let vc = VisionConfig::from_gguf(&mmproj).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(vc.has_cls, spec.vision.cls);
        assert_eq!(vc.projection_dim, 64);
        let tokens = if spec.vision.projector == Projector::Idefics3 { 16 } else { 64 };
        assert_eq!(vc.tokens_per_tile(), tokens, "{name}");
    }
}

#[test]
fn forge_tiny_every_qtype_writes_and_reads_back() {
    for ty in GgmlType::ALL {
        let mut spec = preset("tiny");
        spec.set_qtype(ty);
        let dir = temp_dir(&format!("forge_tiny_qtype_{}", ty.name()));
        let forged = forge::forge(&spec, &dir).unwrap_or_else(|e| panic!("{ty}: {e}"));
        let p = plan(&spec);
        assert_file_matches_plan(&Gguf::open(&forged.text).unwrap(), &p.text);
        assert_file_matches_plan(&Gguf::open(&forged.mmproj).unwrap(), &p.mmproj);
        let mm = table(&p.mmproj);
        // The fc row (64 * 2 * 2 = 256) takes every type, K-quants included.
        assert_eq!(mm["mm.model.fc.weight"].1, ty);
    }
}

#[test]
fn forge_same_seed_same_bytes_other_seed_other_bytes() {
    let read = |seed: u64, tag: &str| {
        let mut spec = preset("tiny");
        spec.set_qtype(GgmlType::Q8_0);
        spec.seed = seed;
        let forged = forge::forge(&spec, &temp_dir(&format!("forge_seed_{tag}"))).unwrap();
        (std::fs::read(forged.text).unwrap(), std::fs::read(forged.mmproj).unwrap())
    };
    let (a, b, c) = (read(7, "a"), read(7, "b"), read(8, "c"));
    assert!(a == b, "same seed gave different files");
    assert!(a.0 != c.0 && a.1 != c.1, "different seeds gave the same file");
    assert_eq!(a.0.len(), c.0.len());
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

fn check_vocab(name: &str) {
    let spec = preset(name);
    let v = forge::vocab(&spec.text);
    let n = spec.text.n_vocab as usize;
    assert_eq!((v.tokens.len(), v.types.len()), (n, n), "{name}");
    let ids: std::collections::HashMap<&str, usize> =
        v.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    assert_eq!(ids.len(), n, "{name}: duplicate tokens");
    for (_, c) in forge::byte_symbols() {
        assert_eq!(v.types[ids[c.to_string().as_str()]], 1, "{name}: byte symbol {c:?}");
    }
    let mut seen = HashSet::new();
    for m in &v.merges {
        let (l, r) = m.split_once(' ').unwrap_or_else(|| panic!("{name}: merge {m:?} has no space"));
        assert!(!r.contains(' '), "{name}: merge {m:?}");
        for part in [l, r, &format!("{l}{r}")] {
            assert!(
                ids.get(part).is_some_and(|&i| v.types[i] == 1),
                "{name}: merge {m:?}: {part:?} is not a normal token"
            );
        }
        assert!(seen.insert(m), "{name}: merge {m:?} twice");
    }
    let normal = v.types.iter().filter(|&&t| t == 1).count();
    assert!(v.merges.len() >= normal - 256, "{name}: every non-byte normal token comes from a merge");
    let specials = [
        ("<|endoftext|>", 3),
        ("<|im_start|>", 3),
        ("<|im_end|>", 3),
        ("<image>", 3),
        ("<fake_token_around_image>", 3),
        ("<end_of_utterance>", 3),
        ("<global-img>", 4),
        ("<row_6_col_6>", 4),
    ];
    for (tok, ty) in specials {
        assert_eq!(v.types[ids[tok]], ty, "{name}: type of {tok}");
    }
    assert_eq!((ids["<|endoftext|>"], ids["<|im_start|>"], ids["<|im_end|>"]), (0, 1, 2));
    assert_eq!(ids["<end_of_utterance>"], n - 1);
    assert_eq!(ids["<global-img>"], n - 128);
}

#[test]
fn forge_vocab_merges_are_valid_bpe() {
    for name in TINY_PRESETS {
        check_vocab(name);
    }
}

#[test]
fn forge_smolvlm_vocab_has_the_real_special_ids() {
    check_vocab("smolvlm-256m");
    let v = forge::vocab(&preset("smolvlm-256m").text);
    for (id, tok) in [
        (49152, "<global-img>"),
        (49153, "<row_1_col_1>"),
        (49160, "<row_2_col_2>"),
        (49188, "<row_6_col_6>"),
        (49189, "<fake_token_around_image>"),
        (49190, "<image>"),
        (49279, "<end_of_utterance>"),
    ] {
        assert_eq!(v.tokens[id], tok);
    }
    assert_eq!(v.tokens[49191], "[PAD49191]");
    assert_eq!(v.types[49191], 5);
    assert_eq!((v.bos, v.eos, v.unk, v.pad), (Some(1), Some(49279), Some(0), Some(2)));
    // The learned merges come first, in rank order: the corpus is English, so a space-letter
    // pair leads (GPT-2's first merges are "Ġ t" / "Ġ a").
    assert!(v.merges[0].starts_with('Ġ'), "first merge {:?}", v.merges[0]);
}

#[test]
fn forge_qwen2_and_vicuna_specials() {
    let q = forge::vocab(&preset("tiny-qwen2").text);
    assert_eq!((q.bos, q.eos, q.unk, q.pad, q.add_bos), (Some(0), Some(2), None, Some(0), Some(false)));
    let p = plan(&preset("tiny-qwen2"));
    assert_eq!(value(&p.text, "tokenizer.ggml.pre"), &Value::from("qwen2"));
    assert!(p.text.get("qwen2.vocab_size").is_none(), "the qwen2 converter writes no vocab_size");
    assert!(value(&p.text, "tokenizer.chat_template").as_str().unwrap().contains("<|im_start|>assistant"));
    let l = plan(&preset("tiny-llava"));
    let template = value(&l.text, "tokenizer.chat_template").as_str().unwrap();
    assert!(template.contains("USER: ") && template.contains("ASSISTANT: "), "llama.cpp detects vicuna by these");
}

// ---------------------------------------------------------------------------------------------
// Overrides and errors

#[test]
fn forge_overrides_change_the_plan() {
    let mut spec = preset("tiny");
    for (k, v) in [
        ("text.n_layer", "4"),
        ("text.arch", "qwen2"),
        ("vision.n_embd", "96"),
        ("vision.n_head", "3"),
        ("text.qtype.ffn", "q4_k"),
        ("vision.qtype.attn", "q8_0"),
        ("vision.preproc_image_size", "none"),
        ("text.tied", "false"),
        ("seed", "42"),
    ] {
        spec.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    assert_eq!(spec.seed, 42);
    let p = plan(&spec);
    let (t, m) = (table(&p.text), table(&p.mmproj));
    assert!(t.contains_key("blk.3.attn_q.bias") && t.contains_key("output.weight"));
    assert_eq!(t["blk.3.ffn_gate.weight"].1, GgmlType::Q5_0, "q4_k on rows of 64 falls back");
    assert_eq!(m["v.blk.0.attn_q.weight"], (vec![96, 96], GgmlType::Q8_0));
    assert_eq!(m["mm.model.fc.weight"].0, vec![384, 64]);
    assert!(p.mmproj.get("clip.vision.preproc_image_size").is_none());

    let mut llava = preset("tiny");
    llava.set("vision.projector", "mlp").unwrap();
    llava.set("vision.cls", "true").unwrap();
    let m = table(&plan(&llava).mmproj);
    assert_eq!(m["v.position_embd.weight"].0, vec![64, 65]);
    assert!(m.contains_key("mm.2.weight"));
}

#[test]
fn forge_bad_inputs_are_clear_errors() {
    let msg = |e: ForgeError| e.to_string();
    let e = msg(ForgeSpec::preset("huge").unwrap_err());
    assert!(e.contains("huge") && e.contains("smolvlm-256m") && e.contains("tiny-llava"), "{e}");

    let mut spec = preset("tiny");
    let e = msg(spec.set("text.n_layers", "3").unwrap_err());
    assert!(e.contains("text.n_layers") && e.contains("text.n_layer,") && e.contains("vision.qtype.attn"), "{e}");
    let e = msg(spec.set("text.n_layer", "three").unwrap_err());
    assert!(e.contains("three") && e.contains("u32"), "{e}");
    let e = msg(spec.set("text.qtype.ffn", "q3_k").unwrap_err());
    assert!(e.contains("q3_k") && e.contains("q4_k"), "{e}");
    let e = msg(spec.set("text.arch", "gpt2").unwrap_err());
    assert!(e.contains("llama, qwen2"), "{e}");
    let e = msg(spec.set("vision.image_mean", "0.5,0.5").unwrap_err());
    assert!(e.contains("three"), "{e}");

    for (k, v, needle) in [
        ("text.n_head", "5", "not divisible by text.n_head 5"),
        ("text.n_head_kv", "3", "multiple of text.n_head_kv 3"),
        ("vision.n_head", "5", "vision.n_head 5"),
        ("vision.patch_size", "7", "vision.patch_size 7"),
        ("vision.scale_factor", "3", "scale_factor 3"),
        ("vision.cls", "true", "class token"),
        ("vision.legacy", "true", "only mlp projectors"),
        ("text.n_vocab", "300", "text.n_vocab 300"),
        ("text.n_layer", "0", "text.n_layer must be positive"),
    ] {
        let mut s = preset("tiny");
        s.set(k, v).unwrap();
        let e = msg(forge::plan(&s).unwrap_err());
        assert!(e.contains(needle), "{k}={v}: {e}");
    }

    let dir = temp_dir("forge_io_error");
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let e = msg(forge::forge(&preset("tiny"), &blocker.join("out")).unwrap_err());
    assert!(e.contains("not-a-dir"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// gguf-py, llama.cpp's own reader

#[test]
fn forge_tiny_reads_in_gguf_py() {
    let python_ok =
        std::process::Command::new("python3").args(["-c", "import gguf"]).output().is_ok_and(|o| o.status.success());
    if !python_ok {
        assert!(!required("PYTHON"), "GLIMPSE_REQUIRE_PYTHON=1 but python3 cannot import gguf");
        eprintln!("skipping: python3 with the gguf package is not available");
        return;
    }
    for name in TINY_PRESETS {
        let mut spec = preset(name);
        spec.set_qtype(GgmlType::Q8_0);
        let forged = forge::forge(&spec, &temp_dir(&format!("forge_py_{name}"))).unwrap();
        let p = plan(&spec);
        for (path, f) in [(&forged.text, &p.text), (&forged.mmproj, &p.mmproj)] {
            // One line per tensor: name, ne (gguf-py's `shape` is ggml order), type name; then
            // one line per key: name and gguf-py's value-type name (arrays: with element type).
            let script = r#"
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
for t in r.tensors:
    print("T", t.name, ",".join(str(int(d)) for d in t.shape), t.tensor_type.name)
for k, f in r.fields.items():
    if k.startswith("GGUF."):
        continue
    types = [t.name for t in f.types]
    print("K", k, "/".join(types))
"#;
            let out = std::process::Command::new("python3").args(["-c", script]).arg(path).output().unwrap();
            assert!(
                out.status.success(),
                "gguf-py failed on {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let mut want: Vec<String> = f
                .tensors
                .iter()
                .map(|t| {
                    let dims: Vec<String> = t.dims.iter().map(u64::to_string).collect();
                    format!("T {} {} {}", t.name, dims.join(","), py_type(t.ty))
                })
                .collect();
            want.extend(f.metadata.iter().map(|(k, v)| format!("K {k} {}", py_value_type(v))));
            let got: Vec<&str> = stdout.lines().collect();
            assert_eq!(got, want, "{name}: {}", path.display());
        }
    }
}

fn py_type(ty: GgmlType) -> &'static str {
    match ty {
        GgmlType::Q4K => "Q4_K",
        GgmlType::Q5K => "Q5_K",
        GgmlType::Q6K => "Q6_K",
        other => match other.name() {
            "f32" => "F32",
            "f16" => "F16",
            "bf16" => "BF16",
            "q4_0" => "Q4_0",
            "q4_1" => "Q4_1",
            "q5_0" => "Q5_0",
            "q5_1" => "Q5_1",
            _ => "Q8_0",
        },
    }
}

fn py_value_type(v: &Value) -> String {
    let name = |t: ValueType| match t {
        ValueType::U32 => "UINT32",
        ValueType::I32 => "INT32",
        ValueType::F32 => "FLOAT32",
        ValueType::Bool => "BOOL",
        ValueType::String => "STRING",
        ValueType::Array => "ARRAY",
        other => panic!("forge writes no {other}"),
    };
    match v {
        Value::Array(t, _) => format!("ARRAY/{}", name(*t)),
        v => name(v.value_type()).to_string(),
    }
}

/// The whole 256M pair (about 280 MB) writes in seconds and reads back as planned.
#[test]
fn forge_smolvlm_256m_writes_fully() {
    let spec = preset("smolvlm-256m");
    let dir = temp_dir("forge_smolvlm_256m");
    let start = Instant::now();
    let forged = forge::forge(&spec, &dir).unwrap();
    eprintln!("forged smolvlm-256m in {:?}", start.elapsed());
    let p = plan(&spec);
    let (text, mmproj) = (Gguf::open(&forged.text).unwrap(), Gguf::open(&forged.mmproj).unwrap());
    assert_file_matches_plan(&text, &p.text);
    assert_file_matches_plan(&mmproj, &p.mmproj);
    eprintln!("sizes: text {} B, mmproj {} B", text.file_size(), mmproj.file_size());
    std::fs::remove_dir_all(&dir).unwrap();
}
