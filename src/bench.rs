//! `glimpse bench`: the numbers that matter per frame, measured on this device — vision encode
//! per tile, prefill and decode throughput, the main GEMM and GEMV kernels' GFLOP/s next to the
//! device's measured peak, copy bandwidth and shader read rate, where a decode step's time goes,
//! and memory. Every figure is the median of several runs; GPU times come from timestamp queries
//! when the device has them, else wall clock.

use std::path::Path;
use std::time::Instant;

use crate::gguf::{GgmlType, Gguf};
use crate::gpu::kernels::peak::{PeakTiling, ReadPattern};
use crate::gpu::kernels::{self, MatmulOpts};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::model::Error;
use crate::model::config::{TextConfig, VisionConfig};
use crate::model::projector::Projector;
use crate::model::text::TextModel;
use crate::model::vision::VisionTower;
use crate::prune::flops;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Runs per figure (the median is reported).
    pub runs: usize,
    /// Text tokens around the image in the prefill measurement.
    pub text_tokens: usize,
    /// Tokens decoded for the decode measurement.
    pub decode_tokens: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { runs: 3, text_tokens: 32, decode_tokens: 16 }
    }
}

/// One measured figure: median milliseconds and the work it did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figure {
    pub median_ms: f64,
    pub runs_ms: Vec<f64>,
    pub flops: f64,
    pub gflops_per_s: f64,
}

/// Everything `glimpse bench` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub timestamps: bool,
    pub cpu: String,
    pub text_model: String,
    pub mmproj: String,
    /// The best-case f32 GEMM on this device (the peak the other figures are compared with).
    pub peak_gemm: Figure,
    /// Buffer-to-buffer copy bandwidth, GB/s (bytes read plus bytes written).
    pub copy_gb_per_s: f64,
    /// The best case of a shader reading memory (`read_peak.wgsl`, loads only), GB/s: the
    /// ceiling of the weight-bound decode GEMVs.
    pub read_gb_per_s: f64,
    /// The main GEMM at the ViT FFN shape with the mmproj's weight type.
    pub gemm: Figure,
    pub gemm_shape: [usize; 3],
    pub gemm_type: String,
    /// The decode GEMV at the LLM FFN shape with the text model's weight type.
    pub gemv: Figure,
    pub gemv_shape: [usize; 2],
    pub gemv_type: String,
    pub gemv_gb_per_s: f64,
    pub vision_tile: Figure,
    pub prefill: Figure,
    pub prefill_tokens: usize,
    pub prefill_tokens_per_s: f64,
    pub decode_token: Figure,
    pub decode_tokens_per_s: f64,
    /// Weight bytes a decode step reads (every layer's matrices and the output projection).
    pub decode_weight_bytes: u64,
    /// `decode_weight_bytes` over the decode step's time, GB/s.
    pub decode_gb_per_s: f64,
    /// One decode step with every dispatch timed on its own: GPU ms and dispatches per entry
    /// point, largest first. The per-dispatch passes make the sum larger than `decode_token`.
    pub decode_kernels: Vec<KernelTime>,
    /// (vision + prefill time) / (their FLOPs at the peak rate): the bar is <= 2.
    pub vision_prefill_vs_peak: f64,
    pub gpu_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// GPU time of one entry point's dispatches in a profiled run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    pub entry: String,
    pub ms: f64,
    pub dispatches: usize,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// How a figure is timed.
#[derive(Clone, Copy, PartialEq)]
enum Clock {
    /// GPU timestamps around the recorded dispatches (wall clock when the device has none).
    Gpu,
    /// Wall clock around the submit (buffer copies are outside any timed pass).
    Wall,
}

/// Runs `record` `runs` times, each in its own submit, after one warm-up run.
fn measure(
    gpu: &Gpu,
    runs: usize,
    flops: f64,
    clock: Clock,
    mut record: impl FnMut(&mut Recorder) -> Result<(), Error>,
) -> Result<Figure, Error> {
    // One warm-up run compiles the pipelines.
    let mut rec = Recorder::new(gpu);
    record(&mut rec)?;
    rec.finish()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let mut rec = Recorder::new(gpu);
        rec.stage("measured");
        record(&mut rec)?;
        let t = Instant::now();
        let done = rec.finish()?;
        let wall = t.elapsed().as_secs_f64() * 1e3;
        let gpu_ms: f64 = done.stage_ms.iter().map(|(_, ms)| ms).sum();
        times.push(if clock == Clock::Wall || done.stage_ms.is_empty() { wall } else { gpu_ms });
    }
    let runs_ms = times.clone();
    let median_ms = median(&mut times);
    Ok(Figure { median_ms, runs_ms, flops, gflops_per_s: flops / median_ms / 1e6 })
}

