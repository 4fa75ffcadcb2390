//! Every GGUF metadata key and tensor-name pattern glimpse reads or writes, in one place (the
//! role of llama.cpp's `clip-impl.h` and gguf-py's `constants.py`), so a name printed by
//! `glimpse inspect` greps straight to its use.

// ---- general ------------------------------------------------------------------------------
pub const GENERAL_ARCHITECTURE: &str = "general.architecture";
pub const GENERAL_TYPE: &str = "general.type";
pub const GENERAL_NAME: &str = "general.name";
pub const GENERAL_FILE_TYPE: &str = "general.file_type";
pub const GENERAL_QUANTIZATION_VERSION: &str = "general.quantization_version";
pub const GENERAL_ALIGNMENT: &str = "general.alignment";
/// Written by the legacy LLaVA mmproj script ("image encoder for LLaVA").
pub const GENERAL_DESCRIPTION: &str = "general.description";

/// `general.architecture` of an mmproj file.
pub const ARCH_CLIP: &str = "clip";
/// `general.type` values written by llama.cpp's converters.
pub const TYPE_MODEL: &str = "model";
pub const TYPE_MMPROJ: &str = "mmproj";

// ---- text model: `{arch}.…` keys, arch = "llama" | "qwen2" --------------------------------
pub const ARCH_LLAMA: &str = "llama";
pub const ARCH_QWEN2: &str = "qwen2";

/// A per-architecture key, e.g. `arch_key("llama", LLM_BLOCK_COUNT)` = `llama.block_count`.
pub fn arch_key(arch: &str, suffix: &str) -> String {
    format!("{arch}.{suffix}")
}
pub const LLM_CONTEXT_LENGTH: &str = "context_length";
pub const LLM_EMBEDDING_LENGTH: &str = "embedding_length";
pub const LLM_BLOCK_COUNT: &str = "block_count";
pub const LLM_FEED_FORWARD_LENGTH: &str = "feed_forward_length";
pub const LLM_VOCAB_SIZE: &str = "vocab_size";
pub const LLM_HEAD_COUNT: &str = "attention.head_count";
pub const LLM_HEAD_COUNT_KV: &str = "attention.head_count_kv";
pub const LLM_RMS_EPS: &str = "attention.layer_norm_rms_epsilon";
pub const LLM_KEY_LENGTH: &str = "attention.key_length";
pub const LLM_VALUE_LENGTH: &str = "attention.value_length";
pub const LLM_ROPE_FREQ_BASE: &str = "rope.freq_base";
pub const LLM_ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";

// ---- tokenizer ----------------------------------------------------------------------------
pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
pub const TOKENIZER_PRE: &str = "tokenizer.ggml.pre";
pub const TOKENIZER_TOKENS: &str = "tokenizer.ggml.tokens";
pub const TOKENIZER_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const TOKENIZER_MERGES: &str = "tokenizer.ggml.merges";
pub const TOKENIZER_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
pub const TOKENIZER_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
pub const TOKENIZER_UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
pub const TOKENIZER_PAD_ID: &str = "tokenizer.ggml.padding_token_id";
pub const TOKENIZER_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const TOKENIZER_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const TOKENIZER_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
pub const TOKEN_TYPE_NORMAL: i32 = 1;
pub const TOKEN_TYPE_UNKNOWN: i32 = 2;
pub const TOKEN_TYPE_CONTROL: i32 = 3;
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
pub const TOKEN_TYPE_UNUSED: i32 = 5;
pub const TOKEN_TYPE_BYTE: i32 = 6;

// ---- text tensors -------------------------------------------------------------------------
pub const TOKEN_EMBD: &str = "token_embd.weight";
pub const OUTPUT_NORM: &str = "output_norm.weight";
/// Optional: absent when the output projection is tied to `token_embd`.
pub const OUTPUT: &str = "output.weight";

/// A text block tensor, e.g. `blk(3, ATTN_Q, "weight")` = `blk.3.attn_q.weight`.
pub fn blk(layer: usize, tensor: &str, suffix: &str) -> String {
    format!("blk.{layer}.{tensor}.{suffix}")
}
pub const ATTN_NORM: &str = "attn_norm";
pub const ATTN_Q: &str = "attn_q";
pub const ATTN_K: &str = "attn_k";
pub const ATTN_V: &str = "attn_v";
pub const ATTN_OUTPUT: &str = "attn_output";
pub const FFN_NORM: &str = "ffn_norm";
pub const FFN_GATE: &str = "ffn_gate";
pub const FFN_UP: &str = "ffn_up";
pub const FFN_DOWN: &str = "ffn_down";

