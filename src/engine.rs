//! The engine: load a text GGUF + an mmproj GGUF once, then answer questions about images. One
//! call per DESIGN.md stage — preprocess, vision encoder, projector, splice, prefill, decode —
//! everything between preprocess and decode on the GPU; the CPU reads back one token id per
//! step (or the top-k logits when sampling).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::gguf::Gguf;
use crate::gpu::kernels::{self, TOPK_MAX};
use crate::gpu::{Finished, Gpu, GpuOptions, Recorder, Tensor};
use crate::model::Error;
use crate::model::chat::{ChatTemplate, ImageMarkup, Message, Part, TemplateFamily};
use crate::model::config::{ProjectorKind, VisionConfig};
use crate::model::llm_drop::LlmText;
use crate::model::preprocess::{self, PreprocessParams, Preprocessed};
use crate::model::projector::{ConnectorTokens, Projector, ProjectorScratch};
use crate::model::prompt::{self, PromptPiece, TileId};
use crate::model::sampler::{Sampler, Sampling};
use crate::model::text::{KvCache, StepPositions, TextModel, TextScratch};
use crate::model::tokenizer::Tokenizer;
use crate::model::vision::{VisionScratch, VisionTower};
use crate::prune::flops;
use crate::prune::frame::{self, FrameFlops};
use crate::prune::llm::LlmPlan;
use crate::prune::plan::{DEFAULT_HEAD_THRESHOLD, Method, PrunePlan};
use crate::prune::report::PatchFate;
use crate::prune::report::{FrameReport, PatchGrid, StageReport};
use crate::prune::select;
use crate::prune::tokens::{PruneScratch, TileChoice, TileRecord, TileTokens};
use crate::prune::trimmer::Trimmer;
use crate::prune::windows::Stage1;

/// How to set the engine up.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub gpu: GpuOptions,
    /// KV-cache capacity in tokens (prompt + answer + follow-ups); capped by the model's context.
    pub context: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { gpu: GpuOptions::default(), context: 4096 }
    }
}

/// One request's settings.
#[derive(Clone, Debug)]
pub struct AskOptions {
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// idefics3 tiles: `None` = what the mmproj says (llama.cpp's mtmd, the reference), `Some(1)`
    /// = the overview only (the camera default).
    pub max_tiles: Option<usize>,
    /// How the image is placed in the chat template (mtmd's by default).
    pub markup: ImageMarkup,
    /// Visual-token pruning for this frame (none by default: the reference model).
    pub prune: PrunePlan,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            max_tokens: 256,
            sampling: Sampling::default(),
            max_tiles: None,
            markup: ImageMarkup::Mtmd,
            prune: PrunePlan::none(),
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    EndOfGeneration,
    MaxTokens,
    ContextFull,
}

/// What a request did: token counts per stage, GPU time per stage, memory.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AskReport {
    pub tiles: usize,
    pub image_tokens: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// GPU milliseconds per stage (timestamp queries; empty when the device has none).
    pub gpu_ms: Vec<(String, f64)>,
    /// Wall-clock milliseconds per stage as the CPU saw it.
    pub wall_ms: Vec<(String, f64)>,
    pub kv_tokens: usize,
    pub kv_bytes_used: u64,
    pub kv_bytes_allocated: u64,
    /// What pruning did to the frame and the FLOPs it ran (a new image's question only).
    pub pruning: Option<FrameReport>,
}

impl AskReport {
    fn add(list: &mut Vec<(String, f64)>, name: &str, ms: f64) {
        match list.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t += ms,
            None => list.push((name.to_string(), ms)),
        }
    }
}

/// An answer and its report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    pub text: String,
    pub tokens: Vec<u32>,
    pub stop: Stop,
    pub report: AskReport,
}

pub struct Engine {
    gpu: Arc<Gpu>,
    vision: VisionTower,
    projector: Projector,
    text: TextModel,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    preprocess: PreprocessParams,
    vs: VisionScratch,
    ps: ProjectorScratch,
    ts: TextScratch,
    kv: KvCache,
    prune: PruneScratch,
    /// The mmproj's learned token trimmer (`smarttrim`), when it has one.
    trimmer: Option<Trimmer>,
    /// Each tile's projected image rows, tile after tile, until the prompt is laid out; grown to
    /// the largest frame seen and reused.
    image_rows: Tensor,
    /// GPU-side outputs of token selection: the argmax id, or the top-k values and ids.
    pick_id: Tensor,
    pick_values: Tensor,
    pick_ids: Tensor,
    /// Zeros for adaptive head trimming (the attention output is cleared from it before the
    /// kept heads write their columns); allocated on first use, grown when needed.
    heads_zero: Option<Tensor>,
    /// The conversation so far (for follow-ups reusing the KV cache).
    history: Vec<Message>,
}

impl Engine {
    /// Loads both files and uploads their weights (the memory maps are dropped afterwards).
    pub fn load(text: &Path, mmproj: &Path, opts: &EngineOptions) -> Result<Engine, Error> {
        let gpu = Arc::new(Gpu::new(&opts.gpu)?);
        Self::load_on(gpu, text, mmproj, opts)
    }

    /// The bytes of weights `load` uploads from the pair (most of what it allocates): the
    /// denominator of a loading progress bar.
    pub fn weight_bytes(text: &Path, mmproj: &Path) -> Result<u64, Error> {
        [text, mmproj].iter().map(|p| Ok(Gguf::open(p)?.tensors().iter().map(|t| t.n_bytes).sum::<u64>())).sum()
    }

