//! Whole-model GPU forward passes against the CPU reference on forged tiny models: both vision
//! families (SigLIP without CLS + idefics3, CLIP with CLS + mlp), both text families (llama,
//! qwen2), every weight type. Compares vision output, projector output, prefill logits and the
//! first 16 greedy tokens.

use glimpse::forge::{ForgeSpec, forge};
use glimpse::gguf::{GgmlType, Gguf};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::model::projector::Projector;
use glimpse::model::text::TextModel;
use glimpse::model::vision::VisionTower;
use glimpse::reference;

use crate::gpu::{Rng, assert_close, gpu};
use crate::util::temp_dir;

/// f32 and f16 weights: the bound on relative error.
const TOL_FLOAT: f32 = 1e-3;
/// Quantised weights decode to the same values on both sides (the kernels read the blocks the
/// reference dequantised), so only summation order differs: the same bound holds.
const TOL_QUANT: f32 = 1e-3;
const GREEDY_TOKENS: usize = 16;

struct Pair {
    text: Gguf,
    mmproj: Gguf,
}

fn forged(preset: &str, ty: GgmlType, tag: &str) -> Pair {
    let mut spec = ForgeSpec::preset(preset).expect("preset");
    spec.set_qtype(ty);
    // K-quants need rows that are multiples of 256 to stay K-quants (else llama.cpp's fallback).
    if matches!(ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K) {
        for (k, v) in [("text.n_embd", "256"), ("text.n_ff", "256"), ("vision.n_embd", "256"), ("vision.n_ff", "256")] {
            spec.set(k, v).expect("set");
        }
    }
    let dir = temp_dir(&format!("model_{preset}_{}_{tag}", ty.name()));
    let f = forge(&spec, &dir).expect("forge");
    Pair { text: Gguf::open(&f.text).unwrap(), mmproj: Gguf::open(&f.mmproj).unwrap() }
}

fn tol(ty: GgmlType) -> f32 {
    if ty.is_quantized() { TOL_QUANT } else { TOL_FLOAT }
}

/// Vision tower (stage by stage, so a failure names the first stage that parts ways) and
/// projector of one tile, GPU vs reference.
fn check_vision(gpu: &Gpu, pair: &Pair, ty: GgmlType, what: &str) {
    let g = &pair.mmproj;
    let rv = reference::vision::Vision::load(g).unwrap();
    let rp = reference::projector::Projector::load(g, &rv.cfg).unwrap();
    let tower = VisionTower::load(gpu, g).unwrap();
    let proj = Projector::load(gpu, g, &tower.cfg).unwrap();
    let c = tower.cfg.clone();
    let n = c.n_pos();
    let pixels = Rng(7).vec(3 * c.image_size * c.image_size, 1.0);
    let s = tower.scratch(gpu).unwrap();
    gpu.write_f32(&s.pixels, 0, &pixels);

    // vit.embed, then vit.block_out i: each stage from the reference's previous state.
    let mut want = rv.embed(&pixels);
    let mut rec = Recorder::new(gpu);
    tower.embed(&mut rec, &s).unwrap();
    let h = rec.read(&s.x, 0, want.len());
    assert_close(&format!("{what} vit.embed ({ty})"), &rec.finish().unwrap().f32(h), &want, tol(ty));
    for il in 0..rv.n_blocks() {
        gpu.write_f32(&s.x, 0, &want);
        rv.block(il, &mut want);
        let mut rec = Recorder::new(gpu);
        tower.block(&mut rec, &s, il, n).unwrap();
        let h = rec.read(&s.x, 0, want.len());
        assert_close(&format!("{what} vit.block_out {il} ({ty})"), &rec.finish().unwrap().f32(h), &want, tol(ty));
    }

    // The whole tower and the projector in one submit.
    let want_features = rv.forward(&pixels);
    let want_tokens = rp.forward(&c, &want_features);
    let ps = proj.scratch(gpu, &c).unwrap();
    let n_tokens = want_tokens.len() / c.projection_dim;
    let out = gpu.tensor(n_tokens * c.projection_dim, "out").unwrap();
    let mut rec = Recorder::new(gpu);
    tower.forward(&mut rec, &s).unwrap();
    proj.forward(&mut rec, &c, &ps, &s.x, &out, 0).unwrap();
    let hf = rec.read(&s.x, 0, want_features.len());
    let ht = rec.read(&out, 0, want_tokens.len());
    let done = rec.finish().unwrap();
    assert_close(&format!("{what} vit.feature ({ty})"), &done.f32(hf), &want_features, tol(ty));
    assert_close(&format!("{what} proj.out ({ty})"), &done.f32(ht), &want_tokens, tol(ty));
}

