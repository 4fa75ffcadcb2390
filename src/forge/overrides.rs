//! `--set key=value` overrides: one table maps each key to the field it writes, so the list in
//! error messages and the accepted keys are the same thing.

use std::str::FromStr;

use crate::gguf::GgmlType;

use super::ForgeError;
use super::spec::{ChatTemplate, ForgeSpec, Projector, TextArch};

type Setter = fn(&mut ForgeSpec, &str) -> Result<(), String>;

/// Every overridable key and its setter.
const KEYS: &[(&str, Setter)] = &[
    ("seed", |s, v| num(&mut s.seed, v)),
    ("text.arch", |s, v| {
        s.text.arch = choose(v, &[("llama", TextArch::Llama), ("qwen2", TextArch::Qwen2)])?;
        Ok(())
    }),
    ("text.name", |s, v| {
        s.text.name = v.to_string();
        Ok(())
    }),
    ("text.n_embd", |s, v| num(&mut s.text.n_embd, v)),
    ("text.n_layer", |s, v| num(&mut s.text.n_layer, v)),
    ("text.n_head", |s, v| num(&mut s.text.n_head, v)),
    ("text.n_head_kv", |s, v| num(&mut s.text.n_head_kv, v)),
    ("text.n_ff", |s, v| num(&mut s.text.n_ff, v)),
    ("text.n_vocab", |s, v| num(&mut s.text.n_vocab, v)),
    ("text.n_ctx", |s, v| num(&mut s.text.n_ctx, v)),
    ("text.eps", |s, v| num(&mut s.text.eps, v)),
    ("text.rope_base", |s, v| num(&mut s.text.rope_base, v)),
    ("text.tied", |s, v| num(&mut s.text.tied, v)),
    ("text.template", |s, v| {
        let all =
            [("smolvlm", ChatTemplate::Smolvlm), ("chatml", ChatTemplate::Chatml), ("vicuna", ChatTemplate::Vicuna)];
        s.text.template = choose(v, &all)?;
        Ok(())
    }),
    ("text.qtype.embd", |s, v| ty(&mut s.text.qtype.embd, v)),
    ("text.qtype.output", |s, v| ty(&mut s.text.qtype.output, v)),
    ("text.qtype.attn", |s, v| ty(&mut s.text.qtype.attn, v)),
    ("text.qtype.ffn", |s, v| ty(&mut s.text.qtype.ffn, v)),
    ("vision.projector", |s, v| {
        s.vision.projector = choose(v, &[("mlp", Projector::Mlp), ("idefics3", Projector::Idefics3)])?;
        Ok(())
    }),
    ("vision.name", |s, v| {
        s.vision.name = v.to_string();
        Ok(())
    }),
    ("vision.image_size", |s, v| num(&mut s.vision.image_size, v)),
    ("vision.patch_size", |s, v| num(&mut s.vision.patch_size, v)),
    ("vision.n_embd", |s, v| num(&mut s.vision.n_embd, v)),
    ("vision.n_ff", |s, v| num(&mut s.vision.n_ff, v)),
    ("vision.n_head", |s, v| num(&mut s.vision.n_head, v)),
    ("vision.n_layer", |s, v| num(&mut s.vision.n_layer, v)),
    ("vision.eps", |s, v| num(&mut s.vision.eps, v)),
    ("vision.cls", |s, v| num(&mut s.vision.cls, v)),
    ("vision.pre_ln", |s, v| num(&mut s.vision.pre_ln, v)),
    ("vision.post_ln", |s, v| num(&mut s.vision.post_ln, v)),
    ("vision.patch_bias", |s, v| num(&mut s.vision.patch_bias, v)),
    ("vision.use_gelu", |s, v| num(&mut s.vision.use_gelu, v)),
    ("vision.scale_factor", |s, v| num(&mut s.vision.scale_factor, v)),
    ("vision.preproc_image_size", |s, v| {
        s.vision.preproc_image_size = if v == "none" { None } else { Some(parse(v)?) };
        Ok(())
    }),
    ("vision.image_mean", |s, v| rgb(&mut s.vision.image_mean, v)),
    ("vision.image_std", |s, v| rgb(&mut s.vision.image_std, v)),
    ("vision.legacy", |s, v| num(&mut s.vision.legacy, v)),
    ("vision.trimmer", |s, v| {
        s.vision.trimmer = if v == "none" { None } else { Some(parse(v)?) };
        Ok(())
    }),
    ("vision.qtype.embd", |s, v| ty(&mut s.vision.qtype.embd, v)),
    ("vision.qtype.attn", |s, v| ty(&mut s.vision.qtype.attn, v)),
    ("vision.qtype.ffn", |s, v| ty(&mut s.vision.qtype.ffn, v)),
    ("vision.qtype.proj", |s, v| ty(&mut s.vision.qtype.proj, v)),
];

impl ForgeSpec {
    /// The keys `set` accepts.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        KEYS.iter().map(|(k, _)| *k)
    }

    /// Applies one `--set key=value` override, e.g. `("text.n_layer", "4")`,
    /// `("vision.qtype.attn", "f16")`, `("vision.preproc_image_size", "none")`.
    /// Consistency between fields is checked by `validate` (which `forge` calls).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ForgeError> {
        let Some((_, setter)) = KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(ForgeError::UnknownKey {
                key: key.to_string(),
                keys: Self::keys().collect::<Vec<_>>().join(", "),
            });
        };
        setter(self, value).map_err(|expected| ForgeError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            expected,
        })
    }
}

fn parse<T: FromStr>(v: &str) -> Result<T, String> {
    v.trim().parse().map_err(|_| format!("expected {}", std::any::type_name::<T>().rsplit("::").next().unwrap_or("?")))
}

/// Numbers and bools.
fn num<T: FromStr>(slot: &mut T, v: &str) -> Result<(), String> {
    *slot = parse(v)?;
    Ok(())
}

fn choose<T: Copy>(v: &str, options: &[(&str, T)]) -> Result<T, String> {
    options.iter().find(|(name, _)| *name == v).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
        format!("expected one of: {}", names.join(", "))
    })
}

/// Three comma-separated floats, e.g. `0.5,0.5,0.5`.
fn rgb(slot: &mut [f32; 3], v: &str) -> Result<(), String> {
    let parts: Vec<f32> = v.split(',').map(parse).collect::<Result<_, _>>()?;
    *slot = parts.try_into().map_err(|_| "expected three comma-separated numbers".to_string())?;
    Ok(())
}

/// A ggml type name (`q8_0`, `q4_k`, `f16`); the error lists the names.
fn ty(slot: &mut GgmlType, v: &str) -> Result<(), String> {
    *slot = v.trim().parse()?;
    Ok(())
}
