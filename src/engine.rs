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
use crate::model::config::ProjectorKind;
use crate::model::llm_drop::LlmText;
use crate::model::preprocess::{self, PreprocessParams, Preprocessed};
use crate::model::projector::{Projector, ProjectorScratch};
use crate::model::prompt::{self, PromptPiece, TileId};
use crate::model::sampler::{Sampler, Sampling};
use crate::model::text::{KvCache, TextModel, TextScratch};
use crate::model::tokenizer::Tokenizer;
use crate::model::vision::{VisionScratch, VisionTower};
use crate::prune::frame::{self, FrameFlops};
use crate::prune::llm::LlmPlan;
use crate::prune::plan::{Method, PrunePlan};
use crate::prune::report::{FrameReport, PatchGrid, StageReport};
use crate::prune::tokens::{PruneScratch, TileChoice, TileRecord, TileTokens};

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
    /// GPU-side outputs of token selection: the argmax id, or the top-k values and ids.
    pick_id: Tensor,
    pick_values: Tensor,
    pick_ids: Tensor,
    /// The conversation so far (for follow-ups reusing the KV cache).
    history: Vec<Message>,
}

impl Engine {
    /// Loads both files and uploads their weights (the memory maps are dropped afterwards).
    pub fn load(text: &Path, mmproj: &Path, opts: &EngineOptions) -> Result<Engine, Error> {
        let gpu = Arc::new(Gpu::new(&opts.gpu)?);
        Self::load_on(gpu, text, mmproj, opts)
    }

