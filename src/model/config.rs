//! Model configuration resolved once from GGUF metadata (candle's `into_config`): typed reads
//! whose errors name the key and the file, defaults in one place with their source, derived
//! values worked out here. Nothing reads metadata after this.

use crate::gguf::{Gguf, Result};
use crate::model::names::*;

/// Text decoder families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextArch {
    Llama,
    Qwen2,
}

impl TextArch {
    pub fn name(self) -> &'static str {
        match self {
            TextArch::Llama => ARCH_LLAMA,
            TextArch::Qwen2 => ARCH_QWEN2,
        }
    }
}

/// How RoPE pairs head dimensions. llama.cpp: `LLM_ARCH_LLAMA` is `LLAMA_ROPE_TYPE_NORM`
/// (adjacent pairs 2j, 2j+1 — the converter permuted q/k to make this right); qwen2 is NEOX
/// (pairs j, j + n_rot/2). See `llama_model_rope_type()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeMode {
    Pairs,
    Halves,
}

/// A text decoder's configuration (llama.cpp names).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TextConfig {
    pub arch: TextArch,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub eps: f32,
    pub rope_base: f32,
    pub rope_dim: usize,
    pub rope_mode: RopeMode,
    /// `output.weight` absent: the output projection reuses `token_embd` (SmolLM2 and others).
    pub tied_embeddings: bool,
    /// qwen2 has biases on q, k and v.
    pub qkv_bias: bool,
}

impl TextConfig {
    pub fn from_gguf(g: &Gguf) -> Result<TextConfig> {
        let arch_name = g.get_str(GENERAL_ARCHITECTURE)?;
        let arch = match arch_name {
            ARCH_LLAMA => TextArch::Llama,
            ARCH_QWEN2 => TextArch::Qwen2,
            other => {
                let what = format!("architecture \"{other}\" is not a text model glimpse runs (llama, qwen2)");
                return Err(bad_value(g, GENERAL_ARCHITECTURE, what));
            }
        };
        let key = |suffix| arch_key(arch_name, suffix);
        let n_embd: usize = g.get_as(&key(LLM_EMBEDDING_LENGTH))?;
        let n_head: usize = g.get_as(&key(LLM_HEAD_COUNT))?;
        // llama.cpp: head_count_kv defaults to head_count (no GQA).
        let n_head_kv: usize = g.get_opt(&key(LLM_HEAD_COUNT_KV))?.unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) {
            return Err(bad_value(g, &key(LLM_HEAD_COUNT_KV), format!("{n_head} heads, {n_head_kv} kv heads")));
        }
        // key_length is optional; llama.cpp defaults it to n_embd / n_head.
        let head_dim: usize = match g.get_opt(&key(LLM_KEY_LENGTH))? {
            Some(d) => d,
            None if n_embd.is_multiple_of(n_head) => n_embd / n_head,
            None => {
                return Err(bad_value(
                    g,
                    &key(LLM_HEAD_COUNT),
                    format!("n_embd {n_embd} not divisible by {n_head} heads"),
                ));
            }
        };
        let token_embd = g.tensor(TOKEN_EMBD)?;
        // vocab_size is optional in older files; the embedding's row count is authoritative.
        let n_vocab = g.get_opt(&key(LLM_VOCAB_SIZE))?.unwrap_or(token_embd.n_rows() as usize);
        Ok(TextConfig {
            arch,
            n_embd,
            n_layer: g.get_as(&key(LLM_BLOCK_COUNT))?,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: g.get_as(&key(LLM_FEED_FORWARD_LENGTH))?,
            n_vocab,
            // llama.cpp requires context_length; it only bounds the KV cache here.
            n_ctx: g.get_opt(&key(LLM_CONTEXT_LENGTH))?.unwrap_or(4096),
            eps: g.get_as(&key(LLM_RMS_EPS))?,
            // llama.cpp's default freq_base is 10000.
            rope_base: g.get_opt(&key(LLM_ROPE_FREQ_BASE))?.unwrap_or(10000.0),
            rope_dim: g.get_opt(&key(LLM_ROPE_DIMENSION_COUNT))?.unwrap_or(head_dim),
            rope_mode: match arch {
                TextArch::Llama => RopeMode::Pairs,
                TextArch::Qwen2 => RopeMode::Halves,
            },
            tied_embeddings: g.find_tensor(OUTPUT).is_none(),
            qkv_bias: g.find_tensor(&blk(0, ATTN_Q, "bias")).is_some(),
        })
    }
}

