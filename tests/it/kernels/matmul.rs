//! `matmul.wgsl` against `reference::ops::matmul`.

use glimpse::gguf::{GgmlType, quant};
use glimpse::gpu::kernels::matmul::{MatmulTiling, matmul_tiled_with};
use glimpse::gpu::kernels::peak::{PeakTiling, gemm_f32_peak};
use glimpse::gpu::kernels::{MatmulOpts, matmul};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, YIn, assert_close, gpu, gpu_with_binding_limit};

/// f32 accumulation in a different order than the reference: a few ulps per term.
const MATMUL_TOL: f32 = 2e-5;

/// Quantises random `[n, k]` weights to `ty`; returns the bytes and their f32 dequantisation.
fn random_weight(rng: &mut Rng, ty: GgmlType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let raw = rng.vec(n * k, 0.5);
    let bytes = quant::quantize(ty, &raw).expect("quantize");
    let deq = quant::dequantize_to_vec(ty, &bytes).expect("dequantize");
    (bytes, deq)
}

/// Runs `matmul` (or, with a tiling, the tiled GEMM with that tiling whatever m) and compares it
/// with the reference, a sentinel past the end included.
#[allow(clippy::too_many_arguments)]
fn run_matmul(
    gpu: &Gpu,
    ty: GgmlType,
    m: usize,
    n: usize,
    k: usize,
    bias: bool,
    y_in: impl Into<YIn>,
    seed: u64,
    tiling: Option<MatmulTiling>,
) {
    let y_in = y_in.into();
    let mut rng = Rng(seed);
    let (bytes, wf) = random_weight(&mut rng, ty, n, k);
    let x = rng.vec(m * k, 1.0);
    let b = rng.vec(n, 0.5);
    let y0 = y_in.initial(&mut rng, m * n);
    let want = y_in.expect(ops::matmul(&x, &wf, bias.then_some(&b[..]), k, n), &y0);
    let w = gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap();
    let xt = gpu.upload_f32(&x, "x").unwrap();
    let bt = gpu.upload_f32(&b, "b").unwrap();
    // One sentinel element past the end must survive.
    let mut init = y0.clone();
    init.push(POISON);
    let yt = gpu.upload_f32(&init, "y").unwrap();
    let mut rec = Recorder::new(gpu);
    let opts = MatmulOpts {
        bias: bias.then_some(&bt),
        accumulate: y_in == YIn::Accumulate,
        gated: y_in == YIn::Gate,
        ..Default::default()
    };
    match tiling {
        Some(t) => matmul_tiled_with(&mut rec, &xt, &w, &yt, m, opts, t).unwrap(),
        None => matmul(&mut rec, &xt, &w, &yt, m, opts).unwrap(),
    }
    let h = rec.read(&yt, 0, m * n + 1);
    let got = rec.finish().unwrap().f32(h);
    assert_eq!(got[m * n], POISON, "matmul {ty} wrote past the end");
    assert_close(
        &format!("matmul {ty} {tiling:?} m={m} n={n} k={k} bias={bias} y={y_in:?} parts={}", w.parts.len()),
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
            run_matmul(gpu, ty, m, n, k, j == 1, j == 2, (i * 10 + j) as u64, None);
        }
    }
}

/// Every tiling of the GEMM, not only the one this adapter picks, on every type; m and n
/// straddle the 128 tile, k is not a multiple of the K step.
#[test]
fn matmul_every_tiling_every_type_awkward_shapes() {
    let Some(gpu) = gpu() else { return };
    for tiling in MatmulTiling::ALL {
        for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
            let k = if ty.block_size() == 1 { 200 } else { 3 * ty.block_size().max(8) };
            // The SwiGLU epilogue (Y holds the gates) on every type and tiling.
            run_matmul(gpu, ty, 9, 7, k, i % 2 == 1, YIn::Gate, (i * 10) as u64, Some(tiling));
            run_matmul(gpu, ty, 133, 141, k, i % 2 == 0, i % 2 == 1, (i * 10 + 1) as u64, Some(tiling));
        }
    }
}