    /// As `load`, on an existing device (the app shares its device with the UI).
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
        Ok(Engine {
            prune,
            pick_id: gpu.tensor(1, "pick.id")?,
            pick_values: gpu.tensor(TOPK_MAX, "pick.values")?,
            pick_ids: gpu.tensor(TOPK_MAX, "pick.ids")?,
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
        let mut layout = pre.layout(cfg.projector, cfg.tokens_per_tile());
        if let Some(ch) = &choices {
            let n_grid = layout.n_tokens_grid.len();
            layout.n_tokens_grid = ch[..n_grid].iter().map(TileChoice::n_out).collect();
            layout.n_tokens_overview = ch[n_grid].n_out();
        }
        let pieces = prompt::build(&self.tokenizer, &rendered, &[layout])?;
        let n = prompt::n_positions(&pieces);
        report.tiles = pre.n_images();
        report.prompt_tokens = n;
        report.image_tokens = pieces
            .iter()
            .map(|p| match p {
                PromptPiece::Image { n_tokens, .. } => *n_tokens,
                PromptPiece::Tokens(_) => 0,
            })
            .sum();
        if n + 1 > self.kv.capacity {
            return Err(Error::Unsupported(format!(
                "the prompt takes {n} positions, more than the context of {} (fewer tiles: --max-tiles)",
                self.kv.capacity
            )));
        }
        self.kv.set_len(0);
        self.history = messages;
        let out = self.prefill(&pre, &pieces, choices.as_deref(), opts, &mut report)?;
        let mut answer = self.generate(out.token, opts, &mut report, on_text)?;
        answer.report.pruning = Some(self.frame_report(&opts.prune, &pre, choices.as_deref(), &out, &answer.report));
        self.history.push(Message::text("assistant", &answer.text));
        Ok(answer)
    }

    /// The frame's pruning report: what each stage kept and the FLOPs, dense next to executed.
    fn frame_report(
        &self,
        plan: &PrunePlan,
        pre: &Preprocessed,
        choices: Option<&[TileChoice]>,
        out: &Prefilled,
        r: &AskReport,
    ) -> FrameReport {
        let (vc, tc) = (&self.vision.cfg, &self.text.cfg);
        let tiles = pre.n_images();
        let dense_tokens = tiles * vc.tokens_per_tile();
        let dense_prompt = r.prompt_tokens + dense_tokens - r.image_tokens;
        let mut f = FrameFlops::vision(vc, self.projector.hidden(), tiles, choices);
        f.prefill(tc, dense_prompt, &out.layer_rows);
        f.decode(tc, dense_prompt, &out.cached_rows, r.generated_tokens);
        let in_llm = !out.layer_images.iter().all(|&n| n == r.image_tokens);
        FrameReport {
            method: plan.to_string(),
            budget: (choices.is_some() || in_llm).then(|| plan.budget_tokens(dense_tokens)),
            visual_tokens_dense: dense_tokens,
            visual_tokens: r.image_tokens,
            stages: out.stages.clone(),
            llm_tokens_per_layer: out.layer_images.clone(),
            vision_heads_kept: None,
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

    /// The prompt: token embeddings, then each tile's vision + projector output (pruned as
    /// `choices` says, tile by tile in `pre`'s order: grid tiles, then the overview) spliced
    /// into its rows, then the LLM over all of it. Returns the first generated token and the
    /// pruning stages' report.
    fn prefill(
        &mut self,
        pre: &Preprocessed,
        pieces: &[PromptPiece],
        choices: Option<&[TileChoice]>,
        opts: &AskOptions,
        report: &mut AskReport,
    ) -> Result<Prefilled, Error> {
        if pre.n_images() > self.prune.max_tiles() && !matches!(opts.prune.method, Method::None) {
            self.prune = prune_scratch(&self.gpu, &self.vision, pre.n_images())?;
        }
        let n = prompt::n_positions(pieces);
        if n > self.ts.max_tokens {
            self.ts = self.text.scratch(&self.gpu, n)?;
        }
        // Image slots get token 0 (any valid id): their rows are overwritten by the projector.
        let mut ids = Vec::with_capacity(n);
        for p in pieces {
            match p {
                PromptPiece::Tokens(t) => ids.extend_from_slice(t),
                PromptPiece::Image { n_tokens, .. } => ids.extend(std::iter::repeat_n(0, *n_tokens)),
            }
        }
        self.gpu.write_u32(&self.ts.ids, 0, &ids);
        // Every tile's pixels in one buffer; each is copied into the tower's input in turn, so
        // one submit can hold all tiles.
        let tile_len = 3 * pre.size * pre.size;
        let mut pixels = Vec::with_capacity(tile_len * pre.n_images());
        for tile in &pre.tiles {
            pixels.extend_from_slice(tile);
        }
        pixels.extend_from_slice(&pre.overview);
        let all_tiles = self.gpu.upload_f32(&pixels, "tiles")?;

        let t = Instant::now();
        let mut rec = Recorder::new(&self.gpu);
        rec.stage("embed");
        self.text.embed(&mut rec, &self.ts, n)?;
        let cols = pre.grid.1;
        let mut row = 0;
        let mut records: Vec<(usize, TileRecord)> = Vec::new();
        let n_image: usize =
            pieces.iter().map(|p| if let PromptPiece::Image { n_tokens, .. } = p { *n_tokens } else { 0 }).sum();
        let llm = LlmPlan::from_plan(&opts.prune, self.text.cfg.n_layer, n_image);
        let key_share = match &opts.prune.method {
            Method::MustDrop(p) if p.stage1 && llm.is_some() => Some(p.key_share),
            _ => None,
        };
        // (tile index, first prompt row, tokens) of each image piece, in prompt order.
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for p in pieces {
            match p {
                PromptPiece::Tokens(t) => row += t.len(),
                PromptPiece::Image { tile, n_tokens, .. } => {
                    let index = match tile {
                        TileId::Grid { row, col } => row * cols + col,
                        TileId::Overview => pre.tiles.len(),
                    };
                    rec.copy(&all_tiles, index * tile_len, &self.vs.pixels, 0, tile_len);
                    rec.stage("vision");
                    self.vision.forward(&mut rec, &self.vs)?;
                    spans.push((index, row, *n_tokens));
                    if let Some(share) = key_share {
                        rec.stage("prune");
                        let k = key_set_size(share, self.vision.cfg.tokens_per_tile());
                        self.key_set_tile(&mut rec, k, spans.len() - 1)?;
                    }
                    match choices.map(|c| &c[index]) {
                        None => {
                            rec.stage("projector");
                            self.projector.forward(
                                &mut rec,
                                &self.vision.cfg,
                                &self.ps,
                                &self.vs.x,
                                &self.ts.x,
                                row,
                            )?;
                        }
                        Some(choice) => {
                            rec.stage("prune");
                            let r = self.prune_tile(&mut rec, choice, records.len(), row)?;
                            records.push((index, r));
                        }
                    }
                    row += n_tokens;
                }
            }
        }
        rec.stage("prefill");
        let reads = (!records.is_empty()).then(|| self.prune.read_report(&mut rec, records.len()));
        let key_reads = key_share.map(|_| self.prune.read_key_sets(&mut rec, spans.len()));
        let image_rows: Vec<usize> = spans.iter().flat_map(|&(_, r, k)| r..r + k).collect();
        let mut stages = Vec::new();
        let (rec, dropped) = match &llm {
            None => {
                self.text.forward(&mut rec, &self.ts, &mut self.kv, n)?;
                (rec, None)
            }
            Some(plan) => {
                let cfg = &self.vision.cfg;
                let key_set = |done: &Finished| -> Vec<usize> {
                    let (Some(h), Some(share)) = (key_reads, key_share) else { return Vec::new() };
                    let data = done.u32(h);
                    let k = key_set_size(share, cfg.tokens_per_tile());
                    spans
                        .iter()
                        .enumerate()
                        .flat_map(|(i, &(_, r, _))| {
                            self.prune.decode_key_set(&data, i, k, cfg.has_cls).into_iter().map(move |c| r + c)
                        })
                        .collect()
                };
                let mut key_set = key_set;
                let text = LlmText { gpu: &self.gpu, model: &self.text, s: &self.ts };
                let (rec, d) = text.prefill_dropping(rec, &mut self.kv, plan, n, image_rows.clone(), &mut key_set)?;
                record_gpu(report, &d.stage_ms);
                (rec, Some(d))
            }
        };
        let (token, done) = self.pick(rec, opts, report, &mut Sampler::new(opts.sampling))?;
        AskReport::add(&mut report.wall_ms, "vision+prefill", ms(t));
        let tokens_per_tile = self.vision.cfg.tokens_per_tile();
        if let (Some(reads), Some(choices)) = (reads, choices) {
            let recs: Vec<TileRecord> = records.iter().map(|(_, r)| r.clone()).collect();
            let mut grids: Vec<PatchGrid> = self.prune.decode_report(&done, &reads, &recs);
            for (g, (index, _)) in grids.iter_mut().zip(&records) {
                g.tile = *index;
            }
            let dense = pre.n_images() * tokens_per_tile;
            let kept = choices.iter().map(TileChoice::n_out).sum();
            stages.push(StageReport {
                name: choice_stage(&choices[0]).into(),
                grids,
                tokens_in: dense,
                tokens_out: kept,
            });
        }
        let n_layer = self.text.cfg.n_layer;
        let (layer_rows, layer_images) = match &dropped {
            None => (vec![n; n_layer], vec![n_image; n_layer]),
            Some(d) => (d.layer_rows.clone(), d.layer_images.clone()),
        };
        if let (Some(d), Some(plan)) = (&dropped, &llm) {
            // One grid per tile: which of its tokens survived every stage.
            let side = (tokens_per_tile as f64).sqrt().round() as usize;
            let grids = spans
                .iter()
                .map(|&(index, r, k)| {
                    let mut g = PatchGrid::new(index, side, side);
                    for c in 0..k.min(g.fates.len()) {
                        if d.survivors.binary_search(&(r + c)).is_err() {
                            g.fates[c] = crate::prune::report::PatchFate::Dropped;
                        }
                    }
                    g
                })
                .collect();
            let name = if plan.keeps_positions() { "fastv" } else { "mustdrop.stage2" };
            let kept = image_rows.iter().filter(|r| d.survivors.binary_search(r).is_ok()).count();
            stages.push(StageReport { name: name.into(), grids, tokens_in: n_image, tokens_out: kept });
        }
        Ok(Prefilled { token, stages, layer_rows, layer_images, cached_rows: self.kv.rows.clone() })
    }

    /// MustDrop's key set of the tile in the vision scratch (number `tile` of the frame).
    fn key_set_tile(&self, rec: &mut Recorder, k: usize, tile: usize) -> Result<(), Error> {
        if tile >= self.prune.max_tiles() {
            return Err(Error::Unsupported(format!("more than {} tiles for the key set", self.prune.max_tiles())));
        }
        let cfg = &self.vision.cfg;
        let tokens = self.projector.tokens(rec, cfg, &self.ps, &self.vs.x)?;
        let t = self.tile_tokens(&tokens);
        Ok(self.prune.key_set(rec, &t, k, tile)?)
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
        }
    }

    /// Selects tile `tile`'s tokens from the vision output and projects them into rows `row..`.
    fn prune_tile(
        &self,
        rec: &mut Recorder,
        choice: &TileChoice,
        tile: usize,
        row: usize,
    ) -> Result<TileRecord, Error> {
        let cfg = &self.vision.cfg;
        let tokens = self.projector.tokens(rec, cfg, &self.ps, &self.vs.x)?;
        let t = self.tile_tokens(&tokens);
        let record = self.prune.select(rec, &t, choice, tile)?;
        rec.stage("projector");
        self.projector.project(rec, cfg, &self.ps, &self.prune.out, 0, choice.n_out(), &self.ts.x, row)?;
        Ok(record)
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

/// What the prefill left: the first token, the pruning stages' report, and the rows and image
/// tokens each LLM layer ran, and each layer's cached rows after it (for FLOPs).
pub struct Prefilled {
    token: u32,
    stages: Vec<StageReport>,
    layer_rows: Vec<usize>,
    layer_images: Vec<usize>,
    cached_rows: Vec<usize>,
}

/// MustDrop's key-set size for a tile of `n` tokens: ceil(share * n), at least 1.
fn key_set_size(share: f32, n: usize) -> usize {
    ((share as f64 * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// The pruning buffers for `vision`'s tiles, `tiles` per frame.
fn prune_scratch(gpu: &Gpu, vision: &VisionTower, tiles: usize) -> Result<PruneScratch, Error> {
    let c = &vision.cfg;
    let s = c.scale_factor.max(1);
    let (rows, width) = (c.n_pos().max(c.tokens_per_tile()), c.n_embd * s * s);
    Ok(PruneScratch::new(gpu, c.n_pos(), c.n_head, c.n_embd / c.n_head, rows, width, tiles)?)
}

/// The report name of the stage a tile choice runs.
fn choice_stage(c: &TileChoice) -> &'static str {
    match c {
        TileChoice::VisionZip { .. } => "visionzip",
        TileChoice::Keep(_) => "select",
    }
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