    /// As `load`, on an existing device (one the caller watches while loading, or shares).
    pub fn load_on(gpu: Arc<Gpu>, text: &Path, mmproj: &Path, opts: &EngineOptions) -> Result<Engine, Error> {
        let tg = Gguf::open(text)?;
        let vg = Gguf::open(mmproj)?;
        let vision = VisionTower::load(&gpu, &vg)?;
        let projector = Projector::load(&gpu, &vg, &vision.cfg)?;
        let model = TextModel::load(&gpu, &tg)?;
        if vision.cfg.projection_dim != model.cfg.n_embd {
            return Err(Error::Unsupported(format!(
                "{} projects to {} but {} is {} wide: not a matching pair",
                vg.name(),
                vision.cfg.projection_dim,
                tg.name(),
                model.cfg.n_embd
            )));
        }
        let tokenizer = Tokenizer::from_gguf(&tg)?;
        let text_of = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or("").to_string();
        let family = TemplateFamily::for_model(model.cfg.arch, vision.cfg.projector);
        let template = ChatTemplate::from_gguf(&tg, family, &text_of(tokenizer.bos()), &text_of(tokenizer.eos()))?;
        let context = opts.context.min(model.cfg.n_ctx).max(1);
        let vs = vision.scratch(&gpu)?;
        let ps = projector.scratch(&gpu, &vision.cfg)?;
        let ts = model.scratch(&gpu, 256.min(context))?;
        let kv = model.kv_cache(&gpu, context)?;
        let prune = prune_scratch(&gpu, &vision, 1)?;
        let (rows, width) = candidate_rows(&vision.cfg);
        let trimmer = Trimmer::load(&gpu, &vg, width, rows)?;
        let image_rows = gpu.tensor(vision.cfg.tokens_per_tile() * vision.cfg.projection_dim, "image_rows")?;
        Ok(Engine {
            prune,
            trimmer,
            image_rows,
            pick_id: gpu.tensor(1, "pick.id")?,
            pick_values: gpu.tensor(TOPK_MAX, "pick.values")?,
            pick_ids: gpu.tensor(TOPK_MAX, "pick.ids")?,
            heads_zero: None,
            preprocess: PreprocessParams::from_config(&vision.cfg),
            vision,
            projector,
            text: model,
            tokenizer,
            template,
            vs,
            ps,
            ts,
            kv,
            history: Vec::new(),
            gpu,
        })
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    pub fn vision(&self) -> &VisionTower {
        &self.vision
    }
    pub fn text(&self) -> &TextModel {
        &self.text
    }
    /// Whether the mmproj has a learned token trimmer (`--prune smarttrim:BUDGET`).
    pub fn has_trimmer(&self) -> bool {
        self.trimmer.is_some()
    }

    /// Answers `question` about an encoded image (PNG or JPEG bytes), starting a new
    /// conversation. `on_text` receives the answer as it is generated.
    pub fn ask_bytes(
        &mut self,
        image: &[u8],
        question: &str,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer, Error> {
        let img = preprocess::decode(image)?;
        self.ask(&img, question, opts, on_text)
    }

    /// Answers `question` about `image`, starting a new conversation.
    pub fn ask(
        &mut self,
        image: &image::RgbImage,
        question: &str,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer, Error> {
        let mut report = AskReport::default();
        let t = Instant::now();
        let pre = preprocess::preprocess(image, &self.preprocess, opts.max_tiles)?;
        AskReport::add(&mut report.wall_ms, "preprocess", ms(t));

        // mtmd's CLI puts the image after the question text.
        let messages = vec![Message::new("user", vec![Part::Text(question.to_string()), Part::Image])];
        let rendered = self.template.render(&messages, opts.markup)?;
        let cfg = &self.vision.cfg;
        let side = cfg.patches_per_side() / cfg.scale_factor.max(1);
        let choices =
            frame::choose(&opts.prune, pre.n_images(), side).map_err(|e| Error::Unsupported(e.to_string()))?;
        // The dense prompt bounds the real one (pruning only removes image tokens).
        let dense = prompt::build(&self.tokenizer, &rendered, &[pre.layout(cfg.projector, cfg.tokens_per_tile())])?;
        let n_dense = prompt::n_positions(&dense);
        if n_dense + 1 > self.kv.capacity && choices.is_none() {
            return Err(Error::Unsupported(format!(
                "the prompt takes {n_dense} positions, more than the context of {} (fewer tiles: --max-tiles)",
                self.kv.capacity
            )));
        }
        // A plan naming layers the model lacks fails before any GPU work.
        let n_image_dense = pre.n_images() * cfg.tokens_per_tile();
        LlmPlan::from_plan(&opts.prune, self.text.cfg.n_layer, n_image_dense).map_err(Error::Unsupported)?;
        report.tiles = pre.n_images();
        self.kv.set_len(0);
        self.history = messages;
        // The learned trimmer's question part, the same for every token of the frame.
        let trim_bias = match (&opts.prune.method, &self.trimmer) {
            (Method::SmartTrim, Some(t)) => Some(t.question.bias(&self.tokenizer.encode(question)?)),
            (Method::SmartTrim, None) => {
                return Err(Error::Unsupported(
                    "smarttrim needs a model with a learned token trimmer (glimpse.trim.* tensors in the mmproj, \
                     as glimpse-train writes them); this mmproj has none"
                        .into(),
                ));
            }
            _ => None,
        };
        let out = self.prefill(&pre, &rendered, choices.as_deref(), trim_bias.as_deref(), opts, &mut report)?;
        let mut answer = self.generate(out.token, opts, &mut report, on_text)?;
        answer.report.pruning = Some(self.frame_report(&opts.prune, &pre, &out, &answer.report));
        self.history.push(Message::text("assistant", &answer.text));
        Ok(answer)
    }

    /// The frame's pruning report: what each stage kept and the FLOPs, dense next to executed.
    fn frame_report(&self, plan: &PrunePlan, pre: &Preprocessed, out: &Prefilled, r: &AskReport) -> FrameReport {
        let choices = out.choices.as_deref();
        let (vc, tc) = (&self.vision.cfg, &self.text.cfg);
        let tiles = pre.n_images();
        let dense_tokens = tiles * vc.tokens_per_tile();
        let dense_prompt = r.prompt_tokens + dense_tokens - r.image_tokens;
        let heads = out.vision_heads.as_deref();
        let mut f = FrameFlops::vision_heads(vc, self.projector.hidden(), &out.vision_tokens, heads, choices);
        f.prefill_heads(tc, dense_prompt, &out.layer_rows, out.llm_heads.as_deref());
        // Head trimming's probes: S rows of every head per ViT block and per LLM layer.
        if let Some(h) = heads {
            let (n, rows) = (vc.n_pos(), PROBE_ROWS.min(vc.n_pos()));
            let blocks: usize = h.iter().map(Vec::len).sum();
            f.add_executed("prune", blocks as f64 * flops::attention_probe(rows, vc.n_embd, |_| n));
        }
        if let Some(h) = &out.llm_heads {
            let n = r.prompt_tokens;
            let rows = PROBE_ROWS.min(n);
            let probe = flops::attention_probe(rows, tc.n_head * tc.head_dim, |i| n - rows + i + 1);
            f.add_executed("prune", h.len() as f64 * probe);
        }
        if let (Some(trimmer), Some(ch)) = (&self.trimmer, choices) {
            let trimmed = ch.iter().filter(|c| matches!(c, TileChoice::Learned { .. })).count();
            f.add_executed("prune", trimmed as f64 * trimmer.flops(vc.tokens_per_tile()));
        }
        f.decode(tc, dense_prompt, &out.cached_rows, r.generated_tokens);
        let in_llm = !out.layer_images.iter().all(|&n| n == r.image_tokens);
        FrameReport {
            method: plan.to_string(),
            budget: (choices.is_some() || in_llm).then(|| plan.budget_tokens(dense_tokens)),
            visual_tokens_dense: dense_tokens,
            visual_tokens: r.image_tokens,
            stages: out.stages.clone(),
            llm_tokens_per_layer: out.layer_images.clone(),
            // Summed over the frame's tiles.
            vision_heads_kept: heads.map(|h| {
                (0..h.iter().map(Vec::len).max().unwrap_or(0))
                    .map(|il| h.iter().filter_map(|t| t.get(il)).sum())
                    .collect()
            }),
            llm_heads_kept: out.llm_heads.clone(),
            flops_dense: f.dense(),
            flops_executed: f.executed(),
            flops_by_stage: f.stages,
        }
    }

    /// A follow-up question in the same conversation: only the new turn's tokens are run; the
    /// image and the earlier turns stay in the KV cache. The new text is what the chat template
    /// adds for this turn (llama.cpp's `common_chat_format_single` diff).
    pub fn follow_up(
        &mut self,
        question: &str,
        opts: &AskOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer, Error> {
        if self.history.is_empty() {
            return Err(Error::Unsupported("no conversation to follow up: ask about an image first".into()));
        }
        let past = self.template.render_with(&self.history, opts.markup, false)?;
        let mut history = self.history.clone();
        history.push(Message::text("user", question));
        let full = self.template.render_with(&history, opts.markup, true)?;
        let Some(new_part) = full.strip_prefix(past.as_str()) else {
            return Err(Error::Unsupported("the chat template rewrites earlier turns; cannot follow up".into()));
        };
        // llama.cpp keeps a newline the past conversation ended with.
        let new_text = if past.ends_with('\n') { format!("\n{new_part}") } else { new_part.to_string() };
        let ids = self.tokenizer.encode(&new_text)?;
        let mut report = AskReport { prompt_tokens: ids.len(), ..Default::default() };
        // Positions bound rows: pruning only ever holds fewer rows than positions.
        if ids.is_empty() || self.kv.len + ids.len() + 1 > self.kv.capacity {
            return Err(Error::Unsupported(format!(
                "the follow-up needs {} more positions; {} of {} are used (a larger --context)",
                ids.len(),
                self.kv.len,
                self.kv.capacity
            )));
        }
        if ids.len() > self.ts.max_tokens {
            self.ts = self.text.scratch(&self.gpu, ids.len())?;
        }
        self.gpu.write_u32(&self.ts.ids, 0, &ids);
        let t = Instant::now();
        let mut rec = Recorder::new(&self.gpu);
        rec.stage("prefill");
        self.text.embed(&mut rec, &self.ts, ids.len())?;
        self.text.forward(&mut rec, &self.ts, &mut self.kv, ids.len())?;
        let (first, _) = self.pick(rec, opts, &mut report, &mut Sampler::new(opts.sampling))?;
        AskReport::add(&mut report.wall_ms, "prefill", ms(t));
        self.history = history;
        let answer = self.generate(first, opts, &mut report, on_text)?;
        self.history.push(Message::text("assistant", &answer.text));
        Ok(answer)
    }

    /// The frame: each tile's vision tower and projector (pruned as `choices` or the plan says),
    /// tile by tile (grid tiles in raster order, then the overview) into a staging buffer; then
    /// the prompt, built with the token count each tile really sent, its embeddings with the
    /// image rows spliced in, and the LLM over all of it (dropping image tokens inside when the
    /// plan does). Returns the first generated token and what the pruning did.
    fn prefill(
        &mut self,
        pre: &Preprocessed,
        rendered: &str,
        choices: Option<&[TileChoice]>,
        trim_bias: Option<&[f32]>,
        opts: &AskOptions,
        report: &mut AskReport,
    ) -> Result<Prefilled, Error> {
        let tiles = pre.n_images();
        let trim_bias = trim_bias.map(|b| self.gpu.upload_f32(b, "trim.bias")).transpose()?;
        if tiles > self.prune.max_tiles() && !matches!(opts.prune.method, Method::None) {
            self.prune = prune_scratch(&self.gpu, &self.vision, tiles)?;
        }
        let (merge, key_share) = match &opts.prune.method {
            Method::MustDrop(p) if p.stage1 => (Some((p.window, p.merge_threshold)), Some(p.key_share)),
            _ => (None, None),
        };
        let cfg = self.vision.cfg.clone();
        let per_tile = cfg.tokens_per_tile();
        let n_text = cfg.projection_dim;
        // Every tile's pixels in one buffer; each is copied into the tower's input in turn.
        let tile_len = 3 * pre.size * pre.size;
        let mut pixels = Vec::with_capacity(tile_len * tiles);
        for tile in &pre.tiles {
            pixels.extend_from_slice(tile);
        }
        pixels.extend_from_slice(&pre.overview);
        let all_tiles = self.gpu.upload_f32(&pixels, "tiles")?;
        if self.image_rows.len() < tiles * per_tile * n_text {
            self.image_rows = self.gpu.tensor(tiles * per_tile * n_text, "image_rows")?;
        }
        let staging = &self.image_rows;

        let t = Instant::now();
        let mut rec = Recorder::new(&self.gpu);
        let mut tile_out: Vec<TileOut> = Vec::with_capacity(tiles);
        let mut records: Vec<(usize, TileRecord)> = Vec::new();
        let mut used: Vec<TileChoice> = Vec::new();
        let (adaptive, heads) = match &opts.prune.method {
            Method::Adaptive(p) => {
                (Some(p.mass), (p.head_threshold > DEFAULT_HEAD_THRESHOLD).then_some(p.head_threshold))
            }
            _ => (None, None),
        };
        // Head trimming: a probe buffer for S rows of every head, and zeros to clear the
        // attention output with.
        let probe = match heads {
            Some(_) => {
                let width = cfg.n_embd.max(self.text.cfg.n_head * self.text.cfg.head_dim);
                ensure_zeros(&self.gpu, &mut self.heads_zero, cfg.n_pos() * cfg.n_embd)?;
                Some(self.gpu.tensor(PROBE_ROWS * width, "heads.probe")?)
            }
            None => None,
        };
        let mut vision_heads: Vec<Vec<usize>> = Vec::new();
        let mut staged = 0;
        for index in 0..tiles {
            rec.copy(&all_tiles, index * tile_len, &self.vs.pixels, 0, tile_len);
            rec.stage("vision");
            let merged = match (merge, heads, &probe, &self.heads_zero) {
                (None, Some(threshold), Some(probe), Some(zero)) => {
                    let parts = (&self.vision, &self.vs, zero, probe);
                    let (next, kept) = vision_trimmed(&self.gpu, parts, rec, threshold, report)?;
                    rec = next;
                    vision_heads.push(kept);
                    None
                }
                (None, ..) => {
                    self.vision.forward(&mut rec, &self.vs)?;
                    None
                }
                (Some((w, threshold)), ..) => {
                    let parts = (&self.vision, &self.vs, &self.prune);
                    let (next, m) = vision_merged(&self.gpu, parts, rec, w, threshold, report)?;
                    rec = next;
                    Some(m)
                }
            };
            let first = cfg.has_cls as usize;
            let n_rows = first + merged.as_ref().map_or(cfg.n_patches(), Stage1::n_tokens);
            if let (Some(m), ProjectorKind::Idefics3) = (&merged, cfg.projector) {
                // The pixel shuffle needs every patch: each takes its merged token back.
                rec.stage("prune");
                self.prune.unmerge(&mut rec, &self.vs.x, cfg.n_embd, first, m)?;
            }
            let tokens = self.projector.tokens(&mut rec, &cfg, &self.ps, &self.vs.x)?;
            // An mlp sends the merged tokens themselves; idefics3 its shuffled groups.
            let tokens = ConnectorTokens {
                rows: if cfg.projector == ProjectorKind::Mlp { n_rows } else { tokens.rows },
                ..tokens
            };
            if let Some(share) = key_share {
                rec.stage("prune");
                let t = TileTokens { n_pos: n_rows, merged: merged.as_ref(), ..self.tile_tokens(&tokens) };
                self.prune.key_set(&mut rec, &t, key_set_size(share, t.n_visual()), index)?;
            }
            let choice = match (choices, adaptive) {
                (Some(c), _) => Some(c[index].clone()),
                (None, Some(mass)) => {
                    // The tile's own attention decides its budget: one submit to read the scores.
                    rec.stage("prune");
                    let h = self.prune.scores(&mut rec, &self.tile_tokens(&tokens))?;
                    let done = rec.finish()?;
                    record_gpu(report, &done.stage_ms);
                    rec = Recorder::new(&self.gpu);
                    Some(TileChoice::Keep(select::by_mass(&done.f32(h), mass)))
                }
                (None, None) => None,
            };
            let count = match &choice {
                None => {
                    rec.stage("projector");
                    let n = tokens.rows - first;
                    self.projector.project(&mut rec, &cfg, &self.ps, tokens.tensor, first, n, staging, staged)?;
                    n
                }
                Some(choice) => {
                    rec.stage("prune");
                    let mut t = self.tile_tokens(&tokens);
                    if let (TileChoice::Learned { .. }, Some(trimmer), Some(bias)) = (choice, &self.trimmer, &trim_bias)
                    {
                        trimmer.score(&mut rec, &t, bias)?;
                        t.learned = Some(&trimmer.scores);
                    }
                    let r = self.prune.select(&mut rec, &t, choice, index)?;
                    records.push((index, r));
                    used.push(choice.clone());
                    rec.stage("projector");
                    let n = choice.n_out();
                    self.projector.project(&mut rec, &cfg, &self.ps, &self.prune.out, 0, n, staging, staged)?;
                    n
                }
            };
            tile_out.push(TileOut { staged, count, merged });
            staged += count;
        }

        // The prompt with the real counts.
        let mut layout = pre.layout(cfg.projector, per_tile);
        let n_grid = layout.n_tokens_grid.len();
        layout.n_tokens_grid = tile_out[..n_grid].iter().map(|o| o.count).collect();
        layout.n_tokens_overview = tile_out[n_grid].count;
        let pieces = prompt::build(&self.tokenizer, rendered, &[layout])?;
        let n = prompt::n_positions(&pieces);
        report.prompt_tokens = n;
        report.image_tokens = staged;
        if n + 1 > self.kv.capacity {
            return Err(Error::Unsupported(format!(
                "the prompt takes {n} positions, more than the context of {} (fewer tiles: --max-tiles)",
                self.kv.capacity
            )));
        }
        if n > self.ts.max_tokens {
            self.ts = self.text.scratch(&self.gpu, n)?;
        }
        // Image slots get token 0 (any valid id): their rows are overwritten by the image rows.
        // A pruned tile's tokens keep their positions in the unpruned prompt (moving them together
        // cost the bundled model most of its relation answers): the tile spans its unpruned
        // width, and its rows' positions, known only on the GPU, are written over these
        // placeholders.
        let mut ids = Vec::with_capacity(n);
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        let mut at = StepPositions { offsets: Vec::with_capacity(n), span: 0 };
        let mut pruned: Vec<(&TileRecord, usize, usize, usize)> = Vec::new(); // (record, tile, row, position)
        for p in &pieces {
            let (rows, width) = match p {
                PromptPiece::Tokens(t) => {
                    ids.extend_from_slice(t);
                    (t.len(), t.len())
                }
                PromptPiece::Image { tile, n_tokens, .. } => {
                    let index = match tile {
                        TileId::Grid { row, col } => row * pre.grid.1 + col,
                        TileId::Overview => pre.tiles.len(),
                    };
                    spans.push((index, ids.len(), *n_tokens));
                    let width = match records.iter().find(|(i, _)| *i == index) {
                        Some((_, r)) => {
                            pruned.push((r, index, ids.len(), at.span));
                            r.n_visual()
                        }
                        None => *n_tokens,
                    };
                    ids.extend(std::iter::repeat_n(0, *n_tokens));
                    (*n_tokens, width)
                }
            };
            at.offsets.extend((at.span..at.span + rows).map(|o| o as u32));
            at.span += width;
        }
        self.gpu.write_u32(&self.ts.ids, 0, &ids);
        rec.stage("embed");
        self.text.embed(&mut rec, &self.ts, n)?;
        for &(index, row, k) in &spans {
            rec.copy(staging, tile_out[index].staged * n_text, &self.ts.x, row * n_text, k * n_text);
        }

        rec.stage("prefill");
        let n_image = staged;
        let llm = LlmPlan::from_plan(&opts.prune, self.text.cfg.n_layer, n_image).map_err(Error::Unsupported)?;
        // Head trimming submits once per layer: its report is read after the prefill instead.
        let reads = (!records.is_empty() && heads.is_none()).then(|| self.prune.read_report(&mut rec, records.len()));
        let key_reads = key_share.map(|_| self.prune.read_key_sets(&mut rec, tiles));
        let image_rows: Vec<usize> = spans.iter().flat_map(|&(_, r, k)| r..r + k).collect();
        if heads.is_some() {
            ensure_zeros(&self.gpu, &mut self.heads_zero, n * self.text.cfg.n_head * self.text.cfg.head_dim)?;
        }
        let mut llm_heads = None;
        if llm.is_none() {
            // The step begins here, with the pruned tiles' tokens at their unpruned positions.
            // LLM-side plans (MustDrop, FastV) make no tile choices and begin their own step at
            // consecutive positions.
            self.text.begin(&mut rec, &self.ts, &self.kv, &at)?;
            pruned_positions(&self.prune, &mut rec, &self.ts.positions, &pruned)?;
        }
        let (mut rec, dropped) = match (&llm, heads, &probe, &self.heads_zero) {
            (None, Some(threshold), Some(probe), Some(zero)) => {
                let parts = (&self.text, &self.ts, &mut self.kv, zero, probe);
                let (rec, kept) = prefill_trimmed(&self.gpu, parts, rec, (n, at.span), threshold, report)?;
                llm_heads = Some(kept);
                (rec, None)
            }
            (None, ..) => {
                self.text.layers(&mut rec, &self.ts, &mut self.kv, 0..self.text.cfg.n_layer, n)?;
                self.text.finish(&mut rec, &self.ts, &mut self.kv, n, at.span)?;
                (rec, None)
            }
            (Some(plan), ..) => {
                debug_assert!(pruned.is_empty());
                let mut key_set = |done: &Finished| -> Vec<usize> {
                    let (Some(h), Some(share)) = (key_reads, key_share) else { return Vec::new() };
                    let data = done.u32(h);
                    spans
                        .iter()
                        .flat_map(|&(index, r, k)| {
                            let set = self.prune.decode_key_set(&data, index, key_set_size(share, k), cfg.has_cls);
                            set.into_iter().filter(move |&c| c < k).map(move |c| r + c)
                        })
                        .collect()
                };
                let text = LlmText { gpu: &self.gpu, model: &self.text, s: &self.ts };
                let (rec, d) = text.prefill_dropping(rec, &mut self.kv, plan, n, image_rows.clone(), &mut key_set)?;
                record_gpu(report, &d.stage_ms);
                (rec, Some(d))
            }
        };
        let reads = match (reads, heads) {
            (None, Some(_)) if !records.is_empty() => Some(self.prune.read_report(&mut rec, records.len())),
            (reads, _) => reads,
        };
        let (token, done) = self.pick(rec, opts, report, &mut Sampler::new(opts.sampling))?;
        AskReport::add(&mut report.wall_ms, "vision+prefill", ms(t));

        // What each stage did, per tile.
        let mut stages = Vec::new();
        let side = cfg.patches_per_side();
        if merge.is_some() {
            let grids = tile_out
                .iter()
                .enumerate()
                .map(|(index, o)| {
                    o.merged.as_ref().map_or(PatchGrid::new(index, side, side), |m| stage1_grid(index, m))
                })
                .collect();
            let kept = tile_out.iter().map(|o| o.merged.as_ref().map_or(cfg.n_patches(), Stage1::n_tokens)).sum();
            stages.push(StageReport {
                name: "mustdrop.stage1".into(),
                grids,
                tokens_in: tiles * cfg.n_patches(),
                tokens_out: kept,
            });
        }
        if let Some(reads) = reads {
            let recs: Vec<TileRecord> = records.iter().map(|(_, r)| r.clone()).collect();
            let mut grids: Vec<PatchGrid> = self.prune.decode_report(&done, &reads, &recs);
            for (g, (index, _)) in grids.iter_mut().zip(&records) {
                g.tile = *index;
            }
            let kept = used.iter().map(TileChoice::n_out).sum();
            let name = opts.prune.name().into();
            stages.push(StageReport { name, grids, tokens_in: tiles * per_tile, tokens_out: kept });
        }
        let n_layer = self.text.cfg.n_layer;
        let (layer_rows, layer_images) = match &dropped {
            None => (vec![n; n_layer], vec![n_image; n_layer]),
            Some(d) => (d.layer_rows.clone(), d.layer_images.clone()),
        };
        if let (Some(d), Some(plan)) = (&dropped, &llm) {
            // One grid per tile: which of its tokens (their patches, when merged) survived.
            let grids = spans
                .iter()
                .map(|&(index, r, k)| {
                    let o = &tile_out[index];
                    let (mut g, cells) = token_cells(index, &cfg, o.merged.as_ref(), k);
                    for (c, covered) in cells.iter().enumerate() {
                        if d.survivors.binary_search(&(r + c)).is_err() {
                            let cells = g.fates.len();
                            covered.iter().filter(|&&p| p < cells).for_each(|&p| g.fates[p] = PatchFate::Dropped);
                        }
                    }
                    g
                })
                .collect();
            let name = if plan.keeps_positions() { "fastv" } else { "mustdrop.stage2" };
            let kept = image_rows.iter().filter(|r| d.survivors.binary_search(r).is_ok()).count();
            stages.push(StageReport { name: name.into(), grids, tokens_in: n_image, tokens_out: kept });
        }
        let vision_tokens = tile_out
            .iter()
            .map(|o| {
                let merged = o.merged.as_ref().map_or(cfg.n_patches(), Stage1::n_tokens) + cfg.has_cls as usize;
                (0..cfg.n_layer_run).map(|il| if il == 0 { cfg.n_pos() } else { merged }).collect()
            })
            .collect();
        let choices = (!used.is_empty()).then_some(used);
        Ok(Prefilled {
            token,
            stages,
            layer_rows,
            layer_images,
            cached_rows: self.kv.rows.clone(),
            vision_tokens,
            vision_heads: (!vision_heads.is_empty()).then_some(vision_heads),
            llm_heads,
            choices,
        })
    }

    fn tile_tokens<'a>(&'a self, tokens: &crate::model::projector::ConnectorTokens<'a>) -> TileTokens<'a> {
        let cfg = &self.vision.cfg;
        let shuffle = (cfg.projector == ProjectorKind::Idefics3).then_some((cfg.patches_per_side(), cfg.scale_factor));
        TileTokens {
            qkv: &self.vs.qkv,
            n_pos: cfg.n_pos(),
            n_embd: cfg.n_embd,
            n_head: cfg.n_head,
            has_cls: cfg.has_cls,
            shuffle,
            rows: tokens.tensor,
            n_rows: tokens.rows,
            width: tokens.width,
            merged: None,
            learned: None,
        }
    }

    /// Records token selection on the logits, submits, and picks the token.
    fn pick(
        &self,
        mut rec: Recorder,
        opts: &AskOptions,
        report: &mut AskReport,
        sampler: &mut Sampler,
    ) -> Result<(u32, Finished), Error> {
        let n_vocab = self.text.cfg.n_vocab;
        let (token, done) = if opts.sampling.is_greedy() {
            kernels::argmax(&mut rec, &self.ts.logits, 0, n_vocab, &self.pick_id)?;
            let h = rec.read(&self.pick_id, 0, 1);
            let done = rec.finish()?;
            record_gpu(report, &done.stage_ms);
            (done.u32(h)[0], done)
        } else {
            let k = opts.sampling.top_k.clamp(1, TOPK_MAX);
            kernels::topk(&mut rec, &self.ts.logits, 0, n_vocab, k, &self.pick_values, &self.pick_ids)?;
            let hv = rec.read(&self.pick_values, 0, k);
            let hi = rec.read(&self.pick_ids, 0, k);
            let done = rec.finish()?;
            record_gpu(report, &done.stage_ms);
            let candidates: Vec<(f32, u32)> =
                done.f32(hv).into_iter().zip(done.u32(hi)).filter(|&(_, id)| (id as usize) < n_vocab).collect();
            if candidates.is_empty() {
                return Err(Error::Unsupported("no finite logits to sample from".into()));
            }
            (sampler.pick(&candidates), done)
        };
        if token as usize >= n_vocab {
            return Err(Error::Unsupported(format!("the model produced no valid token (got id {token})")));
        }
        Ok((token, done))
    }

    /// Decodes from `first` until an end-of-generation token, `max_tokens`, or a full cache.
    fn generate(
        &mut self,
        first: u32,
        opts: &AskOptions,
        report: &mut AskReport,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer, Error> {
        let mut sampler = Sampler::new(opts.sampling);
        let mut stream = self.tokenizer.stream();
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut token = first;
        let t = Instant::now();
        let stop = loop {
            if self.tokenizer.is_eog(token) {
                break Stop::EndOfGeneration;
            }
            tokens.push(token);
            let piece = stream.push(token);
            if !piece.is_empty() {
                on_text(&piece);
                text.push_str(&piece);
            }
            if tokens.len() >= opts.max_tokens {
                break Stop::MaxTokens;
            }
            if self.kv.len + 1 > self.kv.capacity {
                break Stop::ContextFull;
            }
            self.gpu.write_u32(&self.ts.ids, 0, &[token]);
            let mut rec = Recorder::new(&self.gpu);
            rec.stage("decode");
            self.text.embed(&mut rec, &self.ts, 1)?;
            self.text.forward(&mut rec, &self.ts, &mut self.kv, 1)?;
            token = self.pick(rec, opts, report, &mut sampler)?.0;
        };
        let rest = stream.finish();
        if !rest.is_empty() {
            on_text(&rest);
            text.push_str(&rest);
        }
        AskReport::add(&mut report.wall_ms, "decode", ms(t));
        report.generated_tokens = tokens.len();
        report.kv_tokens = self.kv.len;
        let kv_dim = self.text.cfg.n_head_kv * self.text.cfg.head_dim;
        report.kv_bytes_used = (2 * kv_dim * 4 * self.kv.total_rows()) as u64;
        report.kv_bytes_allocated = self.kv.bytes();
        Ok(Answer { text, tokens, stop, report: report.clone() })
    }
}

/// What the prefill left: the first token, the pruning stages' report, the rows and image
/// tokens each LLM layer ran, each layer's cached rows after it, and the tokens each vision
/// block ran per tile (for FLOPs).
pub struct Prefilled {
    token: u32,
    stages: Vec<StageReport>,
    layer_rows: Vec<usize>,
    layer_images: Vec<usize>,
    cached_rows: Vec<usize>,
    vision_tokens: Vec<Vec<usize>>,
    /// Head trimming: the attention heads each vision block ran, per tile.
    vision_heads: Option<Vec<Vec<usize>>>,
    /// Head trimming: the query heads each LLM layer's prefill ran.
    llm_heads: Option<Vec<usize>>,
    /// What each tile kept, when a selection ran after the tower.
    choices: Option<Vec<TileChoice>>,
}

/// One tile's vision output: where its projected rows sit in the staging buffer, how many, and
/// MustDrop's stage-1 merge when it ran.
struct TileOut {
    staged: usize,
    count: usize,
    merged: Option<Stage1>,
}

/// MustDrop stage 1's grid of one tile: each merged window's last patch (the merge
/// destination) kept, the others merged into it.
fn stage1_grid(tile: usize, m: &Stage1) -> PatchGrid {
    let mut g = PatchGrid::new(tile, m.side, m.side);
    for &win in &m.merged {
        let cells = m.window_cells(win);
        let dst = *cells.last().unwrap_or(&0);
        for &c in &cells[..cells.len().saturating_sub(1)] {
            g.fates[c] = PatchFate::Merged;
            g.merged_into[c] = Some(dst);
        }
    }
    g
}

/// The grid a tile's LLM image tokens are drawn on and, for each of its `k` tokens, the cells it
/// covers: the patches a merged mlp token holds, else one cell of the token grid.
fn token_cells(tile: usize, c: &VisionConfig, merged: Option<&Stage1>, k: usize) -> (PatchGrid, Vec<Vec<usize>>) {
    match (merged, c.projector) {
        (Some(m), ProjectorKind::Mlp) => (PatchGrid::new(tile, m.side, m.side), m.sources()),
        _ => {
            let side = (c.tokens_per_tile() as f64).sqrt().round() as usize;
            (PatchGrid::new(tile, side, side), (0..k).map(|t| vec![t]).collect())
        }
    }
}

/// MustDrop's key-set size for a tile of `n` tokens: ceil(share * n), at least 1.
fn key_set_size(share: f32, n: usize) -> usize {
    ((share as f64 * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// The vision tower with MustDrop's stage 1: block 0 on every token, the window scores read
/// back (one submit), the similar windows merged, the other blocks on the fewer tokens.
fn vision_merged<'g>(
    gpu: &'g Gpu,
    (vision, vs, prune): (&VisionTower, &VisionScratch, &PruneScratch),
    mut rec: Recorder<'g>,
    w: usize,
    threshold: f32,
    report: &mut AskReport,
) -> Result<(Recorder<'g>, Stage1), Error> {
    let cfg = &vision.cfg;
    let (side, first) = (cfg.patches_per_side(), cfg.has_cls as usize);
    vision.embed(&mut rec, vs)?;
    vision.block(&mut rec, vs, 0, cfg.n_pos())?;
    if side / w == 0 {
        // No whole window fits the grid: nothing can merge.
        vision_blocks_from(&mut rec, vision, vs, 1, cfg.n_pos())?;
        return Ok((rec, Stage1 { side, w, merged: Vec::new() }));
    }
    rec.stage("prune");
    let h = prune.window_scores(&mut rec, &vs.x, side, w, cfg.n_embd, first)?;
    let done = rec.finish()?;
    record_gpu(report, &done.stage_ms);
    let m = Stage1::decide(&done.f32(h), threshold, side, w);
    let mut rec = Recorder::new(gpu);
    rec.stage("prune");
    prune.merge(&mut rec, &vs.x, cfg.n_embd, first, &m)?;
    rec.stage("vision");
    vision_blocks_from(&mut rec, vision, vs, 1, first + m.n_tokens())?;
    Ok((rec, m))
}

/// Query rows head trimming probes per layer (S = min(16, n)).
const PROBE_ROWS: usize = 16;

/// Grows `slot` to at least `len` zeros.
fn ensure_zeros(gpu: &Gpu, slot: &mut Option<Tensor>, len: usize) -> Result<(), Error> {
    if slot.as_ref().is_none_or(|z| z.len() < len) {
        *slot = Some(gpu.upload_f32(&vec![0.0; len], "heads.zero")?);
    }
    Ok(())
}

/// The vision tower with adaptive head trimming (`adaptive:MASS,heads=F`): in each block,
/// after Q, K, V, every head's attention for S rows spread over the tile is computed and read
/// back (one submit per block); heads whose share of the probe's output energy is under
/// `threshold` are trimmed (`frame::kept_heads`, our training-free proxy for SmartTrim's
/// learned head trimmer) and the block's attention runs for the kept heads only, the trimmed
/// heads' output columns zero. Projections and the MLP stay dense. Returns the heads each
/// block kept.
fn vision_trimmed<'g>(
    gpu: &'g Gpu,
    (vision, vs, zero, probe): (&VisionTower, &VisionScratch, &Tensor, &Tensor),
    mut rec: Recorder<'g>,
    threshold: f32,
    report: &mut AskReport,
) -> Result<(Recorder<'g>, Vec<usize>), Error> {
    let c = &vision.cfg;
    let n = c.n_pos();
    let rows = PROBE_ROWS.min(n);
    let mut kept_per_block = Vec::with_capacity(vision.n_blocks());
    vision.embed(&mut rec, vs)?;
    for il in 0..vision.n_blocks() {
        vision.block_qkv(&mut rec, vs, il, n)?;
        rec.stage("prune");
        vision.attention_probe(&mut rec, vs, n, rows, probe)?;
        let h = rec.read(probe, 0, rows * c.n_embd);
        let done = rec.finish()?;
        record_gpu(report, &done.stage_ms);
        let kept = frame::kept_heads(&done.f32(h), c.n_head, c.n_embd / c.n_head, threshold);
        rec = Recorder::new(gpu);
        rec.stage("vision");
        vision.attention_heads(&mut rec, vs, n, &kept, zero)?;
        vision.block_rest(&mut rec, vs, il, n)?;
        kept_per_block.push(kept.len());
    }
    vision.finish(&mut rec, vs, n)?;
    Ok((rec, kept_per_block))
}

/// Writes each pruned tile's rows' positions (`(record, tile, first row, position of its first
/// visual token)`) over the step's placeholders; [`TextModel::begin`]'s host write lands at the
/// start of the submit, before these.
fn pruned_positions(
    prune: &PruneScratch,
    rec: &mut Recorder,
    positions: &Tensor,
    pruned: &[(&TileRecord, usize, usize, usize)],
) -> Result<(), Error> {
    for &(r, tile, row, base) in pruned {
        prune.positions(rec, r, tile, positions, (row, base))?;
    }
    Ok(())
}

/// The LLM prefill of the `n` prompt rows (spanning `span` positions; the caller has begun the
/// step) with adaptive head trimming, as [`vision_trimmed`] per layer; the probe takes the
/// prompt's last S rows (they see every key, so causality holds). Decode steps run every head.
/// Returns the query heads each layer kept.
fn prefill_trimmed<'g>(
    gpu: &'g Gpu,
    (model, s, kv, zero, probe): (&TextModel, &TextScratch, &mut KvCache, &Tensor, &Tensor),
    mut rec: Recorder<'g>,
    (n, span): (usize, usize),
    threshold: f32,
    report: &mut AskReport,
) -> Result<(Recorder<'g>, Vec<usize>), Error> {
    let c = &model.cfg;
    let rows = PROBE_ROWS.min(n);
    let mut kept_per_layer = Vec::with_capacity(c.n_layer);
    for il in 0..c.n_layer {
        model.layer_qkv(&mut rec, s, kv, il, n)?;
        rec.stage("prune");
        model.attention_probe(&mut rec, s, kv, (il, n, rows), probe)?;
        let h = rec.read(probe, 0, rows * c.n_head * c.head_dim);
        let done = rec.finish()?;
        record_gpu(report, &done.stage_ms);
        let kept = frame::kept_heads(&done.f32(h), c.n_head, c.head_dim, threshold);
        rec = Recorder::new(gpu);
        rec.stage("prefill");
        model.attention_heads(&mut rec, s, kv, (il, n), &kept, zero)?;
        model.layer_rest(&mut rec, s, kv, il, n)?;
        kept_per_layer.push(kept.len());
    }
    model.finish(&mut rec, s, kv, n, span)?;
    Ok((rec, kept_per_layer))
}

/// Blocks `from..` and the post-LN on the first `n` tokens of the vision scratch.
fn vision_blocks_from(
    rec: &mut Recorder,
    vision: &VisionTower,
    vs: &VisionScratch,
    from: usize,
    n: usize,
) -> Result<(), Error> {
    for il in from..vision.n_blocks() {
        vision.block(rec, vs, il, n)?;
    }
    vision.finish(rec, vs, n)
}

/// The pruning buffers for `vision`'s tiles, `tiles` per frame.
fn prune_scratch(gpu: &Gpu, vision: &VisionTower, tiles: usize) -> Result<PruneScratch, Error> {
    let c = &vision.cfg;
    let (rows, width) = candidate_rows(c);
    Ok(PruneScratch::new(gpu, c.n_pos(), c.n_head, c.n_embd / c.n_head, rows, width, tiles)?)
}

/// The most candidate rows a tile hands the connector (CLS included), and their width.
fn candidate_rows(c: &VisionConfig) -> (usize, usize) {
    let s = c.scale_factor.max(1);
    (c.n_pos().max(c.tokens_per_tile()), c.n_embd * s * s)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Adds the stage times of one submit into the report.
fn record_gpu(report: &mut AskReport, stage_ms: &[(String, f64)]) {
    for (name, ms) in stage_ms {
        AskReport::add(&mut report.gpu_ms, name, *ms);
    }
}