/// The projector (connector) between the vision tower and the text model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectorKind {
    /// LLaVA: mm.0, GELU, mm.2 on every patch token.
    Mlp,
    /// SmolVLM / Idefics3: pixel shuffle by `scale_factor`, then one bias-free Linear.
    Idefics3,
}

impl ProjectorKind {
    /// The `clip.projector_type` value.
    pub fn name(self) -> &'static str {
        match self {
            ProjectorKind::Mlp => PROJECTOR_MLP,
            ProjectorKind::Idefics3 => PROJECTOR_IDEFICS3,
        }
    }
}

/// The vision tower's FFN activation. llama.cpp: `clip.use_gelu` -> GELU (tanh), `clip.use_silu`
/// -> SiLU, neither -> quick GELU x*sigmoid(1.702x) (CLIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisionAct {
    Gelu,
    QuickGelu,
    Silu,
}

/// A vision tower + projector configuration (an mmproj file).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VisionConfig {
    pub projector: ProjectorKind,
    pub image_size: usize,
    pub patch_size: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub eps: f32,
    /// The text model's width (`clip.vision.projection_dim`).
    pub projection_dim: usize,
    pub act: VisionAct,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// `v.class_embd` present: a CLS token goes first, with position row 0.
    pub has_cls: bool,
    pub has_pre_ln: bool,
    pub has_post_ln: bool,
    /// Pixel-shuffle factor s (idefics3); 1 for mlp.
    pub scale_factor: usize,
    /// idefics3: the longest edge images are resized to before tiling, when the file says.
    pub preproc_image_size: Option<usize>,
    /// Blocks to run: all stored ones, unless `clip.vision.feature_layer` asks for an earlier
    /// hidden state. (LLaVA's hidden_states[-2] is already what the legacy converter stores: it
    /// drops the last block and writes block_count = N - 1; glimpse runs all of them, following
    /// Hugging Face rather than llama.cpp's one-short graph, issue #25817.)
    pub n_layer_run: usize,
    /// Trap: old mmproj files have ffn_up / ffn_down swapped. llama.cpp detects
    /// `ffn_down.ne[0] == n_embd` (a down projection's input is n_ff wide) and swaps them back.
    pub ffn_swapped: bool,
}

