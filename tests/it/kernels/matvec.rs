//! `matvec.wgsl` against `reference::ops::matmul`: every GGUF type, awkward widths, strided rows,
//! split weights, and copy-bandwidth vs GEMV-bandwidth timing (ignored by default).

use glimpse::gguf::{GgmlType, quant};
use glimpse::gpu::kernels::matvec::matvec_generic;
use glimpse::gpu::kernels::{MATVEC_MAX_M, MatmulOpts, matmul, matvec};
use glimpse::gpu::{Gpu, Recorder};
use glimpse::reference::ops;

use crate::gpu::{POISON, Rng, YIn, assert_close, gpu, gpu_with_binding_limit};

/// f32 accumulation in a different order than the reference (tree reduction): a few ulps per term.
const MATVEC_TOL: f32 = 2e-5;

/// Which entry point a test drives.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `kernels::matvec` directly.
    Matvec,
    /// `kernels::matmul`, which routes small m to matvec and the rest to the tiled GEMM.
    Matmul,
    /// `matvec::matvec_generic`: the generic `matvec` entry whatever the type and alignment.
    Generic,
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
fn run_matvec(
    gpu: &Gpu,
    path: Path,
    ty: GgmlType,
    m: usize,
    n: usize,
    k: usize,
    bias: bool,
    y_in: impl Into<YIn>,
    pad: usize,
) {
    let y_in = y_in.into();
    let mut rng = Rng((m * 7919 + n * 31 + k) as u64 ^ ty.id() as u64);
    let (bytes, wf) = random_weight(&mut rng, ty, n, k);
    let x = rng.vec(m * k, 1.0);
    let b = rng.vec(n, 0.5);
    let y0 = y_in.initial(&mut rng, m * n);
    let want = y_in.expect(ops::matmul(&x, &wf, bias.then_some(&b[..]), k, n), &y0);
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
        accumulate: y_in == YIn::Accumulate,
        gated: y_in == YIn::Gate,
        x_offset,
        y_offset,
        x_stride: if pad == 0 { 0 } else { x_stride },
        y_stride: if pad == 0 { 0 } else { y_stride },
    };
    let mut rec = Recorder::new(gpu);
    match path {
        Path::Matvec => matvec(&mut rec, &xt, &w, &yt, m, opts).unwrap(),
        Path::Matmul => matmul(&mut rec, &xt, &w, &yt, m, opts).unwrap(),
        Path::Generic => matvec_generic(&mut rec, &xt, &w, &yt, m, opts).unwrap(),
    }
    let h = rec.read(&yt, 0, yb.len());
    let got_all = rec.finish().unwrap().f32(h);
    let what = format!("{path:?} {ty} m={m} n={n} k={k} bias={bias} y={y_in:?} pad={pad} parts={}", w.parts.len());
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
fn matvec_generic_every_type() {
    let Some(gpu) = gpu() else { return };
    // The generic entry on shapes the per-type entries would take (aligned X, whole vec4s of W).
    for ty in GgmlType::ALL {
        let k = 2 * ty.block_size().max(32);
        for (m, n, pad) in [(1, 16, 0), (3, 40, 4)] {
            run_matvec(gpu, Path::Generic, ty, m, n, k, m == 3, m == 1, pad);
        }
    }
}

#[test]
fn matvec_block_entry_and_fallbacks() {
    let Some(gpu) = gpu() else { return };
    // `matvec_blocks` (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) needs k a multiple of 32, X rows at
    // multiples of 4 floats and parts of whole 16-byte words (n * row_bytes a multiple of 16).
    // Every block offset mod 16 occurs (k = 96, 160: rows of 3 and 5 blocks), rows past n in the
    // last workgroup, strided X and Y (pad 4), all M, the last block of the buffer at every offset.
    let types = [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
    ];
    for ty in types {
        for (m, n, k, pad) in [
            (1, 8, 96, 0),
            (1, 40, 576, 0),
            (1, 1544, 576, 4),
            (2, 24, 1536, 4),
            (3, 200, 96, 0),
            (1, 88, 160, 0),
            (MATVEC_MAX_M, 16, 64, 8),
            (MATVEC_MAX_M + 2, 56, 160, 4),
        ] {
            run_matvec(gpu, Path::Matvec, ty, m, n, k, m % 2 == 1, m % 2 == 0, pad);
            run_matvec(gpu, Path::Matmul, ty, m, n, k, m % 2 == 0, m % 2 == 1, pad);
        }
        // Fallbacks to `matvec`: X misaligned (pad 5: offset 15, stride k + 5), part bytes not a
        // multiple of 16 for the quantised types (n = 7, k = 96), k not a multiple of 32 (F*).
        run_matvec(gpu, Path::Matvec, ty, 2, 40, 576, true, true, 5);
        run_matvec(gpu, Path::Matvec, ty, 1, 7, 96, false, false, 0);
        if ty.block_size() == 1 {
            run_matvec(gpu, Path::Matvec, ty, 3, 16, 36, true, false, 4);
        }
    }
    // Q4_K, Q5_K: whole 256-weight super-blocks (every row and part is 16-byte aligned).
    for ty in [GgmlType::Q4K, GgmlType::Q5K] {
        for (m, n, k, pad) in [(1, 8, 256, 0), (3, 45, 512, 4), (1, 200, 1536, 0), (MATVEC_MAX_M + 2, 24, 256, 4)] {
            run_matvec(gpu, Path::Matvec, ty, m, n, k, m % 2 == 1, m % 2 == 0, pad);
            run_matvec(gpu, Path::Matmul, ty, m, n, k, m % 2 == 0, m % 2 == 1, pad);
        }
        run_matvec(gpu, Path::Matvec, ty, 2, 40, 256, true, true, 5);
    }
    // Q6_K: 210-byte super-blocks at every even offset mod 16 (parts of whole 16-byte words need
    // n * 210 * k / 256 % 16 == 0), the fallback when they are not (n = 9).
    for (m, n, k, pad) in [(1, 8, 256, 0), (3, 40, 512, 4), (1, 200, 1536, 0), (MATVEC_MAX_M + 2, 24, 256, 4)] {
        run_matvec(gpu, Path::Matvec, GgmlType::Q6K, m, n, k, m % 2 == 1, m % 2 == 0, pad);
        run_matvec(gpu, Path::Matmul, GgmlType::Q6K, m, n, k, m % 2 == 0, m % 2 == 1, pad);
    }
    run_matvec(gpu, Path::Matvec, GgmlType::Q6K, 2, 9, 256, true, true, 0);
}

