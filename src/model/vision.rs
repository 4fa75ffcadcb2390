//! The vision tower on the GPU: patch embedding (im2col + GEMM), CLS and position embeddings,
//! pre-LN ViT blocks, post-LN. SigLIP (idefics3, no CLS, post_ln) and CLIP (LLaVA, CLS first,
//! pre_ln) share this file: they differ only by which optional tensors are present
//! (llama.cpp `build_vit`; HF `SiglipVisionTransformer`, `CLIPVisionTransformer`).

use crate::gguf::Gguf;
use crate::gpu::kernels::{self, AttentionArgs, MatmulOpts, Unary};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::model::Error;
use crate::model::config::{VisionAct, VisionConfig};
use crate::model::layout::VisionDesc;
use crate::model::weights::{Linear, Norm, vector};

struct Block {
    ln1: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: Norm,
    up: Linear,
    down: Linear,
}

/// Activations of one tile, allocated once for `n_pos` tokens and reused.
pub struct VisionScratch {
    pub pixels: Tensor,
    patches: Tensor,
    /// The residual stream `[n_pos, n_embd]`; after `forward`, the tower's output.
    pub x: Tensor,
    h: Tensor,
    /// Q, K, V side by side: `[n_pos, 3 * n_embd]`.
    pub qkv: Tensor,
    attn: Tensor,
    ffn: Tensor,
}

pub struct VisionTower {
    pub cfg: VisionConfig,
    patch: Linear,
    class_embd: Option<Tensor>,
    position: Tensor,
    pre_ln: Option<Norm>,
    blocks: Vec<Block>,
    post_ln: Option<Norm>,
}

impl VisionTower {
    pub fn load(gpu: &Gpu, g: &Gguf) -> Result<VisionTower, Error> {
        let cfg = VisionConfig::from_gguf(g)?;
        let d = VisionDesc::resolve(g, &cfg)?;
        let blocks = d
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    ln1: Norm::load(gpu, g, &b.ln1)?,
                    q: Linear::load(gpu, g, &b.q)?,
                    k: Linear::load(gpu, g, &b.k)?,
                    v: Linear::load(gpu, g, &b.v)?,
                    out: Linear::load(gpu, g, &b.out)?,
                    ln2: Norm::load(gpu, g, &b.ln2)?,
                    up: Linear::load(gpu, g, &b.up)?,
                    down: Linear::load(gpu, g, &b.down)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(VisionTower {
            patch: Linear::load(gpu, g, &d.patch)?,
            class_embd: d.class_embd.as_deref().map(|n| vector(gpu, g, n)).transpose()?,
            position: vector(gpu, g, &d.position)?,
            pre_ln: d.pre_ln.as_ref().map(|n| Norm::load(gpu, g, n)).transpose()?,
            blocks,
            post_ln: d.post_ln.as_ref().map(|n| Norm::load(gpu, g, n)).transpose()?,
            cfg,
        })
    }

    pub fn scratch(&self, gpu: &Gpu) -> Result<VisionScratch, Error> {
        let c = &self.cfg;
        let n = c.n_pos();
        Ok(VisionScratch {
            pixels: gpu.tensor(3 * c.image_size * c.image_size, "vit.pixels")?,
            patches: gpu.tensor(c.n_patches() * 3 * c.patch_size * c.patch_size, "vit.patches")?,
            x: gpu.tensor(n * c.n_embd, "vit.x")?,
            h: gpu.tensor(n * c.n_embd, "vit.h")?,
            qkv: gpu.tensor(n * 3 * c.n_embd, "vit.qkv")?,
            attn: gpu.tensor(n * c.n_embd, "vit.attn")?,
            ffn: gpu.tensor(n * c.n_ff, "vit.ffn")?,
        })
    }

    pub fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Patch embedding, CLS, positions and pre-LN of the tile in `s.pixels` into `s.x`
    /// (`[n_pos, n_embd]`, CLS first when the model has one).
    pub fn embed(&self, rec: &mut Recorder, s: &VisionScratch) -> Result<(), Error> {
        let c = &self.cfg;
        let (d, n_patches) = (c.n_embd, c.n_patches());
        kernels::im2col(rec, &s.pixels, &s.patches, c.image_size, c.image_size, c.patch_size)?;
        // Trap: CLS goes first, with position row 0 (HF; llama.cpp's llava graph puts it last, #25814).
        let first_patch = match &self.class_embd {
            Some(cls) => {
                rec.copy(cls, 0, &s.x, 0, d);
                1
            }
            None => 0,
        };
        let bias = self.patch.b.as_ref();
        kernels::matmul(
            rec,
            &s.patches,
            &self.patch.w,
            &s.x,
            n_patches,
            MatmulOpts { bias, y_offset: first_patch * d, ..Default::default() },
        )?;
        kernels::add(rec, &s.x, &self.position, c.n_pos() * d)?;
        if let Some(ln) = &self.pre_ln {
            self.layer_norm(rec, &s.x, ln, &s.h, c.n_pos())?;
            rec.copy(&s.h, 0, &s.x, 0, c.n_pos() * d);
        }
        Ok(())
    }

    fn layer_norm(&self, rec: &mut Recorder, x: &Tensor, ln: &Norm, y: &Tensor, n: usize) -> Result<(), Error> {
        let b = ln.b.as_ref().ok_or_else(|| Error::Unsupported("vision LayerNorm without a bias".into()))?;
        Ok(kernels::layer_norm(rec, x, &ln.w, b, y, n, self.cfg.n_embd, self.cfg.eps)?)
    }

