//! `im2col.wgsl` against `reference::ops::im2col`, and `im2col` + `matmul` against
//! `reference::ops::patch_embed` (the layout the ggml conv kernel needs).

use glimpse::gpu::kernels::im2col;
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// im2col only moves values: exact.
const IM2COL_TOL: f32 = 0.0;

/// Two f32 sums of 3 p p products in the same order: a few ulps at most.
const PATCH_EMBED_TOL: f32 = 1e-6;

#[test]
fn im2col_matmul_is_patch_embed() {
    for &(h, w, p, n_embd) in &[(28, 28, 14, 5), (30, 44, 7, 3), (16, 16, 1, 2)] {
        let mut rng = Rng((h * w + p) as u64);
        let pixels = rng.vec(3 * h * w, 1.0);
        let weight = rng.vec(n_embd * 3 * p * p, 0.5);
        let bias = rng.vec(n_embd, 0.5);
        let want = ops::patch_embed(&pixels, h, w, &weight, Some(&bias), p, n_embd);
        let got = ops::matmul(&ops::im2col(&pixels, h, w, p), &weight, Some(&bias), 3 * p * p, n_embd);
        assert_close(&format!("im2col+matmul h={h} w={w} p={p}"), &got, &want, PATCH_EMBED_TOL);
    }
}

fn run_im2col(gpu: &Gpu, h: usize, w: usize, p: usize, seed: u64) {
    let mut rng = Rng(seed);
    let pixels = rng.vec(3 * h * w, 1.0);
    let want = ops::im2col(&pixels, h, w, p);
    let pt = gpu.upload_f32(&pixels, "pixels").unwrap();
    let out = gpu.upload_f32(&vec![POISON; want.len() + 1], "patches").unwrap();
    let mut rec = Recorder::new(gpu);
    im2col(&mut rec, &pt, &out, h, w, p).unwrap();
    let hd = rec.read(&out, 0, want.len() + 1);
    let got = rec.finish().unwrap().f32(hd);
    let what = format!("im2col h={h} w={w} p={p}");
    assert_eq!(got[want.len()], POISON, "{what} wrote past the end");
    assert_close(&what, &got[..want.len()], &want, IM2COL_TOL);
}

#[test]
fn im2col_awkward_shapes() {
    let Some(gpu) = gpu() else { return };
    // Square, image sides not multiples of the patch (the remainder is dropped), p = 1, and a
    // SigLIP-sized 384 / 14 tile.
    for (i, &(h, w, p)) in [(28, 28, 14), (30, 44, 7), (5, 3, 1), (33, 33, 16), (384, 384, 14)].iter().enumerate() {
        run_im2col(gpu, h, w, p, i as u64);
    }
}
