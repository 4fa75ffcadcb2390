//! `norm.wgsl` against `reference::ops::layer_norm` and `reference::ops::rms_norm`.

use glimpse::gpu::kernels::{NormKind, NormOpts, layer_norm, norm, rms_norm};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// A tree reduction sums in another order than the reference's loop: a few ulps of the sums,
/// amplified by 1 / std when the mean is far from zero.
const NORM_TOL: f32 = 2e-5;

const EPS: f32 = 1e-5;

/// Runs one norm on `n_rows` rows of `n` values around `mean` and checks it against the reference.
fn run_norm(gpu: &Gpu, kind: NormKind, n_rows: usize, n: usize, mean: f32, seed: u64) {
    let mut rng = Rng(seed);
    let x: Vec<f32> = rng.vec(n_rows * n, 1.0).into_iter().map(|v| v + mean).collect();
    let w = rng.vec(n, 1.0);
    let b = rng.vec(n, 0.5);
    let want = match kind {
        NormKind::Layer => ops::layer_norm(&x, &w, &b, n, EPS),
        NormKind::Rms => ops::rms_norm(&x, &w, n, EPS),
    };
    let xt = gpu.upload_f32(&x, "x").unwrap();
    let wt = gpu.upload_f32(&w, "w").unwrap();
    let bt = gpu.upload_f32(&b, "b").unwrap();
    // One sentinel element past the end must survive.
    let yt = gpu.upload_f32(&vec![POISON; n_rows * n + 1], "y").unwrap();
    let mut rec = Recorder::new(gpu);
    match kind {
        NormKind::Layer => layer_norm(&mut rec, &xt, &wt, &bt, &yt, n_rows, n, EPS).unwrap(),
        NormKind::Rms => rms_norm(&mut rec, &xt, &wt, &yt, n_rows, n, EPS).unwrap(),
    }
    let h = rec.read(&yt, 0, n_rows * n + 1);
    let got = rec.finish().unwrap().f32(h);
    let what = format!("{kind:?} norm rows={n_rows} n={n} mean={mean}");
    assert_eq!(got[n_rows * n], POISON, "{what} wrote past the end");
    assert_close(&what, &got[..n_rows * n], &want, NORM_TOL);
}

#[test]
fn norm_both_kinds_awkward_widths() {
    let Some(gpu) = gpu() else { return };
    for (i, &n) in [1, 7, 33, 256, 576, 1001].iter().enumerate() {
        for kind in [NormKind::Layer, NormKind::Rms] {
            run_norm(gpu, kind, 5, n, 0.0, i as u64);
        }
    }
}

#[test]
fn layer_norm_mean_far_from_zero() {
    // Mean 8, std ~0.6: E[x^2] - E[x]^2 would lose ~3 digits here; mean-then-deviations does not.
    let Some(gpu) = gpu() else { return };
    run_norm(gpu, NormKind::Layer, 3, 1001, 8.0, 7);
    run_norm(gpu, NormKind::Rms, 3, 1001, 8.0, 8);
}

#[test]
fn norm_offsets_and_strides_leave_gaps_alone() {
    // Rows 2..5 of a [6, 40]-strided X (width 33), into Y rows of stride 37 from offset 11.
    let Some(gpu) = gpu() else { return };
    let (n_rows, n, xs, ys, x_row0, y_offset) = (3, 33, 40, 37, 2, 11);
    let mut rng = Rng(3);
    let x = rng.vec(6 * xs, 2.0);
    let w = rng.vec(n, 1.0);
    let b = rng.vec(n, 1.0);
    let rows: Vec<f32> = (0..n_rows).flat_map(|r| x[(x_row0 + r) * xs..][..n].to_vec()).collect();
    let want = ops::layer_norm(&rows, &w, &b, n, EPS);
    let len = y_offset + n_rows * ys + 1;
    let (xt, wt, bt) =
        (gpu.upload_f32(&x, "x").unwrap(), gpu.upload_f32(&w, "w").unwrap(), gpu.upload_f32(&b, "b").unwrap());
    let yt = gpu.upload_f32(&vec![POISON; len], "y").unwrap();
    let mut rec = Recorder::new(gpu);
    let opts = NormOpts { x_offset: x_row0 * xs, y_offset, x_stride: xs, y_stride: ys };
    norm(&mut rec, NormKind::Layer, &xt, &wt, Some(&bt), &yt, n_rows, n, EPS, opts).unwrap();
    let h = rec.read(&yt, 0, len);
    let got = rec.finish().unwrap().f32(h);
    for (i, &v) in got.iter().enumerate() {
        let inside = i >= y_offset && (i - y_offset) / ys < n_rows && (i - y_offset) % ys < n;
        if !inside {
            assert_eq!(v, POISON, "layer_norm with strides wrote element {i}, outside its rows");
        }
    }
    let got_rows: Vec<f32> = (0..n_rows).flat_map(|r| got[y_offset + r * ys..][..n].to_vec()).collect();
    assert_close("layer_norm strided", &got_rows, &want, NORM_TOL);
}
