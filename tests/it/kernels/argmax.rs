//! `argmax.wgsl` against `reference::ops::argmax`: the first maximum, exactly.

use glimpse::gpu::kernels::argmax;
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{Rng, gpu};

const SENTINEL: u32 = 0xdead_beef;

/// The GPU's answer for `x[x_offset..]`; the u32 after the output must survive.
fn gpu_argmax(gpu: &Gpu, x: &[f32], x_offset: usize) -> u32 {
    let xt = gpu.upload_f32(x, "logits").unwrap();
    let out = gpu.upload_u32(&[SENTINEL, SENTINEL], "out").unwrap();
    let mut rec = Recorder::new(gpu);
    argmax(&mut rec, &xt, x_offset, x.len() - x_offset, &out).unwrap();
    let h = rec.read(&out, 0, 2);
    let got = rec.finish().unwrap().u32(h);
    assert_eq!(got[1], SENTINEL, "argmax wrote past its output");
    got[0]
}

#[test]
fn argmax_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    for (i, &n) in [1, 7, 255, 256, 257, 1001, 49_152, 151_936].iter().enumerate() {
        let x = Rng(i as u64).vec(n, 10.0);
        assert_eq!(gpu_argmax(gpu, &x, 0) as usize, ops::argmax(&x), "argmax n={n}");
    }
}

#[test]
fn argmax_ties_take_the_lowest_index() {
    let Some(gpu) = gpu() else { return };
    let n = 151_936;
    let mut x = Rng(3).vec(n, 10.0);
    // Maxima in different invocations' slices and in the same one (i and i + 256).
    for i in [150_000, 70_001, 4_096 + 37, 37 + 256, 40_000] {
        x[i] = 20.0;
    }
    assert_eq!(ops::argmax(&x), 37 + 256);
    assert_eq!(gpu_argmax(gpu, &x, 0), 37 + 256, "argmax ties");
    // All equal, and all negative.
    assert_eq!(gpu_argmax(gpu, &vec![-3.5; 1001], 0), 0, "argmax all equal");
    let neg: Vec<f32> = Rng(4).vec(777, 1.0).into_iter().map(|v| v - 5.0).collect();
    assert_eq!(gpu_argmax(gpu, &neg, 0) as usize, ops::argmax(&neg), "argmax all negative");
}

#[test]
fn argmax_from_an_offset() {
    // The maximum before the offset must be ignored; indices count from the offset.
    let Some(gpu) = gpu() else { return };
    let mut x = Rng(5).vec(1000, 1.0);
    x[3] = 50.0;
    x[600] = 40.0;
    assert_eq!(gpu_argmax(gpu, &x, 10), 590);
}
