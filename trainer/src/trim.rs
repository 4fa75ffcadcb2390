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
//!   linearly from 1 to its final value over the first part of the run;
//! - glimpse's addition, since the generated scenes say where the answer lies: a cross-entropy
//!   that scores the patches of the objects the answer is read from (every object's, for counts
//!   and absences) above the rest. The straight-through gradient alone says whether scaling a
//!   kept token up helps, not whether keeping it does; on some models it taught the trimmer to
//!   drop the objects (`smarttrim:25%` fell from 63% to 37% of validation questions while the
//!   keep ratio fell).

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
    /// The trimmer's scores against the patches each question needs (`keep_targets`).
    pub keep: Tensor,
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
    let keep = candle_nn::loss::binary_cross_entropy_with_logit(&scores, &keep_targets(groups, scores.dim(1)?, dev)?)?;
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
        keep,
        kept,
    })
}

/// `[questions, n_patches]` 1.0 on the patches each question of `groups` needs: those of the
/// objects its answer is read from (`data::Asked::look`), or of every object when the answer
/// rests on none of them in particular (counts, absences).
fn keep_targets(groups: &[Group], n_patches: usize, dev: &Device) -> Result<Tensor> {
    let mut t = Vec::new();
    for g in groups {
        for a in &g.asked {
            let mut row = vec![0f32; n_patches];
            if a.look.iter().all(|half| half.is_empty()) {
                row.iter_mut().zip(&g.image.patch_labels).for_each(|(r, &l)| *r = (l > 0) as u8 as f32);
            }
            for &p in a.look.iter().flatten() {
                row[p as usize] = 1.0;
            }
            t.extend(row);
        }
    }
    Tensor::from_vec(t, ((), n_patches), dev)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A question about one object keeps that object's patches alone; a relation both objects';
    /// a question about nothing in particular every object's and no background.
    #[test]
    fn keep_targets_are_the_patches_the_answer_needs() {
        let (text, mmproj) = crate::spec::initial(&crate::spec::spec(false).unwrap()).unwrap();
        let enc = Encoder::new(&text, &mmproj).unwrap();
        let ex = crate::data::look_examples(&enc);
        let look = |g: &Group| g.asked[0].look.clone();
        let (single, relation) = (&ex.single[0], &ex.relation);
        let nothing = ex.nothing.iter().find(|g| g.image.objects.len() > 1).expect("a question about nothing");
        let groups: Vec<Group> = [single, relation, nothing].into_iter().cloned().collect();
        let n = groups[0].image.patch_labels.len();
        let rows: Vec<Vec<f32>> = keep_targets(&groups, n, &Device::Cpu).unwrap().to_vec2().unwrap();
        let kept = |row: &Vec<f32>| (0..n as u32).filter(|&p| row[p as usize] == 1.0).collect::<Vec<u32>>();
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        assert_eq!(kept(&rows[0]), sorted(look(single)[0].clone()));
        assert_eq!(kept(&rows[1]), sorted([look(relation)[0].clone(), look(relation)[1].clone()].concat()));
        let objects: Vec<u32> = (0..n as u32).filter(|&p| nothing.image.patch_labels[p as usize] > 0).collect();
        assert!(!objects.is_empty());
        assert_eq!(kept(&rows[2]), objects);
        assert!(rows.iter().flatten().all(|&v| v == 0.0 || v == 1.0));
    }
}
