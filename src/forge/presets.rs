//! Named starting points for `glimpse forge --preset`. The `smolvlm-*` presets have the real
//! shapes and metadata of ggml-org's SmolVLM GGUFs (shared-notes/smolvlm-gguf.md); the `tiny*`
//! presets are small enough to forge in milliseconds for tests; `llava` keeps LLaVA-1.5's token
//! count (336 px, patch 14, CLS: 577 positions) on a narrower, shallower tower.

use crate::gguf::GgmlType::{self, F16, F32, Q8_0};

use super::ForgeError;
use super::spec::{ChatTemplate, ForgeSpec, Projector, TextArch, TextSpec, TextTypes, VisionSpec, VisionTypes};

/// SigLIP / SmolVLM normalisation [R preprocessor_config.json].
const HALF: [f32; 3] = [0.5, 0.5, 0.5];
/// OpenAI CLIP normalisation [R legacy converter defaults: mean (0.48145466, 0.4578275,
/// 0.40821073), std (0.26862954, 0.26130258, 0.27577711)], as the f32 values the file stores.
const CLIP_MEAN: [f32; 3] = [0.481_454_67, 0.457_827_5, 0.408_210_72];
const CLIP_STD: [f32; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

impl ForgeSpec {
    pub const PRESETS: &'static [&'static str] =
        &["tiny", "tiny-qwen2", "tiny-llava", "smolvlm-256m", "smolvlm-500m", "llava"];

    /// A preset by name; the error lists the presets.
    pub fn preset(name: &str) -> Result<ForgeSpec, ForgeError> {
        let spec = match name {
            // idefics3 + llama (tied), like SmolVLM at toy size: 64 px, 8x8 patches, s = 2.
            "tiny" => ForgeSpec { text: tiny_text(TextArch::Llama), vision: tiny_siglip(Projector::Idefics3), seed: 0 },
            // mlp over SigLIP without CLS + qwen2 (nanoLLaVA's shape).
            "tiny-qwen2" => ForgeSpec {
                text: TextSpec {
                    n_layer: 3,
                    eps: 1e-6,
                    rope_base: 1_000_000.0,
                    tied: false,
                    template: ChatTemplate::Chatml,
                    ..tiny_text(TextArch::Qwen2)
                },
                vision: VisionSpec {
                    post_ln: false,
                    scale_factor: 1,
                    preproc_image_size: None,
                    ..tiny_siglip(Projector::Mlp)
                },
                seed: 0,
            },
            // mlp over CLIP with CLS (legacy LLaVA script layout) + llama with a Vicuna template.
            "tiny-llava" => ForgeSpec {
                text: TextSpec { tied: false, template: ChatTemplate::Vicuna, ..tiny_text(TextArch::Llama) },
                vision: VisionSpec { n_layer: 3, ..clip(64, 8, 64, 256, 4, "tiny-llava") },
                seed: 0,
            },
            "smolvlm-256m" => smolvlm("SmolVLM 256M Instruct", 576, 30, 9, 3, 1536),
            // SmolLM2-360M text; untied (text Q8_0 holds 409M params = 362M + a 49280 x 960 lm_head).
            "smolvlm-500m" => smolvlm("SmolVLM 500M Instruct", 960, 32, 15, 5, 2560),
            "llava" => ForgeSpec {
                text: TextSpec {
                    arch: TextArch::Llama,
                    name: "llava (forged)".into(),
                    n_embd: 512,
                    n_layer: 8,
                    n_head: 8,
                    n_head_kv: 4,
                    n_ff: 1536,
                    n_vocab: 8192,
                    n_ctx: 4096,
                    eps: 1e-5,
                    rope_base: 10_000.0,
                    tied: false,
                    template: ChatTemplate::Vicuna,
                    qtype: text_types(F16),
                    corpus: None,
                },
                // CLIP-L/14-336 has 24 layers of width 1024; 23 are stored (the last is dropped
                // for LLaVA's second-to-last feature layer). Width 384 keeps the file small.
                vision: VisionSpec { n_layer: 23, ..clip(336, 14, 384, 1536, 6, "llava") },
                seed: 0,
            },
            _ => {
                return Err(ForgeError::UnknownPreset { name: name.to_string(), presets: Self::PRESETS.join(", ") });
            }
        };
        Ok(spec)
    }
}

