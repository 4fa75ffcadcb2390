//! One frame's pruning decisions and accounting, on plain numbers: how a plan's budget is
//! spread over the frame's tiles and what each tile keeps, and the FLOPs the frame ran next to
//! what it would have run unpruned.

use crate::model::config::{TextConfig, VisionConfig};
use crate::prune::flops;
use crate::prune::plan::{Method, PlanError, PrunePlan, visionzip_split};
use crate::prune::select;
use crate::prune::tokens::TileChoice;

/// What each of a frame's `tiles` tiles keeps under `plan`, or `None` when the frame runs
/// dense: method `none`, or a budget that keeps every token (so budget 100% is the dense model,
/// bit for bit). Each tile holds `side x side` visual tokens; the budget is spread evenly over
/// the tiles (earlier tiles take the remainder; at least one token each), as VisionZip does
/// per crop for LLaVA-NeXT.
pub fn choose(plan: &PrunePlan, tiles: usize, side: usize) -> Result<Option<Vec<TileChoice>>, PlanError> {
    let per_tile = side * side;
    let total = tiles * per_tile;
    let budget = plan.budget_tokens(total);
    // FastV and MustDrop drop inside the LLM (crate::prune::llm); adaptive chooses per tile
    // from the tile's attention (the engine reads its scores back).
    let later = matches!(plan.method, Method::FastV(_) | Method::MustDrop(_) | Method::Adaptive(_));
    if matches!(plan.method, Method::None) || later || budget >= total || tiles == 0 {
        return Ok(None);
    }
    let share = |i: usize| (budget / tiles + usize::from(i < budget % tiles)).max(1);
    let mut out = Vec::with_capacity(tiles);
    for i in 0..tiles {
        let b = share(i);
        out.push(match &plan.method {
            Method::VisionZip(p) => {
                // With several tiles, explicit counts apply to the whole frame: scale them.
                let params = if tiles == 1 {
                    p.clone()
                } else {
                    let scale = |v: Option<usize>| v.map(|v| (v * b).div_ceil(budget));
                    crate::prune::plan::VisionZipParams { dominant: scale(p.dominant), contextual: None }
                };
                let (dominant, contextual) = visionzip_split(&params, b)?;
                TileChoice::VisionZip { dominant, contextual }
            }
            Method::Random(p) => TileChoice::Keep(select::random(per_tile, b, p.seed.wrapping_add(i as u64))),
            Method::Grid => TileChoice::Keep(select::grid(side, side, b)),
            Method::SmartTrim => TileChoice::Learned { keep: b },
            Method::None | Method::FastV(_) | Method::MustDrop(_) | Method::Adaptive(_) => return Ok(None),
        });
    }
    Ok(Some(out))
}

/// FLOPs of a frame per stage, dense and executed.
#[derive(Clone, Debug, Default)]
pub struct FrameFlops {
    pub stages: Vec<(String, f64, f64)>,
}

impl FrameFlops {
    /// The vision tower over the tiles (`block_tokens[t][i]`: the tokens block i of tile t ran
    /// on; token selection after the tower does not shrink it), the selection's own work, and
    /// the projector for the tokens sent on.
    pub fn vision(
        c: &VisionConfig,
        mlp_hidden: Option<usize>,
        block_tokens: &[Vec<usize>],
        choices: Option<&[TileChoice]>,
    ) -> FrameFlops {
        Self::vision_heads(c, mlp_hidden, block_tokens, None, choices)
    }

    /// [`FrameFlops::vision`] with head trimming: `block_heads[t][i]` attention heads ran in
    /// block i of tile t (every head when `None`).
    pub fn vision_heads(
        c: &VisionConfig,
        mlp_hidden: Option<usize>,
        block_tokens: &[Vec<usize>],
        block_heads: Option<&[Vec<usize>]>,
        choices: Option<&[TileChoice]>,
    ) -> FrameFlops {
        let tiles = block_tokens.len();
        let dense_tower = tiles as f64 * flops::vision_dense(c);
        let heads = |t: usize| block_heads.and_then(|h| h.get(t)).map(Vec::as_slice);
        let tower: f64 = block_tokens.iter().enumerate().map(|(t, b)| flops::vision_heads(c, b, heads(t))).sum();
        let dense_tokens = c.tokens_per_tile();
        let proj_dense = tiles as f64 * flops::projector(c, dense_tokens, mlp_hidden);
        let mut f = FrameFlops::default();
        f.stages.push(("vision".into(), dense_tower, tower));
        let (select, proj) = match choices {
            None => (0.0, proj_dense),
            Some(ch) => (
                ch.iter().map(|t| selection(c, t)).sum(),
                ch.iter().map(|t| flops::projector(c, t.n_out(), mlp_hidden)).sum(),
            ),
        };
        f.stages.push(("prune".into(), 0.0, select));
        f.stages.push(("projector".into(), proj_dense, proj));
        f
    }

