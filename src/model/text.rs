//! The text decoder on the GPU: llama and qwen2 (RMSNorm; RoPE on adjacent pairs for llama —
//! whose q/k the converter permuted — and on halves for qwen2; grouped-query causal attention
//! over a KV cache; SwiGLU FFN; tied or separate output). One forward serves prefill (many
//! tokens) and decode (one).

use crate::gguf::Gguf;
use crate::gpu::kernels::{self, AttentionArgs, MatmulOpts, RopeArgs};
use crate::gpu::{Gpu, Recorder, Tensor, Weight};
use crate::model::Error;
use crate::model::config::{RopeMode, TextConfig};
use crate::model::layout::TextDesc;
use crate::model::weights::{Linear, Norm, matrix, vector};

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

pub struct TextModel {
    pub cfg: TextConfig,
    /// `[n_vocab, n_embd]` in its GGUF blocks; also the output projection when tied.
    token_embd: Weight,
    layers: Vec<Layer>,
    output_norm: Norm,
    output: Option<Weight>,
}

/// Where a step's rows sit: row `i` at position `cache.len + offsets[i]`, the step using `span`
/// positions. A pruned prompt keeps its visual tokens' unpruned positions, so it has gaps.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPositions {
    pub offsets: Vec<u32>,
    pub span: usize,
}

impl StepPositions {
    /// `n` rows at `n` consecutive positions.
    pub fn consecutive(n: usize) -> StepPositions {
        StepPositions { offsets: (0..n as u32).collect(), span: n }
    }
}

/// Keys and values per layer, `[capacity, n_head_kv * head_dim]` each, rope already applied.
/// Token pruning inside the LLM leaves later layers (or, after a KV trim, earlier ones) with
/// fewer rows than positions: `rows[il]` is what layer `il` holds, `len` the positions used.
pub struct KvCache {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub capacity: usize,
    /// Positions consumed: the next token's position.
    pub len: usize,
    /// Rows held per layer.
    pub rows: Vec<usize>,
}

impl KvCache {
    pub fn bytes(&self) -> u64 {
        self.k.iter().chain(&self.v).map(Tensor::bytes).sum()
    }

    /// Sets every layer to hold the first `n` positions (0 empties the cache).
    pub fn set_len(&mut self, n: usize) {
        self.len = n;
        self.rows.iter_mut().for_each(|r| *r = n);
    }

    /// Rows held, summed over layers.
    pub fn total_rows(&self) -> usize {
        self.rows.iter().sum()
    }
}

/// Activations for up to `max_tokens` tokens per forward, allocated once and reused.
pub struct TextScratch {
    pub max_tokens: usize,
    /// The residual stream `[max_tokens, n_embd]`; callers fill rows before `forward`.
    pub x: Tensor,
    /// Scratch rows `[max_tokens, n_embd]` (normed input of each sublayer).
    pub h: Tensor,
    /// The last layer run's roped queries `[max_tokens, n_head * head_dim]`.
    pub q: Tensor,
    attn: Tensor,
    /// The FFN's gate rows `[max_tokens, n_ff]`, gated in place by the up projection.
    gate: Tensor,
    /// Token ids for `embed` (`[max_tokens]`, u32).
    pub ids: Tensor,
    /// The position of each row (`[max_tokens]`, u32).
    pub positions: Tensor,
    /// The last row's logits `[n_vocab]`.
    pub logits: Tensor,
}

impl TextModel {
    pub fn load(gpu: &Gpu, g: &Gguf) -> Result<TextModel, Error> {
        let cfg = TextConfig::from_gguf(g)?;
        let d = TextDesc::resolve(g, &cfg)?;
        let layers = d
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    attn_norm: Norm::load(gpu, g, &l.attn_norm)?,
                    q: Linear::load(gpu, g, &l.q)?,
                    k: Linear::load(gpu, g, &l.k)?,
                    v: Linear::load(gpu, g, &l.v)?,
                    out: Linear::load(gpu, g, &l.out)?,
                    ffn_norm: Norm::load(gpu, g, &l.ffn_norm)?,
                    gate: Linear::load(gpu, g, &l.gate)?,
                    up: Linear::load(gpu, g, &l.up)?,
                    down: Linear::load(gpu, g, &l.down)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(TextModel {
            token_embd: matrix(gpu, g, &d.token_embd)?,
            layers,
            output_norm: Norm { w: vector(gpu, g, &d.output_norm.weight)?, b: None },
            output: d.output.as_ref().map(|o| matrix(gpu, g, o)).transpose()?,
            cfg,
        })
    }

