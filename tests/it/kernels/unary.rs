//! `unary.wgsl` against `reference::ops::{gelu, quick_gelu, silu}`, and the 2-D grid helper.

use glimpse::gpu::kernels::{Unary, grid_1d, unary, unary_at};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// exp and tanh differ from libm by a few ulps.
const UNARY_TOL: f32 = 1e-5;

fn reference(op: Unary) -> fn(f32) -> f32 {
    match op {
        Unary::Gelu => ops::gelu,
        Unary::QuickGelu => ops::quick_gelu,
        Unary::Silu => ops::silu,
    }
}

/// Applies `op` to `x[offset .. offset + n]` of a buffer with poison before and a sentinel after.
fn run_unary(gpu: &Gpu, op: Unary, offset: usize, n: usize, scale: f32, seed: u64) {
    let mut rng = Rng(seed);
    let x = rng.vec(n, scale);
    let want: Vec<f32> = x.iter().map(|&v| reference(op)(v)).collect();
    let mut init = vec![POISON; offset];
    init.extend_from_slice(&x);
    init.push(POISON);
    let xt = gpu.upload_f32(&init, "x").unwrap();
    let mut rec = Recorder::new(gpu);
    if offset == 0 {
        unary(&mut rec, &xt, n, op).unwrap();
    } else {
        unary_at(&mut rec, &xt, offset, n, op).unwrap();
    }
    let h = rec.read(&xt, 0, init.len());
    let got = rec.finish().unwrap().f32(h);
    let what = format!("{op:?} offset={offset} n={n} scale={scale}");
    assert!(got[..offset].iter().all(|&v| v == POISON), "{what} wrote before the offset");
    assert_eq!(got[offset + n], POISON, "{what} wrote past the end");
    assert_close(&what, &got[offset..offset + n], &want, UNARY_TOL);
}

#[test]
fn unary_every_op_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    for (i, op) in [Unary::Gelu, Unary::QuickGelu, Unary::Silu].into_iter().enumerate() {
        for (j, &(offset, n)) in [(0, 1), (0, 7), (3, 33), (0, 1001), (5, 70_001)].iter().enumerate() {
            run_unary(gpu, op, offset, n, 4.0, (10 * i + j) as u64);
        }
        // Large |x|: tanh and exp saturate instead of overflowing to NaN.
        run_unary(gpu, op, 0, 257, 200.0, 100 + i as u64);
    }
}

#[test]
fn unary_past_65535_groups_uses_2d_grid() {
    // 65536 * 256 + 300 elements: more groups than one dimension holds.
    let Some(gpu) = gpu() else { return };
    run_unary(gpu, Unary::Silu, 0, 65536 * 256 + 300, 4.0, 42);
}

#[test]
fn grid_1d_covers_every_group() {
    assert_eq!(grid_1d(0), [0, 1, 1]);
    assert_eq!(grid_1d(65535), [65535, 1, 1]);
    for n in [65536, 65537, 200_000, 16_777_216] {
        let [x, y, z] = grid_1d(n);
        assert!(x <= 65535 && y <= 65535 && z == 1, "grid_1d({n}) = {:?}", [x, y, z]);
        assert!(x * y >= n && x * (y - 1) < n, "grid_1d({n}) = {:?} does not fit", [x, y, z]);
    }
}