#[test]
fn matvec_gated_fuses_swiglu_on_every_entry() {
    let Some(gpu) = gpu() else { return };
    // Y holds the gates: Y = silu(Y) * (X W^T + b), on the blocks entry (aligned, m <= 8), the
    // generic one (forced, and X misaligned by pad 5) and through matmul.
    for ty in [GgmlType::Q8_0, GgmlType::F16, GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q5_1] {
        let k = 2 * ty.block_size().max(128);
        for (m, n, pad) in [(1, 40, 0), (3, 45, 4), (2, 24, 5)] {
            run_matvec(gpu, Path::Matvec, ty, m, n, k, m == 3, YIn::Gate, pad);
            run_matvec(gpu, Path::Generic, ty, m, n, k, m == 1, YIn::Gate, pad);
            run_matvec(gpu, Path::Matmul, ty, m, n, k, m == 2, YIn::Gate, pad);
        }
    }
}

#[test]
fn gated_and_accumulate_together_are_refused() {
    let Some(gpu) = gpu() else { return };
    let w = gpu.upload_weight("w", GgmlType::F32, &[4, 2], &[0u8; 32]).unwrap();
    let (x, y) = (gpu.tensor(4, "x").unwrap(), gpu.tensor(2, "y").unwrap());
    let opts = MatmulOpts { accumulate: true, gated: true, ..MatmulOpts::default() };
    for m in [1, MATVEC_MAX_M + 1] {
        let mut rec = Recorder::new(gpu);
        let err = matmul(&mut rec, &x, &w, &y, m, opts).unwrap_err().to_string();
        assert!(err.contains("accumulate and gated"), "{err}");
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
/// `--ignored --nocapture`. Per shape and type, the routed `matvec` (per-type entries where they
/// apply) and `matvec_generic` run round-robin, GLIMPSE_TIMING_RUNS rounds (default 5) after a
/// warm-up; medians. GLIMPSE_TIMING_SHAPES=`n,k;...` and GLIMPSE_TIMING_M=`1,2,...` override the
/// defaults (SmolLM2-135M's decode projections and tied output, m = 1).
#[test]
#[ignore]
fn matvec_timing() {
    let Some(gpu) = gpu() else { return };
    let env_list = |name: &str, sep: char| std::env::var(name).ok().map(|v| v.split(sep).map(str::to_owned).collect());
    let runs: usize = std::env::var("GLIMPSE_TIMING_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let shapes: Vec<(usize, usize)> = env_list("GLIMPSE_TIMING_SHAPES", ';')
        .map(|v: Vec<String>| {
            v.iter()
                .map(|s| {
                    let (n, k) = s.split_once(',').expect("n,k");
                    (n.trim().parse().unwrap(), k.trim().parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_else(|| vec![(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)]);
    let ms: Vec<usize> = env_list("GLIMPSE_TIMING_M", ',')
        .map(|v: Vec<String>| v.iter().map(|s| s.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1]);

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
    drop((src, dst));
    println!("copy 64 MiB: {best:.2} ms, {:.2} GB/s (read + write)", 2.0 * (len * 4) as f64 / best / 1e6);

    let types = GgmlType::ALL;
    for &(n, k) in &shapes {
        for ty in types.into_iter().filter(|t| k % t.block_size() == 0) {
            let mut rng = Rng(1);
            let (bytes, _) = random_weight(&mut rng, ty, n, k);
            let w = gpu.upload_weight("w", ty, &[k as u64, n as u64], &bytes).unwrap();
            let mbytes = w.bytes() as f64 / 1e6;
            for &m in &ms {
                let x = gpu.upload_f32(&rng.vec(m * k, 1.0), "x").unwrap();
                let y = gpu.tensor(m * n, "y").unwrap();
                let time = |generic: bool| {
                    let mut rec = Recorder::new(gpu);
                    rec.stage("mv");
                    if generic {
                        matvec_generic(&mut rec, &x, &w, &y, m, MatmulOpts::default()).unwrap();
                    } else {
                        matvec(&mut rec, &x, &w, &y, m, MatmulOpts::default()).unwrap();
                    }
                    rec.finish().unwrap().stage_ms[0].1
                };
                let (mut routed, mut generic) = (Vec::new(), Vec::new());
                for round in 0..=runs {
                    let (r, g) = (time(false), time(true));
                    if round > 0 {
                        routed.push(r);
                        generic.push(g);
                    }
                }
                let median = |v: &mut Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let (r, g) = (median(&mut routed), median(&mut generic));
                let (gb_r, gb_g) = (mbytes / r, mbytes / g); // MB per ms = GB/s
                println!(
                    "{ty} [{k} -> {n}] {mbytes:.2} MB m={m}: matvec {r:.3} ms ({gb_r:.2} GB/s), \
                     generic {g:.3} ms ({gb_g:.2} GB/s), {:.2}x",
                    g / r
                );
            }
        }
    }
}
