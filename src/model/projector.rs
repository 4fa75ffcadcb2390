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
            Projector::Mlp { fc1, .. } => cfg.n_pos() * fc1.w.n_out,
            Projector::Idefics3 { .. } => cfg.n_patches() * cfg.n_embd,
        };
        Ok(ProjectorScratch { mid: gpu.tensor(len, "proj.mid")? })
    }

    /// The mlp's hidden width (`None` for idefics3), for FLOPs.
    pub fn hidden(&self) -> Option<usize> {
        match self {
            Projector::Mlp { fc1, .. } => Some(fc1.w.n_out),
            Projector::Idefics3 { .. } => None,
        }
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
        let tokens = self.tokens(rec, cfg, s, x)?;
        // Trap: CLS (row 0) is dropped before an mlp projector.
        let first = tokens.rows - cfg.tokens_per_tile();
        self.project(rec, cfg, s, tokens.tensor, first, cfg.tokens_per_tile(), out, out_row)
    }

    /// The connector's input rows for the vision output `x` of one tile, one per candidate
    /// visual token: `x` itself for mlp (CLS, when present, is row 0), the pixel-shuffled grid
    /// (in the scratch) for idefics3. Pruning selects among these rows.
    pub fn tokens<'a>(
        &self,
        rec: &mut Recorder,
        cfg: &VisionConfig,
        s: &'a ProjectorScratch,
        x: &'a Tensor,
    ) -> Result<ConnectorTokens<'a>, Error> {
        Ok(match self {
            Projector::Mlp { .. } => ConnectorTokens { tensor: x, rows: cfg.n_pos(), width: cfg.n_embd },
            Projector::Idefics3 { scale, .. } => {
                kernels::pixel_shuffle(rec, x, &s.mid, cfg.patches_per_side(), cfg.n_embd, *scale)?;
                ConnectorTokens { tensor: &s.mid, rows: cfg.tokens_per_tile(), width: cfg.n_embd * scale * scale }
            }
        })
    }

    /// Projects `n` rows of connector input (`input` rows `first..first + n`, as
    /// [`Projector::tokens`] lays them out) into rows `out_row..` of `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn project(
        &self,
        rec: &mut Recorder,
        cfg: &VisionConfig,
        s: &ProjectorScratch,
        input: &Tensor,
        first: usize,
        n: usize,
        out: &Tensor,
        out_row: usize,
    ) -> Result<(), Error> {
        let n_text = cfg.projection_dim;
        match self {
            Projector::Mlp { fc1, fc2 } => {
                let o1 = MatmulOpts { bias: fc1.b.as_ref(), x_offset: first * cfg.n_embd, ..Default::default() };
                kernels::matmul(rec, input, &fc1.w, &s.mid, n, o1)?;
                kernels::unary(rec, &s.mid, n * fc1.w.n_out, Unary::Gelu)?;
                let o2 = MatmulOpts { bias: fc2.b.as_ref(), y_offset: out_row * n_text, ..Default::default() };
                kernels::matmul(rec, &s.mid, &fc2.w, out, n, o2)?;
            }
            Projector::Idefics3 { fc, scale } => {
                let width = cfg.n_embd * scale * scale;
                let o = MatmulOpts { x_offset: first * width, y_offset: out_row * n_text, ..Default::default() };
                kernels::matmul(rec, input, &fc.w, out, n, o)?;
            }
        }
        Ok(())
    }
}

/// A tile's candidate visual tokens: `rows` rows of `width` in `tensor`.
pub struct ConnectorTokens<'a> {
    pub tensor: &'a Tensor,
    pub rows: usize,
    pub width: usize,
}
