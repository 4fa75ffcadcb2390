//! `glimpse-train`: trains glimpse's bundled demo VLM on generated scenes, on the CPU with
//! candle, and exports it as GGUF (F16 and Q8_0) in llama.cpp's LLaVA layout.
//!
//! Why candle: it is pure Rust on the CPU (no libtorch to install), has reverse-mode autograd
//! over plain tensor ops and a multi-threaded GEMM, and is small enough to build in a few minutes
//! on two cores. The model is written with primitive ops only (our own norms, rope, attention),
//! so every gradient comes from candle's core autograd.

mod data;
mod model;
mod softmax;
mod spec;
mod trim;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use glimpse::dataset::{QuestionKind, Split};
use glimpse::gguf::GgmlType;
use glimpse::model::names::{TRIM_PREFIX, TRIM_TOKEN_EMBD};
use glimpse::rng::SplitMix64;

use data::{Encoder, Group, TokenDrop};
use model::{Aux, Model, Weights};
use trim::Curriculum;

#[derive(Parser)]
#[command(name = "glimpse-train", about = "Train glimpse's bundled demo VLM on generated scenes")]
struct Args {
    /// Output directory for the GGUF pairs and the training log
    #[arg(long, default_value = "models/shapes-vlm")]
    out: PathBuf,
    /// Optimiser steps
    #[arg(long, default_value_t = 6000)]
    steps: usize,
    /// Scenes per step
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Questions per scene (the scene's image is encoded once for all of them)
    #[arg(long, default_value_t = 4)]
    questions: usize,
    /// Peak learning rate (AdamW; linear warm-up, then cosine decay to 5%)
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Warm-up steps
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Validate (and write a checkpoint pair) every this many steps
    #[arg(long, default_value_t = 500)]
    eval_every: usize,
    /// Validation questions
    #[arg(long, default_value_t = 512)]
    val: usize,
    /// Weight of the auxiliary losses (0: answers only): per patch, object and place on the image
    /// rows the decoder reads; the place the last layer's heads read at the answer; a relation's
    /// direction and place difference at the last feed-forward's input
    #[arg(long, default_value_t = 0.5)]
    aux: f64,
    /// Weight of background patches in the auxiliary loss (object patches weigh 1)
    #[arg(long, default_value_t = 0.2)]
    background: f64,
    /// Weight of the loss that points the feature layer's CLS attention (VisionZip's score) at
    /// the objects
    #[arg(long, default_value_t = 0.2)]
    cls: f64,
    /// Weight of the loss that points the last decoder layer's attention, at the answer, at the
    /// objects the answer is read from (attention supervision; 0: none)
    #[arg(long, default_value_t = 1.0)]
    look: f64,
    /// Share of training questions that see a random subset of the visual tokens (most object
    /// patches, 5-50% of the background), as pruning sends them
    #[arg(long, default_value_t = 0.3)]
    drop: f32,
    /// Train the vision tower alone on the per-patch objects (no decoder): a pre-training phase
    #[arg(long)]
    vision_only: bool,
    /// Train the learned token trimmer (smarttrim) jointly with the model: needs --resume
    #[arg(long)]
    trim: bool,
    /// With --trim, train the trimmer alone (the model stays as it is)
    #[arg(long)]
    freeze: bool,
    /// Weight of the self-distillation loss (KL to the unpruned answer) with --trim
    #[arg(long, default_value_t = 1.0)]
    kd: f64,
    /// Weight, with --trim, of the loss that scores the patches each answer needs above the rest
    #[arg(long, default_value_t = 1.0)]
    keep: f64,
    /// Lowest keep ratio of the --trim curriculum
    #[arg(long, default_value_t = 0.0625)]
    trim_floor: f32,
    /// Share of the steps over which the --trim curriculum lowers the keep-ratio floor from 1
    #[arg(long, default_value_t = 0.5)]
    anneal: f64,
    /// Start from this directory's text-f16.gguf and mmproj-f16.gguf (a checkpoint) instead of
    /// forge's random initialisation
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start the vision tower and projector from this directory's mmproj-f16.gguf (a pre-trained
    /// tower) and the decoder from forge's initialisation
    #[arg(long)]
    vision_from: Option<PathBuf>,
    /// Train and validate on these question kinds only (comma-separated: colour, shape, count,
    /// position, exists, relation; default all), to study one skill
    #[arg(long, value_delimiter = ',', value_parser = kind)]
    only: Vec<QuestionKind>,
    /// First training sample (resume a schedule on fresh data)
    #[arg(long, default_value_t = 0)]
    first_sample: u64,
}

fn kind(name: &str) -> Result<QuestionKind, String> {
    QuestionKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
        let names: Vec<&str> = QuestionKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown question kind {name:?}: one of {}", names.join(", "))
    })
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.steps > 0 && args.batch > 0 && args.questions > 0 && args.eval_every > 0,
        "--steps, --batch, --questions and --eval-every must be positive"
    );
    anyhow::ensure!((0.0..=1.0).contains(&args.drop), "--drop is a share in 0..=1");
    anyhow::ensure!(args.trim_floor > 0.0 && args.trim_floor <= 1.0, "--trim-floor is a keep ratio in (0, 1]");
    anyhow::ensure!((0.0..=1.0).contains(&args.anneal), "--anneal is a share of the steps in 0..=1");
    anyhow::ensure!(!args.trim || args.resume.is_some(), "--trim fine-tunes a trained model: give it --resume DIR");
    let dev = Device::Cpu;
    let spec = spec::spec(args.trim)?;
    let open = |dir: &PathBuf, name: &str| {
        glimpse::gguf::Gguf::open(dir.join(name)).with_context(|| format!("{}", dir.display()))
    };
    let (text, mmproj) = match (&args.resume, &args.vision_from) {
        (Some(dir), None) => (open(dir, "text-f16.gguf")?, open(dir, "mmproj-f16.gguf")?),
        (None, Some(dir)) => (spec::initial(&spec)?.0, open(dir, "mmproj-f16.gguf")?),
        (None, None) => spec::initial(&spec)?,
        (Some(_), Some(_)) => anyhow::bail!("--resume and --vision-from exclude each other"),
    };
    let model = Model::new(&text, &mmproj)?;
    let mut weights = Weights::load(&[&text, &mmproj], &dev)?;
    if args.trim {
        // A checkpoint without a trimmer gets forge's; its question table starts at zero, so the
        // first picks rank the tokens alone.
        let (text0, mmproj0) = spec::initial(&spec)?;
        if weights.add_missing(&[&text0, &mmproj0], &dev)?.iter().any(|n| n == TRIM_TOKEN_EMBD) {
            weights.zero(TRIM_TOKEN_EMBD)?;
        }
    }
    let enc = Encoder::new(&text, &mmproj)?;
    eprintln!(
        "model: {} parameters; vision {} px / {} px patches -> {} tokens; vocabulary {}",
        weights.n_params(),
        model.vision_cfg.image_size,
        model.vision_cfg.patch_size,
        model.vision_cfg.n_patches(),
        enc.tokenizer().n_vocab()
    );
    let kinds: &[QuestionKind] = if args.only.is_empty() { &QuestionKind::ALL } else { &args.only };
    let mut val: Vec<Group> =
        (0..args.val as u64).map(|i| enc.example(Split::Validation, i)).collect::<anyhow::Result<_>>()?;
    val.retain(|g| g.asked.iter().all(|a| kinds.contains(&a.kind)));

    let params = ParamsAdamW { lr: args.lr, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.01 };
    let aux = Aux::new(model.text_cfg.n_embd, data::N_PATCH_CLASSES, model.vision_cfg.patches_per_side(), &dev)?;
    if let Some(dir) = &args.resume
        && aux.load(dir, &dev)?
    {
        eprintln!("auxiliary heads from {}", dir.join(model::AUX_FILE).display());
    }
    let frozen = args.trim && args.freeze;
    let trained =
        if frozen { weights.vars_named(TRIM_PREFIX) } else { weights.vars().into_iter().chain(aux.vars()).collect() };
    let mut opt = AdamW::new(trained, params)?;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let log_path = args.out.join("train-log.tsv");
    let mut log = std::fs::File::create(&log_path).with_context(|| log_path.display().to_string())?;
    let header = if args.vision_only {
        "step\tseconds\tpatch_colour\tpatch_shape"
    } else {
        "step\tseconds\tloss\tval_accuracy\tval_smarttrim_25"
    };
    writeln!(log, "{header}")?;

    let start = Instant::now();
    let mut next = args.first_sample;
    let mut rng = SplitMix64::new(glimpse::rng::mix(args.first_sample ^ 0x7EA1_D80B));
    // The trimmer decides what a question sees while it trains.
    let drop = TokenDrop { share: if args.trim { 0.0 } else { args.drop }, keep: (0.05, 0.5) };
    let curriculum = Curriculum { floor: args.trim_floor, anneal: (args.steps as f64 * args.anneal) as usize };
    let mut losses = Losses::default();
    let mut best = -1.0f64;
    for step in 1..=args.steps {
        opt.set_learning_rate(schedule(args, step));
        let mut groups: Vec<Group> = (0..args.batch as u64)
            .map(|i| enc.scene(Split::Train, next + i, args.questions, kinds, drop, &mut rng))
            .collect::<anyhow::Result<_>>()?;
        next += args.batch as u64;
        if groups.iter().all(|g| g.asked.is_empty()) {
            continue; // --only kinds none of these scenes allow
        }
        let batch = enc.batch(&groups, &dev)?;
        let vision = model.vision(&weights, &batch.pixels)?;
        // A loss that reaches no trained weight (its weight 0, or the model frozen) is skipped.
        let mut total = Tensor::zeros((), DType::F32, &dev)?;
        if args.aux > 0.0 && !frozen {
            let patches = aux.losses(&vision.embeddings, &batch.patch_labels, args.background)?;
            total = (total + ((&patches.classes + &patches.place)? * args.aux)?)?;
            losses.add("patches", scalar(&patches.classes)?);
            losses.add("place", scalar(&patches.place)?);
        }
        if let Some(att) = vision.cls_attention.as_ref().filter(|_| args.cls > 0.0 && !frozen) {
            let cls = model::cls_loss(att, &batch.patch_labels)?;
            total = (total + (&cls * args.cls)?)?;
            losses.add("cls", scalar(&cls)?);
        }
        if args.vision_only {
            opt.backward_step(&total)?;
            losses.step();
            progress(step, args.steps, start, &losses, best);
            if step.is_multiple_of(args.eval_every) || step == args.steps {
                let (colour, shape) = patch_accuracy(&model, &weights, &aux, &enc, &val, &dev)?;
                eprintln!("\rstep {step}: object patches: colour {:.1}%, shape {:.1}%", 100.0 * colour, 100.0 * shape);
                writeln!(log, "{step}\t{:.0}\t{colour:.4}\t{shape:.4}", start.elapsed().as_secs_f64())?;
                losses = Losses::default();
                // Pre-training is judged on the shapes, the hard part.
                if shape >= best {
                    best = shape;
                    spec::export(&spec, &Arc::new(weights.values()?), GgmlType::F16, &args.out)?;
                    aux.save(&args.out)?;
                }
            }
            continue;
        }
        let answer = if args.trim {
            let floor = curriculum.floor_at(step);
            let t = trim::losses(&model, &weights, &enc, &mut groups, (&batch, &vision), floor, &mut rng, &dev)?;
            total = (total + (&t.distill * args.kd)? + (&t.look * args.look)? + (&t.keep * args.keep)?)?;
            losses.add("distill", scalar(&t.distill)?);
            losses.add("keep", scalar(&t.keep)?);
            losses.add("look", scalar(&t.look)?);
            losses.add("kept", t.kept);
            t.answer
        } else {
            let decoded = model.decoder(&weights, &batch, &vision.embeddings, None)?;
            if args.look > 0.0 {
                let look = model::look_loss(&decoded.last_attention, &batch)?;
                total = (total + (&look * args.look)?)?;
                losses.add("look", scalar(&look)?);
            }
            if args.aux > 0.0 {
                let place = aux.attended_place(&decoded.last_heads, &batch)?;
                total = (total + (&place * args.aux)?)?;
                losses.add("heads_place", scalar(&place)?);
                let factors = aux.relation_factors(&decoded.last_ffn_input, &batch)?;
                total = (total + (&factors * args.aux)?)?;
                losses.add("factors", scalar(&factors)?);
            }
            model::loss(&model.predicted_logits(&weights, &batch, &decoded.hidden)?, &batch.targets)?
        };
        losses.add("answer", scalar(&answer)?);
        opt.backward_step(&(total + &answer)?)?;
        losses.step();
        progress(step, args.steps, start, &losses, best);
        if step.is_multiple_of(args.eval_every) || step == args.steps {
            let score = accuracy(&model, &weights, &enc, &val, &dev)?;
            let acc = score.overall();
            let trimmed = if args.trim {
                let mut pruned = val.clone();
                trim::prune(&model, &weights, &enc, &mut pruned, 0.25, &dev)?;
                Some(accuracy(&model, &weights, &enc, &pruned, &dev)?.overall())
            } else {
                None
            };
            let secs = start.elapsed().as_secs_f64();
            let loss = losses.mean("answer");
            let column = trimmed.map_or(String::new(), |t| format!("{t:.4}"));
            writeln!(log, "{step}\t{secs:.0}\t{loss:.4}\t{acc:.4}\t{column}")?;
            let with_trim = trimmed.map_or(String::new(), |t| format!(", smarttrim:25% {:.1}%", 100.0 * t));
            eprintln!(
                "\rstep {step}: loss {loss:.4}, validation accuracy {:.1}%{with_trim} ({secs:.0} s); {}",
                100.0 * acc,
                score.by_kind()
            );
            losses = Losses::default();
            // A trimmed model is judged on both what it answers whole and at a quarter of the
            // tokens.
            let score = trimmed.map_or(acc, |t| (acc + t) / 2.0);
            if score >= best {
                best = score;
                spec::export(&spec, &Arc::new(weights.values()?), GgmlType::F16, &args.out)?;
                aux.save(&args.out)?;
            }
        }
    }
    // The best checkpoint (F16) is on disk: its Q8_0 twin is quantised from it.
    let best_f16 = glimpse::gguf::Gguf::open(args.out.join("text-f16.gguf"))?;
    let best_mm = glimpse::gguf::Gguf::open(args.out.join("mmproj-f16.gguf"))?;
    let values = Weights::load(&[&best_f16, &best_mm], &dev)?.values()?;
    spec::export(&spec, &Arc::new(values), GgmlType::Q8_0, &args.out)?;
    eprintln!(
        "done in {:.1} min: best validation score {:.1}%; wrote {}",
        start.elapsed().as_secs_f64() / 60.0,
        100.0 * best,
        args.out.display()
    );
    Ok(())
}

