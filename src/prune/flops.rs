//! FLOPs of the work a frame runs, from the token counts actually executed (DESIGN.md "FLOPs").
//! One multiply-add counts as 2 FLOPs (the hardware convention used for GFLOP/s). The papers'
//! per-layer formula `4nd^2 + 2n^2d + 2ndm` counts multiply-adds, so these numbers are twice
//! theirs; ratios (pruned / dense) are the same.

use crate::model::config::{TextConfig, VisionConfig};

/// FLOPs of a GEMM `[m, k] x [k, n]`.
pub fn gemm(m: usize, k: usize, n: usize) -> f64 {
    2.0 * m as f64 * k as f64 * n as f64
}

/// One pre-LN ViT block on `n` tokens: q, k, v, o projections (4nd^2), attention (QK^T and PV,
/// 2n^2d) and a GELU MLP (2ndm), as multiply-adds times 2.
pub fn vit_block(n: usize, d: usize, ff: usize) -> f64 {
    vit_block_heads(n, d, ff, 1, 1)
}

/// [`vit_block`] with `kept` of its `n_head` attention heads run (head trimming): the attention
/// term counts the kept heads' columns only; the projections and the MLP stay dense.
pub fn vit_block_heads(n: usize, d: usize, ff: usize, n_head: usize, kept: usize) -> f64 {
    let attn_width = d / n_head.max(1) * kept.min(n_head);
    4.0 * gemm(n, d, d) + 2.0 * gemm(n, attn_width, n) + 2.0 * gemm(n, d, ff)
}

/// The vision tower on one tile with `n_tokens[i]` tokens entering block i (pruning may reduce
/// them), plus the patch embedding.
pub fn vision(c: &VisionConfig, n_tokens: &[usize]) -> f64 {
    vision_heads(c, n_tokens, None)
}

/// [`vision`] with `heads[i]` attention heads run in block i (all when `None`).
pub fn vision_heads(c: &VisionConfig, n_tokens: &[usize], heads: Option<&[usize]>) -> f64 {
    let patch = gemm(c.n_patches(), 3 * c.patch_size * c.patch_size, c.n_embd);
    let kept = |i: usize| heads.and_then(|h| h.get(i).copied()).unwrap_or(c.n_head);
    let blocks = n_tokens.iter().enumerate().map(|(i, &n)| vit_block_heads(n, c.n_embd, c.n_ff, c.n_head, kept(i)));
    patch + blocks.sum::<f64>()
}

/// The vision tower on one tile, unpruned.
pub fn vision_dense(c: &VisionConfig) -> f64 {
    vision(c, &vec![c.n_pos(); c.n_layer_run])
}

/// The projector for `n_out` visual tokens of one tile (`hidden`: the mlp's middle width).
pub fn projector(c: &VisionConfig, n_out: usize, hidden: Option<usize>) -> f64 {
    match hidden {
        Some(h) => gemm(n_out, c.n_embd, h) + gemm(n_out, h, c.projection_dim),
        None => gemm(n_out, c.n_embd * c.scale_factor * c.scale_factor, c.projection_dim),
    }
}

/// One decoder layer on `n` new tokens after `past` cached ones: projections with grouped-query
/// k/v, causal attention over the keys each query sees, SwiGLU FFN (3ndm).
pub fn text_layer(c: &TextConfig, n: usize, past: usize) -> f64 {
    text_layer_heads(c, n, past, c.n_head)
}

/// [`text_layer`] with `kept` of the `n_head` query heads run (head trimming): the attention
/// term counts the kept heads only; the projections and the FFN stay dense.
pub fn text_layer_heads(c: &TextConfig, n: usize, past: usize, kept: usize) -> f64 {
    let (d, q, kv) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let proj = gemm(n, d, q) + 2.0 * gemm(n, d, kv) + gemm(n, q, d);
    // Query i sees past + i + 1 keys; QK^T and PV each take head_dim multiply-adds per key and head.
    let keys: f64 = (0..n).map(|i| (past + i + 1) as f64).sum();
    let attn = 2.0 * 2.0 * keys * (kept.min(c.n_head) * c.head_dim) as f64;
    proj + attn + 3.0 * gemm(n, d, c.n_ff)
}

