//! Projectors on the CPU: LLaVA `mlp` (drop CLS, mm.0, GELU, mm.2) and idefics3 (pixel shuffle,
//! one bias-free Linear).

use crate::gguf::{Gguf, Result};
use crate::model::config::VisionConfig;
use crate::model::layout::ProjectorDesc;
use crate::reference::ops;
use crate::reference::weights::Linear;

pub enum Projector {
    Mlp { fc1: Linear, fc2: Linear },
    Idefics3 { fc: Linear, scale: usize },
}

impl Projector {
    pub fn load(g: &Gguf, cfg: &VisionConfig) -> Result<Projector> {
        Ok(match ProjectorDesc::resolve(g, cfg)? {
            ProjectorDesc::Mlp { fc1, fc2 } => {
                Projector::Mlp { fc1: Linear::load(g, &fc1)?, fc2: Linear::load(g, &fc2)? }
            }
            ProjectorDesc::Idefics3 { fc, scale } => Projector::Idefics3 { fc: Linear::load(g, &fc)?, scale },
        })
    }

    /// Vision features `[n_pos, n_embd]` of one tile -> LLM embeddings `[n_tokens, n_text]`.
    pub fn forward(&self, cfg: &VisionConfig, x: &[f32]) -> Vec<f32> {
        match self {
            Projector::Mlp { fc1, fc2 } => {
                // Trap: CLS (row 0) is dropped before an mlp projector.
                let patches = if cfg.has_cls { &x[cfg.n_embd..] } else { x };
                let mut h = fc1.forward(patches);
                h.iter_mut().for_each(|v| *v = ops::gelu(*v));
                fc2.forward(&h)
            }
            Projector::Idefics3 { fc, scale } => {
                let shuffled = ops::pixel_shuffle(x, cfg.patches_per_side(), cfg.n_embd, *scale);
                fc.forward(&shuffled)
            }
        }
    }
}
