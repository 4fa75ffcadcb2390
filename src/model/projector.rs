//! Projectors on the GPU: LLaVA `mlp` (CLS dropped, mm.0, GELU, mm.2) and idefics3 (pixel
//! shuffle by s, one bias-free Linear). Output rows go straight into the LLM's input embeddings.

use crate::gguf::Gguf;
use crate::gpu::kernels::{self, MatmulOpts, Unary};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::model::Error;
use crate::model::config::VisionConfig;
use crate::model::layout::ProjectorDesc;
use crate::model::weights::Linear;

pub enum Projector {
    Mlp { fc1: Linear, fc2: Linear },
    Idefics3 { fc: Linear, scale: usize },
}

/// The projector's intermediate: the hidden layer (mlp) or the shuffled features (idefics3).
pub struct ProjectorScratch {
    mid: Tensor,
}

impl Projector {
    pub fn load(gpu: &Gpu, g: &Gguf, cfg: &VisionConfig) -> Result<Projector, Error> {
        Ok(match ProjectorDesc::resolve(g, cfg)? {
            ProjectorDesc::Mlp { fc1, fc2 } => {
                Projector::Mlp { fc1: Linear::load(gpu, g, &fc1)?, fc2: Linear::load(gpu, g, &fc2)? }
            }
            ProjectorDesc::Idefics3 { fc, scale } => Projector::Idefics3 { fc: Linear::load(gpu, g, &fc)?, scale },
        })
    }

    pub fn scratch(&self, gpu: &Gpu, cfg: &VisionConfig) -> Result<ProjectorScratch, Error> {
        let len = match self {
            Projector::Mlp { fc1, .. } => cfg.n_patches() * fc1.w.n_out,
            Projector::Idefics3 { .. } => cfg.n_patches() * cfg.n_embd,
        };
        Ok(ProjectorScratch { mid: gpu.tensor(len, "proj.mid")? })
    }

    /// Projects the vision output `x` (`[n_pos, n_embd]`) of one tile into rows of `out`
    /// starting at row `out_row` (`out` is `[rows, n_text]`): one row per visual token.
    pub fn forward(
        &self,
        rec: &mut Recorder,
        cfg: &VisionConfig,
        s: &ProjectorScratch,
        x: &Tensor,
        out: &Tensor,
        out_row: usize,
    ) -> Result<(), Error> {
        let n_text = cfg.projection_dim;
        match self {
            Projector::Mlp { fc1, fc2 } => {
                // Trap: CLS (row 0) is dropped before an mlp projector.
                let x_offset = if cfg.has_cls { cfg.n_embd } else { 0 };
                let n = cfg.n_patches();
                let o1 = MatmulOpts { bias: fc1.b.as_ref(), x_offset, ..Default::default() };
                kernels::matmul(rec, x, &fc1.w, &s.mid, n, o1)?;
                kernels::unary(rec, &s.mid, n * fc1.w.n_out, Unary::Gelu)?;
                let o2 = MatmulOpts { bias: fc2.b.as_ref(), y_offset: out_row * n_text, ..Default::default() };
                kernels::matmul(rec, &s.mid, &fc2.w, out, n, o2)?;
            }
            Projector::Idefics3 { fc, scale } => {
                kernels::pixel_shuffle(rec, x, &s.mid, cfg.patches_per_side(), cfg.n_embd, *scale)?;
                let o = MatmulOpts { y_offset: out_row * n_text, ..Default::default() };
                kernels::matmul(rec, &s.mid, &fc.w, out, cfg.tokens_per_tile(), o)?;
            }
        }
        Ok(())
    }
}