/// Head trimming's probe in one layer: `rows` queries, every head (`width` = heads x
/// head_dim), query i seeing `keys(i)` keys; QK^T and PV.
pub fn attention_probe(rows: usize, width: usize, keys: impl Fn(usize) -> usize) -> f64 {
    let keys: f64 = (0..rows).map(|i| keys(i) as f64).sum();
    2.0 * 2.0 * keys * width as f64
}

/// A forward of `n` tokens after `past` through every layer, plus the output projection of the
/// last row.
pub fn text_forward(c: &TextConfig, n: usize, past: usize) -> f64 {
    c.n_layer as f64 * text_layer(c, n, past) + gemm(1, c.n_embd, c.n_vocab)
}

/// The llama config the hand-computed FLOPs tests use: d = 4, 2 heads of 2 (q = 4), 1 kv head
/// (kv = 2), ff = 8, 10 tokens of vocabulary, `n_layer` layers.
#[cfg(test)]
pub(crate) fn hand_text_config(n_layer: usize) -> TextConfig {
    TextConfig {
        arch: crate::model::config::TextArch::Llama,
        n_embd: 4,
        n_layer,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 2,
        n_ff: 8,
        n_vocab: 10,
        n_ctx: 16,
        eps: 1e-5,
        rope_base: 10000.0,
        rope_dim: 2,
        rope_mode: crate::model::config::RopeMode::Pairs,
        tied_embeddings: true,
        qkv_bias: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n = 2 tokens, d = 4, ff = 8: 4*2*4*4 + 2*2*2*4 + 2*2*4*8 = 128 + 32 + 128 = 288
    /// multiply-adds, 576 FLOPs.
    #[test]
    fn vit_block_hand_computed() {
        assert_eq!(vit_block(2, 4, 8), 576.0);
    }

    /// Head trimming: n = 2, d = 4, 2 heads of 2, ff = 8, one head kept: the attention term
    /// 2 * 2*2*2 = 16 multiply-adds (of 32) -> 288 - 16 = 272 multiply-adds, 544 FLOPs; every
    /// head kept is the dense block.
    #[test]
    fn vit_block_heads_hand_computed() {
        assert_eq!(vit_block_heads(2, 4, 8, 2, 1), 544.0);
        assert_eq!(vit_block_heads(2, 4, 8, 2, 2), vit_block(2, 4, 8));
        // Probe: 2 rows over 3 keys each, width 4: 2 * 6 * 4 = 48 multiply-adds.
        assert_eq!(attention_probe(2, 4, |_| 3), 96.0);
    }

    /// One llama layer, d = 4, 2 heads of 2 (q = 4), 1 kv head (kv = 2), ff = 8, 3 new tokens
    /// after 1 cached: proj 3*4*4 + 2*3*4*2 + 3*4*4 = 48 + 48 + 48 = 144; keys 2 + 3 + 4 = 9,
    /// attention 2 * 9 * 4 = 72; ffn 3 * 3*4*8 = 288; total 504 multiply-adds = 1008 FLOPs.
    #[test]
    fn text_layer_hand_computed() {
        let c = hand_text_config(1);
        assert_eq!(text_layer(&c, 3, 1), 1008.0);
        // One of the 2 heads kept: attention 2 * 9 * 2 = 36 (of 72) -> 468 multiply-adds.
        assert_eq!(text_layer_heads(&c, 3, 1, 1), 936.0);
        assert_eq!(text_layer_heads(&c, 3, 1, 2), 1008.0);
        assert_eq!(text_forward(&c, 3, 1), 1008.0 + 80.0);
    }
}
