//! The `glimpse` command line. stdout carries only the result (or JSON with `--json`); progress,
//! logs and errors go to stderr. Exit codes: 0 success (also on a closed pipe), 2 error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "glimpse", version, about = "A small vision-language model on any GPU, with visual-token pruning")]
#[command(propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a GGUF file holds: model summary, metadata and tensor table
    Inspect {
        /// The GGUF file (a text model or an mmproj)
        file: PathBuf,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Answer a question about an image
    Ask(AskArgs),
    /// Run no pruning and each method at one budget on the same frame: a table and overlays
    Compare(CompareArgs),
    /// Headless: ask the same question about every frame of a source, one JSON line per frame
    Stream(StreamArgs),
    /// Accuracy on held-out generated questions under a pruning plan, or the sweep of every
    /// method and budget with its accuracy-vs-FLOPs plot
    Eval(EvalArgs),
    /// Measure vision encode, prefill, decode and the main kernels against the device's peak
    Bench(BenchArgs),
    /// The desktop app: live frames, the kept-patch overlay, FLOPs per frame, two methods side
    /// by side (built with the `app` feature; webcams with `camera`)
    App(AppArgs),
    /// Write one generated scene as a PNG and print its questions with their answers
    Scene {
        /// Split the scene comes from: test (held out), validation or train
        #[arg(long, default_value = "test")]
        split: glimpse::dataset::Split,
        /// Scene number within the split
        #[arg(long, default_value_t = 0)]
        index: u64,
        /// Side in pixels
        #[arg(long, default_value_t = 384)]
        size: u32,
        /// The PNG to write
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a random-weight model pair (text.gguf + mmproj.gguf) in llama.cpp's exact format
    Forge {
        /// Model shapes: tiny, tiny-qwen2, tiny-llava, smolvlm-256m, smolvlm-500m, llava
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Type of the quantisable weights: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k
        #[arg(long)]
        qtype: Option<glimpse::gguf::GgmlType>,
        /// Seed for the weights (the same seed writes byte-identical files)
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Override a setting, e.g. text.n_layer=4 or vision.qtype.ffn=q4_k (repeatable;
        /// an unknown key lists them all)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Output directory (created if missing)
        #[arg(long)]
        out: PathBuf,
    },
}

/// The model pair: both files, or neither for the bundled model.
#[derive(clap::Args)]
struct ModelArgs {
    /// Text model GGUF (llama or qwen2); default: the bundled model (models/shapes-vlm)
    #[arg(short = 'm', long, requires = "mmproj")]
    model: Option<PathBuf>,
    /// Vision projector GGUF (mmproj: idefics3 or mlp)
    #[arg(long, requires = "model")]
    mmproj: Option<PathBuf>,
}

impl ModelArgs {
    /// (text, mmproj): the given pair, or the bundled one.
    fn pair(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        match (&self.model, &self.mmproj) {
            (Some(t), Some(m)) => Ok((t.clone(), m.clone())),
            _ => glimpse::bundled::model_pair().map_err(anyhow::Error::msg),
        }
    }
}

/// A question about an image, and the model pair to ask.
#[derive(clap::Args)]
struct FrameArgs {
    /// The question
    question: String,
    #[command(flatten)]
    model: ModelArgs,
    /// The image (PNG or JPEG)
    #[arg(long)]
    image: PathBuf,
}

#[derive(clap::Args)]
struct AskArgs {
    #[command(flatten)]
    frame: FrameArgs,
    /// Most tokens to generate
    #[arg(short = 'n', long = "max-tokens", default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy)
    #[arg(long, default_value_t = 0.0)]
    temp: f32,
    /// Top-k for sampling (at most 64)
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Top-p for sampling
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    /// Sampling seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most image tiles (idefics3); default: what the mmproj says, as llama.cpp's mtmd does
    #[arg(long = "max-tiles")]
    max_tiles: Option<usize>,
    /// KV-cache size in tokens
    #[arg(long, default_value_t = 4096)]
    context: usize,
    /// Visual-token pruning: none, visionzip:64, visionzip:10%, visionzip:64,dominant=54,contextual=10,
    /// random:25%,seed=7, grid:64 (budgets are visual tokens entering the LLM)
    #[arg(long, default_value = "none", value_name = "METHOD[:BUDGET][,KEY=VALUE]")]
    prune: glimpse::prune::plan::PrunePlan,
    /// Write the kept-patch overlay to this PNG (of the overview when the image is tiled)
    #[arg(long, value_name = "FILE.png")]
    overlay: Option<PathBuf>,
    /// GPU adapter: a name substring or a backend (vulkan, metal, dx12); default GLIMPSE_ADAPTER or
    /// the high-performance one
    #[arg(long)]
    adapter: Option<String>,
    /// Print the answer and its report as one JSON document
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    frame: FrameArgs,
    /// Budget for every method: visual tokens (64) or a share of the frame's (25%)
    #[arg(long, default_value = "25%")]
    budget: String,
    /// Methods to run after `none` (comma-separated)
    #[arg(long, value_delimiter = ',', default_values_t = glimpse::compare::METHODS.iter().map(|m| m.to_string()))]
    methods: Vec<String>,
    /// Most tokens per answer
    #[arg(short = 'n', long = "max-tokens", default_value_t = 32)]
    max_tokens: usize,
    /// Most image tiles (idefics3); default: what the mmproj says
    #[arg(long = "max-tiles")]
    max_tiles: Option<usize>,
    /// Directory for one overlay PNG per method (created if missing)
    #[arg(long, default_value = "compare")]
    out: PathBuf,
    /// GPU adapter (name substring or backend)
    #[arg(long)]
    adapter: Option<String>,
    /// Print the rows as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct StreamArgs {
    /// The question asked about every frame (with --synthetic: each scene's own question when
    /// left out)
    question: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Image files or folders of PNG / JPEG files (sorted by name)
    #[arg(long, num_args = 1.., required_unless_present = "synthetic", conflicts_with = "synthetic")]
    images: Vec<PathBuf>,
    /// Generated scenes (the held-out test split) instead of files, each with a question and its
    /// expected answer
    #[arg(long)]
    synthetic: bool,
    /// Side of the generated scenes in pixels
    #[arg(long = "scene-size", default_value_t = 384)]
    scene_size: u32,
    /// Start over after the last image
    #[arg(long = "loop")]
    looped: bool,
    /// Stop after this many frames
    #[arg(long)]
    frames: Option<u64>,
    /// Visual-token pruning, as for ask
    #[arg(long, default_value = "none")]
    prune: glimpse::prune::plan::PrunePlan,
    /// Most image tiles (idefics3); the camera default is 1
    #[arg(long = "max-tiles", default_value_t = 1)]
    max_tiles: usize,
    /// Most tokens per answer
    #[arg(short = 'n', long = "max-tokens", default_value_t = 32)]
    max_tokens: usize,
    /// GPU adapter (name substring or backend)
    #[arg(long)]
    adapter: Option<String>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A model trained on glimpse's generated scenes
    #[command(flatten)]
    model: ModelArgs,
    /// Questions (the first N of the split)
    #[arg(short = 'N', long = "questions", default_value_t = 50)]
    questions: usize,
    /// Split: test (held out), validation or train
    #[arg(long, default_value = "test")]
    split: glimpse::dataset::Split,
    /// Pruning plan, as for ask
    #[arg(long, default_value = "none")]
    prune: glimpse::prune::plan::PrunePlan,
    /// Run none and every method at 50%, 25%, 12.5% and 6.25% instead of one plan
    #[arg(long)]
    sweep: bool,
    /// With --sweep: write the accuracy-vs-GFLOP plot here
    #[arg(long, default_value = "sweep.png")]
    plot: PathBuf,
    /// Side of the generated scenes in pixels
    #[arg(long = "scene-size", default_value_t = 384)]
    scene_size: u32,
    /// Most image tiles (idefics3)
    #[arg(long = "max-tiles", default_value_t = 1)]
    max_tiles: usize,
    /// Most tokens per answer
    #[arg(short = 'n', long = "max-tokens", default_value_t = 8)]
    max_tokens: usize,
    /// GPU adapter (name substring or backend)
    #[arg(long)]
    adapter: Option<String>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AppArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Webcam index (default: the first camera, if any; else generated scenes)
    #[arg(long, conflicts_with_all = ["images", "synthetic"])]
    camera: Option<u32>,
    /// Webcam resolution, e.g. 640x480 (default: the camera's fastest format)
    #[arg(long, value_parser = parse_resolution, value_name = "WxH")]
    resolution: Option<(u32, u32)>,
    /// Image files or folders of PNG / JPEG files, shown as a looped slideshow
    #[arg(long, num_args = 1.., conflicts_with = "synthetic")]
    images: Vec<PathBuf>,
    /// Generated scenes (each with its own question and expected answer)
    #[arg(long)]
    synthetic: bool,
    /// Side of the generated scenes in pixels
    #[arg(long = "scene-size", default_value_t = 384)]
    scene_size: u32,
    /// Pruning method at start: none, visionzip, mustdrop, adaptive, fastv, random, grid, smarttrim
    #[arg(long, default_value = "visionzip")]
    method: String,
    /// Visual-token budget at start, percent of the frame's tokens
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=100))]
    budget: u32,
    /// Most image tiles (idefics3); the live default is 1
    #[arg(long = "max-tiles", default_value_t = 1)]
    max_tiles: usize,
    /// Ask about every new frame from the start
    #[arg(long)]
    continuous: bool,
    /// GPU adapter for the model (name substring or backend)
    #[arg(long)]
    adapter: Option<String>,
}

