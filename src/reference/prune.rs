//! Plain f32 CPU reference of the published pruning algorithms (research/pruning.md 1.2, 1.4,
//! 1.9): the oracle the GPU pruning kernels are tested against. Written for clarity: attention is
//! recomputed row by row, nothing is fused. Matrices are row-major; `q` and `k` are
//! `[n, n_head * head_dim]` with head `h` in columns `h * head_dim..(h + 1) * head_dim`.

use crate::gguf::Gguf;
use crate::model::names::{TRIM_FC1, TRIM_FC1_BIAS, TRIM_FC2, TRIM_TOKEN_EMBD};
use crate::prune::select::top_k;
use crate::reference::ops;
use crate::reference::weights::tensor;

/// Post-softmax attention probabilities of query row `i` over all `n` keys for head `h`
/// (scale 1 / sqrt(head_dim), non-causal).
fn attention_row(q: &[f32], k: &[f32], n_head: usize, head_dim: usize, h: usize, i: usize) -> Vec<f32> {
    let width = n_head * head_dim;
    let n = k.len() / width;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let qi = &q[i * width + h * head_dim..i * width + (h + 1) * head_dim];
    let logits: Vec<f32> = (0..n)
        .map(|j| {
            let kj = &k[j * width + h * head_dim..j * width + (h + 1) * head_dim];
            qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale
        })
        .collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The learned token trimmer's scores (`prune::trimmer`) of the visual-token rows `x`
/// `[n, width]` for a question of token `ids`: `fc2 . gelu(fc1 x + fc1.bias + q)`, `q` the mean
/// of the question's rows of the trimmer's table (ids past the table skipped).
pub fn trimmer_scores(mmproj: &Gguf, x: &[f32], ids: &[u32]) -> crate::gguf::Result<Vec<f32>> {
    let table = tensor(mmproj, TRIM_TOKEN_EMBD)?;
    let mut bias = tensor(mmproj, TRIM_FC1_BIAS)?;
    let hidden = bias.len();
    let rows: Vec<&[f32]> = ids.iter().filter_map(|&i| table.chunks_exact(hidden).nth(i as usize)).collect();
    for row in &rows {
        for (b, r) in bias.iter_mut().zip(*row) {
            *b += r / rows.len() as f32;
        }
    }
    let fc1 = tensor(mmproj, TRIM_FC1)?;
    let width = fc1.len() / hidden;
    let h: Vec<f32> = ops::matmul(x, &fc1, Some(&bias), width, hidden).into_iter().map(ops::gelu).collect();
    Ok(ops::matmul(&h, &tensor(mmproj, TRIM_FC2)?, None, hidden, 1))
}

/// Post-softmax attention of query row `i` (scale 1/sqrt(head_dim), full non-causal attention
/// over all `n` keys), summed over heads: VisionZip's CLS score (call with `i = 0`). Returns `[n]`.
pub fn cls_attention(q: &[f32], k: &[f32], n: usize, n_head: usize, head_dim: usize, i: usize) -> Vec<f32> {
    assert_eq!(k.len(), n * n_head * head_dim, "k must be [n, n_head * head_dim]");
    let mut out = vec![0.0f32; n];
    for h in 0..n_head {
        for (o, p) in out.iter_mut().zip(attention_row(q, k, n_head, head_dim, h, i)) {
            *o += p;
        }
    }
    out
}

/// Attention each key receives: for key `j`, the sum over query rows `i` of the head mean of
/// softmax_i(q_i . k_j / sqrt(head_dim)). Full, non-causal (VisionZip's score for encoders without
/// CLS). Returns `[n]`; it sums to `n`.
pub fn attention_received(q: &[f32], k: &[f32], n: usize, n_head: usize, head_dim: usize) -> Vec<f32> {
    assert_eq!(q.len(), n * n_head * head_dim, "q must be [n, n_head * head_dim]");
    assert_eq!(k.len(), n * n_head * head_dim, "k must be [n, n_head * head_dim]");
    let mut out = vec![0.0f32; n];
    for h in 0..n_head {
        for i in 0..n {
            for (o, p) in out.iter_mut().zip(attention_row(q, k, n_head, head_dim, h, i)) {
                *o += p / n_head as f32;
            }
        }
    }
    out
}

/// Head-mean keys: `[n, head_dim]`, the mean over heads of `k` `[n, n_head * head_dim]`.
pub fn head_mean_keys(k: &[f32], n: usize, n_head: usize, head_dim: usize) -> Vec<f32> {
    assert_eq!(k.len(), n * n_head * head_dim, "k must be [n, n_head * head_dim]");
    let mut out = vec![0.0f32; n * head_dim];
    for j in 0..n {
        for h in 0..n_head {
            for c in 0..head_dim {
                out[j * head_dim + c] += k[(j * n_head + h) * head_dim + c] / n_head as f32;
            }
        }
    }
    out
}

/// Pools per-patch rows of width `w` (scores: `w = 1`, keys: the key width) of a `side x side`
/// patch grid over each `s x s` group, in the pixel-shuffle token order: output token `t` =
/// (R, C) with R = t / (side / s), C = t % (side / s) is the mean of patches (R s + dy, C s + dx)
/// for dy, dx in 0..s. Returns `[(side / s)^2, w]`. Panics unless `s` divides `side` and `x` is
/// `[side * side, w]`.
pub fn pool_groups(x: &[f32], side: usize, s: usize, w: usize) -> Vec<f32> {
    assert!(s > 0 && side.is_multiple_of(s), "s must divide side");
    assert_eq!(x.len(), side * side * w, "x must be [side * side, w]");
    let g = side / s;
    let mut out = vec![0.0f32; g * g * w];
    for t in 0..g * g {
        let (r, c) = (t / g, t % g);
        for dy in 0..s {
            for dx in 0..s {
                let p = (r * s + dy) * side + c * s + dx;
                for e in 0..w {
                    out[t * w + e] += x[p * w + e] / (s * s) as f32;
                }
            }
        }
    }
    out
}

/// What VisionZip keeps of a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionZipOut {
    /// Dominant token indices, ascending (CLS, when present, first).
    pub dominant: Vec<usize>,
    /// Contextual target token indices, ascending.
    pub targets: Vec<usize>,
    /// (token, target token) for each remaining token that is not a target, by ascending token.
    pub assigned: Vec<(usize, usize)>,
    /// `[dominant.len() + targets.len(), d]`: the dominant rows in order, then one merged row per target.
    pub rows: Vec<f32>,
}

