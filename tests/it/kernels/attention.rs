//! `attention.wgsl` (every entry, through every [`AttentionVariant`]) against
//! `reference::ops::attention`, in the layouts the models use: separate packed Q/K/V, one fused
//! QKV buffer, and a KV cache with room to spare.

use glimpse::gpu::kernels::attention::{ATTENTION_DECODE_MAX_Q, AttentionVariant, attention_variant};
use glimpse::gpu::kernels::{AttentionArgs, attention};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// f32 dot products and exp in another order than the reference (online softmax rescaling).
const ATTENTION_TOL: f32 = 1e-4;

/// Where Q, K, V and O live.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Four buffers, rows packed.
    Packed,
    /// Q, K, V interleaved per token in one `[n, (H + 2 Hkv) d]` buffer after a 4-element gap
    /// (a fused QKV projection); needs n_q == n_kv. O rows padded by 8 elements, from offset 4.
    Fused,
    /// K and V in caches `[n_kv + 9, Hkv d]` from row 2; Q at offset 12. O rows padded by 8.
    Cache,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    n_q: usize,
    n_kv: usize,
    n_head: usize,
    n_head_kv: usize,
    d: usize,
    causal: bool,
    pos0: usize,
    layout: Layout,
}

/// Runs `c` under every variant.
fn run_attention(gpu: &Gpu, c: Case, seed: u64) {
    for variant in AttentionVariant::ALL {
        run_attention_variant(gpu, c, seed, variant);
    }
}

fn run_attention_variant(gpu: &Gpu, c: Case, seed: u64, variant: AttentionVariant) {
    let Case { n_q, n_kv, n_head, n_head_kv, d, causal, pos0, layout } = c;
    let mut rng = Rng(seed);
    // Scores of a few units, so the softmax is neither flat nor one-hot.
    let qr = rng.vec(n_q * n_head * d, 2.0);
    let kr = rng.vec(n_kv * n_head_kv * d, 2.0);
    let vr = rng.vec(n_kv * n_head_kv * d, 1.0);
    let want = ops::attention(&qr, &kr, &vr, n_head, n_head_kv, d, causal, pos0);

    let (wq, wkv) = (n_head * d, n_head_kv * d);
    // Copies rows of `src` (`width` wide) into `dst` at `offset + row * stride`.
    let place = |dst: &mut Vec<f32>, src: &[f32], width: usize, offset: usize, stride: usize| {
        for (r, row) in src.chunks(width).enumerate() {
            dst[offset + r * stride..][..width].copy_from_slice(row);
        }
    };
    let mut a = AttentionArgs { n_q, n_kv, n_head, n_head_kv, head_dim: d, causal, pos0, ..Default::default() };
    let (q, k, v) = match layout {
        Layout::Packed => {
            (gpu.upload_f32(&qr, "q").unwrap(), gpu.upload_f32(&kr, "k").unwrap(), gpu.upload_f32(&vr, "v").unwrap())
        }
        Layout::Fused => {
            assert_eq!(n_q, n_kv, "a fused QKV buffer holds as many queries as keys");
            let stride = wq + 2 * wkv;
            let mut buf = vec![POISON; 4 + n_q * stride];
            place(&mut buf, &qr, wq, 4, stride);
            place(&mut buf, &kr, wkv, 4 + wq, stride);
            place(&mut buf, &vr, wkv, 4 + wq + wkv, stride);
            (a.q_offset, a.k_offset, a.v_offset) = (4, 4 + wq, 4 + wq + wkv);
            (a.q_stride, a.kv_stride) = (stride, stride);
            let t = gpu.upload_f32(&buf, "qkv").unwrap();
            (t.clone(), t.clone(), t)
        }
        Layout::Cache => {
            let mut kc = vec![POISON; (n_kv + 9) * wkv];
            let mut vc = vec![-POISON; (n_kv + 9) * wkv];
            place(&mut kc, &kr, wkv, 2 * wkv, wkv);
            place(&mut vc, &vr, wkv, 2 * wkv, wkv);
            let mut qb = vec![POISON; 12 + n_q * wq];
            place(&mut qb, &qr, wq, 12, wq);
            (a.q_offset, a.k_offset, a.v_offset) = (12, 2 * wkv, 2 * wkv);
            (
                gpu.upload_f32(&qb, "q").unwrap(),
                gpu.upload_f32(&kc, "k cache").unwrap(),
                gpu.upload_f32(&vc, "v").unwrap(),
            )
        }
    };
    let (o_offset, o_stride) = match layout {
        Layout::Packed => (0, wq),
        Layout::Fused | Layout::Cache => (4, wq + 8),
    };
    (a.o_offset, a.o_stride) = (o_offset, if matches!(layout, Layout::Packed) { 0 } else { o_stride });
    // Poisoned, with one sentinel element past the last row.
    let o_len = o_offset + n_q * o_stride + 1;
    let ot = gpu.upload_f32(&vec![POISON; o_len], "o").unwrap();

    let mut rec = Recorder::new(gpu);
    attention_variant(&mut rec, &q, &k, &v, &ot, a, variant).unwrap();
    let h = rec.read(&ot, 0, o_len);
    let got_all = rec.finish().unwrap().f32(h);

    let mut got = Vec::with_capacity(want.len());
    for (i, &g) in got_all.iter().enumerate() {
        let in_row = i >= o_offset && i < o_offset + n_q * o_stride && (i - o_offset) % o_stride < wq;
        if in_row {
            got.push(g);
        } else {
            assert_eq!(g, POISON, "attention {variant:?} {c:?} wrote element {i} outside its output rows");
        }
    }
    let kernel = entry(variant, n_q);
    assert_close(&format!("attention ({kernel}) {c:?}"), &got, &want, ATTENTION_TOL);
}