fn random(gpu: &Gpu, n: usize, label: &str) -> Result<Tensor, Error> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    Ok(gpu.upload_f32(&v, label)?)
}

/// A random weight of `ty`, `[n_out, n_in]`.
fn random_weight(gpu: &Gpu, ty: GgmlType, n_in: usize, n_out: usize) -> Result<crate::gpu::Weight, Error> {
    let src: Vec<f32> = (0..n_in * n_out).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1).collect();
    let bytes = crate::gguf::quant::quantize(ty, &src).map_err(|e| Error::Unsupported(e.to_string()))?;
    Ok(gpu.upload_weight("bench", ty, &[n_in as u64, n_out as u64], &bytes)?)
}

/// Bytes of the weights one decode step reads: every matrix but the token embedding, which it
/// gathers one row of, unless the output projection is tied to it.
fn decode_weight_bytes(g: &Gguf) -> u64 {
    let tied = !g.tensors().iter().any(|t| t.name == "output.weight");
    g.tensors().iter().filter(|t| t.dims.len() >= 2 && (t.name != "token_embd.weight" || tied)).map(|t| t.n_bytes).sum()
}

/// The type most of a file's matrix bytes use.
fn main_type(g: &Gguf, prefix: &str) -> GgmlType {
    let mut best = (GgmlType::F32, 0u64);
    for ty in GgmlType::ALL {
        let bytes: u64 = g
            .tensors()
            .iter()
            .filter(|t| t.ty == ty && t.name.starts_with(prefix) && t.dims.len() >= 2)
            .map(|t| t.n_bytes)
            .sum();
        if bytes > best.1 {
            best = (ty, bytes);
        }
    }
    best.0
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .map(|m| format!("{m}, {} threads", std::thread::available_parallelism().map_or(1, |n| n.get())))
        .unwrap_or_else(|| "unknown".into())
}

