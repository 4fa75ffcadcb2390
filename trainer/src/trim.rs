//! Training the learned token trimmer (SmartTrim-style; glimpse's `prune::trimmer`) jointly with
//! the model it prunes:
//! - the trimmer scores every visual token against the question, and each question sends only
//!   its top-k tokens to the decoder (a hard pick, as at inference);
//! - a straight-through gate carries the task gradient back to the scores: each kept token's
//!   embedding is multiplied by `1 + s - stop_gradient(s)`, 1 in the forward pass, so
//!   `dL/ds = <dL/de, e>` says whether leaning on that token lowers the loss;
//! - self-distillation: the pruned model's answer distribution is pulled (KL) towards the same
//!   weights' unpruned answer on the same question;
//! - a curriculum: each question's keep ratio is drawn from `[floor, 1]`, and the floor falls
//!   linearly from 1 to its final value over the first part of the run.

use candle_core::{D, DType, Device, Result, Tensor};
use glimpse::prune::select::top_k;
use glimpse::rng::SplitMix64;

use crate::data::{Encoder, Group};
use crate::model::{Batch, Model, VisionOut, Weights};

/// The keep-ratio curriculum.
#[derive(Clone, Copy, Debug)]
pub struct Curriculum {
    /// The last floor of the keep ratio.
    pub floor: f32,
    /// Steps over which the floor falls from 1 to `floor`.
    pub anneal: usize,
}

impl Curriculum {
    /// The keep-ratio floor at `step` (1-based).
    pub fn floor_at(&self, step: usize) -> f32 {
        let t = (step as f32 / self.anneal.max(1) as f32).min(1.0);
        1.0 - t * (1.0 - self.floor)
    }
}

/// Tokens kept of `n` at keep ratio `ratio` (at least one).
fn kept(n: usize, ratio: f32) -> usize {
    ((n as f32 * ratio).round() as usize).clamp(1, n)
}

/// One step's losses: the pruned answers' cross-entropy and the distillation KL, with the
/// pruned batch's logits computed from the images' patch embeddings (with gradient).
pub struct TrimLosses {
    pub answer: Tensor,
    pub distill: Tensor,
    /// The attention supervision on the pruned prompts (`model::look_loss`).
    pub look: Tensor,
    /// Mean share of visual tokens kept.
    pub kept: f64,
}

/// Prunes every question of `groups` with the trimmer (keep ratios from `[floor, 1]`) and returns
/// the losses of the pruned batch. `groups` arrive with every token kept, as `dense` (their batch,
/// with the images' `vision` output) was built, and leave with the pick.
#[allow(clippy::too_many_arguments)]
pub fn losses(
    model: &Model,
    w: &Weights,
    enc: &Encoder,
    groups: &mut [Group],
    (dense, vision): (&Batch, &VisionOut),
    floor: f32,
    rng: &mut SplitMix64,
    dev: &Device,
) -> anyhow::Result<TrimLosses> {
    let teacher = model.answer_logits(w, dense, &vision.embeddings.detach(), None)?.detach();
    let scores = model.trim_scores(w, dense, &vision.features)?;
    let rows: Vec<Vec<f32>> = scores.to_vec2()?;
    let kept = pick(groups, &rows, || rng.range(floor, 1.0));
    let pruned = enc.batch(groups, dev)?;
    let ones = Tensor::ones(1, DType::F32, dev)?;
    let gate = Tensor::cat(&[&ones, &((&scores - scores.detach())? + 1.0)?.flatten_all()?], 0)?;
    let decoded = model.decoder(w, &pruned, &vision.embeddings, Some(&gate))?;
    let logits = model.predicted_logits(w, &pruned, &decoded.hidden)?;
    Ok(TrimLosses {
        answer: crate::model::loss(&logits, &pruned.targets)?,
        distill: kl(&teacher, &logits)?,
        look: crate::model::look_loss(&decoded.last_attention, &pruned)?,
        kept,
    })
}

/// Sets every question's keep list to the top `ratio()` of its trimmer scores (`rows`, one per
/// question in order); returns the mean share kept.
fn pick(groups: &mut [Group], rows: &[Vec<f32>], mut ratio: impl FnMut() -> f32) -> f64 {
    let mut share = 0.0;
    for (a, s) in groups.iter_mut().flat_map(|g| g.asked.iter_mut()).zip(rows) {
        let k = kept(s.len(), ratio());
        a.keep = top_k(s, k).into_iter().map(|i| i as u32).collect();
        share += k as f64 / s.len() as f64;
    }
    share / rows.len().max(1) as f64
}

/// Mean over rows of KL(softmax(teacher) || softmax(student)).
fn kl(teacher: &Tensor, student: &Tensor) -> Result<Tensor> {
    let lt = candle_nn::ops::log_softmax(teacher, D::Minus1)?;
    let ls = candle_nn::ops::log_softmax(student, D::Minus1)?;
    (lt.exp()? * (lt - ls)?)?.sum(D::Minus1)?.mean_all()
}

/// Puts the trimmer's top `ratio` of the visual tokens in every question's keep list.
pub fn prune(
    model: &Model,
    w: &Weights,
    enc: &Encoder,
    groups: &mut [Group],
    ratio: f32,
    dev: &Device,
) -> anyhow::Result<()> {
    let dense = enc.batch(groups, dev)?;
    let features = model.vision(w, &dense.pixels)?.features;
    let rows: Vec<Vec<f32>> = model.trim_scores(w, &dense, &features)?.to_vec2()?;
    pick(groups, &rows, || ratio);
    Ok(())
}
