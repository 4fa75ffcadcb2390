//! The token-pruning kernels (`attention_received`, `token_pool`, `token_select`,
//! `token_assign`, `token_gather`, `token_positions`) against `reference::prune` and
//! `prune::select` on random inputs of awkward sizes; together they must reproduce VisionZip's
//! published selection.

use glimpse::gpu::kernels::{
    self, GatherArgs, GroupMean, PositionArgs, ReceivedArgs, assign_targets, attention_received,
    attention_received_max, gather_merge, group_mean, select_top_k, token_positions,
};
use glimpse::gpu::{Gpu, Recorder, Tensor};
use glimpse::prune::select;
use glimpse::reference::prune as reference;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// Softmax sums over a few hundred keys in a different order than the reference.
const RECEIVED_TOL: f32 = 2e-5;
/// Means of a few values, summed in the same order as the reference.
const POOL_TOL: f32 = 1e-6;

fn poisoned(gpu: &Gpu, n: usize) -> Tensor {
    gpu.upload_f32(&vec![POISON; n], "out").unwrap()
}

fn poisoned_u32(gpu: &Gpu, n: usize) -> Tensor {
    gpu.upload_u32(&vec![0xDEAD_BEEF; n], "out").unwrap()
}

/// Naive head-mean softmax attention of query rows onto keys `cols`, causal when `pos0` is set
/// (query i at position pos0 + i), grouped-query heads: the sums over rows and the per-key
/// maxima over rows, what FastV and MustDrop read.
#[allow(clippy::too_many_arguments)]
fn naive_received(
    q: &[f32],
    k: &[f32],
    n_q: usize,
    n_kv: usize,
    n_head: usize,
    n_head_kv: usize,
    hd: usize,
    pos0: Option<usize>,
    cols: std::ops::Range<usize>,
) -> (Vec<f32>, Vec<f32>) {
    let (qs, ks) = (n_head * hd, n_head_kv * hd);
    let mut out = vec![0f32; cols.len()];
    let mut most = vec![0f32; cols.len()];
    for i in 0..n_q {
        let mut row = vec![0f32; cols.len()];
        let vis = pos0.map_or(n_kv, |p| (p + i + 1).min(n_kv));
        for h in 0..n_head {
            let hk = h / (n_head / n_head_kv);
            let s: Vec<f32> = (0..vis)
                .map(|j| {
                    (0..hd).map(|e| q[i * qs + h * hd + e] * k[j * ks + hk * hd + e]).sum::<f32>() / (hd as f32).sqrt()
                })
                .collect();
            let m = s.iter().fold(f32::MIN, |a, &b| a.max(b));
            let z: f32 = s.iter().map(|v| (v - m).exp()).sum();
            for (c, j) in cols.clone().enumerate() {
                if j < vis {
                    row[c] += (s[j] - m).exp() / z / n_head as f32;
                }
            }
        }
        for c in 0..cols.len() {
            out[c] += row[c];
            most[c] = most[c].max(row[c]);
        }
    }
    (out, most)
}