fn argmax(v: &[f32]) -> u32 {
    reference::ops::argmax(v) as u32
}

/// Prefill of a random prompt, then greedy decoding: logits and tokens, GPU vs reference.
fn check_text(gpu: &Gpu, pair: &Pair, ty: GgmlType, what: &str) {
    let g = &pair.text;
    let rt = reference::text::Text::load(g).unwrap();
    let model = TextModel::load(gpu, g).unwrap();
    let c = model.cfg.clone();
    let mut rng = Rng(11);
    let prompt: Vec<u32> = (0..37).map(|_| (rng.next_u64() % c.n_vocab as u64) as u32).collect();

    // Reference: prefill then greedy decode.
    let mut cache = reference::text::KvCache::default();
    let x: Vec<f32> = prompt.iter().flat_map(|&id| rt.embed(id).to_vec()).collect();
    let mut want_logits = rt.forward(&x, &mut cache, true);
    let prefill_logits = want_logits.clone();
    let mut want_tokens = Vec::new();
    for _ in 0..GREEDY_TOKENS {
        let next = argmax(&want_logits);
        want_tokens.push(next);
        want_logits = rt.forward(rt.embed(next), &mut cache, true);
    }

    // GPU: the same steps.
    let s = model.scratch(gpu, prompt.len()).unwrap();
    let mut kv = model.kv_cache(gpu, prompt.len() + GREEDY_TOKENS + 1).unwrap();
    gpu.write_u32(&s.ids, 0, &prompt);
    let mut rec = Recorder::new(gpu);
    model.embed(&mut rec, &s, prompt.len()).unwrap();
    model.forward(&mut rec, &s, &mut kv, prompt.len()).unwrap();
    let h = rec.read(&s.logits, 0, c.n_vocab);
    let mut logits = rec.finish().unwrap().f32(h);
    assert_close(&format!("{what} prefill logits ({ty})"), &logits, &prefill_logits, tol(ty));
    let mut got_tokens = Vec::new();
    for _ in 0..GREEDY_TOKENS {
        let next = argmax(&logits);
        got_tokens.push(next);
        gpu.write_u32(&s.ids, 0, &[next]);
        let mut rec = Recorder::new(gpu);
        model.embed(&mut rec, &s, 1).unwrap();
        model.forward(&mut rec, &s, &mut kv, 1).unwrap();
        let h = rec.read(&s.logits, 0, c.n_vocab);
        logits = rec.finish().unwrap().f32(h);
    }
    assert_eq!(got_tokens, want_tokens, "{what} greedy tokens ({ty})");
}

#[test]
fn idefics3_llama_every_type_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for ty in GgmlType::ALL {
        let pair = forged("tiny", ty, "a");
        check_vision(gpu, &pair, ty, "tiny (siglip + idefics3)");
        check_text(gpu, &pair, ty, "tiny (llama)");
    }
}

#[test]
fn clip_mlp_and_qwen2_every_type_match_reference() {
    let Some(gpu) = gpu() else { return };
    for ty in GgmlType::ALL {
        let pair = forged("tiny-llava", ty, "b");
        check_vision(gpu, &pair, ty, "tiny-llava (clip + cls + mlp)");
        check_text(gpu, &pair, ty, "tiny-llava (llama, separate output)");
        let pair = forged("tiny-qwen2", ty, "c");
        check_vision(gpu, &pair, ty, "tiny-qwen2 (siglip + mlp)");
        check_text(gpu, &pair, ty, "tiny-qwen2 (qwen2)");
    }
}