impl VisionConfig {
    pub fn from_gguf(g: &Gguf) -> Result<VisionConfig> {
        let projector = match g.get_str(CLIP_PROJECTOR_TYPE)? {
            PROJECTOR_MLP => ProjectorKind::Mlp,
            PROJECTOR_IDEFICS3 => ProjectorKind::Idefics3,
            other => {
                let what = format!("projector \"{other}\" is not one glimpse runs (mlp, idefics3)");
                return Err(bad_value(g, CLIP_PROJECTOR_TYPE, what));
            }
        };
        let act = if g.get_opt(CLIP_USE_GELU)?.unwrap_or(false) {
            VisionAct::Gelu
        } else if g.get_opt(CLIP_USE_SILU)?.unwrap_or(false) {
            VisionAct::Silu
        } else {
            VisionAct::QuickGelu
        };
        let rgb = |key: &str| -> Result<[f32; 3]> {
            let v: Vec<f32> = g.get_as(key)?;
            <[f32; 3]>::try_from(v.as_slice()).map_err(|_| bad_value(g, key, format!("{} values, expected 3", v.len())))
        };
        let image_size: usize = g.get_as(CLIP_VISION_IMAGE_SIZE)?;
        let patch_size: usize = g.get_as(CLIP_VISION_PATCH_SIZE)?;
        if patch_size == 0 || !image_size.is_multiple_of(patch_size) {
            return Err(bad_value(
                g,
                CLIP_VISION_PATCH_SIZE,
                format!("{patch_size} does not divide image size {image_size}"),
            ));
        }
        let n_embd: usize = g.get_as(CLIP_VISION_EMBEDDING_LENGTH)?;
        let n_head: usize = g.get_as(CLIP_VISION_HEAD_COUNT)?;
        if n_head == 0 || !n_embd.is_multiple_of(n_head) {
            return Err(bad_value(g, CLIP_VISION_HEAD_COUNT, format!("{n_head} heads do not divide n_embd {n_embd}")));
        }
        let scale_factor = match projector {
            // llama.cpp's idefics3 default when the key is absent is 2 (clip.cpp load_hparams).
            ProjectorKind::Idefics3 => g.get_opt(CLIP_VISION_SCALE_FACTOR)?.unwrap_or(2),
            ProjectorKind::Mlp => 1,
        };
        let per_side = image_size / patch_size;
        if scale_factor == 0 || !per_side.is_multiple_of(scale_factor) {
            return Err(bad_value(
                g,
                CLIP_VISION_SCALE_FACTOR,
                format!("{scale_factor} does not divide {per_side} patches per side"),
            ));
        }
        let n_layer: usize = g.get_as(CLIP_VISION_BLOCK_COUNT)?;
        // feature_layer holds hidden-state indices (0 = the embeddings); one entry is supported.
        let n_layer_run = match g.get_opt::<Vec<i64>>(CLIP_VISION_FEATURE_LAYER)?.as_deref() {
            None | Some([]) => n_layer,
            Some(&[l]) if l >= 1 && l as usize <= n_layer => l as usize,
            Some(other) => {
                let what = format!("{other:?}: glimpse supports one feature layer in 1..={n_layer}");
                return Err(bad_value(g, CLIP_VISION_FEATURE_LAYER, what));
            }
        };
        let ffn_swapped = g.find_tensor(&vblk(0, V_FFN_DOWN, "weight")).is_some_and(|t| t.dims[0] as usize == n_embd);
        Ok(VisionConfig {
            projector,
            image_size,
            patch_size,
            n_embd,
            n_ff: g.get_as(CLIP_VISION_FEED_FORWARD_LENGTH)?,
            n_layer,
            n_head,
            eps: g.get_as(CLIP_VISION_LN_EPS)?,
            projection_dim: g.get_as(CLIP_VISION_PROJECTION_DIM)?,
            act,
            image_mean: rgb(CLIP_VISION_IMAGE_MEAN)?,
            image_std: rgb(CLIP_VISION_IMAGE_STD)?,
            has_cls: g.find_tensor(V_CLASS_EMBD).is_some(),
            has_pre_ln: g.find_tensor(&format!("{V_PRE_LN}.weight")).is_some(),
            has_post_ln: g.find_tensor(&format!("{V_POST_LN}.weight")).is_some(),
            scale_factor,
            preproc_image_size: g.get_opt(CLIP_VISION_PREPROC_IMAGE_SIZE)?,
            n_layer_run,
            ffn_swapped,
        })
    }

    /// Patches along one side of a tile.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Patch tokens per tile (without CLS).
    pub fn n_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }

    /// Rows of the position embedding: patches, plus one for CLS.
    pub fn n_pos(&self) -> usize {
        self.n_patches() + self.has_cls as usize
    }

    /// Visual tokens one tile sends to the LLM (CLS dropped; pixel shuffle merges s x s patches).
    pub fn tokens_per_tile(&self) -> usize {
        self.n_patches() / (self.scale_factor * self.scale_factor)
    }
}

fn bad_value(g: &Gguf, key: &str, what: String) -> crate::gguf::Error {
    crate::gguf::Error::BadValue { file: g.name().to_string(), key: key.to_string(), what }
}