#[test]
fn matmul_split_weight_matches_whole() {
    // 4 KiB bindings: a [256, 70] Q8_0 weight (272 bytes per row) splits into 5 parts.
    let Some(gpu) = gpu_with_binding_limit(4096) else { return };
    for tiling in MatmulTiling::ALL {
        run_matmul(&gpu, GgmlType::Q8_0, 33, 70, 256, true, false, 99, Some(tiling));
        run_matmul(&gpu, GgmlType::F32, 5, 70, 48, false, true, 98, Some(tiling));
    }
}

/// GEMM throughput per type and tiling at the ViT shapes, next to the peak f32 GEMM
/// ([`PeakTiling::for_gpu`]) timed in the same rounds; run by hand (docs/perf.md):
/// `cargo test --release --test it matmul_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_timing() {
    let Some(gpu) = gpu() else { return };
    let runs = timing_env("GLIMPSE_TIMING_RUNS", 5);
    println!("{}", gpu.describe());
    let types = [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q5_0];
    for (m, n, k) in timing_shapes() {
        let mut rng = Rng(1);
        let x = gpu.upload_f32(&rng.vec(m * k, 1.0), "x").unwrap();
        let bt = gpu.upload_f32(&rng.vec(k * n, 1.0), "b").unwrap();
        let y = gpu.tensor(m * n, "y").unwrap();
        // K-quants need k % 256 == 0 (SmolLM2's 576 is not: its files use Q5_0 / Q8_0 there).
        let weights: Vec<_> = types
            .iter()
            .filter(|ty| k % ty.block_size() == 0)
            .map(|&ty| {
                let (bytes, _) = random_weight(&mut rng, ty, n, k);
                gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap()
            })
            .collect();
        let peak = PeakTiling::for_gpu(gpu);
        let mut labels = vec![format!("peak f32 {peak:?}")];
        let mut closures: Vec<Recording> =
            vec![Box::new(|rec: &mut Recorder| gemm_f32_peak(rec, &x, &bt, &y, m, n, k, peak).unwrap())];
        for w in &weights {
            for tiling in MatmulTiling::ALL {
                labels.push(format!("{} {tiling:?}", w.ty));
                let (x, y) = (&x, &y);
                closures.push(Box::new(move |rec: &mut Recorder| {
                    matmul_tiled_with(rec, x, w, y, m, MatmulOpts::default(), tiling).unwrap()
                }));
            }
        }
        let mut refs: Vec<&mut dyn FnMut(&mut Recorder)> = closures.iter_mut().map(|c| c.as_mut() as _).collect();
        let ms = median_ms_interleaved(gpu, runs, &mut refs);
        let flops = 2.0 * (m * n * k) as f64;
        for (label, &t) in labels.iter().zip(&ms) {
            println!(
                "m={m} n={n} k={k} {label}: median {t:.1} ms of {runs}, {:.2} GFLOP/s, {:.2}x peak time",
                flops / t / 1e6,
                t / ms[0]
            );
        }
    }
}

/// The peak GEMM is only a benchmark, but a wrong one would flatter every ratio: each tiling
/// against the reference, with a k tail inside the last K step and a sentinel past the end.
#[test]
fn gemm_f32_peak_every_tiling_matches_reference() {
    let Some(gpu) = gpu() else { return };
    let (m, n, k) = (67, 45, 100);
    let mut rng = Rng(5);
    let a = rng.vec(m * k, 1.0);
    let bt = rng.vec(n * k, 1.0); // B^T [n, k], the reference's weight layout
    let b: Vec<f32> = (0..k * n).map(|i| bt[(i % n) * k + i / n]).collect();
    let want = ops::matmul(&a, &bt, None, k, n);
    for tiling in PeakTiling::ALL {
        let (at, btt) = (gpu.upload_f32(&a, "a").unwrap(), gpu.upload_f32(&b, "b").unwrap());
        let ct = gpu.upload_f32(&vec![POISON; m * n + 1], "c").unwrap();
        let mut rec = Recorder::new(gpu);
        gemm_f32_peak(&mut rec, &at, &btt, &ct, m, n, k, tiling).unwrap();
        let h = rec.read(&ct, 0, m * n + 1);
        let got = rec.finish().unwrap().f32(h);
        assert_eq!(got[m * n], POISON, "gemm_f32_peak {tiling:?} wrote past the end");
        assert_close(&format!("gemm_f32_peak {tiling:?} m={m} n={n} k={k}"), &got[..m * n], &want, MATMUL_TOL);
    }
}

