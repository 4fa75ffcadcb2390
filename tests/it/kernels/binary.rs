//! `binary.wgsl` against `reference::ops::add`.

use glimpse::gpu::kernels::{BinaryOpts, add, add_with};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu};

/// Adds are exact.
const BINARY_TOL: f32 = 1e-6;

/// Adds `y[y_offset .. + y_len]`, broadcast, to `x[x_offset .. + n]`.
fn run_add(gpu: &Gpu, n: usize, opts: BinaryOpts, seed: u64) {
    let mut rng = Rng(seed);
    let y_len = if opts.y_len == 0 { n } else { opts.y_len };
    let x = rng.vec(n, 3.0);
    let y = rng.vec(y_len, 3.0);
    let y_full: Vec<f32> = (0..n).map(|i| y[i % y_len]).collect();
    let mut want = x.clone();
    ops::add(&mut want, &y_full);
    let mut x_init = vec![POISON; opts.x_offset];
    x_init.extend_from_slice(&x);
    x_init.push(POISON);
    let mut y_init = vec![0.0; opts.y_offset];
    y_init.extend_from_slice(&y);
    let xt = gpu.upload_f32(&x_init, "x").unwrap();
    let yt = gpu.upload_f32(&y_init, "y").unwrap();
    let mut rec = Recorder::new(gpu);
    if opts.x_offset + opts.y_offset + opts.y_len == 0 {
        add(&mut rec, &xt, &yt, n).unwrap();
    } else {
        add_with(&mut rec, &xt, &yt, n, opts).unwrap();
    }
    let h = rec.read(&xt, 0, x_init.len());
    let got = rec.finish().unwrap().f32(h);
    let what = format!("add n={n} {opts:?}");
    assert!(got[..opts.x_offset].iter().all(|&v| v == POISON), "{what} wrote before the offset");
    assert_eq!(got[opts.x_offset + n], POISON, "{what} wrote past the end");
    assert_close(&what, &got[opts.x_offset..opts.x_offset + n], &want, BINARY_TOL);
}

#[test]
fn add_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    for (j, &n) in [1, 7, 33, 1001, 70_001].iter().enumerate() {
        run_add(gpu, n, BinaryOpts::default(), j as u64);
    }
    run_add(gpu, 576, BinaryOpts { x_offset: 5, y_offset: 3, y_len: 0 }, 50);
}

#[test]
fn add_broadcasts_y_over_rows() {
    // A [7, 33] X plus one 33-wide row (a bias), both at offsets.
    let Some(gpu) = gpu() else { return };
    run_add(gpu, 7 * 33, BinaryOpts { x_offset: 2, y_offset: 4, y_len: 33 }, 9);
}
