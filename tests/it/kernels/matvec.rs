//! `matvec.wgsl` against `reference::ops::matmul`: every GGUF type, awkward widths, strided rows,
//! split weights, and copy-bandwidth vs GEMV-bandwidth timing (ignored by default).

use glimpse::gguf::{GgmlType, quant};
use glimpse::gpu::kernels::{MATVEC_MAX_M, MatmulOpts, matmul, matvec};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, assert_close, gpu, gpu_with_binding_limit};

/// f32 accumulation in a different order than the reference (tree reduction): a few ulps per term.
const MATVEC_TOL: f32 = 2e-5;

/// Which entry point a test drives.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `kernels::matvec` directly.
    Matvec,
    /// `kernels::matmul`, which routes small m to matvec and the rest to the tiled GEMM.
    Matmul,
}

/// Quantises random `[n, k]` weights to `ty`; returns the bytes and their f32 dequantisation.
fn random_weight(rng: &mut Rng, ty: GgmlType, n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let raw = rng.vec(n * k, 0.5);
    let bytes = quant::quantize(ty, &raw).expect("quantize");
    let deq = quant::dequantize_to_vec(ty, &bytes).expect("dequantize");
    (bytes, deq)
}

/// One product with X rows at `x_offset + r * x_stride` (stride `k + x_pad`) and Y rows at
/// `y_offset + r * y_stride` (stride `n + y_pad`); every Y element outside the rows must keep its
/// poison, and so must a sentinel past the end.
#[allow(clippy::too_many_arguments)]
fn run_matvec(gpu: &Gpu, path: Path, ty: GgmlType, m: usize, n: usize, k: usize, bias: bool, acc: bool, pad: usize) {
    let mut rng = Rng((m * 7919 + n * 31 + k) as u64 ^ ty.id() as u64);
    let (bytes, wf) = random_weight(&mut rng, ty, n, k);
    let x = rng.vec(m * k, 1.0);
    let b = rng.vec(n, 0.5);
    let y0: Vec<f32> = if acc { rng.vec(m * n, 1.0) } else { vec![POISON; m * n] };
    let mut want = ops::matmul(&x, &wf, bias.then_some(&b[..]), k, n);
    if acc {
        want.iter_mut().zip(&y0).for_each(|(w, y)| *w += y);
    }
    let (x_offset, y_offset) = (pad * 3, pad * 5);
    let (x_stride, y_stride) = (k + pad, n + pad);
    let mut xb = vec![f32::NAN; x_offset + m * x_stride];
    let mut yb = vec![POISON; y_offset + m * y_stride + 1];
    for r in 0..m {
        xb[x_offset + r * x_stride..][..k].copy_from_slice(&x[r * k..][..k]);
        yb[y_offset + r * y_stride..][..n].copy_from_slice(&y0[r * n..][..n]);
    }
    let w = gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap();
    let xt = gpu.upload_f32(&xb, "x").unwrap();
    let bt = gpu.upload_f32(&b, "b").unwrap();
    let yt = gpu.upload_f32(&yb, "y").unwrap();
    let opts = MatmulOpts {
        bias: bias.then_some(&bt),
        accumulate: acc,
        x_offset,
        y_offset,
        x_stride: if pad == 0 { 0 } else { x_stride },
        y_stride: if pad == 0 { 0 } else { y_stride },
    };
    let mut rec = Recorder::new(gpu);
    match path {
        Path::Matvec => matvec(&mut rec, &xt, &w, &yt, m, opts).unwrap(),
        Path::Matmul => matmul(&mut rec, &xt, &w, &yt, m, opts).unwrap(),
    }
    let h = rec.read(&yt, 0, yb.len());
    let got_all = rec.finish().unwrap().f32(h);
    let what = format!("{path:?} {ty} m={m} n={n} k={k} bias={bias} acc={acc} pad={pad} parts={}", w.parts.len());
    let mut got = Vec::with_capacity(m * n);
    for (i, &g) in got_all.iter().enumerate() {
        let in_row = i >= y_offset && i < y_offset + m * y_stride && (i - y_offset) % y_stride < n;
        if in_row {
            got.push(g);
        } else {
            assert_eq!(g, POISON, "{what}: wrote element {i} outside Y's rows");
        }
    }
    assert_close(&what, &got, &want, MATVEC_TOL);
}

#[test]
fn matvec_every_type_awkward_shapes() {
    let Some(gpu) = gpu() else { return };
    for ty in GgmlType::ALL {
        // k: three blocks, or for one-element blocks a width that ends mid 8-element chunk.
        let k = if ty.block_size() == 1 { 101 } else { 3 * ty.block_size().max(8) };
        for (j, n) in [1, 7, 45, 1001].into_iter().enumerate() {
            for m in [1, 3] {
                let (bias, acc) = (j % 2 == 1, (j / 2 + m) % 2 == 1);
                run_matvec(gpu, Path::Matvec, ty, m, n, k, bias, acc, 0);
            }
        }
    }
}