#[test]
fn attention_received_matches_reference_all_rows_cls_row_and_causal() {
    let Some(gpu) = gpu() else { return };
    // (n, n_head, head_dim): awkward token counts, odd head counts.
    for (case, &(n, n_head, hd)) in [(37, 3, 12), (65, 2, 20), (130, 5, 8), (1, 1, 4)].iter().enumerate() {
        let mut rng = Rng(100 + case as u64);
        // A fused QKV row layout [n, 3 d], as the vision tower leaves it.
        let d = n_head * hd;
        let qkv = rng.vec(n * 3 * d, 1.5);
        let q: Vec<f32> = (0..n).flat_map(|i| qkv[i * 3 * d..i * 3 * d + d].to_vec()).collect();
        let k: Vec<f32> = (0..n).flat_map(|i| qkv[i * 3 * d + d..i * 3 * d + 2 * d].to_vec()).collect();
        let t = gpu.upload_f32(&qkv, "qkv").unwrap();
        let base = ReceivedArgs {
            n_q: n,
            n_kv: n,
            n_head,
            n_head_kv: n_head,
            head_dim: hd,
            q_stride: 3 * d,
            k_offset: d,
            k_stride: 3 * d,
            n_cols: n,
            ..Default::default()
        };
        let cls = ReceivedArgs { n_q: 1, ..base };
        for (what, args, want) in [
            ("all rows", base, reference::attention_received(&q, &k, n, n_head, hd)),
            (
                "CLS row x n_head",
                cls,
                reference::cls_attention(&q, &k, n, n_head, hd, 0).iter().map(|v| v / n_head as f32).collect(),
            ),
        ] {
            let stats = poisoned(gpu, kernels::received_stats_len(&args) + 1);
            let mut rec = Recorder::new(gpu);
            attention_received(&mut rec, &t, &t, &stats, args).unwrap();
            let h = rec.read(&stats, 0, n);
            let got = rec.finish().unwrap().f32(h);
            assert_close(&format!("attention_received {what} n={n} heads={n_head} hd={hd}"), &got, &want, RECEIVED_TOL);
        }
    }
    // Causal text rows against an image column range of a KV cache, grouped-query heads.
    let (n_kv, n_head, n_head_kv, hd, n_q) = (53, 6, 2, 8, 7);
    let pos0 = n_kv - n_q;
    let mut rng = Rng(7);
    let q = rng.vec(n_q * n_head * hd, 1.0);
    let k = rng.vec(n_kv * n_head_kv * hd, 1.0);
    let (k0, n_cols) = (5, 31);
    let (want, want_max) = naive_received(&q, &k, n_q, n_kv, n_head, n_head_kv, hd, Some(pos0), k0..k0 + n_cols);
    let args = ReceivedArgs {
        n_q,
        n_kv,
        n_head,
        n_head_kv,
        head_dim: hd,
        causal: true,
        pos0,
        q_stride: n_head * hd,
        k_stride: n_head_kv * hd,
        k0,
        n_cols,
        ..Default::default()
    };
    let (qt, kt) = (gpu.upload_f32(&q, "q").unwrap(), gpu.upload_f32(&k, "k").unwrap());
    let stats = poisoned(gpu, kernels::received_stats_len(&args));
    let mut rec = Recorder::new(gpu);
    attention_received(&mut rec, &qt, &kt, &stats, args).unwrap();
    let h = rec.read(&stats, 0, n_cols);
    let got = rec.finish().unwrap().f32(h);
    assert_close("attention_received causal GQA column range", &got, &want, RECEIVED_TOL);
    // The same with the per-key maxima over rows (MustDrop).
    let stats = poisoned(gpu, kernels::received_stats_len(&args));
    let mut rec = Recorder::new(gpu);
    attention_received_max(&mut rec, &qt, &kt, &stats, args).unwrap();
    let h = rec.read(&stats, 0, n_cols);
    let hm = rec.read(&stats, kernels::received_max_offset(&args), n_cols);
    let done = rec.finish().unwrap();
    assert_close("attention_received_max sums", &done.f32(h), &want, RECEIVED_TOL);
    assert_close("attention_received_max maxima", &done.f32(hm), &want_max, RECEIVED_TOL);
}