/// `v / |v|`, or zeros for a zero vector (cosine 0 with everything).
fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter().map(|a| if norm > 0.0 { a / norm } else { 0.0 }).collect()
}

/// VisionZip as published (research/pruning.md 1.2, 1.9). `scores` `[n]` per token; `keys`
/// `[n, kd]` (head-mean keys, not normalised on input); `x` `[n, d]` the hidden states to merge.
///
/// Dominant: with `has_cls`, token 0 (CLS) is always dominant and excluded from scoring, and the
/// top `dominant - 1` other tokens by score join it (`dominant` counts CLS); otherwise the top
/// `dominant` tokens. Ties: higher score first, then lower index. Dominant indices ascending.
///
/// Contextual: the remaining tokens R ascending; step = max(1, |R| / contextual) (integer
/// division); targets = R[0], R[step], R[2 step], ..., the first `contextual` of them. Every
/// other remaining token is assigned to the target with the largest key cosine (ties: the earlier
/// target); a target's row is x[t] + the mean of its assigned tokens' x (x[t] if none).
/// `contextual = 0` merges nothing (the remaining tokens are dropped).
///
/// Panics unless `keys` is `[n, kd]` and `x` is `[n, d]`.
pub fn visionzip(
    scores: &[f32],
    keys: &[f32],
    kd: usize,
    x: &[f32],
    d: usize,
    has_cls: bool,
    dominant: usize,
    contextual: usize,
) -> VisionZipOut {
    let n = scores.len();
    assert_eq!(keys.len(), n * kd, "keys must be [n, kd]");
    assert_eq!(x.len(), n * d, "x must be [n, d]");
    let row = |t: usize| &x[t * d..(t + 1) * d];

    let dominant_idx: Vec<usize> = if has_cls && n > 0 {
        let others = top_k(&scores[1..], dominant.saturating_sub(1));
        std::iter::once(0).chain(others.into_iter().map(|i| i + 1)).collect()
    } else {
        top_k(scores, dominant)
    };
    let remaining: Vec<usize> = (0..n).filter(|t| !dominant_idx.contains(t)).collect();

    // step = max(1, |R| / contextual); no targets when contextual is 0.
    let targets: Vec<usize> = match remaining.len().checked_div(contextual) {
        None => Vec::new(),
        Some(q) => remaining.iter().copied().step_by(q.max(1)).take(contextual).collect(),
    };
    let unit: Vec<Vec<f32>> = (0..n).map(|t| normalised(&keys[t * kd..(t + 1) * kd])).collect();
    let cosine = |a: usize, b: usize| unit[a].iter().zip(&unit[b]).map(|(u, v)| u * v).sum::<f32>();

    let mut assigned = Vec::new();
    if !targets.is_empty() {
        for &t in remaining.iter().filter(|t| !targets.contains(t)) {
            let mut best = targets[0];
            for &c in &targets[1..] {
                if cosine(t, c) > cosine(t, best) {
                    best = c;
                }
            }
            assigned.push((t, best));
        }
    }

    let mut rows: Vec<f32> = dominant_idx.iter().flat_map(|&t| row(t).iter().copied()).collect();
    for &target in &targets {
        let members: Vec<usize> = assigned.iter().filter(|a| a.1 == target).map(|a| a.0).collect();
        let mut merged = row(target).to_vec();
        for &m in &members {
            for (o, v) in merged.iter_mut().zip(row(m)) {
                *o += v / members.len() as f32;
            }
        }
        rows.extend(merged);
    }
    VisionZipOut { dominant: dominant_idx, targets, assigned, rows }
}

