//! The text model file: keys and tensors as llama.cpp's `convert_hf_to_gguf.py` writes a
//! `llama` (SmolLM2) or `qwen2` decoder (conversion/base.py `TextModel`, conversion/llama.py).
//! Random weights make llama's q/k row permutation (`LlamaModel.permute`) moot: the file is
//! read with adjacent-pair rope for llama and half-split rope for qwen2, as llama.cpp does.

use crate::model::names::*;

use super::plan::{FilePlan, Init, linear, llama_ftype};
use super::spec::{TextArch, TextSpec};
use super::tokenizer::{chat_template, vocab};

/// Gain on residual-branch outputs (`attn_output`, `ffn_down`) so the stream grows slowly.
const RESIDUAL_GAIN: f32 = 0.5;
/// Token embedding scale: rows of size ~0.05 * sqrt(n_embd), logits O(1) when tied.
const EMBD_STD: f32 = 0.05;
const NORM_STD: f32 = 0.05;
const BIAS_STD: f32 = 0.02;

pub fn text_plan(t: &TextSpec) -> FilePlan {
    let arch = t.arch.name();
    let key = |suffix| arch_key(arch, suffix);
    let head_dim = t.head_dim();
    let mut f = FilePlan::default();

    // Key order of the converter: general, hparams, file type, vocab, tokenizer.
    f.set(GENERAL_ARCHITECTURE, arch);
    f.set(GENERAL_TYPE, TYPE_MODEL);
    f.set(GENERAL_NAME, t.name.as_str());
    f.set(&key(LLM_BLOCK_COUNT), t.n_layer);
    f.set(&key(LLM_CONTEXT_LENGTH), t.n_ctx);
    f.set(&key(LLM_EMBEDDING_LENGTH), t.n_embd);
    f.set(&key(LLM_FEED_FORWARD_LENGTH), t.n_ff);
    f.set(&key(LLM_HEAD_COUNT), t.n_head);
    f.set(&key(LLM_HEAD_COUNT_KV), t.n_head_kv);
    f.set(&key(LLM_ROPE_FREQ_BASE), t.rope_base);
    f.set(&key(LLM_RMS_EPS), t.eps);
    if t.arch == TextArch::Llama {
        // base.py writes key/value_length when the HF config has `head_dim` (SmolLM2 does);
        // llama.py adds vocab_size and rope.dimension_count. Qwen2 configs have none of these.
        f.set(&key(LLM_KEY_LENGTH), head_dim);
        f.set(&key(LLM_VALUE_LENGTH), head_dim);
    }
    // llama-quantize records the type it was asked for (the attention weights' here).
    f.set(GENERAL_FILE_TYPE, llama_ftype(t.qtype.attn));
    if t.arch == TextArch::Llama {
        f.set(&key(LLM_VOCAB_SIZE), t.n_vocab);
        f.set(&key(LLM_ROPE_DIMENSION_COUNT), head_dim);
    }

    let v = vocab(t);
    f.set(TOKENIZER_MODEL, "gpt2");
    f.set(TOKENIZER_PRE, t.pre_tokenizer());
    f.set(TOKENIZER_TOKENS, v.tokens);
    f.set(TOKENIZER_TOKEN_TYPE, v.types);
    f.set(TOKENIZER_MERGES, v.merges);
    for (k, id) in
        [(TOKENIZER_BOS_ID, v.bos), (TOKENIZER_EOS_ID, v.eos), (TOKENIZER_UNK_ID, v.unk), (TOKENIZER_PAD_ID, v.pad)]
    {
        if let Some(id) = id {
            f.set(k, id);
        }
    }
    if let Some(add_bos) = v.add_bos {
        f.set(TOKENIZER_ADD_BOS, add_bos);
    }
    f.set(TOKENIZER_CHAT_TEMPLATE, chat_template(t.template));
    f.set(GENERAL_QUANTIZATION_VERSION, 2u32);

    // Tensors, ggml order: a Linear [out, in] is stored ne = [in, out].
    let (d, kv, ff) = (t.n_embd, t.n_head_kv * head_dim, t.n_ff);
    let q = t.qtype;
    let norm = Init::Ones { std: NORM_STD };
    f.weight(TOKEN_EMBD.into(), &[d, t.n_vocab], q.embd, Init::Normal { std: EMBD_STD });
    for i in 0..t.n_layer as usize {
        f.vector(blk(i, ATTN_NORM, "weight"), d, norm);
        f.weight(blk(i, ATTN_Q, "weight"), &[d, d], q.attn, linear(d, 1.0));
        f.weight(blk(i, ATTN_K, "weight"), &[d, kv], q.attn, linear(d, 1.0));
        f.weight(blk(i, ATTN_V, "weight"), &[d, kv], q.attn, linear(d, 1.0));
        if t.arch == TextArch::Qwen2 {
            let bias = Init::Normal { std: BIAS_STD };
            f.vector(blk(i, ATTN_Q, "bias"), d, bias);
            f.vector(blk(i, ATTN_K, "bias"), kv, bias);
            f.vector(blk(i, ATTN_V, "bias"), kv, bias);
        }
        f.weight(blk(i, ATTN_OUTPUT, "weight"), &[d, d], q.attn, linear(d, RESIDUAL_GAIN));
        f.vector(blk(i, FFN_NORM, "weight"), d, norm);
        f.weight(blk(i, FFN_GATE, "weight"), &[d, ff], q.ffn, linear(d, 1.0));
        f.weight(blk(i, FFN_UP, "weight"), &[d, ff], q.ffn, linear(d, 1.0));
        f.weight(blk(i, FFN_DOWN, "weight"), &[ff, d], q.ffn, linear(ff, RESIDUAL_GAIN));
    }
    f.vector(OUTPUT_NORM.into(), d, norm);
    if !t.tied {
        f.weight(OUTPUT.into(), &[d, t.n_vocab], q.output, linear(d, 1.0));
    }
    f
}