#[test]
fn attention_received_rejects_bad_shapes() {
    let Some(gpu) = gpu() else { return };
    let t = gpu.upload_f32(&[0.0; 64], "t").unwrap();
    let good = ReceivedArgs { n_q: 2, n_kv: 2, n_head: 2, n_head_kv: 2, head_dim: 4, n_cols: 2, ..Default::default() };
    for bad in [
        ReceivedArgs { head_dim: 6, ..good },
        ReceivedArgs { n_head_kv: 3, ..good },
        ReceivedArgs { n_cols: 3, ..good },
        ReceivedArgs { q_offset: 2, ..good },
        ReceivedArgs { n_q: 0, ..good },
    ] {
        let mut rec = Recorder::new(gpu);
        assert!(attention_received(&mut rec, &t, &t, &t, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn group_mean_gives_head_mean_keys_and_pooled_groups() {
    let Some(gpu) = gpu() else { return };
    // Head-mean keys straight out of a fused QKV layout.
    let (n, n_head, hd) = (29, 3, 7);
    let d = n_head * hd;
    let qkv = Rng(3).vec(n * 3 * d, 1.0);
    let k: Vec<f32> = (0..n).flat_map(|i| qkv[i * 3 * d + d..i * 3 * d + 2 * d].to_vec()).collect();
    let want = reference::head_mean_keys(&k, n, n_head, hd);
    let x = gpu.upload_f32(&qkv, "qkv").unwrap();
    let y = poisoned(gpu, want.len() + 1);
    let mut rec = Recorder::new(gpu);
    let heads = GroupMean { n, w: hd, groups: n_head, x_offset: d, x_stride: 3 * d, y_offset: 0 };
    group_mean(&mut rec, &x, &y, heads).unwrap();
    let h = rec.read(&y, 0, want.len() + 1);
    let got = rec.finish().unwrap().f32(h);
    assert_eq!(got[want.len()], POISON, "group_mean wrote past the end");
    assert_close("head-mean keys", &got[..want.len()], &want, POOL_TOL);

    // Pixel-shuffle pooling: shuffle, then the mean of the s x s slices.
    for &(side, s, w) in &[(6, 3, 1), (8, 2, 5), (12, 4, 3)] {
        let v = Rng(side as u64).vec(side * side * w, 1.0);
        let want = reference::pool_groups(&v, side, s, w);
        let xt = gpu.upload_f32(&v, "x").unwrap();
        let shuffled = poisoned(gpu, v.len());
        let y = poisoned(gpu, want.len());
        let mut rec = Recorder::new(gpu);
        kernels::pixel_shuffle(&mut rec, &xt, &shuffled, side, w, s).unwrap();
        let m = want.len() / w;
        let pool = GroupMean { n: m, w, groups: s * s, x_offset: 0, x_stride: s * s * w, y_offset: 0 };
        group_mean(&mut rec, &shuffled, &y, pool).unwrap();
        let h = rec.read(&y, 0, want.len());
        let got = rec.finish().unwrap().f32(h);
        assert_close(&format!("pooled groups side={side} s={s} w={w}"), &got, &want, POOL_TOL);
    }
}

#[test]
fn select_top_k_matches_cpu_top_k_with_ties_nan_and_forced() {
    let Some(gpu) = gpu() else { return };
    for (case, &(n, k)) in [(1, 1), (10, 3), (577, 53), (300, 300), (1000, 999), (257, 400), (64, 0)].iter().enumerate()
    {
        let mut rng = Rng(case as u64);
        // Coarse values so ties are common.
        let mut scores: Vec<f32> = (0..n).map(|_| (rng.f32() * 8.0).round()).collect();
        if n > 5 {
            scores[4] = f32::NAN;
        }
        for forced in [None, Some(n / 2)] {
            let mut s = scores.clone();
            if let Some(f) = forced {
                s[f] = f32::INFINITY;
            }
            // NaN ranks lowest on the GPU: the CPU side sees it as -inf.
            let cpu: Vec<f32> = s.iter().map(|&v| if v.is_nan() { f32::NEG_INFINITY } else { v }).collect();
            let kept = select::top_k(&cpu, k.min(n));
            let rest: Vec<usize> = (0..n).filter(|i| !kept.contains(i)).collect();
            let want: Vec<u32> = kept.iter().chain(&rest).map(|&i| i as u32).collect();
            let st = gpu.upload_f32(&[&[0.5f32, 0.25][..], &scores].concat(), "scores").unwrap();
            let order = poisoned_u32(gpu, n + 1);
            let mut rec = Recorder::new(gpu);
            select_top_k(&mut rec, &st, 2, n, k, forced, &order).unwrap();
            let h = rec.read(&order, 0, n + 1);
            let got = rec.finish().unwrap().u32(h);
            assert_eq!(got[n], 0xDEAD_BEEF, "select_top_k n={n} wrote past the end");
            assert_eq!(&got[..n], &want[..], "select_top_k n={n} k={k} forced={forced:?}");
        }
    }
}

/// The whole VisionZip selection from scores, keys and hidden rows, on the GPU, against the
/// published algorithm on the CPU.
fn visionzip_case(
    gpu: &Gpu,
    seed: u64,
    n: usize,
    kd: usize,
    d: usize,
    has_cls: bool,
    dominant: usize,
    contextual: usize,
) {
    let mut rng = Rng(seed);
    let scores = rng.vec(n, 1.0);
    let keys = rng.vec(n * kd, 1.0);
    let x = rng.vec(n * d, 2.0);
    let want = reference::visionzip(&scores, &keys, kd, &x, d, has_cls, dominant, contextual);
    let what = format!("visionzip n={n} kd={kd} d={d} cls={has_cls} {dominant}+{contextual}");

    let st = gpu.upload_f32(&scores, "scores").unwrap();
    let kt = gpu.upload_f32(&keys, "keys").unwrap();
    let xt = gpu.upload_f32(&x, "x").unwrap();
    let order = poisoned_u32(gpu, n);
    let n_rest = n - dominant;
    let assign = poisoned_u32(gpu, n_rest.max(1));
    let rows = dominant + contextual;
    let y = poisoned(gpu, rows * d + 1);
    let step = (n_rest / contextual.max(1)).max(1);
    let mut rec = Recorder::new(gpu);
    select_top_k(&mut rec, &st, 0, n, dominant, has_cls.then_some(0), &order).unwrap();
    if contextual > 0 {
        assign_targets(&mut rec, &kt, &order, &assign, n, dominant, contextual, step, kd).unwrap();
    }
    let args = GatherArgs { width: d, n_kept: dominant, n_targets: contextual, step, n_rest, x_offset: 0, x_stride: d };
    gather_merge(&mut rec, &xt, &order, &assign, &y, args).unwrap();
    // The rows' positions, written after `dst` slots into a poisoned list, from cell `base`.
    let (dst, base) = (3 + seed as usize % 5, 7 * seed as usize);
    let pos = poisoned_u32(gpu, dst + rows + 1);
    let first = has_cls as usize;
    let pa = PositionArgs { n_kept: dominant, n_targets: contextual, step, first, src: 0, dst, base };
    token_positions(&mut rec, &order, &pos, pa).unwrap();
    let ho = rec.read(&order, 0, n);
    let ha = rec.read(&assign, 0, n_rest.max(1));
    let hy = rec.read(&y, 0, rows * d + 1);
    let hp = rec.read(&pos, 0, dst + rows + 1);
    let done = rec.finish().unwrap();
    let (order, assign, got, pos) = (done.u32(ho), done.u32(ha), done.f32(hy), done.u32(hp));

    let cells = reference::row_cells(&want.dominant, &want.targets, has_cls);
    let want_pos: Vec<u32> = cells.iter().map(|&c| (base + c) as u32).collect();
    assert_eq!(&pos[dst..dst + rows], &want_pos[..], "{what}: positions");
    assert!(
        pos[..dst].iter().chain(&pos[dst + rows..]).all(|&p| p == 0xDEAD_BEEF),
        "{what}: positions outside the rows"
    );

    let dominant_got: Vec<usize> = order[..dominant].iter().map(|&i| i as usize).collect();
    assert_eq!(dominant_got, want.dominant, "{what}: dominant");
    let rest = &order[dominant..];
    let targets: Vec<usize> = (0..contextual).map(|t| rest[t * step] as usize).collect();
    assert_eq!(targets, want.targets, "{what}: targets");
    if contextual > 0 {
        let mut assigned: Vec<(usize, usize)> = (0..n_rest)
            .filter(|q| !(q % step == 0 && q / step < contextual))
            .map(|q| (rest[q] as usize, targets[assign[q] as usize]))
            .collect();
        let mut want_assigned = want.assigned.clone();
        assigned.sort_unstable();
        want_assigned.sort_unstable();
        assert_eq!(assigned, want_assigned, "{what}: assignment");
    }
    assert_eq!(got[rows * d], POISON, "{what}: wrote past the end");
    assert_close(&format!("{what}: rows"), &got[..rows * d], &want.rows, 1e-6);
}

#[test]
fn visionzip_selection_matches_published_algorithm() {
    let Some(gpu) = gpu() else { return };
    // LLaVA-1.5's shape (577 tokens with CLS, 54 + 10) with small widths, then awkward ones.
    visionzip_case(gpu, 1, 577, 16, 24, true, 54, 10);
    visionzip_case(gpu, 2, 64, 12, 33, false, 9, 2);
    visionzip_case(gpu, 3, 197, 5, 7, true, 20, 31);
    visionzip_case(gpu, 4, 50, 8, 3, false, 50, 0);
    visionzip_case(gpu, 5, 31, 4, 9, true, 1, 30);
    visionzip_case(gpu, 6, 100, 9, 130, false, 12, 0);
}

#[test]
fn token_positions_rejects_lists_it_cannot_read_or_write() {
    let Some(gpu) = gpu() else { return };
    let (order, pos) = (poisoned_u32(gpu, 10), poisoned_u32(gpu, 6));
    let mut rec = Recorder::new(gpu);
    // Reads order[0..4] and the targets at 4 and 7; writes pos[0..6].
    let fits = PositionArgs { n_kept: 4, n_targets: 2, step: 3, ..Default::default() };
    token_positions(&mut rec, &order, &pos, fits).unwrap();
    for bad in [
        PositionArgs { step: 6, ..fits },
        PositionArgs { step: 0, ..fits },
        PositionArgs { src: 4, ..fits },
        PositionArgs { dst: 1, ..fits },
        PositionArgs { n_targets: 0, n_kept: 11, ..fits },
    ] {
        assert!(token_positions(&mut rec, &order, &pos, bad).is_err(), "{bad:?}");
    }
}

/// MustDrop stage 1 on the GPU (window scores, merge, unmerge) against the published algorithm.
#[test]
fn mustdrop_windows_merge_and_unmerge_match_reference() {
    use glimpse::gpu::kernels::window_similarity;
    use glimpse::prune::tokens::PruneScratch;
    use glimpse::prune::windows::Stage1;
    let Some(gpu) = gpu() else { return };
    // (side, window, d, CLS): LLaVA-like 3 x 3 on a grid that 3 divides, SmolVLM-like 32 x 32
    // (two leftover rows and columns), 2 x 2 windows.
    for (case, &(side, w, d, cls)) in [(12, 3, 20, true), (32, 3, 9, false), (10, 2, 7, false)].iter().enumerate() {
        let first = cls as usize;
        let n = first + side * side;
        let mut rng = Rng(40 + case as u64);
        // Neighbours share a base vector per 3 x 3 block so some windows pass 0.8 and some not.
        let base: Vec<f32> = rng.vec(n * d, 1.0);
        let x: Vec<f32> = (0..n * d)
            .map(|i| {
                let (p, e) = (i / d, i % d);
                let (r, c) = (p.saturating_sub(first) / side, p.saturating_sub(first) % side);
                let block = (r / 3 * side + c / 3) * d + e;
                base[block % (n * d)] * if (r / 3 + c / 3) % 2 == 0 { 4.0 } else { 0.3 } + base[i] * 0.5
            })
            .collect();
        let want = reference::window_similarity(&x, side, d, w, first);
        let xt = gpu.upload_f32(&x, "x").unwrap();
        let scores = poisoned(gpu, want.len() + 1);
        let mut rec = Recorder::new(gpu);
        window_similarity(&mut rec, &xt, &scores, side, w, d, first).unwrap();
        let h = rec.read(&scores, 0, want.len() + 1);
        let got = rec.finish().unwrap().f32(h);
        let what = format!("window_similarity side={side} w={w} d={d}");
        assert_eq!(got[want.len()], POISON, "{what} wrote past the end");
        assert_close(&what, &got[..want.len()], &want, 1e-5);
        let m = Stage1::decide(&want, 0.8, side, w);
        assert!(!m.merged.is_empty() && m.merged.len() < want.len(), "{what}: the case merges some windows: {want:?}");

        let scratch = PruneScratch::new(gpu, n, 1, d, n, d, 1).unwrap();
        let mut rec = Recorder::new(gpu);
        scratch.merge(&mut rec, &xt, d, first, &m).unwrap();
        let h = rec.read(&xt, 0, (first + m.n_tokens()) * d);
        let got = rec.finish().unwrap().f32(h);
        let merged = reference::merge_rows(&x, d, cls, &m.sources());
        assert_close(&format!("{what}: merged rows"), &got, &merged, 1e-6);

        let mut rec = Recorder::new(gpu);
        scratch.unmerge(&mut rec, &xt, d, first, &m).unwrap();
        let h = rec.read(&xt, 0, n * d);
        let got = rec.finish().unwrap().f32(h);
        let owner = m.owner();
        let want: Vec<f32> = (0..n * d)
            .map(|i| {
                let (p, e) = (i / d, i % d);
                if p < first { x[i] } else { merged[(first + owner[p - first]) * d + e] }
            })
            .collect();
        assert_close(&format!("{what}: unmerged rows"), &got, &want, 1e-6);
    }
}
