//! What to forge: the plain description of a text model + mmproj pair, and its consistency check.
//! Field names follow llama.cpp (`n_embd`, `n_head_kv`, `n_ff`); every count is what the files
//! will hold (e.g. `vision.n_layer` is the number of stored blocks = `clip.vision.block_count`).

use crate::gguf::GgmlType;

use super::ForgeError;

/// A model pair to forge. Plain data: presets fill it, `set` overrides fields, `forge` writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ForgeSpec {
    pub text: TextSpec,
    pub vision: VisionSpec,
    /// Every tensor's values come from a PRNG seeded by (seed, tensor name).
    pub seed: u64,
}

pub use crate::model::config::{ProjectorKind as Projector, TextArch};

/// The Jinja chat template written to `tokenizer.chat_template`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// SmolVLM-Instruct's template ("User:" / "Assistant:" / `<end_of_utterance>`).
    Smolvlm,
    /// `<|im_start|>role\n...<|im_end|>` (Qwen2).
    Chatml,
    /// LLaVA-1.5 / Vicuna ("USER: ... ASSISTANT:").
    Vicuna,
}

/// Tensor types of the text model's 2-D weights, per class. 1-D tensors (norms, biases) are
/// always F32, as the converters write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextTypes {
    /// `token_embd.weight`.
    pub embd: GgmlType,
    /// `output.weight` (when untied).
    pub output: GgmlType,
    /// `attn_q`, `attn_k`, `attn_v`, `attn_output`.
    pub attn: GgmlType,
    /// `ffn_gate`, `ffn_up`, `ffn_down`.
    pub ffn: GgmlType,
}

/// Tensor types of the mmproj's multi-dimensional weights, per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisionTypes {
    /// `v.patch_embd.weight` and `v.position_embd.weight`: converters force these (F32 for
    /// SmolVLM, F16 for the legacy LLaVA script), so `--qtype` leaves them alone.
    pub embd: GgmlType,
    /// `attn_q`, `attn_k`, `attn_v`, `attn_out`.
    pub attn: GgmlType,
    /// `ffn_up`, `ffn_down`.
    pub ffn: GgmlType,
    /// The projector: `mm.model.fc` or `mm.0` / `mm.2`.
    pub proj: GgmlType,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextSpec {
    pub arch: TextArch,
    /// `general.name`.
    pub name: String,
    pub n_embd: u32,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_ff: u32,
    /// Total token ids, specials and unused slots included (`{arch}.vocab_size`).
    pub n_vocab: u32,
    pub n_ctx: u32,
    pub eps: f32,
    pub rope_base: f32,
    /// No `output.weight`: the output projection reuses `token_embd`.
    pub tied: bool,
    pub template: ChatTemplate,
    pub qtype: TextTypes,
    /// The text the BPE merges are learned from; `None`: the embedded English text.
    pub corpus: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VisionSpec {
    pub projector: Projector,
    /// `general.name`.
    pub name: String,
    pub image_size: u32,
    pub patch_size: u32,
    pub n_embd: u32,
    pub n_ff: u32,
    pub n_head: u32,
    /// Stored blocks (`clip.vision.block_count`).
    pub n_layer: u32,
    pub eps: f32,
    /// CLIP-style class token: `v.class_embd`, one more position row.
    pub cls: bool,
    pub pre_ln: bool,
    pub post_ln: bool,
    /// `v.patch_embd.bias` (SigLIP has one, CLIP does not).
    pub patch_bias: bool,
    /// `clip.use_gelu`: true = GELU (SigLIP), false = quick GELU (CLIP).
    pub use_gelu: bool,
    /// idefics3 pixel-shuffle factor s (`clip.vision.projector.scale_factor`).
    pub scale_factor: u32,
    /// idefics3 longest edge before tiling (`clip.vision.preproc_image_size`); None = key absent.
    pub preproc_image_size: Option<u32>,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// Write what the legacy LLaVA script (`convert_image_encoder_to_gguf.py`) writes: its keys
    /// (`clip.has_llava_projector`, no `general.type`) and fc1/fc2 stored as `ffn_down`/`ffn_up`.
    pub legacy: bool,
    pub qtype: VisionTypes,
    /// A learned token trimmer (`glimpse.trim.*`) of this hidden width, F32.
    pub trimmer: Option<u32>,
}

impl TextSpec {
    pub fn head_dim(&self) -> u32 {
        self.n_embd / self.n_head
    }

    /// `tokenizer.ggml.pre`: llama.cpp's pre-tokenizer for SmolLM2's and Qwen2's vocabularies.
    pub fn pre_tokenizer(&self) -> &'static str {
        match self.arch {
            TextArch::Llama => "smollm",
            TextArch::Qwen2 => "qwen2",
        }
    }
}

