//! `topk.wgsl` against `reference::ops::topk` (a stable CPU sort): values and indices exactly.

use glimpse::gpu::kernels::{TOPK_MAX, topk};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, gpu};

const SENTINEL: u32 = 0xdead_beef;

/// Runs topk on `x[x_offset..]` and checks it against the CPU sort, with unused slots
/// (n < k) holding `f32::MIN` / `u32::MAX` and the sentinels after the outputs intact.
fn check_topk(gpu: &Gpu, x: &[f32], x_offset: usize, k: usize, what: &str) {
    let n = x.len() - x_offset;
    let xt = gpu.upload_f32(x, "logits").unwrap();
    let vt = gpu.upload_f32(&vec![POISON; k + 1], "values").unwrap();
    let it = gpu.upload_u32(&vec![SENTINEL; k + 1], "indices").unwrap();
    let mut rec = Recorder::new(gpu);
    topk(&mut rec, &xt, x_offset, n, k, &vt, &it).unwrap();
    let (hv, hi) = (rec.read(&vt, 0, k + 1), rec.read(&it, 0, k + 1));
    let done = rec.finish().unwrap();
    let (values, indices) = (done.f32(hv), done.u32(hi));
    let what = format!("topk {what} n={n} k={k}");
    assert_eq!(values[k], POISON, "{what}: wrote past the values");
    assert_eq!(indices[k], SENTINEL, "{what}: wrote past the indices");
    let mut want = ops::topk(&x[x_offset..], k);
    want.resize(k, (u32::MAX as usize, f32::MIN));
    for (r, (&(wi, wv), (&gv, &gi))) in want.iter().zip(values.iter().zip(&indices)).enumerate() {
        assert!(
            gi as usize == wi && gv.to_bits() == wv.to_bits(),
            "{what}: rank {r}: got ({gi}, {gv}) want ({wi}, {wv})"
        );
    }
}

#[test]
fn topk_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    for (i, &n) in [1, 5, 63, 64, 65, 1001, 49_152, 151_936].iter().enumerate() {
        let x = Rng(i as u64).vec(n, 10.0);
        for k in [1, 40, TOPK_MAX] {
            check_topk(gpu, &x, 0, k, "random");
        }
    }
}

#[test]
fn topk_ties_sorted_by_index() {
    let Some(gpu) = gpu() else { return };
    // Eight distinct values over 151936 logits: every slot ties with thousands of others, so the
    // answer is the lowest indices of the top value; then few values over a short row.
    let x: Vec<f32> = Rng(1).vec(151_936, 1.0).into_iter().map(|v| (v * 4.0).round()).collect();
    check_topk(gpu, &x, 0, TOPK_MAX, "8 levels");
    let y: Vec<f32> = Rng(2).vec(300, 1.0).into_iter().map(|v| (v * 30.0).round()).collect();
    check_topk(gpu, &y, 0, 50, "61 levels");
    // The top values sitting in one invocation's slice (indices 7 + 256 m).
    let mut z = Rng(3).vec(20_000, 1.0);
    for m in 0..70 {
        z[7 + 256 * m] = 5.0 + (m % 3) as f32;
    }
    check_topk(gpu, &z, 0, TOPK_MAX, "one slice");
    // An ascending row (every element is inserted at the head of its slice's list).
    let asc: Vec<f32> = (0..5000).map(|i| i as f32).collect();
    check_topk(gpu, &asc, 0, TOPK_MAX, "ascending");
}

#[test]
fn topk_from_an_offset() {
    let Some(gpu) = gpu() else { return };
    let mut x = Rng(4).vec(3000, 1.0);
    x[2] = 9.0; // before the offset: ignored
    check_topk(gpu, &x, 10, 20, "offset");
}
