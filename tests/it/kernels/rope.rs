//! `rope.wgsl` against `reference::ops::rope_pairs` and `reference::ops::rope_halves`.

use glimpse::gpu::kernels::{RopeArgs, rope};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::model::config::RopeMode;
use glimpse::reference::ops;

use crate::gpu::{Rng, assert_close, gpu};

/// Positions up to ~2000: the angle is the same f32 product as on the CPU (host-computed
/// frequencies), so what is left is GPU sin/cos after range reduction. A wrong pairing or
/// frequency is off by O(1).
const ROPE_TOL: f32 = 1e-4;

/// Rotates `n_tokens` rows (of `row_stride`, the heads starting at `offset`) and compares the
/// whole buffer, so the untouched dims and gaps are checked too.
fn run_rope(gpu: &Gpu, mode: RopeMode, n_head: usize, head_dim: usize, rope_dim: usize, base: f32, seed: u64) {
    let mut rng = Rng(seed);
    let n_tokens = 6;
    let (offset, row_stride) = (5, n_head * head_dim + 3);
    let len = offset + n_tokens * row_stride + 1;
    let x = rng.vec(len, 1.0);
    // Position 0, small ones and ones near 2048, in no order.
    let positions: Vec<usize> = [0, 1, 17, 2047, 1999, (rng.next_u64() % 2048) as usize].to_vec();
    let mut want = x.clone();
    for (t, &pos) in positions.iter().enumerate() {
        let row = &mut want[offset + t * row_stride..][..n_head * head_dim];
        match mode {
            RopeMode::Pairs => ops::rope_pairs(row, &[pos], n_head, head_dim, rope_dim, base),
            RopeMode::Halves => ops::rope_halves(row, &[pos], n_head, head_dim, rope_dim, base),
        }
    }
    let xt = gpu.upload_f32(&x, "x").unwrap();
    let pos_u32: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
    let pt = gpu.upload_u32(&pos_u32, "positions").unwrap();
    let mut rec = Recorder::new(gpu);
    let args =
        RopeArgs { n_tokens, n_head, head_dim, rope_dim, base, halves: mode == RopeMode::Halves, offset, row_stride };
    rope(&mut rec, &xt, &pt, args).unwrap();
    let h = rec.read(&xt, 0, len);
    let got = rec.finish().unwrap().f32(h);
    let what = format!("rope {mode:?} n_head={n_head} head_dim={head_dim} rope_dim={rope_dim} base={base}");
    assert_close(&what, &got, &want, ROPE_TOL);
    // Elements outside the rows (before offset, the row gaps, the sentinel) are bit-identical.
    for t in 0..=n_tokens {
        let gap = if t == 0 { 0..offset } else { offset + t * row_stride - 3..(offset + t * row_stride).min(len) };
        for i in gap {
            assert_eq!(got[i].to_bits(), x[i].to_bits(), "{what}: element {i} outside the heads changed");
        }
    }
    assert_eq!(got[len - 1].to_bits(), x[len - 1].to_bits(), "{what}: sentinel changed");
}

#[test]
fn rope_both_modes_partial_and_full() {
    let Some(gpu) = gpu() else { return };
    for (i, mode) in [RopeMode::Pairs, RopeMode::Halves].into_iter().enumerate() {
        let s = 10 * i as u64;
        run_rope(gpu, mode, 3, 64, 64, 10000.0, s);
        run_rope(gpu, mode, 2, 128, 128, 1_000_000.0, s + 1);
        run_rope(gpu, mode, 3, 64, 32, 10000.0, s + 2);
        run_rope(gpu, mode, 1, 6, 2, 10000.0, s + 3);
    }
}

#[test]
fn rope_tolerance_catches_wrong_pairing() {
    // The oracle check is only worth something if the two conventions differ beyond ROPE_TOL.
    let mut rng = Rng(5);
    let x = rng.vec(2 * 64, 1.0);
    let (mut a, mut b) = (x.clone(), x.clone());
    ops::rope_pairs(&mut a, &[1999, 2047], 1, 64, 64, 10000.0);
    ops::rope_halves(&mut b, &[1999, 2047], 1, 64, 64, 10000.0);
    let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    assert!(worst > 100.0 * ROPE_TOL, "pairs and halves differ by only {worst}");
}