fn text_types(ty: GgmlType) -> TextTypes {
    TextTypes { embd: ty, output: ty, attn: ty, ffn: ty }
}

fn tiny_text(arch: TextArch) -> TextSpec {
    TextSpec {
        arch,
        name: "tiny (forged)".into(),
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 128,
        n_vocab: 576,
        n_ctx: 2048,
        eps: 1e-5,
        rope_base: 100_000.0,
        tied: true,
        template: ChatTemplate::Smolvlm,
        qtype: text_types(F16),
        corpus: None,
    }
}

/// SigLIP-style tower: no CLS, patch bias, GELU, post_ln.
fn tiny_siglip(projector: Projector) -> VisionSpec {
    VisionSpec {
        projector,
        name: "tiny (forged)".into(),
        image_size: 64,
        patch_size: 8,
        n_embd: 64,
        n_ff: 256,
        n_head: 4,
        n_layer: 2,
        eps: 1e-6,
        cls: false,
        pre_ln: false,
        post_ln: true,
        patch_bias: true,
        use_gelu: true,
        scale_factor: 2,
        preproc_image_size: Some(128),
        image_mean: HALF,
        image_std: HALF,
        legacy: false,
        trimmer: None,
        // SmolVLMModel.tensor_force_quant: `.embeddings.` tensors are F32.
        qtype: VisionTypes { embd: F32, attn: F16, ffn: F16, proj: F16 },
    }
}

/// CLIP tower as the legacy LLaVA script writes it: CLS + pre_ln, no post_ln, quick GELU,
/// no patch bias, F16 patch/position embeddings.
fn clip(image_size: u32, patch_size: u32, n_embd: u32, n_ff: u32, n_head: u32, name: &str) -> VisionSpec {
    VisionSpec {
        projector: Projector::Mlp,
        name: format!("{name} (forged)"),
        image_size,
        patch_size,
        n_embd,
        n_ff,
        n_head,
        n_layer: 2,
        eps: 1e-5,
        cls: true,
        pre_ln: true,
        post_ln: false,
        patch_bias: false,
        use_gelu: false,
        scale_factor: 1,
        preproc_image_size: None,
        image_mean: CLIP_MEAN,
        image_std: CLIP_STD,
        legacy: true,
        trimmer: None,
        qtype: VisionTypes { embd: F16, attn: F16, ffn: F16, proj: F16 },
    }
}

/// SmolVLM-256M/500M-Instruct: SmolLM2 text + SigLIP-B/16 @ 512, s = 4, as ggml-org's Q8_0 files.
fn smolvlm(name: &str, n_embd: u32, n_layer: u32, n_head: u32, n_head_kv: u32, n_ff: u32) -> ForgeSpec {
    ForgeSpec {
        text: TextSpec {
            arch: TextArch::Llama,
            name: name.into(),
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            n_ff,
            n_vocab: 49280,
            n_ctx: 8192,
            eps: 1e-5,
            rope_base: 100_000.0,
            tied: false,
            template: ChatTemplate::Smolvlm,
            qtype: text_types(Q8_0),
            corpus: None,
        },
        vision: VisionSpec {
            projector: Projector::Idefics3,
            name: name.into(),
            image_size: 512,
            patch_size: 16,
            n_embd: 768,
            n_ff: 3072,
            n_head: 12,
            n_layer: 12,
            // SigLIP's layer_norm_eps (the converter's fallback is 1e-5).
            eps: 1e-6,
            cls: false,
            pre_ln: false,
            post_ln: true,
            patch_bias: true,
            use_gelu: true,
            scale_factor: 4,
            preproc_image_size: Some(2048),
            image_mean: HALF,
            image_std: HALF,
            legacy: false,
            trimmer: None,
            qtype: VisionTypes { embd: F32, attn: Q8_0, ffn: Q8_0, proj: Q8_0 },
        },
        seed: 0,
    }
}