/// Peak resident set size of this process (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Measures everything on the model pair `text` + `mmproj`.
pub fn run(
    gpu: &Gpu,
    text: &Path,
    mmproj: &Path,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, Error> {
    let runs = opts.runs;
    progress("loading the model");
    let (tg, vg) = (Gguf::open(text)?, Gguf::open(mmproj)?);
    let tower = VisionTower::load(gpu, &vg)?;
    let projector = Projector::load(gpu, &vg, &tower.cfg)?;
    let model = TextModel::load(gpu, &tg)?;
    let (vc, tc): (VisionConfig, TextConfig) = (tower.cfg.clone(), model.cfg.clone());
    let (gemm_type, gemv_type) = (main_type(&vg, "v.blk."), main_type(&tg, "blk."));
    let decode_weight_bytes = decode_weight_bytes(&tg);
    drop((tg, vg));

    progress("device peak (f32 GEMM), copy bandwidth and read rate");
    let (pm, pk, pn) = (1024, 768, 768);
    let a = random(gpu, pm * pk, "peak.a")?;
    let b = random(gpu, pk * pn, "peak.b")?;
    let c = gpu.tensor(pm * pn, "peak.c")?;
    let tiling = PeakTiling::for_gpu(gpu);
    let peak_gemm = measure(gpu, runs, flops::gemm(pm, pk, pn), Clock::Gpu, |rec| {
        Ok(kernels::peak::gemm_f32_peak(rec, &a, &b, &c, pm, pn, pk, tiling)?)
    })?;
    let copy_len = 16 << 20;
    let (src, dst) = (gpu.tensor(copy_len, "copy.src")?, gpu.tensor(copy_len, "copy.dst")?);
    let copy = measure(gpu, runs, 0.0, Clock::Wall, |rec| {
        rec.copy(&src, 0, &dst, 0, copy_len);
        Ok(())
    })?;
    // Read and write: 2 x 4 bytes per element.
    let copy_gb_per_s = 8.0 * copy_len as f64 / copy.median_ms / 1e6;
    // The same 64 MiB read by 16 Ki invocations of 256 vec4s each.
    let (threads, per) = (copy_len / 4 / 256, 256);
    let pattern = ReadPattern::for_gpu(gpu);
    let read = measure(gpu, runs, 0.0, Clock::Gpu, |rec| {
        Ok(kernels::peak::read_peak(rec, &src, &dst, threads, per, pattern)?)
    })?;
    let read_gb_per_s = 4.0 * copy_len as f64 / read.median_ms / 1e6;
    drop((a, b, c, src, dst));

    progress("main GEMM and GEMV");
    let (gm, gk, gn) = (vc.n_pos(), vc.n_embd, vc.n_ff);
    let w = random_weight(gpu, gemm_type, gk, gn)?;
    let (x, y) = (random(gpu, gm * gk, "gemm.x")?, gpu.tensor(gm * gn, "gemm.y")?);
    let gemm = measure(gpu, runs, flops::gemm(gm, gk, gn), Clock::Gpu, |rec| {
        Ok(kernels::matmul(rec, &x, &w, &y, gm, MatmulOpts::default())?)
    })?;
    let (vk, vn) = (tc.n_embd, tc.n_ff);
    let wv = random_weight(gpu, gemv_type, vk, vn)?;
    let (xv, yv) = (random(gpu, vk, "gemv.x")?, gpu.tensor(vn, "gemv.y")?);
    let gemv = measure(gpu, runs, flops::gemm(1, vk, vn), Clock::Gpu, |rec| {
        Ok(kernels::matmul(rec, &xv, &wv, &yv, 1, MatmulOpts::default())?)
    })?;
    let gemv_gb_per_s = wv.bytes() as f64 / gemv.median_ms / 1e6;
    drop((w, x, y, wv, xv, yv));

    progress("vision encoder, one tile");
    let vs = tower.scratch(gpu)?;
    let ps = projector.scratch(gpu, &vc)?;
    let n_image = vc.tokens_per_tile();
    let n_prefill = n_image + opts.text_tokens;
    let ts = model.scratch(gpu, n_prefill)?;
    let mut kv = model.kv_cache(gpu, n_prefill + opts.decode_tokens + 1)?;
    gpu.write_f32(&vs.pixels, 0, &vec![0.25; vs.pixels.len()]);
    let hidden = match &projector {
        Projector::Mlp { fc1, .. } => Some(fc1.w.n_out),
        Projector::Idefics3 { .. } => None,
    };
    let vision_flops = flops::vision_dense(&vc) + flops::projector(&vc, n_image, hidden);
    let vision_tile = measure(gpu, runs, vision_flops, Clock::Gpu, |rec| {
        tower.forward(rec, &vs)?;
        projector.forward(rec, &vc, &ps, &vs.x, &ts.x, 0)
    })?;

    progress("prefill");
    let ids: Vec<u32> = (0..n_prefill as u32).map(|i| i * 31 % tc.n_vocab as u32).collect();
    gpu.write_u32(&ts.ids, 0, &ids);
    let prefill = measure(gpu, runs, flops::text_forward(&tc, n_prefill, 0), Clock::Gpu, |rec| {
        kv.set_len(0);
        model.embed(rec, &ts, n_prefill)?;
        model.forward(rec, &ts, &mut kv, n_prefill)
    })?;

    progress("decode");
    let mut times = Vec::new();
    let mut decode_flops = 0.0;
    kv.set_len(n_prefill);
    for i in 0..opts.decode_tokens {
        gpu.write_u32(&ts.ids, 0, &[(i as u32 * 17) % tc.n_vocab as u32]);
        decode_flops = flops::text_forward(&tc, 1, kv.len);
        // Every call (warm-up and measured) decodes at the same position.
        let at = kv.len;
        let f = measure(gpu, 1, decode_flops, Clock::Gpu, |rec| {
            kv.set_len(at);
            model.embed(rec, &ts, 1)?;
            model.forward(rec, &ts, &mut kv, 1)
        })?;
        times.push(f.median_ms);
    }
    let runs_ms = times.clone();
    let decode_ms = median(&mut times);
    let decode_token =
        Figure { median_ms: decode_ms, runs_ms, flops: decode_flops, gflops_per_s: decode_flops / decode_ms / 1e6 };
    let mut rec = Recorder::profiled(gpu);
    kv.set_len(n_prefill);
    model.embed(&mut rec, &ts, 1)?;
    model.forward(&mut rec, &ts, &mut kv, 1)?;
    let profile = rec.finish()?;
    let mut decode_kernels: Vec<KernelTime> = profile
        .stage_ms
        .into_iter()
        .zip(profile.stage_passes)
        .map(|((entry, ms), dispatches)| KernelTime { entry, ms, dispatches })
        .collect();
    decode_kernels.sort_by(|a, b| b.ms.total_cmp(&a.ms));

    let at_peak_ms = (vision_tile.flops + prefill.flops) / (peak_gemm.gflops_per_s * 1e6);
    Ok(BenchReport {
        adapter: gpu.describe(),
        timestamps: gpu.caps.timestamps,
        cpu: cpu_name(),
        text_model: text.display().to_string(),
        mmproj: mmproj.display().to_string(),
        copy_gb_per_s,
        read_gb_per_s,
        gemm_shape: [gm, gk, gn],
        gemm_type: gemm_type.to_string(),
        gemv_shape: [vk, vn],
        gemv_type: gemv_type.to_string(),
        gemv_gb_per_s,
        prefill_tokens: n_prefill,
        prefill_tokens_per_s: n_prefill as f64 / prefill.median_ms * 1e3,
        decode_tokens_per_s: 1e3 / decode_token.median_ms,
        decode_weight_bytes,
        decode_gb_per_s: decode_weight_bytes as f64 / decode_token.median_ms / 1e6,
        decode_kernels,
        vision_prefill_vs_peak: (vision_tile.median_ms + prefill.median_ms) / at_peak_ms,
        gpu_bytes: gpu.allocated_bytes(),
        peak_rss_bytes: peak_rss_bytes(),
        peak_gemm,
        gemm,
        gemv,
        vision_tile,
        prefill,
        decode_token,
    })
}

impl BenchReport {
    /// The report as a table for people.
    pub fn table(&self) -> String {
        let f = |x: &Figure| format!("{:>10.1} ms  {:>8.2} GFLOP/s", x.median_ms, x.gflops_per_s);
        let [m, k, n] = self.gemm_shape;
        let [vk, vn] = self.gemv_shape;
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let read = |gb_per_s: f64| 100.0 * gb_per_s / self.read_gb_per_s;
        let rows = [
            ("peak f32 GEMM [1024x768x768]".to_string(), f(&self.peak_gemm)),
            ("copy bandwidth (read + write)".into(), format!("{:>10.2} GB/s", self.copy_gb_per_s)),
            ("shader read rate".into(), format!("{:>10.2} GB/s", self.read_gb_per_s)),
            (format!("GEMM {} [{m}x{k}x{n}]", self.gemm_type), f(&self.gemm)),
            (
                format!("GEMV {} [{vk}x{vn}]", self.gemv_type),
                format!("{}  {:.2} GB/s ({:.0}% of read)", f(&self.gemv), self.gemv_gb_per_s, read(self.gemv_gb_per_s)),
            ),
            ("vision encode, one tile".into(), f(&self.vision_tile)),
            (
                format!("prefill, {} tokens", self.prefill_tokens),
                format!("{}  {:.1} tokens/s", f(&self.prefill), self.prefill_tokens_per_s),
            ),
            (
                "decode, per token".into(),
                format!("{}  {:.2} tokens/s", f(&self.decode_token), self.decode_tokens_per_s),
            ),
            (
                format!("decode weights, {:.1} MB per token", self.decode_weight_bytes as f64 / 1e6),
                format!("{:>10.2} GB/s ({:.0}% of read)", self.decode_gb_per_s, read(self.decode_gb_per_s)),
            ),
            ("vision + prefill vs. peak".into(), format!("{:>10.2} x the time at peak", self.vision_prefill_vs_peak)),
            ("GPU memory allocated".into(), format!("{:>10.1} MiB", mib(self.gpu_bytes))),
            ("peak host RSS".into(), format!("{:>10.1} MiB", mib(self.peak_rss_bytes))),
        ];
        let mut s = format!("device  {} (timestamps: {})\ncpu     {}\n", self.adapter, self.timestamps, self.cpu);
        s += &format!("model   {} + {}\n\n", self.text_model, self.mmproj);
        for (label, value) in rows {
            s += &format!("{label:<34}{value}\n");
        }
        let profiled: f64 = self.decode_kernels.iter().map(|k| k.ms).sum();
        if profiled <= 0.0 {
            return s; // no timestamps on this device
        }
        s += &format!("\ndecode step by kernel (each dispatch timed alone: {profiled:.1} ms in all)\n");
        for k in &self.decode_kernels {
            let share = 100.0 * k.ms / profiled;
            s += &format!("  {:<32}{:>10.2} ms  {share:>5.1}%  {} dispatches\n", k.entry, k.ms, k.dispatches);
        }
        s
    }
}

/// One pruning plan measured end to end on the demo image (medians over runs).
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodFigure {
    pub plan: String,
    pub gflops_dense: f64,
    pub gflops_executed: f64,
    /// GPU ms of the vision tower, the selection and the projector.
    pub vision_ms: f64,
    /// GPU ms of the embeddings and the LLM prefill (with any in-LLM selection).
    pub prefill_ms: f64,
    pub decode_tokens_per_s: f64,
    pub kv_bytes: u64,
    /// Wall-clock ms of the whole ask (vision to last token).
    pub wall_ms: f64,
    /// Dense FLOPs over executed, and the dense plan's wall time over this plan's.
    pub flops_ratio: f64,
    pub time_ratio: f64,
}

/// The demo image every method is measured on.
const DEMO_IMAGE: &[u8] = include_bytes!("../assets/shapes.png");

/// Runs none and each of `plans` on the demo image, one tile, `decode_tokens` tokens: the
/// executed FLOPs next to the time they took, per stage.
pub fn methods(
    engine: &mut crate::engine::Engine,
    plans: &[crate::prune::plan::PrunePlan],
    runs: usize,
    decode_tokens: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<MethodFigure>, Error> {
    use crate::engine::AskOptions;
    let image = crate::model::preprocess::decode(DEMO_IMAGE)?;
    let question = "What shapes are in the picture?";
    let mut out: Vec<MethodFigure> = Vec::new();
    let mut all = vec![crate::prune::plan::PrunePlan::none()];
    all.extend(plans.iter().cloned());
    for plan in &all {
        progress(&format!("method {plan}"));
        let opts =
            AskOptions { max_tokens: decode_tokens, max_tiles: Some(1), prune: plan.clone(), ..Default::default() };
        // A warm-up ask compiles the pipelines this plan uses.
        engine.ask(&image, question, &opts, &mut |_| {})?;
        let (mut vision, mut prefill, mut decode, mut wall) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let a = engine.ask(&image, question, &opts, &mut |_| {})?;
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            let stage = |names: &[&str]| -> f64 {
                a.report.gpu_ms.iter().filter(|(n, _)| names.contains(&n.as_str())).map(|(_, ms)| ms).sum()
            };
            vision.push(stage(&["vision", "prune", "projector"]));
            prefill.push(stage(&["embed", "prefill"]));
            let steps = a.report.generated_tokens.saturating_sub(1).max(1) as f64;
            decode.push(steps / (stage(&["decode"]).max(1e-9) / 1e3));
            last = Some(a);
        }
        let Some(a) = last else { continue };
        let p = a.report.pruning.as_ref();
        let (exec, dense) = p.map_or((0.0, 0.0), |p| (p.flops_executed, p.flops_dense));
        let wall_ms = median(&mut wall);
        let base = out.first().map_or(wall_ms, |b| b.wall_ms);
        out.push(MethodFigure {
            plan: plan.to_string(),
            gflops_dense: dense / 1e9,
            gflops_executed: exec / 1e9,
            vision_ms: median(&mut vision),
            prefill_ms: median(&mut prefill),
            decode_tokens_per_s: median(&mut decode),
            kv_bytes: a.report.kv_bytes_used,
            wall_ms,
            flops_ratio: if exec > 0.0 { dense / exec } else { 1.0 },
            time_ratio: base / wall_ms.max(1e-9),
        });
    }
    Ok(out)
}

/// The methods as a table.
pub fn methods_table(rows: &[MethodFigure]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "\n{:<20} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}\n",
        "plan", "GFLOP", "FLOPs x", "vision ms", "prefill ms", "decode/s", "KV KiB", "wall ms", "time x"
    );
    for r in rows {
        s += &format!(
            "{:<20} {:>9.2} {:>9.2} {:>10.0} {:>10.0} {:>9.2} {:>9.1} {:>9.0} {:>8.2}\n",
            r.plan,
            r.gflops_executed,
            r.flops_ratio,
            r.vision_ms,
            r.prefill_ms,
            r.decode_tokens_per_s,
            r.kv_bytes as f64 / 1024.0,
            r.wall_ms,
            r.time_ratio
        );
    }
    s
}
