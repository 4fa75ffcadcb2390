//! Token dropping inside the LLM prefill, decided on plain numbers: FastV (one stage, the last
//! prompt token's attention) and MustDrop stage 2 (dual-attention filtering at several layers)
//! with stage 3 (earlier layers' KV caches cut to the final survivors). The engine runs the
//! layers and the attention statistics on the GPU, reads back one score (and maximum) per
//! image token at each stage, and applies what this module decides.

use crate::prune::plan::{Method, PrunePlan, mustdrop_layers, mustdrop_thresholds};
use crate::prune::select;

/// The rule applied after a stage's layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Keep the `keep` image tokens the last row attends to most (head mean); positions stay
    /// the original ones.
    FastV { keep: usize },
    /// Drop an image token when its attention summed over the text rows is under `global` of
    /// all image tokens' total AND its strongest single text row is under `individual`; the key
    /// set is never dropped; positions are re-packed consecutively after each stage.
    MustDrop { global: f32, individual: f32 },
}

/// A frame's in-LLM plan: drop after each of `after_layers`, by `rule`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmPlan {
    pub after_layers: Vec<usize>,
    pub rule: Rule,
    /// Cut the KV caches of layers `after_layers[0]..=last` to the final survivors (MustDrop
    /// stage 3).
    pub trim_kv: bool,
}

impl LlmPlan {
    /// The in-LLM part of `plan` for an LLM of `n_layer` layers and a prompt with `n_image`
    /// image tokens; `None` when the plan drops nothing inside the LLM. A layer the model does
    /// not have is an error.
    pub fn from_plan(plan: &PrunePlan, n_layer: usize, n_image: usize) -> Result<Option<LlmPlan>, String> {
        let check = |layer: usize, what: &str| {
            if layer >= n_layer {
                return Err(format!("{what} layer {layer} is past the text model's {n_layer} layers (0..{n_layer})"));
            }
            Ok(())
        };
        Ok(match &plan.method {
            Method::FastV(p) => {
                check(p.layer, "fastv")?;
                let keep = plan.budget_tokens(n_image);
                // Attention of layer K - 1 decides what layers K.. see.
                (keep < n_image).then(|| LlmPlan {
                    after_layers: vec![p.layer - 1],
                    rule: Rule::FastV { keep },
                    trim_kv: false,
                })
            }
            Method::MustDrop(p) if p.stage2 => {
                for &l in p.layers.iter().flatten() {
                    check(l, "mustdrop")?;
                }
                let (global, individual) = mustdrop_thresholds(p, plan.budget_tokens(n_image));
                let after_layers: Vec<usize> =
                    mustdrop_layers(p, n_layer).into_iter().filter(|&l| l + 1 < n_layer).collect();
                (!after_layers.is_empty()).then_some(LlmPlan {
                    after_layers,
                    rule: Rule::MustDrop { global, individual },
                    trim_kv: p.stage3,
                })
            }
            _ => None,
        })
    }

    /// Whether kept rows keep their original positions (FastV) or are re-packed (MustDrop).
    pub fn keeps_positions(&self) -> bool {
        matches!(self.rule, Rule::FastV { .. })
    }
}

/// Which image tokens (indices into the `scores` list, ascending) survive one stage. `scores`
/// is each image token's head-mean attention summed over the query rows, `maxima` its largest
/// single-row value (MustDrop), `key_set` image tokens never dropped (indices into the list).
pub fn survivors(rule: &Rule, scores: &[f32], maxima: &[f32], key_set: &[usize]) -> Vec<usize> {
    match *rule {
        Rule::FastV { keep } => select::top_k(scores, keep),
        Rule::MustDrop { global, individual } => {
            let total: f32 = scores.iter().sum();
            (0..scores.len())
                .filter(|&j| {
                    let dropped = scores[j] < total * global && maxima.get(j).is_some_and(|&m| m < individual);
                    !dropped || key_set.contains(&j)
                })
                .collect()
        }
    }
}

/// The prompt's rows as the LLM stages see them: for each current row, its original row.
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    /// Original prompt row of each current row, ascending.
    pub original: Vec<usize>,
    /// Original rows that are image tokens, ascending.
    pub image: Vec<usize>,
}

impl Rows {
    pub fn new(n: usize, image: Vec<usize>) -> Rows {
        Rows { original: (0..n).collect(), image }
    }

    /// Current rows holding image tokens, ascending.
    pub fn image_rows(&self) -> Vec<usize> {
        (0..self.original.len()).filter(|&r| self.image.binary_search(&self.original[r]).is_ok()).collect()
    }