// ---- mmproj keys --------------------------------------------------------------------------
pub const CLIP_PROJECTOR_TYPE: &str = "clip.projector_type";
pub const CLIP_HAS_VISION_ENCODER: &str = "clip.has_vision_encoder";
pub const CLIP_HAS_TEXT_ENCODER: &str = "clip.has_text_encoder";
pub const CLIP_HAS_LLAVA_PROJECTOR: &str = "clip.has_llava_projector";
pub const CLIP_USE_GELU: &str = "clip.use_gelu";
pub const CLIP_USE_SILU: &str = "clip.use_silu";
pub const CLIP_VISION_IMAGE_SIZE: &str = "clip.vision.image_size";
pub const CLIP_VISION_PATCH_SIZE: &str = "clip.vision.patch_size";
pub const CLIP_VISION_EMBEDDING_LENGTH: &str = "clip.vision.embedding_length";
pub const CLIP_VISION_FEED_FORWARD_LENGTH: &str = "clip.vision.feed_forward_length";
pub const CLIP_VISION_PROJECTION_DIM: &str = "clip.vision.projection_dim";
pub const CLIP_VISION_BLOCK_COUNT: &str = "clip.vision.block_count";
pub const CLIP_VISION_HEAD_COUNT: &str = "clip.vision.attention.head_count";
pub const CLIP_VISION_LN_EPS: &str = "clip.vision.attention.layer_norm_epsilon";
pub const CLIP_VISION_IMAGE_MEAN: &str = "clip.vision.image_mean";
pub const CLIP_VISION_IMAGE_STD: &str = "clip.vision.image_std";
pub const CLIP_VISION_FEATURE_LAYER: &str = "clip.vision.feature_layer";
pub const CLIP_VISION_SCALE_FACTOR: &str = "clip.vision.projector.scale_factor";
pub const CLIP_VISION_PREPROC_IMAGE_SIZE: &str = "clip.vision.preproc_image_size";

/// `clip.projector_type` values glimpse runs.
pub const PROJECTOR_MLP: &str = "mlp";
pub const PROJECTOR_IDEFICS3: &str = "idefics3";

// ---- mmproj tensors -----------------------------------------------------------------------
/// Conv kernel, ggml order `[patch, patch, 3, n_embd]`.
pub const V_PATCH_EMBD: &str = "v.patch_embd.weight";
pub const V_PATCH_EMBD_BIAS: &str = "v.patch_embd.bias";
/// Present only for CLIP-style encoders with a CLS token: `[n_embd]`.
pub const V_CLASS_EMBD: &str = "v.class_embd";
/// `[n_embd, n_pos]`, n_pos = patches (+1 with CLS).
pub const V_POSITION_EMBD: &str = "v.position_embd.weight";
pub const V_PRE_LN: &str = "v.pre_ln";
pub const V_POST_LN: &str = "v.post_ln";

/// A vision block tensor, e.g. `vblk(0, V_ATTN_OUT, "bias")` = `v.blk.0.attn_out.bias`.
pub fn vblk(layer: usize, tensor: &str, suffix: &str) -> String {
    format!("v.blk.{layer}.{tensor}.{suffix}")
}
pub const V_ATTN_Q: &str = "attn_q";
pub const V_ATTN_K: &str = "attn_k";
pub const V_ATTN_V: &str = "attn_v";
/// Note `attn_out` in the vision tower vs `attn_output` in the text model.
pub const V_ATTN_OUT: &str = "attn_out";
pub const V_LN1: &str = "ln1";
pub const V_LN2: &str = "ln2";
pub const V_FFN_UP: &str = "ffn_up";
pub const V_FFN_DOWN: &str = "ffn_down";

/// idefics3 connector: one bias-free Linear after the pixel shuffle, `[n_embd * s * s, n_text]`.
pub const MM_IDEFICS3_FC: &str = "mm.model.fc.weight";
/// glimpse's learned token trimmer (SmartTrim-style, `prune::trimmer`), in the mmproj of models
/// trained with one: a per-token question vector table `[n_vocab, hidden]`, then
/// `score = fc2 . gelu(fc1 x + fc1.bias + mean of the question's rows)` over each candidate row x
/// of the connector. llama.cpp loads and ignores tensors it does not know.
pub const TRIM_PREFIX: &str = "glimpse.trim.";
pub const TRIM_TOKEN_EMBD: &str = "glimpse.trim.token_embd.weight";
pub const TRIM_FC1: &str = "glimpse.trim.fc1.weight";
pub const TRIM_FC1_BIAS: &str = "glimpse.trim.fc1.bias";
pub const TRIM_FC2: &str = "glimpse.trim.fc2.weight";
/// LLaVA mlp projector: `mm.0` (Linear), GELU, `mm.2` (Linear), each with a bias.
pub fn mm(index: usize, suffix: &str) -> String {
    format!("mm.{index}.{suffix}")
}