    /// The LLM prefill: `rows[l]` tokens ran through layer l; `dense` tokens each without
    /// pruning.
    pub fn prefill(&mut self, c: &TextConfig, dense: usize, rows: &[usize]) {
        self.prefill_heads(c, dense, rows, None);
    }

    /// [`FrameFlops::prefill`] with head trimming: `heads[l]` query heads ran in layer l (every
    /// head when `None`).
    pub fn prefill_heads(&mut self, c: &TextConfig, dense: usize, rows: &[usize], heads: Option<&[usize]>) {
        let head = flops::gemm(1, c.n_embd, c.n_vocab);
        let kept = |l: usize| heads.and_then(|h| h.get(l).copied()).unwrap_or(c.n_head);
        let executed =
            rows.iter().enumerate().map(|(l, &n)| flops::text_layer_heads(c, n, 0, kept(l))).sum::<f64>() + head;
        self.stages.push(("prefill".into(), flops::text_forward(c, dense, 0), executed));
    }

    /// Adds `executed` FLOPs (no dense counterpart) to stage `name`, created when missing.
    pub fn add_executed(&mut self, name: &str, executed: f64) {
        match self.stages.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.2 += executed,
            None => self.stages.push((name.into(), 0.0, executed)),
        }
    }

    /// `generated` decode steps; layer l's cache held `cached[l]` rows before the first step
    /// (`dense` rows each without pruning).
    pub fn decode(&mut self, c: &TextConfig, dense: usize, cached: &[usize], generated: usize) {
        let head = flops::gemm(1, c.n_embd, c.n_vocab);
        let step = |i: usize| cached.iter().map(|&past| flops::text_layer(c, 1, past + i)).sum::<f64>() + head;
        let executed = (0..generated).map(step).sum();
        let dense = (0..generated).map(|i| flops::text_forward(c, 1, dense + i)).sum();
        self.stages.push(("decode".into(), dense, executed));
    }

    pub fn dense(&self) -> f64 {
        self.stages.iter().map(|s| s.1).sum()
    }

    pub fn executed(&self) -> f64 {
        self.stages.iter().map(|s| s.2).sum()
    }
}

/// Adaptive head trimming's decision for one layer, on the probe's attention outputs (`probe`:
/// rows of `n_head * head_dim`, each head's output side by side). This is our training-free
/// proxy for SmartTrim's learned head trimmer: a head's saliency on this input is its share of
/// the output energy, `share_h = sum over probe rows of ||O_h||^2 / the same summed over heads`,
/// and heads with `share_h < threshold` are trimmed. Returns the kept heads, ascending: never
/// empty (the strongest head stays), every head when the probe carries no finite energy.
pub fn kept_heads(probe: &[f32], n_head: usize, head_dim: usize, threshold: f32) -> Vec<usize> {
    let width = n_head * head_dim;
    let mut energy = vec![0f64; n_head];
    if width > 0 {
        for row in probe.chunks_exact(width) {
            for (h, e) in energy.iter_mut().enumerate() {
                *e += row[h * head_dim..(h + 1) * head_dim].iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            }
        }
    }
    let total: f64 = energy.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return (0..n_head).collect();
    }
    let kept: Vec<usize> = (0..n_head).filter(|&h| energy[h] / total >= threshold as f64).collect();
    if !kept.is_empty() {
        return kept;
    }
    let best = (0..n_head).max_by(|&a, &b| energy[a].total_cmp(&energy[b])).unwrap_or(0);
    vec![best]
}