impl VisionSpec {
    pub fn n_patches(&self) -> u32 {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Position-embedding rows: the patches, plus one for CLS.
    pub fn n_pos(&self) -> u32 {
        self.n_patches() + self.cls as u32
    }

    /// Width of the connector's candidate rows (what a token trimmer scores): the tower's for
    /// `mlp`, s x s patches side by side after idefics3's pixel shuffle.
    pub fn candidate_width(&self) -> u32 {
        match self.projector {
            Projector::Mlp => self.n_embd,
            Projector::Idefics3 => self.n_embd * self.scale_factor * self.scale_factor,
        }
    }
}

impl ForgeSpec {
    /// What `--qtype` does: every quantisable 2-D weight of both files takes `ty` (the vision
    /// embeddings keep the type their converter forces). Rows that `ty` cannot divide fall back
    /// when the tensor is planned (see `plan::fit_type`).
    pub fn set_qtype(&mut self, ty: GgmlType) {
        self.text.qtype = TextTypes { embd: ty, output: ty, attn: ty, ffn: ty };
        let embd = self.vision.qtype.embd;
        self.vision.qtype = VisionTypes { embd, attn: ty, ffn: ty, proj: ty };
    }

    /// Checks the dimensions fit together; the error names the fields.
    pub fn validate(&self) -> Result<(), ForgeError> {
        let t = &self.text;
        let v = &self.vision;
        let bad = |what: String| Err(ForgeError::Inconsistent(what));
        for (name, value) in [
            ("text.n_embd", t.n_embd),
            ("text.n_layer", t.n_layer),
            ("text.n_head", t.n_head),
            ("text.n_head_kv", t.n_head_kv),
            ("text.n_ff", t.n_ff),
            ("text.n_ctx", t.n_ctx),
            ("vision.image_size", v.image_size),
            ("vision.patch_size", v.patch_size),
            ("vision.n_embd", v.n_embd),
            ("vision.n_ff", v.n_ff),
            ("vision.n_head", v.n_head),
            ("vision.n_layer", v.n_layer),
            ("vision.scale_factor", v.scale_factor),
        ] {
            if value == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !t.n_embd.is_multiple_of(t.n_head) {
            return bad(format!("text.n_embd {} is not divisible by text.n_head {}", t.n_embd, t.n_head));
        }
        if !t.n_head.is_multiple_of(t.n_head_kv) {
            return bad(format!("text.n_head {} is not a multiple of text.n_head_kv {}", t.n_head, t.n_head_kv));
        }
        if !t.head_dim().is_multiple_of(2) {
            return bad(format!("text head dim {} (n_embd / n_head) must be even for rope", t.head_dim()));
        }
        let min_vocab = super::tokenizer::MIN_VOCAB;
        if t.n_vocab < min_vocab {
            return bad(format!(
                "text.n_vocab {} is below {min_vocab} (specials + 256 bytes + added tokens)",
                t.n_vocab
            ));
        }
        if !v.n_embd.is_multiple_of(v.n_head) {
            return bad(format!("vision.n_embd {} is not divisible by vision.n_head {}", v.n_embd, v.n_head));
        }
        if !v.image_size.is_multiple_of(v.patch_size) {
            return bad(format!(
                "vision.patch_size {} does not divide vision.image_size {}",
                v.patch_size, v.image_size
            ));
        }
        let per_side = v.image_size / v.patch_size;
        if v.projector == Projector::Idefics3 {
            if !per_side.is_multiple_of(v.scale_factor) {
                return bad(format!(
                    "vision.scale_factor {} does not divide {per_side} patches per side",
                    v.scale_factor
                ));
            }
            if v.cls {
                return bad("vision.cls: the idefics3 projector has no class token (SigLIP)".into());
            }
            if v.legacy {
                return bad("vision.legacy: the legacy LLaVA script writes only mlp projectors".into());
            }
        }
        if v.trimmer == Some(0) {
            return bad("vision.trimmer must be positive (or none)".into());
        }
        Ok(())
    }
}