fn scalar(t: &candle_core::Tensor) -> anyhow::Result<f64> {
    Ok(t.to_scalar::<f32>()? as f64)
}

/// Linear warm-up to `lr`, then cosine decay to 5% of it at the last step.
fn schedule(args: &Args, step: usize) -> f64 {
    if step <= args.warmup {
        return args.lr * step as f64 / args.warmup as f64;
    }
    let t = (step - args.warmup) as f64 / (args.steps - args.warmup).max(1) as f64;
    args.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Right answers per question kind (`QuestionKind::ALL`'s order) out of how many were asked.
#[derive(Default)]
struct Score {
    right: [usize; QuestionKind::ALL.len()],
    asked: [usize; QuestionKind::ALL.len()],
}

impl Score {
    fn overall(&self) -> f64 {
        self.right.iter().sum::<usize>() as f64 / self.asked.iter().sum::<usize>().max(1) as f64
    }

    /// "colour 35/36, shape 30/35, ..." over the kinds that were asked.
    fn by_kind(&self) -> String {
        let kinds = QuestionKind::ALL.iter().enumerate().filter(|&(i, _)| self.asked[i] > 0);
        kinds.map(|(i, k)| format!("{} {}/{}", k.name(), self.right[i], self.asked[i])).collect::<Vec<_>>().join(", ")
    }
}

/// Which of `groups`' questions have every answer id (end of generation included) as the argmax
/// under teacher forcing: exactly the questions greedy decoding answers right.
fn accuracy(model: &Model, w: &Weights, enc: &Encoder, groups: &[Group], dev: &Device) -> anyhow::Result<Score> {
    let mut score = Score::default();
    for chunk in groups.chunks(64) {
        let batch = enc.batch(chunk, dev)?;
        let hits: Vec<u8> = model.target_logits(w, &batch)?.0.argmax(D::Minus1)?.eq(&batch.targets)?.to_vec1()?;
        let mut at = 0;
        for a in chunk.iter().flat_map(|g| &g.asked) {
            let kind = QuestionKind::ALL.iter().position(|&k| k == a.kind).unwrap_or(0);
            score.right[kind] += hits[at..at + a.answer.len()].iter().all(|&h| h == 1) as usize;
            score.asked[kind] += 1;
            at += a.answer.len();
        }
    }
    Ok(score)
}

/// The auxiliary head's accuracy on the object patches of `groups`' images: (colour, shape).
fn patch_accuracy(
    model: &Model,
    w: &Weights,
    aux: &Aux,
    enc: &Encoder,
    groups: &[Group],
    dev: &Device,
) -> anyhow::Result<(f64, f64)> {
    let n_shapes = glimpse::dataset::Shape::ALL.len() as u32;
    let (mut colour, mut shape, mut total) = (0usize, 0usize, 0usize);
    for chunk in groups.chunks(64) {
        let batch = enc.batch(chunk, dev)?;
        let predicted = aux.predict(&model.vision(w, &batch.pixels)?.embeddings)?;
        let labels: Vec<u32> = batch.patch_labels.to_vec1()?;
        for (&p, &l) in predicted.iter().zip(&labels).filter(|(_, l)| **l > 0) {
            // A patch called background is wrong on both counts.
            let named = p > 0;
            let (p, l) = (p.saturating_sub(1), l - 1);
            colour += (named && p / n_shapes == l / n_shapes) as usize;
            shape += (named && p % n_shapes == l % n_shapes) as usize;
            total += 1;
        }
    }
    Ok((colour as f64 / total.max(1) as f64, shape as f64 / total.max(1) as f64))
}

/// Running sums of the named losses since the last validation, and the steps they cover.
#[derive(Default)]
struct Losses {
    sums: Vec<(&'static str, f64)>,
    steps: usize,
}

impl Losses {
    fn add(&mut self, name: &'static str, v: f64) {
        match self.sums.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.1 += v,
            None => self.sums.push((name, v)),
        }
    }

    fn step(&mut self) {
        self.steps += 1;
    }

    fn mean(&self, name: &str) -> f64 {
        self.sums.iter().find(|s| s.0 == name).map_or(0.0, |s| s.1 / self.steps.max(1) as f64)
    }
}

/// One status line: a bar, the step, time left, the running losses and the best validation
/// score so far.
fn progress(step: usize, steps: usize, start: Instant, losses: &Losses, best: f64) {
    let err = std::io::stderr();
    if !err.is_terminal() && !step.is_multiple_of(50) {
        return;
    }
    let done = step as f64 / steps as f64;
    let left = start.elapsed().as_secs_f64() * (1.0 - done) / done;
    let bar: String = (0..30).map(|i| if (i as f64) < done * 30.0 { '#' } else { '.' }).collect();
    let best = if best < 0.0 { "-".to_string() } else { format!("{:.1}%", 100.0 * best) };
    let end = if err.is_terminal() { "\r" } else { "\n" };
    let others: Vec<String> = losses
        .sums
        .iter()
        .filter(|s| s.0 != "answer")
        .map(|s| format!("{} {:.3}", s.0, s.1 / losses.steps.max(1) as f64))
        .collect();
    eprint!(
        "[{bar}] {step}/{steps} {:.1} min left, loss {:.4} ({}), best validation {best}{end}",
        left / 60.0,
        losses.mean("answer"),
        others.join(", ")
    );
}