/// The GPU selection's own FLOPs for one tile: VisionZip's two attention passes (row
/// normalisers, column sums) over the scoring rows and the cosine assignment; baselines pick on
/// the CPU and only gather.
pub fn selection(c: &VisionConfig, choice: &TileChoice) -> f64 {
    match choice {
        TileChoice::VisionZip { dominant, contextual } => {
            let n = c.n_pos();
            let rows = if c.has_cls { 1 } else { n };
            let passes = 2.0 * flops::gemm(rows, c.n_embd, n);
            let head_dim = c.n_embd / c.n_head.max(1);
            let candidates = c.tokens_per_tile() + c.has_cls as usize;
            passes + flops::gemm(candidates.saturating_sub(*dominant), head_dim, *contextual)
        }
        // The trimmer's own FLOPs are the engine's to add (it knows the trimmer's width).
        TileChoice::Keep(_) | TileChoice::Learned { .. } => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(s: &str) -> PrunePlan {
        s.parse().unwrap()
    }

    #[test]
    fn full_budget_and_none_run_dense() {
        assert_eq!(choose(&plan("none"), 1, 24).unwrap(), None);
        assert_eq!(choose(&plan("visionzip:100%"), 1, 24).unwrap(), None);
        assert_eq!(choose(&plan("random:576"), 1, 24).unwrap(), None);
    }

    #[test]
    fn budget_is_spread_over_tiles() {
        // 13 tiles of 8 x 8: 64 tokens -> 5 each for the first 12, 4 for the last.
        let c = choose(&plan("grid:64"), 13, 8).unwrap().unwrap();
        let n: Vec<usize> = c.iter().map(TileChoice::n_out).collect();
        assert_eq!(n.iter().sum::<usize>(), 64);
        assert_eq!(n[0], 5);
        assert_eq!(n[12], 4);
        // One tile, VisionZip 64 = 54 + 10.
        let c = choose(&plan("visionzip:64"), 1, 24).unwrap().unwrap();
        assert_eq!(c, vec![TileChoice::VisionZip { dominant: 54, contextual: 10 }]);
    }

    #[test]
    fn methods_that_choose_later_leave_choices_empty() {
        // In-LLM and adaptive methods choose later.
        assert_eq!(choose(&plan("fastv:64"), 1, 24).unwrap(), None);
        assert_eq!(choose(&plan("adaptive:0.9"), 1, 24).unwrap(), None);
    }

    #[test]
    fn kept_heads_by_output_energy_share() {
        // 2 equal rows, 3 heads of 2: head 0 (1, 1), head 1 (2, 0), head 2 (0, 3) -> energies
        // 2 * 2 = 4, 2 * 4 = 8, 2 * 9 = 18; total 30: shares 0.133, 0.267, 0.6.
        let row = [1.0, 1.0, 2.0, 0.0, 0.0, 3.0];
        let probe: Vec<f32> = row.iter().chain(&row).copied().collect();
        assert_eq!(kept_heads(&probe, 3, 2, 0.000001), vec![0, 1, 2]);
        assert_eq!(kept_heads(&probe, 3, 2, 0.2), vec![1, 2]);
        assert_eq!(kept_heads(&probe, 3, 2, 0.5), vec![2]);
        // Never empty: the strongest head stays.
        assert_eq!(kept_heads(&probe, 3, 2, 0.9), vec![2]);
        // No energy (or NaN): keep everything.
        assert_eq!(kept_heads(&[0.0; 6], 3, 2, 0.5), vec![0, 1, 2]);
        assert_eq!(kept_heads(&[f32::NAN; 6], 3, 2, 0.5), vec![0, 1, 2]);
    }

    /// Prefill with 3 tokens through layer 0 and 1 token through layer 1 (two dropped after
    /// layer 0), by hand in multiply-adds (x 2 for FLOPs), d = 4, q = 4, kv = 2, ff = 8. A layer
    /// on n tokens from an empty cache: projections 16n + 2 * 8n + 16n = 48n, attention over
    /// 1 + ... + n keys at 2 * 4 each, SwiGLU 3 * 32n. n = 3: 144 + 48 + 288 = 480; n = 1:
    /// 48 + 8 + 96 = 152; the head 4 * 10 = 40. Executed 2 * (480 + 152 + 40) = 1344; dense
    /// 2 * (480 * 2 + 40) = 2000.
    #[test]
    fn prefill_and_decode_flops_follow_the_rows_each_layer_ran() {
        let c = crate::prune::flops::hand_text_config(2);
        let mut f = FrameFlops::default();
        f.prefill(&c, 3, &[3, 1]);
        assert_eq!(f.stages[0], ("prefill".to_string(), 2000.0, 1344.0));
        // One decode step: layer 0 holds 3 rows, layer 1 one row. A decode layer after p cached
        // rows: proj 16 + 16 + 16 = 48, keys p + 1 -> 8 (p + 1), ffn 96.
        // executed = (48 + 32 + 96) + (48 + 16 + 96) + 40 = 376 -> 752; dense 2 * (176 * 2 + 40) = 784.
        f.decode(&c, 3, &[3, 1], 1);
        assert_eq!(f.stages[1], ("decode".to_string(), 784.0, 752.0));
        assert_eq!(f.dense(), 2784.0);
        assert_eq!(f.executed(), 2096.0);
    }
}