/// `640x480` as (640, 480).
fn parse_resolution(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}`: expected WIDTHxHEIGHT, e.g. 640x480");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    match (w.trim().parse(), h.trim().parse()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(bad()),
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Forge (once, cached) and measure this preset's shapes
    #[arg(long, default_value = "smolvlm-256m")]
    preset: String,
    /// Weight type of the forged model
    #[arg(long, default_value = "q8_0")]
    qtype: glimpse::gguf::GgmlType,
    /// Measure these files instead of a forged preset (with --mmproj)
    #[arg(short = 'm', long, requires = "mmproj")]
    model: Option<PathBuf>,
    #[arg(long, requires = "model")]
    mmproj: Option<PathBuf>,
    /// Runs per figure (medians are reported)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where forged models are kept between runs
    #[arg(long, default_value = "target/glimpse-forged")]
    cache: PathBuf,
    /// Pruning plans measured end to end against dense on the demo image (one tile); `none` to
    /// skip this part
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "visionzip:25%,mustdrop:25%,adaptive:0.5,fastv:25%,random:25%,grid:25%"
    )]
    methods: Vec<String>,
    /// GPU adapter (name substring or backend)
    #[arg(long)]
    adapter: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // Mesa's Vulkan device-select layer connects to Wayland to rank devices and prints
    // "XDG_RUNTIME_DIR is invalid" on headless machines (Jetsons, CI); glimpse picks its adapter
    // itself, so the layer only adds noise. The user's own setting wins.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: first thing in main, before any thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    match run() {
        Ok(code) => code,
        Err(err) => {
            if err
                .chain()
                .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Ask(args) => ask(&args),
        Command::Bench(args) => bench(&args),
        Command::App(args) => app(args),
        Command::Compare(args) => compare(&args),
        Command::Stream(args) => stream(&args),
        Command::Eval(args) => eval(&args),
        Command::Scene { split, index, size, out } => scene(split, index, size, &out),
        Command::Forge { preset, qtype, seed, set, out } => forge(&preset, qtype, seed, &set, &out),
    }
}

fn ask(a: &AskArgs) -> anyhow::Result<ExitCode> {
    use glimpse::engine::{AskOptions, Engine, EngineOptions};
    use glimpse::model::sampler::Sampling;
    let image = std::fs::read(&a.frame.image).with_context(|| format!("--image {}", a.frame.image.display()))?;
    let opts = EngineOptions {
        gpu: glimpse::gpu::GpuOptions { adapter: a.adapter.clone(), ..Default::default() },
        context: a.context,
    };
    let start = std::time::Instant::now();
    let gpu = std::sync::Arc::new(glimpse::gpu::Gpu::new(&opts.gpu)?);
    let (text, mmproj) = a.frame.model.pair()?;
    let weights = Engine::weight_bytes(&text, &mmproj).context("cannot read the model files")?;
    let label = format!("loading {} + {}", text.display(), mmproj.display());
    let mut engine = with_progress(&gpu, weights, &label, || Engine::load_on(gpu.clone(), &text, &mmproj, &opts))
        .context("cannot load the model")?;
    eprintln!("loaded in {:.1} s on {}", start.elapsed().as_secs_f64(), engine.gpu().describe());
    let ask = AskOptions {
        max_tokens: a.max_tokens,
        sampling: Sampling { temperature: a.temp, top_k: a.top_k, top_p: a.top_p, seed: a.seed },
        max_tiles: a.max_tiles,
        prune: a.prune.clone(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let mut stream = |piece: &str| {
        if !a.json && write_err.is_none() {
            write_err = out.write_all(piece.as_bytes()).and_then(|_| out.flush()).err();
        }
    };
    let answer = engine
        .ask_bytes(&image, &a.frame.question, &ask, &mut stream)
        .with_context(|| format!("cannot answer about {}", a.frame.image.display()))?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    } else {
        writeln!(out)?;
        let r = &answer.report;
        let gpu: Vec<String> = r.gpu_ms.iter().map(|(n, ms)| format!("{n} {ms:.0} ms")).collect();
        eprintln!(
            "{} tiles, {} image + {} text tokens, {} generated ({:?}); GPU: {}",
            r.tiles,
            r.image_tokens,
            r.prompt_tokens - r.image_tokens,
            r.generated_tokens,
            answer.stop,
            gpu.join(", ")
        );
        if let Some(p) = &r.pruning {
            eprintln!(
                "pruning {}; {:.2} of {:.2} GFLOP dense",
                p.summary(),
                p.flops_executed / 1e9,
                p.flops_dense / 1e9
            );
        }
    }
    if let (Some(path), Some(p)) = (&a.overlay, &answer.report.pruning) {
        write_overlay(path, &image, p)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws the last pruning stage's kept-patch grid over the image: of the single tile, or of the
/// overview when the image was tiled (it covers the whole image).
fn write_overlay(path: &std::path::Path, image: &[u8], p: &glimpse::prune::report::FrameReport) -> anyhow::Result<()> {
    let Some(grid) = p.stages.last().and_then(|s| s.grids.last()) else {
        eprintln!("no pruning ran: no overlay written");
        return Ok(());
    };
    let img = glimpse::prune::overlay::upscale(&glimpse::model::preprocess::decode(image)?, 768);
    glimpse::prune::overlay::draw_with_legend(&img, grid, &p.summary())
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("overlay: {}", path.display());
    Ok(())
}

/// Runs `f` while a progress bar on stderr follows the bytes uploaded to `gpu` (weights are
/// most of them) against `total`. Plain lines when stderr is not a terminal.
fn with_progress<T>(gpu: &glimpse::gpu::Gpu, total: u64, label: &str, f: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        eprintln!("{label} ...");
        return f();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let base = gpu.allocated_bytes();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let frac = ((gpu.allocated_bytes() - base) as f64 / total.max(1) as f64).min(1.0);
                let bar: String = (0..30).map(|i| if (i as f64) < frac * 30.0 { '#' } else { '.' }).collect();
                eprint!("\r{label} [{bar}] {:>3.0}%", frac * 100.0);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!();
        });
        let out = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}

fn compare(a: &CompareArgs) -> anyhow::Result<ExitCode> {
    use glimpse::engine::{AskOptions, Engine, EngineOptions};
    let bytes = std::fs::read(&a.frame.image).with_context(|| format!("--image {}", a.frame.image.display()))?;
    let image =
        glimpse::model::preprocess::decode(&bytes).with_context(|| format!("--image {}", a.frame.image.display()))?;
    let opts = EngineOptions {
        gpu: glimpse::gpu::GpuOptions { adapter: a.adapter.clone(), ..Default::default() },
        ..Default::default()
    };
    let (text, mmproj) = a.frame.model.pair()?;
    let mut engine = Engine::load(&text, &mmproj, &opts).context("cannot load the model")?;
    let mut methods = a.methods.clone();
    if !engine.has_trimmer() && methods.iter().any(|m| m == "smarttrim") {
        methods.retain(|m| m != "smarttrim");
        eprintln!("skipping smarttrim: {} has no learned token trimmer", mmproj.display());
    }
    eprintln!("comparing none and {} at {} on {} ...", methods.join(", "), a.budget, engine.gpu().describe());
    let base = AskOptions { max_tokens: a.max_tokens, max_tiles: a.max_tiles, ..Default::default() };
    let rows = glimpse::compare::run(&mut engine, &image, &a.frame.question, &methods, &a.budget, &base)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    for row in &rows {
        if let Some(img) = glimpse::compare::overlay_image(&image, row) {
            let name = row.plan.split(':').next().unwrap_or("method");
            let file = a.out.join(format!("{name}.png"));
            img.save(&file).with_context(|| format!("cannot write {}", file.display()))?;
            eprintln!("overlay: {}", file.display());
        }
    }
    let out = if a.json { serde_json::to_string_pretty(&rows)? + "\n" } else { glimpse::compare::table(&rows) };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn stream(a: &StreamArgs) -> anyhow::Result<ExitCode> {
    use glimpse::engine::{AskOptions, Engine, EngineOptions};
    use glimpse::frames::{FrameSource, Scenes};
    let mut source: Box<dyn FrameSource> = if a.synthetic {
        Box::new(Scenes::new(glimpse::dataset::Split::Test, a.scene_size))
    } else {
        Box::new(glimpse::frames::Files::new(&a.images, a.looped)?)
    };
    if a.question.is_none() && !a.synthetic {
        anyhow::bail!("a question is needed (only generated scenes bring their own)");
    }
    let frames = if a.synthetic { Some(a.frames.unwrap_or(10)) } else { a.frames };
    let opts = EngineOptions {
        gpu: glimpse::gpu::GpuOptions { adapter: a.adapter.clone(), ..Default::default() },
        ..Default::default()
    };
    let (text, mmproj) = a.model.pair()?;
    let mut engine = Engine::load(&text, &mmproj, &opts).context("cannot load the model")?;
    eprintln!("streaming {} on {} ...", source.describe(), engine.gpu().describe());
    let ask = AskOptions {
        max_tokens: a.max_tokens,
        max_tiles: Some(a.max_tiles),
        prune: a.prune.clone(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    let s = glimpse::stream::run(&mut engine, source.as_mut(), a.question.as_deref(), &ask, frames, &mut out)?;
    eprintln!("{} frames answered, {} failed", s.answered, s.failed);
    Ok(if s.answered == 0 && s.failed > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Writes a generated scene and prints its questions and answers.
fn scene(split: glimpse::dataset::Split, index: u64, size: u32, out: &Path) -> anyhow::Result<ExitCode> {
    use glimpse::dataset::{Scene, SceneConfig, questions};
    let seed = split.seed(index);
    let scene = Scene::generate(seed, &SceneConfig::default());
    scene.render(size, size).save(out).with_context(|| format!("cannot write {}", out.display()))?;
    for q in questions(&scene, seed) {
        println!("{}\t{}", q.text, q.answer);
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(a: &EvalArgs) -> anyhow::Result<ExitCode> {
    use glimpse::engine::{AskOptions, Engine, EngineOptions};
    let opts = EngineOptions {
        gpu: glimpse::gpu::GpuOptions { adapter: a.adapter.clone(), ..Default::default() },
        ..Default::default()
    };
    let (text, mmproj) = a.model.pair()?;
    let mut engine = Engine::load(&text, &mmproj, &opts).context("cannot load the model")?;
    let plans = if a.sweep { glimpse::eval::sweep_plans(&glimpse::eval::SWEEP_METHODS) } else { vec![a.prune.clone()] };
    let base = AskOptions { max_tokens: a.max_tokens, max_tiles: Some(a.max_tiles), ..Default::default() };
    let mut rows = Vec::new();
    for plan in &plans {
        let label = format!("{plan} ({} questions)", a.questions);
        let mut progress = |done: usize| {
            if done == a.questions || done.is_multiple_of(10) {
                eprintln!("{label}: {done}/{}", a.questions);
            }
        };
        match glimpse::eval::run(&mut engine, a.split, a.questions, a.scene_size, plan, &base, &mut progress) {
            Ok(row) => rows.push(row),
            // A sweep goes on past a plan this model cannot run (e.g. FastV's layer 2 of 2).
            Err(e) if a.sweep => eprintln!("skipped {plan}: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let out = if a.json { serde_json::to_string_pretty(&rows)? + "\n" } else { glimpse::eval::table(&rows) };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    if a.sweep {
        glimpse::eval::plot(&rows).save(&a.plot).with_context(|| format!("cannot write {}", a.plot.display()))?;
        eprintln!("plot: {}", a.plot.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let (text, mmproj) = match (&a.model, &a.mmproj) {
        (Some(t), Some(m)) => (t.clone(), m.clone()),
        _ => {
            let dir = a.cache.join(format!("{}-{}", a.preset, a.qtype.name()));
            let (t, m) = (dir.join("text.gguf"), dir.join("mmproj.gguf"));
            if !(t.exists() && m.exists()) {
                let mut spec = glimpse::forge::ForgeSpec::preset(&a.preset)?;
                spec.set_qtype(a.qtype);
                eprintln!("forging {} ({}) into {} ...", a.preset, a.qtype.name(), dir.display());
                glimpse::forge::forge(&spec, &dir)?;
            }
            (t, m)
        }
    };
    let gpu = glimpse::gpu::Gpu::new(&glimpse::gpu::GpuOptions { adapter: a.adapter.clone(), ..Default::default() })?;
    let opts = glimpse::bench::BenchOptions { runs: a.runs, ..Default::default() };
    let start = std::time::Instant::now();
    let mut progress = |what: &str| eprintln!("[{:>6.1} s] {what} ...", start.elapsed().as_secs_f64());
    let report = glimpse::bench::run(&gpu, &text, &mmproj, &opts, &mut progress)?;
    let plans = a
        .methods
        .iter()
        .filter(|m| m.as_str() != "none")
        .map(|m| m.parse::<glimpse::prune::plan::PrunePlan>())
        .collect::<Result<Vec<_>, _>>()?;
    let methods = if plans.is_empty() {
        Vec::new()
    } else {
        let gpu = std::sync::Arc::new(gpu);
        let mut engine = glimpse::engine::Engine::load_on(gpu, &text, &mmproj, &Default::default())?;
        match glimpse::bench::methods(&mut engine, &plans, a.runs, 16, &mut progress) {
            Ok(m) => m,
            Err(e) => return Err(anyhow::Error::from(e).context("measuring the pruning methods")),
        }
    };
    let out = if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["methods"] = serde_json::to_value(&methods)?;
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        report.table() + &glimpse::bench::methods_table(&methods)
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "app"))]
fn app(_: AppArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this glimpse was built without the app: cargo build --release --features app (and camera for webcams)"
    )
}

#[cfg(feature = "app")]
fn app(a: AppArgs) -> anyhow::Result<ExitCode> {
    use glimpse::app::{AppOptions, Continuous, Settings, SourceSpec};
    if !glimpse::app::methods().any(|m| m == a.method) {
        let all: Vec<&str> = glimpse::app::methods().collect();
        anyhow::bail!("--method {}: expected one of {}", a.method, all.join(", "));
    }
    let source = if a.synthetic {
        SourceSpec::Scenes { size: a.scene_size }
    } else if !a.images.is_empty() {
        SourceSpec::Images(a.images.clone())
    } else {
        camera_source(a.camera, a.resolution)?.unwrap_or(SourceSpec::Scenes { size: a.scene_size })
    };
    let settings = Settings {
        method: a.method,
        budget_pct: a.budget,
        max_tiles: a.max_tiles.max(1),
        continuous: if a.continuous { Continuous::EveryFrame } else { Continuous::Off },
        ..Settings::default()
    };
    let opts = AppOptions {
        source,
        model: a.model.model.zip(a.model.mmproj),
        settings,
        gpu: glimpse::gpu::GpuOptions { adapter: a.adapter, ..Default::default() },
    };
    glimpse::app::run(opts).map_err(|e| anyhow::anyhow!("the app window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `--camera N`, or the first camera when none is named; `None` when there is no camera.
#[cfg(all(feature = "app", feature = "camera"))]
fn camera_source(
    index: Option<u32>,
    resolution: Option<(u32, u32)>,
) -> anyhow::Result<Option<glimpse::app::SourceSpec>> {
    let index = match index {
        Some(i) => Some(i),
        None => glimpse::frames::camera::list().first().map(|c| c.index),
    };
    if index.is_none() {
        eprintln!("no camera found: showing generated scenes");
    }
    Ok(index.map(|index| glimpse::app::SourceSpec::Camera { index, resolution }))
}

#[cfg(all(feature = "app", not(feature = "camera")))]
fn camera_source(index: Option<u32>, _: Option<(u32, u32)>) -> anyhow::Result<Option<glimpse::app::SourceSpec>> {
    anyhow::ensure!(index.is_none(), "--camera: this glimpse was built without webcam support (feature camera)");
    Ok(None)
}

fn forge(
    preset: &str,
    qtype: Option<glimpse::gguf::GgmlType>,
    seed: u64,
    set: &[String],
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use glimpse::forge::ForgeSpec;
    let mut spec = ForgeSpec::preset(preset)?;
    spec.seed = seed;
    if let Some(ty) = qtype {
        spec.set_qtype(ty);
    }
    for kv in set {
        let (key, value) = kv.split_once('=').with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
        spec.set(key.trim(), value.trim()).with_context(|| format!("--set {kv}"))?;
    }
    let start = std::time::Instant::now();
    eprintln!("forging preset {preset} (seed {seed}) into {} ...", out.display());
    let forged = glimpse::forge::forge(&spec, out)?;
    eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    println!("{}\n{}", forged.text.display(), forged.mmproj.display());
    Ok(ExitCode::SUCCESS)
}

fn inspect(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let g = glimpse::gguf::Gguf::open(file).context("cannot read the GGUF file")?;
    let out = if json {
        serde_json::to_string_pretty(&glimpse::inspect::render_json(&g))? + "\n"
    } else {
        glimpse::inspect::render_text(&g)
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
