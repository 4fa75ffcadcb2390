//! The vision tower on the CPU: patch embedding, (CLS), position embeddings, pre-LN ViT blocks,
//! post-LN — SigLIP (idefics3) and CLIP (LLaVA mlp) alike; presence of `v.class_embd`,
//! `v.pre_ln` and `v.post_ln` selects the variant (llama.cpp `build_vit`, HF `CLIPVisionModel`).

use crate::gguf::{Gguf, Result};
use crate::model::config::{VisionAct, VisionConfig};
use crate::model::layout::VisionDesc;
use crate::reference::ops;
use crate::reference::weights::{Linear, Norm, tensor};

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

pub struct Vision {
    pub cfg: VisionConfig,
    patch: Linear,
    class_embd: Option<Vec<f32>>,
    /// `[n_pos, n_embd]`: row 0 is CLS's when there is one.
    position: Vec<f32>,
    pre_ln: Option<Norm>,
    blocks: Vec<Block>,
    post_ln: Option<Norm>,
}

impl Vision {
    pub fn load(g: &Gguf) -> Result<Vision> {
        let cfg = VisionConfig::from_gguf(g)?;
        let d = VisionDesc::resolve(g, &cfg)?;
        let blocks = d
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    ln1: Norm::load(g, &b.ln1)?,
                    q: Linear::load(g, &b.q)?,
                    k: Linear::load(g, &b.k)?,
                    v: Linear::load(g, &b.v)?,
                    out: Linear::load(g, &b.out)?,
                    ln2: Norm::load(g, &b.ln2)?,
                    up: Linear::load(g, &b.up)?,
                    down: Linear::load(g, &b.down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Vision {
            patch: Linear::load(g, &d.patch)?,
            class_embd: d.class_embd.as_deref().map(|n| tensor(g, n)).transpose()?,
            position: tensor(g, &d.position)?,
            pre_ln: d.pre_ln.as_ref().map(|n| Norm::load(g, n)).transpose()?,
            blocks,
            post_ln: d.post_ln.as_ref().map(|n| Norm::load(g, n)).transpose()?,
            cfg,
        })
    }

    /// Embeddings of one tile: `pixels` planar `[3, image_size, image_size]` -> `[n_pos, n_embd]`
    /// (CLS first when the model has one), before any block.
    pub fn embed(&self, pixels: &[f32]) -> Vec<f32> {
        let c = &self.cfg;
        let s = c.image_size;
        // The conv as a GEMM: ggml's kernel [p, p, 3, n_embd] is n_embd rows of (c, ky, kx).
        let patches = ops::patch_embed(pixels, s, s, &self.patch.w, self.patch.b.as_deref(), c.patch_size, c.n_embd);
        // Trap: CLS goes first, with position row 0 (HF; llama.cpp's llava graph puts it last, #25814).
        let mut x = self.class_embd.clone().unwrap_or_default();
        x.extend_from_slice(&patches);
        ops::add(&mut x, &self.position);
        match &self.pre_ln {
            Some(ln) => ln.layer_norm(&x, c.eps),
            None => x,
        }
    }

    /// One ViT block on `x [n, n_embd]`, in place.
    pub fn block(&self, il: usize, x: &mut [f32]) {
        let c = &self.cfg;
        let b = &self.blocks[il];
        let n = x.len() / c.n_embd;
        let h = b.ln1.layer_norm(x, c.eps);
        let (q, k, v) = (b.q.forward(&h), b.k.forward(&h), b.v.forward(&h));
        let head_dim = c.n_embd / c.n_head;
        let a = ops::attention(&q, &k, &v, c.n_head, c.n_head, head_dim, false, 0);
        let o = b.out.forward(&a);
        ops::add(x, &o);
        let h = b.ln2.layer_norm(x, c.eps);
        let mut f = b.up.forward(&h);
        let act = match c.act {
            VisionAct::Gelu => ops::gelu,
            VisionAct::QuickGelu => ops::quick_gelu,
            VisionAct::Silu => ops::silu,
        };
        f.iter_mut().for_each(|v| *v = act(*v));
        let o = b.down.forward(&f);
        ops::add(x, &o);
        debug_assert_eq!(x.len(), n * c.n_embd);
    }

    pub fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// After the last block: post-LN when the model has one.
    pub fn finish(&self, x: Vec<f32>) -> Vec<f32> {
        match &self.post_ln {
            Some(ln) => ln.layer_norm(&x, self.cfg.eps),
            None => x,
        }
    }

    /// The whole tower on one tile: `[n_pos, n_embd]` features for the projector.
    pub fn forward(&self, pixels: &[f32]) -> Vec<f32> {
        let mut x = self.embed(pixels);
        for il in 0..self.blocks.len() {
            self.block(il, &mut x);
        }
        self.finish(x)
    }
}
