//! `matmul.wgsl` against `reference::ops::matmul`.

use glimpse::gguf::{GgmlType, quant};
use glimpse::gpu::kernels::{MatmulOpts, matmul};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu, gpu_with_binding_limit};

/// f32 accumulation in a different order than the reference: a few ulps per term.
const MATMUL_TOL: f32 = 2e-5;

/// Quantises random `[n, k]` weights to `ty`; returns the bytes and their f32 dequantisation.
fn random_weight(rng: &mut Rng, ty: GgmlType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let raw = rng.vec(n * k, 0.5);
    let bytes = quant::quantize(ty, &raw).expect("quantize");
    let deq = quant::dequantize_to_vec(ty, &bytes).expect("dequantize");
    (bytes, deq)
}

fn run_matmul(gpu: &Gpu, ty: GgmlType, m: usize, n: usize, k: usize, bias: bool, accumulate: bool, seed: u64) {
    let mut rng = Rng(seed);
    let (bytes, wf) = random_weight(&mut rng, ty, n, k);
    let x = rng.vec(m * k, 1.0);
    let b = rng.vec(n, 0.5);
    let y0: Vec<f32> = if accumulate { rng.vec(m * n, 1.0) } else { vec![POISON; m * n] };
    let mut want = ops::matmul(&x, &wf, bias.then_some(&b[..]), k, n);
    if accumulate {
        want.iter_mut().zip(&y0).for_each(|(w, y)| *w += y);
    }
    let w = gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap();
    let xt = gpu.upload_f32(&x, "x").unwrap();
    let bt = gpu.upload_f32(&b, "b").unwrap();
    // One sentinel element past the end must survive.
    let mut init = y0.clone();
    init.push(POISON);
    let yt = gpu.upload_f32(&init, "y").unwrap();
    let mut rec = Recorder::new(gpu);
    matmul(&mut rec, &xt, &w, &yt, m, MatmulOpts { bias: bias.then_some(&bt), accumulate, ..Default::default() })
        .unwrap();
    let h = rec.read(&yt, 0, m * n + 1);
    let got = rec.finish().unwrap().f32(h);
    assert_eq!(got[m * n], POISON, "matmul {ty} wrote past the end");
    assert_close(
        &format!("matmul {ty} m={m} n={n} k={k} bias={bias} acc={accumulate} parts={}", w.parts.len()),
        &got[..m * n],
        &want,
        MATMUL_TOL,
    );
}

#[test]
fn matmul_every_type_awkward_shapes() {
    let Some(gpu) = gpu() else { return };
    for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
        let k_unit = ty.block_size().max(8);
        // Shapes not multiples of the 64 x 64 tile; k not a multiple of the 32-wide k step
        // where the type allows it.
        let shapes: &[(usize, usize, usize)] = if ty.block_size() == 1 {
            &[(1, 7, 588), (67, 45, 101), (130, 70, 64)]
        } else {
            &[(1, 7, k_unit), (67, 45, 3 * k_unit), (130, 70, 2 * k_unit)]
        };
        for (j, &(m, n, k)) in shapes.iter().enumerate() {
            run_matmul(gpu, ty, m, n, k, j == 1, j == 2, (i * 10 + j) as u64);
        }
    }
}

#[test]
fn matmul_split_weight_matches_whole() {
    // 4 KiB bindings: a [256, 70] Q8_0 weight (272 bytes per row) splits into 5 parts.
    let Some(gpu) = gpu_with_binding_limit(4096) else { return };
    run_matmul(&gpu, GgmlType::Q8_0, 33, 70, 256, true, false, 99);
    run_matmul(&gpu, GgmlType::F32, 5, 70, 48, false, true, 98);
}

/// Throughput on the device at a ViT-like shape; run by hand with `--ignored --nocapture`.
#[test]
#[ignore]
fn matmul_timing() {
    let Some(gpu) = gpu() else { return };
    let (m, n, k) = (1024, 768, 768);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4K] {
        let mut rng = Rng(1);
        let (bytes, _) = random_weight(&mut rng, ty, n, k);
        let w = gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap();
        let x = gpu.upload_f32(&rng.vec(m * k, 1.0), "x").unwrap();
        let y = gpu.tensor(m * n, "y").unwrap();
        let mut times = Vec::new();
        for _ in 0..4 {
            let mut rec = Recorder::new(gpu);
            rec.stage("mm");
            matmul(&mut rec, &x, &w, &y, m, MatmulOpts::default()).unwrap();
            let t = std::time::Instant::now();
            let f = rec.finish().unwrap();
            times.push((t.elapsed().as_secs_f64() * 1e3, f.stage_ms[0].1));
        }
        let flops = 2.0 * (m * n * k) as f64;
        let (wall, gpu_ms) = times[times.len() - 1];
        println!("{ty}: wall {wall:.1} ms, gpu {gpu_ms:.1} ms, {:.2} GFLOP/s", flops / gpu_ms / 1e6);
    }
}