/// One variant to time: records its dispatches into a recorder.
type Recording<'a> = Box<dyn FnMut(&mut Recorder) + 'a>;

/// GPU milliseconds of one submit of each recorder in `variants` (its stage), taken round-robin
/// `runs` times after one warm-up round, so a change in machine load hits every variant alike.
/// Returns the median per variant.
fn median_ms_interleaved(gpu: &Gpu, runs: usize, variants: &mut [&mut dyn FnMut(&mut Recorder)]) -> Vec<f64> {
    let mut times = vec![Vec::new(); variants.len()];
    for round in 0..=runs {
        for (v, record) in variants.iter_mut().enumerate() {
            let mut rec = Recorder::new(gpu);
            rec.stage("timed");
            record(&mut rec);
            let t = std::time::Instant::now();
            let f = rec.finish().unwrap();
            if round > 0 {
                times[v].push(f.stage_ms.first().map_or(t.elapsed().as_secs_f64() * 1e3, |s| s.1));
            }
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

/// A timing knob from the environment: GLIMPSE_TIMING_RUNS (rounds, default 5).
fn timing_env(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The (m, n, k) shapes to time: the SigLIP-B ViT GEMMs (1024 tokens; 768 -> 768, 768 -> 3072,
/// 3072 -> 768), or those in GLIMPSE_TIMING_SHAPES (`m,n,k;m,n,k`).
fn timing_shapes() -> Vec<(usize, usize, usize)> {
    let parse = |s: &str| {
        let v: Vec<usize> = s.split(',').filter_map(|d| d.trim().parse().ok()).collect();
        (v.len() == 3).then(|| (v[0], v[1], v[2]))
    };
    match std::env::var("GLIMPSE_TIMING_SHAPES") {
        Ok(s) => s.split(';').filter_map(parse).collect(),
        Err(_) => vec![(1024, 768, 768), (1024, 3072, 768), (1024, 768, 3072)],
    }
}

/// Peak f32 GEMM throughput for every tiling at the ViT shapes; run by hand:
/// `cargo test --test it gemm_f32_peak_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn gemm_f32_peak_timing() {
    let Some(gpu) = gpu() else { return };
    let runs = timing_env("GLIMPSE_TIMING_RUNS", 5);
    println!("{}", gpu.describe());
    for (m, n, k) in timing_shapes() {
        let mut rng = Rng(1);
        let a = gpu.upload_f32(&rng.vec(m * k, 1.0), "a").unwrap();
        let b = gpu.upload_f32(&rng.vec(k * n, 1.0), "b").unwrap();
        let c = gpu.tensor(m * n, "c").unwrap();
        let mut closures: Vec<Recording> = PeakTiling::ALL
            .iter()
            .map(|&tiling| {
                let (a, b, c) = (&a, &b, &c);
                Box::new(move |rec: &mut Recorder| gemm_f32_peak(rec, a, b, c, m, n, k, tiling).unwrap()) as Recording
            })
            .collect();
        let mut refs: Vec<&mut dyn FnMut(&mut Recorder)> = closures.iter_mut().map(|c| c.as_mut() as _).collect();
        let ms = median_ms_interleaved(gpu, runs, &mut refs);
        for (tiling, ms) in PeakTiling::ALL.iter().zip(ms) {
            let gflops = 2.0 * (m * n * k) as f64 / ms / 1e6;
            println!("peak m={m} n={n} k={k} {tiling:?}: median {ms:.1} ms of {runs}, {gflops:.2} GFLOP/s");
        }
    }
}
