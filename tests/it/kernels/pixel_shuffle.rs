//! `pixel_shuffle.wgsl` against `reference::ops::pixel_shuffle` (whose order has a hand-drawn
//! test next to it).

use glimpse::gpu::Recorder;
use glimpse::gpu::kernels::pixel_shuffle;
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// A permutation: exact.
const PIXEL_SHUFFLE_TOL: f32 = 0.0;

#[test]
fn pixel_shuffle_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, &(side, s, n)) in [(8, 2, 1), (8, 2, 5), (12, 3, 3), (32, 4, 7), (4, 1, 2)].iter().enumerate() {
        let x = Rng(i as u64).vec(side * side * n, 1.0);
        let want = ops::pixel_shuffle(&x, side, n, s);
        let xt = gpu.upload_f32(&x, "x").unwrap();
        let yt = gpu.upload_f32(&vec![POISON; want.len() + 1], "y").unwrap();
        let mut rec = Recorder::new(gpu);
        pixel_shuffle(&mut rec, &xt, &yt, side, n, s).unwrap();
        let h = rec.read(&yt, 0, want.len() + 1);
        let got = rec.finish().unwrap().f32(h);
        let what = format!("pixel_shuffle side={side} s={s} n={n}");
        assert_eq!(got[want.len()], POISON, "{what} wrote past the end");
        assert_close(&what, &got[..want.len()], &want, PIXEL_SHUFFLE_TOL);
    }
}