    /// The current rows after the last image row (the text that follows the image).
    pub fn text_after_image(&self) -> std::ops::Range<usize> {
        let last = self.image_rows().last().map_or(0, |&r| r + 1);
        last..self.original.len()
    }

    /// Keeps the image rows at `keep` (indices into [`Rows::image_rows`]) and every other row;
    /// returns the current rows kept (the gather list for the activations).
    pub fn retain_images(&mut self, keep: &[usize]) -> Vec<usize> {
        let image_rows = self.image_rows();
        let dropped: Vec<usize> =
            (0..image_rows.len()).filter(|i| keep.binary_search(i).is_err()).map(|i| image_rows[i]).collect();
        let rows: Vec<usize> = (0..self.original.len()).filter(|r| dropped.binary_search(r).is_err()).collect();
        self.original = rows.iter().map(|&r| self.original[r]).collect();
        rows
    }
}

/// For a layer that cached the rows `held` (original rows, ascending), the indices of those
/// still in `survivors` (original rows, ascending): the gather list of a KV trim.
pub fn trim_list(held: &[usize], survivors: &[usize]) -> Vec<usize> {
    (0..held.len()).filter(|&i| survivors.binary_search(&held[i]).is_ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastv_keeps_the_top_budget_after_layer_k_minus_1() {
        let plan: PrunePlan = "fastv:3,layer=2".parse().unwrap();
        let p = LlmPlan::from_plan(&plan, 30, 10).unwrap().unwrap();
        assert_eq!(p.after_layers, vec![1]);
        assert_eq!(p.rule, Rule::FastV { keep: 3 });
        let scores = [0.1, 0.5, 0.2, 0.9, 0.5, 0.0];
        assert_eq!(survivors(&p.rule, &scores, &[], &[]), vec![1, 3, 4]);
        // Keeping everything drops nothing in the LLM.
        assert_eq!(LlmPlan::from_plan(&"fastv:100%".parse().unwrap(), 30, 10), Ok(None));
        // A layer the model does not have is an error, not a silent no-op.
        let e = LlmPlan::from_plan(&"fastv:3,layer=8".parse().unwrap(), 8, 10).unwrap_err();
        assert!(e.contains("past the text model's 8 layers"), "{e}");
        assert!(LlmPlan::from_plan(&"mustdrop:64,layers=2;9".parse().unwrap(), 8, 10).is_err());
    }

    /// MustDrop's rule by hand: total = 1.0, global 0.1 -> drop candidates have g < 0.1; the
    /// individual threshold 0.05 spares a token one text row attends to strongly; the key set
    /// spares token 4.
    #[test]
    fn mustdrop_dual_attention_rule_by_hand() {
        let rule = Rule::MustDrop { global: 0.1, individual: 0.05 };
        let g = [0.5, 0.05, 0.05, 0.3, 0.02, 0.08];
        let m = [0.3, 0.01, 0.06, 0.2, 0.01, 0.04];
        assert_eq!(survivors(&rule, &g, &m, &[4]), vec![0, 2, 3, 4]);
        let plan: PrunePlan = "mustdrop:64".parse().unwrap();
        let p = LlmPlan::from_plan(&plan, 32, 576).unwrap().unwrap();
        assert_eq!(p.after_layers, vec![2, 6, 10, 14]);
        assert_eq!(p.rule, Rule::MustDrop { global: 0.011, individual: 0.01 });
        assert!(p.trim_kv && !p.keeps_positions());
    }

    #[test]
    fn rows_retain_images_and_trim_lists() {
        // 3 text rows, 4 image rows (3..7), 2 text rows.
        let mut r = Rows::new(9, vec![3, 4, 5, 6]);
        assert_eq!(r.image_rows(), vec![3, 4, 5, 6]);
        assert_eq!(r.text_after_image(), 7..9);
        let kept = r.retain_images(&[1, 3]);
        assert_eq!(kept, vec![0, 1, 2, 4, 6, 7, 8]);
        assert_eq!(r.original, vec![0, 1, 2, 4, 6, 7, 8]);
        assert_eq!(r.image_rows(), vec![3, 4]);
        assert_eq!(r.text_after_image(), 5..7);
        let kept = r.retain_images(&[1]);
        assert_eq!(kept, vec![0, 1, 2, 4, 5, 6]);
        assert_eq!(r.original, vec![0, 1, 2, 6, 7, 8]);
        // A layer that held the first stage's rows keeps the final survivors only.
        assert_eq!(trim_list(&[0, 1, 2, 4, 6, 7, 8], &r.original), vec![0, 1, 2, 4, 5, 6]);
    }
}