    pub fn kv_cache(&self, gpu: &Gpu, capacity: usize) -> Result<KvCache, Error> {
        let kv_dim = self.cfg.n_head_kv * self.cfg.head_dim;
        let alloc = |what: &str| {
            (0..self.cfg.n_layer)
                .map(|il| gpu.tensor(capacity * kv_dim, &format!("kv.{what}.{il}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(KvCache { k: alloc("k")?, v: alloc("v")?, capacity, len: 0, rows: vec![0; self.cfg.n_layer] })
    }

    pub fn scratch(&self, gpu: &Gpu, max_tokens: usize) -> Result<TextScratch, Error> {
        let c = &self.cfg;
        let t = max_tokens.max(1);
        Ok(TextScratch {
            max_tokens: t,
            x: gpu.tensor(t * c.n_embd, "llm.x")?,
            h: gpu.tensor(t * c.n_embd, "llm.h")?,
            q: gpu.tensor(t * c.n_head * c.head_dim, "llm.q")?,
            attn: gpu.tensor(t * c.n_head * c.head_dim, "llm.attn")?,
            gate: gpu.tensor(t * c.n_ff, "llm.gate")?,
            ids: gpu.tensor(t, "llm.ids")?,
            positions: gpu.tensor(t, "llm.positions")?,
            logits: gpu.tensor(c.n_vocab, "llm.logits")?,
        })
    }

    /// Embedding rows of the first `n` ids in `s.ids` into rows `0..n` of `s.x`.
    pub fn embed(&self, rec: &mut Recorder, s: &TextScratch, n: usize) -> Result<(), Error> {
        Ok(kernels::get_rows(rec, &self.token_embd, &s.ids, &s.x, n)?)
    }

    /// Runs rows `0..n` of `s.x` (positions `cache.len..cache.len + n`) through every layer,
    /// appends their keys and values to the cache, and leaves the last row's logits in
    /// `s.logits`.
    pub fn forward(&self, rec: &mut Recorder, s: &TextScratch, cache: &mut KvCache, n: usize) -> Result<(), Error> {
        self.begin(rec, s, cache, &StepPositions::consecutive(n))?;
        self.layers(rec, s, cache, 0..self.cfg.n_layer, n)?;
        self.finish(rec, s, cache, n, n)
    }

    /// Checks that the step's rows fit and writes their positions (`cache.len + offsets[i]`) to
    /// `s.positions`.
    pub fn begin(&self, rec: &mut Recorder, s: &TextScratch, cache: &KvCache, at: &StepPositions) -> Result<(), Error> {
        let (pos0, n) = (cache.len, at.offsets.len());
        let most_rows = cache.rows.iter().copied().max().unwrap_or(0);
        let inside = at.offsets.iter().all(|&o| (o as usize) < at.span);
        if n == 0 || !inside || n > s.max_tokens || pos0 + at.span > cache.capacity || most_rows + n > cache.capacity {
            return Err(Error::Unsupported(format!(
                "{n} tokens over {} positions from position {pos0} do not fit (at most {} per step, context {})",
                at.span, s.max_tokens, cache.capacity
            )));
        }
        let positions: Vec<u32> = at.offsets.iter().map(|&o| pos0 as u32 + o).collect();
        rec.gpu().write_u32(&s.positions, 0, &positions);
        Ok(())
    }

    /// Runs rows `0..n` of `s.x` (at the positions in `s.positions`) through `layers`, each
    /// appending its keys and values after the rows it already holds.
    pub fn layers(
        &self,
        rec: &mut Recorder,
        s: &TextScratch,
        cache: &mut KvCache,
        layers: std::ops::Range<usize>,
        n: usize,
    ) -> Result<(), Error> {
        for il in layers {
            self.layer_qkv(rec, s, cache, il, n)?;
            let args = self.attention_args(cache, il, n);
            kernels::attention(rec, &s.q, &cache.k[il], &cache.v[il], &s.attn, args)?;
            self.layer_rest(rec, s, cache, il, n)?;
        }
        Ok(())
    }

    /// The part of layer `il` before attention on rows `0..n` of `s.x`: the norm, the roped
    /// queries into `s.q`, keys and values into the cache after the rows the layer holds.
    pub fn layer_qkv(
        &self,
        rec: &mut Recorder,
        s: &TextScratch,
        cache: &KvCache,
        il: usize,
        n: usize,
    ) -> Result<(), Error> {
        let c = &self.cfg;
        let (d, kv_dim, q_dim) = (c.n_embd, c.n_head_kv * c.head_dim, c.n_head * c.head_dim);
        let l = &self.layers[il];
        let pos0 = cache.rows[il];
        kernels::rms_norm(rec, &s.x, &l.attn_norm.w, &s.h, n, d, c.eps)?;
        kernels::matmul(rec, &s.h, &l.q.w, &s.q, n, l.q.opts())?;
        // K and V go straight into the cache rows after those the layer holds.
        let at = pos0 * kv_dim;
        kernels::matmul(rec, &s.h, &l.k.w, &cache.k[il], n, MatmulOpts { y_offset: at, ..l.k.opts() })?;
        kernels::matmul(rec, &s.h, &l.v.w, &cache.v[il], n, MatmulOpts { y_offset: at, ..l.v.opts() })?;
        let rope = |n_head, offset, row_stride| RopeArgs {
            n_tokens: n,
            n_head,
            head_dim: c.head_dim,
            rope_dim: c.rope_dim,
            base: c.rope_base,
            halves: c.rope_mode == RopeMode::Halves,
            offset,
            row_stride,
        };
        kernels::rope(rec, &s.q, &s.positions, rope(c.n_head, 0, q_dim))?;
        kernels::rope(rec, &cache.k[il], &s.positions, rope(c.n_head_kv, pos0 * kv_dim, kv_dim))?;
        Ok(())
    }

    /// Layer `il`'s attention of `n` new rows (after `layer_qkv`, before `layer_rest`): every
    /// head, from `s.q` and the cache into `s.attn`.
    pub fn attention_args(&self, cache: &KvCache, il: usize, n: usize) -> AttentionArgs {
        let c = &self.cfg;
        let (kv_dim, q_dim) = (c.n_head_kv * c.head_dim, c.n_head * c.head_dim);
        let pos0 = cache.rows[il];
        // Causal by row: rows are kept in position order, so row order is position order.
        AttentionArgs {
            n_q: n,
            n_kv: pos0 + n,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            causal: true,
            pos0,
            q_offset: 0,
            q_stride: q_dim,
            k_offset: 0,
            v_offset: 0,
            kv_stride: kv_dim,
            o_offset: 0,
            o_stride: q_dim,
        }
    }

    /// Head trimming's probe: every head's attention output of the last `rows` of the `n` new
    /// rows (they see every key, so causality holds) into `out` (`[rows, n_head * head_dim]`).
    pub fn attention_probe(
        &self,
        rec: &mut Recorder,
        s: &TextScratch,
        cache: &KvCache,
        (il, n, rows): (usize, usize, usize),
        out: &Tensor,
    ) -> Result<(), Error> {
        let all = self.attention_args(cache, il, n);
        let first = n - rows.min(n);
        let args = AttentionArgs { n_q: n - first, pos0: all.pos0 + first, q_offset: first * all.q_stride, ..all };
        Ok(kernels::attention(rec, &s.q, &cache.k[il], &cache.v[il], out, args)?)
    }

    /// Layer `il`'s attention for the `heads` kept only, one single-head call each (grouped
    /// queries read their KV head); the other heads' columns of `s.attn` are zero (copied from
    /// `zero`, at least `n * n_head * head_dim` long).
    pub fn attention_heads(
        &self,
        rec: &mut Recorder,
        s: &TextScratch,
        cache: &KvCache,
        (il, n): (usize, usize),
        heads: &[usize],
        zero: &Tensor,
    ) -> Result<(), Error> {
        let c = &self.cfg;
        let all = self.attention_args(cache, il, n);
        let hd = c.head_dim;
        let group = c.n_head / c.n_head_kv.max(1);
        rec.copy(zero, 0, &s.attn, 0, n * c.n_head * hd);
        for &h in heads {
            let hk = h / group.max(1);
            let args = AttentionArgs {
                n_head: 1,
                n_head_kv: 1,
                q_offset: h * hd,
                k_offset: hk * hd,
                v_offset: hk * hd,
                o_offset: h * hd,
                ..all
            };
            kernels::attention(rec, &s.q, &cache.k[il], &cache.v[il], &s.attn, args)?;
        }
        Ok(())
    }

    /// The part of layer `il` after attention: the output projection (residual) and the FFN;
    /// the layer then holds `n` more rows.
    pub fn layer_rest(
        &self,
        rec: &mut Recorder,
        s: &TextScratch,
        cache: &mut KvCache,
        il: usize,
        n: usize,
    ) -> Result<(), Error> {
        let c = &self.cfg;
        let l = &self.layers[il];
        kernels::matmul(rec, &s.attn, &l.out.w, &s.x, n, l.out.residual())?;
        kernels::rms_norm(rec, &s.x, &l.ffn_norm.w, &s.h, n, c.n_embd, c.eps)?;
        kernels::matmul(rec, &s.h, &l.gate.w, &s.gate, n, MatmulOpts::default())?;
        // The up projection's epilogue applies the SwiGLU: gate = silu(gate) * up, in place.
        kernels::matmul(rec, &s.h, &l.up.w, &s.gate, n, MatmulOpts { gated: true, ..MatmulOpts::default() })?;
        kernels::matmul(rec, &s.gate, &l.down.w, &s.x, n, l.down.residual())?;
        cache.rows[il] += n;
        Ok(())
    }

    /// The last of `n` rows' logits into `s.logits`; the step used `positions` positions.
    pub fn finish(
        &self,
        rec: &mut Recorder,
        s: &TextScratch,
        cache: &mut KvCache,
        n: usize,
        positions: usize,
    ) -> Result<(), Error> {
        let c = &self.cfg;
        let d = c.n_embd;
        cache.len += positions;
        // Only the last row needs logits.
        rec.copy(&s.x, (n - 1) * d, &s.attn, 0, d);
        kernels::rms_norm(rec, &s.attn, &self.output_norm.w, &s.h, 1, d, c.eps)?;
        let output = self.output.as_ref().unwrap_or(&self.token_embd);
        kernels::matmul(rec, &s.h, output, &s.logits, 1, MatmulOpts::default())?;
        Ok(())
    }
}