/// The entry point `variant` runs for `n_q` queries.
fn entry(variant: AttentionVariant, n_q: usize) -> &'static str {
    match variant {
        AttentionVariant::Rows => "attention_rows",
        AttentionVariant::Tiled if n_q <= ATTENTION_DECODE_MAX_Q => "attention_decode",
        AttentionVariant::Tiled => "attention",
    }
}

#[test]
fn attention_awkward_shapes_every_layout() {
    let Some(gpu) = gpu() else { return };
    let mut i = 0;
    for n_q in [1, 5, 9, 77] {
        for n_kv in [1usize, 33, 130, 577] {
            // Alternate GQA 3/1 and 4/4 heads, d 32 and 64, causal and not.
            let (n_head, n_head_kv) = if i % 2 == 0 { (3, 1) } else { (4, 4) };
            let d = if i % 4 < 2 { 64 } else { 32 };
            let causal = i % 3 != 2;
            // A chunk of n_q queries after pos0 cached keys; with fewer keys than queries,
            // the first queries see a prefix.
            let pos0 = if causal { n_kv.saturating_sub(n_q) } else { 0 };
            let layout = if n_q == n_kv {
                Layout::Fused
            } else if i % 2 == 0 {
                Layout::Cache
            } else {
                Layout::Packed
            };
            let c = Case { n_q, n_kv, n_head, n_head_kv, d, causal, pos0, layout };
            run_attention(gpu, c, i as u64);
            i += 1;
        }
    }
}

#[test]
fn attention_fused_qkv_self_attention() {
    let Some(gpu) = gpu() else { return };
    // d = 72 (SigLIP so400m) leaves the 18 vec4 columns unevenly split over 4 lanes.
    let cases = [(77, true, 64), (33, false, 32), (5, true, 64), (130, false, 64), (40, false, 72), (3, true, 72)];
    for (i, (n, causal, d)) in cases.into_iter().enumerate() {
        let c = Case { n_q: n, n_kv: n, n_head: 3, n_head_kv: 1, d, causal, pos0: 0, layout: Layout::Fused };
        run_attention(gpu, c, 100 + i as u64);
    }
}

#[test]
fn attention_decode_and_chunked_prefill_against_cache() {
    let Some(gpu) = gpu() else { return };
    let cases = [
        // Decode: one new query after pos0 cached keys.
        (1, 34, 33, 3, 1, 64),
        (1, 1, 0, 4, 4, 32),
        (1, 578, 577, 4, 4, 64),
        // Chunked prefill: the next chunk of queries after a cached prefix.
        (5, 135, 130, 3, 1, 32),
        (77, 130, 53, 4, 4, 64),
        (20, 60, 40, 2, 2, 128),
        (3, 60, 57, 2, 1, 128),
        (1, 30, 29, 2, 1, 72),
        (12, 30, 18, 2, 1, 72),
    ];
    for (i, (n_q, n_kv, pos0, n_head, n_head_kv, d)) in cases.into_iter().enumerate() {
        let c = Case { n_q, n_kv, n_head, n_head_kv, d, causal: true, pos0, layout: Layout::Cache };
        run_attention(gpu, c, 200 + i as u64);
    }
}

#[test]
fn attention_vit_non_causal_577_tokens() {
    let Some(gpu) = gpu() else { return };
    let c =
        Case { n_q: 577, n_kv: 577, n_head: 2, n_head_kv: 2, d: 64, causal: false, pos0: 0, layout: Layout::Packed };
    run_attention(gpu, c, 300);
}