/// The cell (visual-token index, CLS excluded) of each row a pruned tile sends, in the order
/// sent: the tokens `kept`, then the contextual `targets` (token indices; with `has_cls` token 0
/// is CLS, which takes cell 0). A row's prompt position is its tile's first position plus its
/// cell, as in the unpruned prompt, so pruning leaves gaps instead of moving tokens together.
pub fn row_cells(kept: &[usize], targets: &[usize], has_cls: bool) -> Vec<usize> {
    kept.iter().chain(targets).map(|&i| i.saturating_sub(has_cls as usize)).collect()
}

/// MustDrop stage 1 as published: the mean pairwise cosine of each whole `w x w` window of the
/// `side x side` patch rows of `x` (`[first + side^2, d]`, patches from row `first`), over the
/// w^2 (w^2 - 1) ordered pairs of distinct tokens.
pub fn window_similarity(x: &[f32], side: usize, d: usize, w: usize, first: usize) -> Vec<f32> {
    let row = |p: usize| &x[(first + p) * d..(first + p + 1) * d];
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        let nb = b.iter().map(|v| v * v).sum::<f32>().sqrt();
        dot / (na * nb).max(1e-30)
    };
    let per_side = side / w;
    (0..per_side * per_side)
        .map(|i| {
            let cells: Vec<usize> =
                (0..w * w).map(|k| (i / per_side * w + k / w) * side + i % per_side * w + k % w).collect();
            let mut sum = 0.0;
            for &a in &cells {
                for &b in &cells {
                    if a != b {
                        sum += cos(row(a), row(b));
                    }
                }
            }
            sum / (w * w * (w * w - 1)) as f32
        })
        .collect()
}