    /// Block `il` on the first `n` tokens of `s.x`, in place.
    pub fn block(&self, rec: &mut Recorder, s: &VisionScratch, il: usize, n: usize) -> Result<(), Error> {
        self.block_qkv(rec, s, il, n)?;
        kernels::attention(rec, &s.qkv, &s.qkv, &s.qkv, &s.attn, self.attention_args(n))?;
        self.block_rest(rec, s, il, n)
    }

    /// The part of block `il` before attention: LN1 and the Q, K, V projections of the first
    /// `n` tokens into `s.qkv`.
    pub fn block_qkv(&self, rec: &mut Recorder, s: &VisionScratch, il: usize, n: usize) -> Result<(), Error> {
        let d = self.cfg.n_embd;
        let b = &self.blocks[il];
        self.layer_norm(rec, &s.x, &b.ln1, &s.h, n)?;
        for (i, lin) in [&b.q, &b.k, &b.v].into_iter().enumerate() {
            let opts = MatmulOpts { y_offset: i * d, y_stride: 3 * d, ..lin.opts() };
            kernels::matmul(rec, &s.h, &lin.w, &s.qkv, n, opts)?;
        }
        Ok(())
    }

    /// The block's attention over the first `n` rows of `s.qkv` (every head, into `s.attn`).
    pub fn attention_args(&self, n: usize) -> AttentionArgs {
        let d = self.cfg.n_embd;
        AttentionArgs {
            n_q: n,
            n_kv: n,
            n_head: self.cfg.n_head,
            n_head_kv: self.cfg.n_head,
            head_dim: d / self.cfg.n_head,
            causal: false,
            pos0: 0,
            q_offset: 0,
            q_stride: 3 * d,
            k_offset: d,
            v_offset: 2 * d,
            kv_stride: 3 * d,
            o_offset: 0,
            o_stride: d,
        }
    }

    /// Head trimming's probe: every head's attention output for `rows` of the first `n` tokens
    /// spread evenly (every `n / rows`-th) into `out` (`[rows, n_embd]`). Needs `block_qkv`.
    pub fn attention_probe(
        &self,
        rec: &mut Recorder,
        s: &VisionScratch,
        n: usize,
        rows: usize,
        out: &Tensor,
    ) -> Result<(), Error> {
        let d = self.cfg.n_embd;
        let step = (n / rows.max(1)).max(1);
        let args = AttentionArgs { n_q: rows, q_stride: step * 3 * d, ..self.attention_args(n) };
        Ok(kernels::attention(rec, &s.qkv, &s.qkv, &s.qkv, out, args)?)
    }

    /// The block's attention for the `heads` kept only, one single-head call each; the other
    /// heads' columns of `s.attn` are zero (copied from `zero`, at least `n * n_embd` long).
    pub fn attention_heads(
        &self,
        rec: &mut Recorder,
        s: &VisionScratch,
        n: usize,
        heads: &[usize],
        zero: &Tensor,
    ) -> Result<(), Error> {
        let all = self.attention_args(n);
        let hd = all.head_dim;
        rec.copy(zero, 0, &s.attn, 0, n * self.cfg.n_embd);
        for &h in heads {
            let args = AttentionArgs {
                n_head: 1,
                n_head_kv: 1,
                q_offset: all.q_offset + h * hd,
                k_offset: all.k_offset + h * hd,
                v_offset: all.v_offset + h * hd,
                o_offset: h * hd,
                ..all
            };
            kernels::attention(rec, &s.qkv, &s.qkv, &s.qkv, &s.attn, args)?;
        }
        Ok(())
    }

    /// The part of block `il` after attention: the output projection (residual) and the MLP.
    pub fn block_rest(&self, rec: &mut Recorder, s: &VisionScratch, il: usize, n: usize) -> Result<(), Error> {
        let c = &self.cfg;
        let b = &self.blocks[il];
        kernels::matmul(rec, &s.attn, &b.out.w, &s.x, n, b.out.residual())?;
        self.layer_norm(rec, &s.x, &b.ln2, &s.h, n)?;
        kernels::matmul(rec, &s.h, &b.up.w, &s.ffn, n, b.up.opts())?;
        let act = match c.act {
            VisionAct::Gelu => Unary::Gelu,
            VisionAct::QuickGelu => Unary::QuickGelu,
            VisionAct::Silu => Unary::Silu,
        };
        kernels::unary(rec, &s.ffn, n * c.n_ff, act)?;
        kernels::matmul(rec, &s.ffn, &b.down.w, &s.x, n, b.down.residual())?;
        Ok(())
    }

    /// Post-LN (when present) of the first `n` tokens of `s.x`, in place.
    pub fn finish(&self, rec: &mut Recorder, s: &VisionScratch, n: usize) -> Result<(), Error> {
        if let Some(ln) = &self.post_ln {
            self.layer_norm(rec, &s.x, ln, &s.h, n)?;
            rec.copy(&s.h, 0, &s.x, 0, n * self.cfg.n_embd);
        }
        Ok(())
    }

    /// The whole tower on the tile in `s.pixels`; the features end in `s.x` `[n_pos, n_embd]`.
    pub fn forward(&self, rec: &mut Recorder, s: &VisionScratch) -> Result<(), Error> {
        let n = self.cfg.n_pos();
        self.embed(rec, s)?;
        for il in 0..self.blocks.len() {
            self.block(rec, s, il, n)?;
        }
        self.finish(rec, s, n)
    }
}