#[test]
fn matvec_strided_rows_and_many_m() {
    let Some(gpu) = gpu() else { return };
    // Rows of X and Y inside wider buffers (e.g. a fused QKV output), and m past MATVEC_MAX_M
    // (two dispatches).
    run_matvec(gpu, Path::Matvec, GgmlType::Q4K, 3, 45, 256, true, true, 13);
    run_matvec(gpu, Path::Matvec, GgmlType::Q8_0, MATVEC_MAX_M + 1, 70, 96, true, false, 5);
    run_matvec(gpu, Path::Matvec, GgmlType::F16, MATVEC_MAX_M, 33, 40, false, true, 3);
    run_matvec(gpu, Path::Matvec, GgmlType::F32, 2, 1001, 8, false, false, 1);
}

#[test]
fn matvec_split_weight_matches_whole() {
    // 4 KiB bindings: a [256, 70] Q8_0 weight (272 bytes per row) splits into 5 parts.
    let Some(gpu) = gpu_with_binding_limit(4096) else { return };
    run_matvec(&gpu, Path::Matvec, GgmlType::Q8_0, 1, 70, 256, true, false, 0);
    run_matvec(&gpu, Path::Matvec, GgmlType::Q8_0, 3, 70, 256, false, true, 2);
    run_matvec(&gpu, Path::Matvec, GgmlType::Q6K, 2, 9, 512, true, true, 0);
}

#[test]
fn matmul_routes_both_paths_at_the_boundary() {
    let Some(gpu) = gpu() else { return };
    // Through matmul: small m goes to matvec, the rest to the tiled GEMM; both with offsets.
    for m in [1, 2, MATVEC_MAX_M, MATVEC_MAX_M + 1, 17] {
        run_matvec(gpu, Path::Matmul, GgmlType::Q5_0, m, 45, 64, m % 2 == 0, m % 2 == 1, 3);
        run_matvec(gpu, Path::Matmul, GgmlType::F32, m, 7, 21, true, false, 0);
    }
}

/// Decode-shaped GEMV bandwidth against a plain buffer copy; run by hand with
/// `--ignored --nocapture`.
#[test]
#[ignore]
fn matvec_timing() {
    let Some(gpu) = gpu() else { return };
    // Copy bandwidth: 64 MiB, read once and written once; wall clock (copies carry no timestamps).
    let len = 16 << 20;
    let src = gpu.upload_f32(&vec![1.0; len], "src").unwrap();
    let dst = gpu.tensor(len, "dst").unwrap();
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let mut rec = Recorder::new(gpu);
        rec.copy(&src, 0, &dst, 0, len);
        let t = std::time::Instant::now();
        rec.finish().unwrap();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("copy 64 MiB: {best:.2} ms, {:.2} GB/s (read + write)", 2.0 * (len * 4) as f64 / best / 1e6);

    // Decode-sized projections (k a multiple of 256 for the K-quants): up and down.
    for (n, k) in [(2560, 1024), (1024, 2560)] {
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
            let mut rng = Rng(1);
            let (bytes, _) = random_weight(&mut rng, ty, n, k);
            let w = gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap();
            let x = gpu.upload_f32(&rng.vec(16 * k, 1.0), "x").unwrap();
            let y = gpu.tensor(16 * n, "y").unwrap();
            let mut line = format!("{ty} [{k} -> {n}] {:.2} MB:", w.bytes() as f64 / 1e6);
            for m in [1, 2, 4, 8, 9, 16] {
                let time = |f: &dyn Fn(&mut Recorder)| {
                    let mut best = f64::INFINITY;
                    for _ in 0..3 {
                        let mut rec = Recorder::new(gpu);
                        rec.stage("mv");
                        f(&mut rec);
                        best = best.min(rec.finish().unwrap().stage_ms[0].1);
                    }
                    best
                };
                let mv = time(&|rec| matvec(rec, &x, &w, &y, m, MatmulOpts::default()).unwrap());
                let gemm = if m <= MATVEC_MAX_M {
                    // The tiled GEMM, bypassing matmul's routing: m rows are padded out to 64.
                    let mm = time(&|rec| {
                        glimpse::gpu::kernels::matmul::matmul_tiled(rec, &x, &w, &y, m, MatmulOpts::default()).unwrap()
                    });
                    format!("{mm:.2}")
                } else {
                    "-".into()
                };
                line +=
                    &format!("  m={m}: matvec {mv:.2} ms ({:.2} GB/s) gemm {gemm} ms;", w.bytes() as f64 / mv / 1e6);
            }
            println!("{line}");
        }
    }
}