/// The rows after MustDrop's merge: row 0 kept when `has_cls`, then for each token of
/// `sources` (patch lists, as `prune::windows::Stage1::sources`) the mean of its patches' rows.
pub fn merge_rows(x: &[f32], d: usize, has_cls: bool, sources: &[Vec<usize>]) -> Vec<f32> {
    let first = has_cls as usize;
    let mut out = x[..first * d].to_vec();
    for cells in sources {
        for e in 0..d {
            let sum: f32 = cells.iter().map(|&p| x[(first + p) * d + e]).sum();
            out.push(sum / cells.len() as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reproducible values in [-2, 2) from a 64-bit LCG.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    /// One head of width 1: q0 = 1, k = (0, ln 3) gives logits (0, ln 3) and probabilities
    /// (1/4, 3/4) for row 0; q1 = 0 gives (1/2, 1/2).
    #[test]
    fn attention_hand_computed() {
        let (q, k) = ([1.0, 0.0], [0.0, 3.0f32.ln()]);
        assert!(close(&cls_attention(&q, &k, 2, 1, 1, 0), &[0.25, 0.75]));
        assert!(close(&cls_attention(&q, &k, 2, 1, 1, 1), &[0.5, 0.5]));
        assert!(close(&attention_received(&q, &k, 2, 1, 1), &[0.75, 1.25]));
    }

    /// Head 0 prefers key 1 (3/4), head 1 is uniform over 2 keys: the CLS row sums heads, the
    /// received score takes the head mean.
    #[test]
    fn attention_two_heads() {
        // [n = 2, 2 heads x 1]: q0 = (1, 0), q1 = (0, 0); k0 = (0, 5), k1 = (ln 3, -5).
        let q = [1.0, 0.0, 0.0, 0.0];
        let k = [0.0, 5.0, 3.0f32.ln(), -5.0];
        assert!(close(&cls_attention(&q, &k, 2, 2, 1, 0), &[0.75, 1.25]));
        // Rows: head 0 (1/4, 3/4) and (1/2, 1/2); head 1 (1/2, 1/2) twice -> mean per row, summed.
        assert!(close(&attention_received(&q, &k, 2, 2, 1), &[0.875, 1.125]));
    }

    #[test]
    fn attention_sums() {
        for (n, n_head, head_dim, seed) in [(5, 1, 4, 1), (9, 3, 2, 2), (16, 4, 8, 3)] {
            let q = values(n * n_head * head_dim, seed);
            let k = values(n * n_head * head_dim, seed + 100);
            let received = attention_received(&q, &k, n, n_head, head_dim);
            assert!((received.iter().sum::<f32>() - n as f32).abs() < 1e-4, "{received:?}");
            assert!(received.iter().all(|&r| r > 0.0));
            for i in [0, n - 1] {
                let cls = cls_attention(&q, &k, n, n_head, head_dim, i);
                assert!((cls.iter().sum::<f32>() - n_head as f32).abs() < 1e-5, "{cls:?}");
            }
        }
    }

    #[test]
    fn head_mean_keys_hand_computed() {
        // 2 tokens, 2 heads of 2: token 0 heads (1, 2), (3, 4); token 1 heads (0, 0), (2, -2).
        let k = [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 2.0, -2.0];
        assert_eq!(head_mean_keys(&k, 2, 2, 2), vec![2.0, 3.0, 1.0, -1.0]);
    }

    /// 4 x 4 patches numbered p = 0..16 (second column 10 p), 2 x 2 groups: token 0 = patches
    /// 0, 1, 4, 5 (mean 2.5), token 1 = 2, 3, 6, 7 (4.5), token 2 = 8, 9, 12, 13 (10.5),
    /// token 3 = 10, 11, 14, 15 (12.5).
    #[test]
    fn pool_groups_4x4() {
        let scores: Vec<f32> = (0..16).map(|p| p as f32).collect();
        assert_eq!(pool_groups(&scores, 4, 2, 1), vec![2.5, 4.5, 10.5, 12.5]);
        let keys: Vec<f32> = (0..16).flat_map(|p| [p as f32, 10.0 * p as f32]).collect();
        assert_eq!(pool_groups(&keys, 4, 2, 2), vec![2.5, 25.0, 4.5, 45.0, 10.5, 105.0, 12.5, 125.0]);
        assert_eq!(pool_groups(&scores, 4, 1, 1), scores);
        assert_eq!(pool_groups(&scores, 4, 4, 1), vec![7.5]);
    }

    /// x row t = (t, 10 t).
    fn rows6() -> Vec<f32> {
        (0..6).flat_map(|t| [t as f32, 10.0 * t as f32]).collect()
    }

    /// No CLS, 6 tokens, 2 dominant + 2 contextual. Scores pick 1 and 3; R = [0, 2, 4, 5],
    /// step 4 / 2 = 2, targets 0 and 4 (keys (1, 0) and (0, 1)). Token 2's key (0.2, 1) is
    /// nearer 4, token 5's (3, 1) nearer 0. Rows: x1, x3, x0 + x5 = (5, 50), x4 + x2 = (6, 60).
    #[test]
    fn visionzip_no_cls() {
        let scores = [0.1, 0.9, 0.3, 0.8, 0.2, 0.05];
        let keys = [1.0, 0.0, 7.0, 7.0, 0.2, 1.0, -7.0, 7.0, 0.0, 1.0, 3.0, 1.0];
        let out = visionzip(&scores, &keys, 2, &rows6(), 2, false, 2, 2);
        assert_eq!(out.dominant, vec![1, 3]);
        assert_eq!(out.targets, vec![0, 4]);
        assert_eq!(out.assigned, vec![(2, 4), (5, 0)]);
        assert_eq!(out.rows, vec![1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 6.0, 60.0]);
    }

    /// Token 2's key (1, 1) is equally near both targets: the earlier target (0) takes it, with
    /// token 5; target 4 gets nobody and stays x4. Tied scores: the lower index is dominant.
    #[test]
    fn visionzip_ties() {
        let scores = [0.1, 0.9, 0.3, 0.9, 0.2, 0.9];
        let keys = [1.0, 0.0, 7.0, 7.0, 1.0, 1.0, -7.0, 7.0, 0.0, 1.0, 3.0, 1.0];
        // Dominant: 1 and 3 of the three 0.9s; R = [0, 2, 4, 5] as before.
        let out = visionzip(&scores, &keys, 2, &rows6(), 2, false, 2, 2);
        assert_eq!(out.dominant, vec![1, 3]);
        assert_eq!(out.targets, vec![0, 4]);
        assert_eq!(out.assigned, vec![(2, 0), (5, 0)]);
        assert_eq!(out.rows, vec![1.0, 10.0, 3.0, 30.0, 3.5, 35.0, 4.0, 40.0]);
    }

    /// CLS (token 0, highest score but excluded from scoring), dominant 3 = CLS + the top 2 of
    /// 1..6 (0.7 at 2, 4 and 5: 2 and 4 by index); R = [1, 3, 5], contextual 1: step 3, target 1,
    /// both 3 and 5 join it: x1 + (x3 + x5) / 2 = (5, 50).
    #[test]
    fn visionzip_cls() {
        let scores = [9.0, 0.2, 0.7, 0.1, 0.7, 0.7];
        let keys = values(6 * 3, 9);
        let out = visionzip(&scores, &keys, 3, &rows6(), 2, true, 3, 1);
        assert_eq!(out.dominant, vec![0, 2, 4]);
        assert_eq!(out.targets, vec![1]);
        assert_eq!(out.assigned, vec![(3, 1), (5, 1)]);
        assert_eq!(out.rows, vec![0.0, 0.0, 2.0, 20.0, 4.0, 40.0, 5.0, 50.0]);
        // Without the CLS rule token 0 would just be the top score.
        assert_eq!(visionzip(&scores, &keys, 3, &rows6(), 2, false, 3, 0).dominant, vec![0, 2, 4]);
        // dominant = 1 with CLS: CLS alone.
        assert_eq!(visionzip(&scores, &keys, 3, &rows6(), 2, true, 1, 0).dominant, vec![0]);
    }

    /// contextual = 0 keeps only the dominant rows; contextual >= |R| makes every remaining token
    /// a target with nothing to merge.
    #[test]
    fn visionzip_contextual_extremes() {
        let scores = [0.1, 0.9, 0.3, 0.8, 0.2, 0.05];
        let keys = values(6 * 2, 4);
        let none = visionzip(&scores, &keys, 2, &rows6(), 2, false, 2, 0);
        assert!(none.targets.is_empty() && none.assigned.is_empty());
        assert_eq!(none.rows, vec![1.0, 10.0, 3.0, 30.0]);
        let all = visionzip(&scores, &keys, 2, &rows6(), 2, false, 2, 9);
        assert_eq!(all.targets, vec![0, 2, 4, 5]);
        assert!(all.assigned.is_empty());
        assert_eq!(all.rows, vec![1.0, 10.0, 3.0, 30.0, 0.0, 0.0, 2.0, 20.0, 4.0, 40.0, 5.0, 50.0]);
        // 3 targets of 4: step 4 / 3 = 1, targets R[0], R[1], R[2]; token 5 joins one of them.
        let three = visionzip(&scores, &keys, 2, &rows6(), 2, false, 2, 3);
        assert_eq!(three.targets, vec![0, 2, 4]);
        assert_eq!(three.assigned.len(), 1);
    }
}