#[test]
fn attention_bad_shape_or_alignment_is_error() {
    let Some(gpu) = gpu() else { return };
    let t = gpu.tensor(1024, "t").unwrap();
    let o = gpu.tensor(1024, "o").unwrap();
    for (head_dim, n_head, n_head_kv, k_offset) in [(30, 1, 1, 0), (256, 1, 1, 0), (64, 3, 2, 0), (64, 1, 1, 6)] {
        let a = AttentionArgs { n_q: 1, n_kv: 1, n_head, n_head_kv, head_dim, k_offset, ..Default::default() };
        let mut rec = Recorder::new(gpu);
        assert!(attention(&mut rec, &t, &t, &t, &o, a).is_err(), "{a:?}");
        for variant in AttentionVariant::ALL {
            let mut rec = Recorder::new(gpu);
            assert!(attention_variant(&mut rec, &t, &t, &t, &o, a, variant).is_err(), "{variant:?} {a:?}");
        }
    }
}

/// GPU time of the ViT, prefill and decode shapes under every variant (median of
/// GLIMPSE_TIMING_RUNS, default 5); run by hand with `--ignored --nocapture`.
#[test]
#[ignore]
fn attention_timing() {
    let Some(gpu) = gpu() else { return };
    let runs: usize = std::env::var("GLIMPSE_TIMING_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    println!("{} (default variant {:?})", gpu.describe(), AttentionVariant::for_gpu(gpu));
    // (label, n_q, n_kv, n_head, n_head_kv, d, causal)
    let shapes = [
        ("siglip-b vit", 1024, 1024, 12, 12, 64, false),
        ("clip vit", 577, 577, 12, 12, 64, false),
        ("prefill 128 after 512", 128, 640, 9, 3, 64, true),
        ("prefill 96 after 256", 96, 352, 9, 3, 64, true),
        ("decode n_kv=100", 1, 100, 9, 3, 64, true),
        ("decode n_kv=640", 1, 640, 9, 3, 64, true),
        ("decode n_kv=1000", 1, 1000, 9, 3, 64, true),
        ("4 q n_kv=640", 4, 640, 9, 3, 64, true),
        ("8 q n_kv=640", 8, 640, 9, 3, 64, true),
        ("16 q n_kv=640", 16, 640, 9, 3, 64, true),
    ];
    // GLIMPSE_TIMING_SHAPES: the shapes whose label contains this text (e.g. "decode").
    let only = std::env::var("GLIMPSE_TIMING_SHAPES").unwrap_or_default();
    for (label, n_q, n_kv, n_head, n_head_kv, d, causal) in shapes.into_iter().filter(|s| s.0.contains(&only)) {
        let mut rng = Rng(1);
        let q = gpu.upload_f32(&rng.vec(n_q * n_head * d, 1.0), "q").unwrap();
        let k = gpu.upload_f32(&rng.vec(n_kv * n_head_kv * d, 1.0), "k").unwrap();
        let v = gpu.upload_f32(&rng.vec(n_kv * n_head_kv * d, 1.0), "v").unwrap();
        let o = gpu.tensor(n_q * n_head * d, "o").unwrap();
        let pos0 = n_kv - n_q;
        let a = AttentionArgs { n_q, n_kv, n_head, n_head_kv, head_dim: d, causal, pos0, ..Default::default() };
        // QK^T and PV: 2 * 2 * n_q * n_kv * d per head (all keys, before causal masking).
        let flops = 4.0 * (n_q * n_kv * d * n_head) as f64;
        let bytes = 4.0 * (2 * n_q * n_head * d + 2 * n_kv * n_head_kv * d) as f64;
        for variant in AttentionVariant::ALL {
            let mut ms = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) + 1 {
                let mut rec = Recorder::new(gpu);
                rec.stage("attention");
                attention_variant(&mut rec, &q, &k, &v, &o, a, variant).unwrap();
                ms.push(rec.finish().unwrap().stage_ms[0].1);
            }
            // The first run builds the pipeline and warms caches.
            ms.remove(0);
            ms.sort_by(f64::total_cmp);
            let med = ms[ms.len() / 2];
            println!(
                "{label} [{}]: median {med:.2} ms (min {:.2}, max {:.2}), {:.2} GFLOP/s, {:.3} GB/s (Q, K, V, O once)",
                entry(variant, n_q),
                ms[0],
                ms[ms.len() - 1],
                flops / med / 1e6,
                bytes / med / 1e6
            );
        }
    }
}
