//! The text decoder on the CPU: llama and qwen2 (RMSNorm, RoPE — adjacent pairs for llama,
//! halves for qwen2 — grouped-query causal attention with a KV cache, SwiGLU FFN).

use crate::gguf::{Gguf, Result};
use crate::model::config::{RopeMode, TextConfig};
use crate::model::layout::TextDesc;
use crate::reference::ops;
use crate::reference::weights::{Linear, Norm};

struct Layer {
    attn_norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ffn_norm: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct Text {
    pub cfg: TextConfig,
    /// `[n_vocab, n_embd]`.
    token_embd: Linear,
    layers: Vec<Layer>,
    output_norm: Norm,
    output: Option<Linear>,
}

/// Keys and values of every layer: `[n_tokens_so_far, n_head_kv * head_dim]` each.
#[derive(Clone, Default)]
pub struct KvCache {
    pub k: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    /// Positions used: the next token's. A pruned prompt uses more positions than it holds rows.
    pub positions: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self, kv_dim: usize) -> usize {
        self.k.first().map_or(0, |k| k.len() / kv_dim)
    }
}

impl Text {
    pub fn load(g: &Gguf) -> Result<Text> {
        let cfg = TextConfig::from_gguf(g)?;
        let d = TextDesc::resolve(g, &cfg)?;
        let layers = d
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    attn_norm: Norm::load(g, &l.attn_norm)?,
                    q: Linear::load(g, &l.q)?,
                    k: Linear::load(g, &l.k)?,
                    v: Linear::load(g, &l.v)?,
                    out: Linear::load(g, &l.out)?,
                    ffn_norm: Norm::load(g, &l.ffn_norm)?,
                    gate: Linear::load(g, &l.gate)?,
                    up: Linear::load(g, &l.up)?,
                    down: Linear::load(g, &l.down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Text {
            token_embd: Linear::load(g, &d.token_embd)?,
            layers,
            output_norm: Norm::load(g, &d.output_norm)?,
            output: d.output.as_ref().map(|o| Linear::load(g, o)).transpose()?,
            cfg,
        })
    }

    /// The embedding row of a token.
    pub fn embed(&self, id: u32) -> &[f32] {
        let n = self.cfg.n_embd;
        &self.token_embd.w[id as usize * n..(id as usize + 1) * n]
    }

    /// Runs `x [t, n_embd]` (positions `cache.len() ..`) through every layer, appending to the
    /// cache; returns the logits `[t, n_vocab]` of every row (`last_only`: just the last row).
    pub fn forward(&self, x: &[f32], cache: &mut KvCache, last_only: bool) -> Vec<f32> {
        let t = x.len() / self.cfg.n_embd;
        self.forward_at(x, &(0..t).collect::<Vec<_>>(), t, cache, last_only)
    }

    /// As [`Text::forward`], with row `i` at position `cache.positions + offsets[i]`; the step
    /// uses `span` positions. Causality is by row: rows come in position order.
    pub fn forward_at(
        &self,
        x: &[f32],
        offsets: &[usize],
        span: usize,
        cache: &mut KvCache,
        last_only: bool,
    ) -> Vec<f32> {
        let c = &self.cfg;
        let n = c.n_embd;
        let t = x.len() / n;
        assert_eq!(offsets.len(), t, "one offset per row");
        let kv_dim = c.n_head_kv * c.head_dim;
        let pos0 = cache.len(kv_dim);
        let positions: Vec<usize> = offsets.iter().map(|&o| cache.positions + o).collect();
        cache.positions += span;
        if cache.k.is_empty() {
            cache.k = vec![Vec::new(); c.n_layer];
            cache.v = vec![Vec::new(); c.n_layer];
        }
        let rope = match c.rope_mode {
            RopeMode::Pairs => ops::rope_pairs,
            RopeMode::Halves => ops::rope_halves,
        };
        let mut x = x.to_vec();
        for (il, l) in self.layers.iter().enumerate() {
            let h = l.attn_norm.rms_norm(&x, c.eps);
            let mut q = l.q.forward(&h);
            let mut k = l.k.forward(&h);
            let v = l.v.forward(&h);
            rope(&mut q, &positions, c.n_head, c.head_dim, c.rope_dim, c.rope_base);
            rope(&mut k, &positions, c.n_head_kv, c.head_dim, c.rope_dim, c.rope_base);
            cache.k[il].extend_from_slice(&k);
            cache.v[il].extend_from_slice(&v);
            let a = ops::attention(&q, &cache.k[il], &cache.v[il], c.n_head, c.n_head_kv, c.head_dim, true, pos0);
            ops::add(&mut x, &l.out.forward(&a));
            let h = l.ffn_norm.rms_norm(&x, c.eps);
            let mut g = l.gate.forward(&h);
            let u = l.up.forward(&h);
            g.iter_mut().zip(&u).for_each(|(g, u)| *g = ops::silu(*g) * u);
            ops::add(&mut x, &l.down.forward(&g));
        }
        let rows = if last_only { &x[(t - 1) * n..] } else { &x[..] };
        let h = self.output_norm.rms_norm(rows, c.eps);
        self.output.as_ref().unwrap_or(&self.token_embd).forward(&h)
    }
}
