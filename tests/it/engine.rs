//! The engine end to end on forged models: greedy answers identical to the CPU reference
//! pipeline, for both vision families and both text families, with tiling.

use glimpse::engine::{AskOptions, Engine, EngineOptions, Stop};
use glimpse::forge::{ForgeSpec, Forged, forge};
use glimpse::gguf::Gguf;
use glimpse::reference::pipeline::greedy_answer;

use crate::gpu::gpu;
use crate::util::temp_dir;

const MAX_TOKENS: usize = 16;

/// `preset` forged for `test` (with that many text layers when `n_layer` is given) and an
/// engine on it.
fn forged_engine(test: &str, preset: &str, n_layer: Option<usize>) -> (Forged, Engine) {
    let mut spec = ForgeSpec::preset(preset).unwrap();
    if let Some(n) = n_layer {
        spec.set("text.n_layer", &n.to_string()).unwrap();
    }
    let f = forge(&spec, &temp_dir(test)).unwrap();
    let engine = Engine::load(&f.text, &f.mmproj, &EngineOptions::default()).unwrap();
    (f, engine)
}

/// A picture with a few shapes, so tiles differ.
fn picture(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let circle = (x as i32 - 30).pow(2) + (y as i32 - 20).pow(2) < 200;
        let square = (60..90).contains(&x) && (10..40).contains(&y);
        match (circle, square) {
            (true, _) => image::Rgb([230, 40, 40]),
            (_, true) => image::Rgb([40, 200, 60]),
            _ => image::Rgb([(x * 2) as u8, (y * 3) as u8, 120]),
        }
    })
}

fn check(preset: &str, max_tiles: Option<usize>) {
    if gpu().is_none() {
        return;
    }
    let (f, mut engine) = forged_engine(&format!("engine_{preset}_{max_tiles:?}"), preset, None);
    let img = picture(120, 70);
    let question = "What colour is the circle?";
    let want = greedy_answer(
        &Gguf::open(&f.text).unwrap(),
        &Gguf::open(&f.mmproj).unwrap(),
        &img,
        question,
        MAX_TOKENS,
        max_tiles,
    )
    .unwrap();
    let opts = AskOptions { max_tokens: MAX_TOKENS, max_tiles, ..Default::default() };
    let mut streamed = String::new();
    let answer = engine.ask(&img, question, &opts, &mut |s| streamed.push_str(s)).unwrap();
    assert_eq!(answer.tokens, want, "{preset} tiles {max_tiles:?}: greedy tokens differ from the reference");
    assert_eq!(streamed, answer.text);
    assert_eq!(answer.text, engine.tokenizer().decode(&answer.tokens));
    let r = &answer.report;
    assert!(r.image_tokens > 0 && r.prompt_tokens > r.image_tokens);
    // Every generated token but the last one is fed back (the last is fed only on the next turn).
    let fed = r.generated_tokens - (answer.stop == Stop::MaxTokens) as usize;
    assert_eq!(r.kv_tokens, r.prompt_tokens + fed);
}

#[test]
fn engine_idefics3_tiled_matches_reference() {
    // The tiny preset tiles a 120x70 picture into a grid plus the overview.
    check("tiny", None);
}

#[test]
fn engine_idefics3_one_tile_matches_reference() {
    check("tiny", Some(1));
}

#[test]
fn engine_llava_and_qwen2_match_reference() {
    check("tiny-llava", None);
    check("tiny-qwen2", None);
}

#[test]
fn engine_follow_up_reuses_the_image_cache() {
    if gpu().is_none() {
        return;
    }
    let (_, mut engine) = forged_engine("engine_follow_up", "tiny", None);
    let opts = AskOptions { max_tokens: 6, max_tiles: Some(1), ..Default::default() };
    let first = engine.ask(&picture(64, 64), "What is this?", &opts, &mut |_| {}).unwrap();
    let second = engine.follow_up("And its colour?", &opts, &mut |_| {}).unwrap();
    // Only the new turn is prefilled: no image tokens, fewer positions than the first prompt.
    assert_eq!(second.report.image_tokens, 0);
    assert!(
        second.report.prompt_tokens < first.report.prompt_tokens - first.report.image_tokens,
        "{:?}",
        second.report
    );
    assert!(second.report.kv_tokens > first.report.kv_tokens + second.report.prompt_tokens - 1);
    // A new ask starts over.
    let again = engine.ask(&picture(64, 64), "What is this?", &opts, &mut |_| {}).unwrap();
    assert_eq!(again.tokens, first.tokens);
    assert_eq!(again.report.kv_tokens, first.report.kv_tokens);
}

#[test]
fn engine_follow_up_without_a_conversation_is_an_error() {
    if gpu().is_none() {
        return;
    }
    let (_, mut engine) = forged_engine("engine_follow_up_none", "tiny", None);
    let e = engine.follow_up("Hello?", &AskOptions::default(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("ask about an image first"), "{e}");
}

/// A baseline selection keeps projector rows unchanged: the engine's gather, per-tile prompt
/// layout and projector on the kept rows must give the reference's greedy answer on the same
/// kept tokens.
fn check_kept(preset: &str, spec: &str, max_tiles: Option<usize>) {
    use glimpse::prune::frame;
    use glimpse::prune::tokens::TileChoice;
    if gpu().is_none() {
        return;
    }
    let (f, mut engine) =
        forged_engine(&format!("engine_kept_{preset}_{}", spec.replace([':', '%', ',', '='], "_")), preset, None);
    let img = picture(120, 70);
    let question = "Where is the square?";
    let opts = AskOptions { max_tokens: MAX_TOKENS, max_tiles, prune: spec.parse().unwrap(), ..Default::default() };
    let answer = engine.ask(&img, question, &opts, &mut |_| {}).unwrap();
    let p = answer.report.pruning.clone().unwrap();
    let tiles = answer.report.tiles;
    let c = &engine.vision().cfg;
    let side = c.patches_per_side() / c.scale_factor;
    let choices = frame::choose(&opts.prune, tiles, side).unwrap().unwrap();
    let keep: Vec<Vec<usize>> = choices
        .iter()
        .map(|ch| match ch {
            TileChoice::Keep(k) => k.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let want = glimpse::reference::pipeline::greedy_answer_kept(
        &Gguf::open(&f.text).unwrap(),
        &Gguf::open(&f.mmproj).unwrap(),
        &img,
        question,
        MAX_TOKENS,
        max_tiles,
        Some(&keep),
    )
    .unwrap();
    assert_eq!(answer.tokens, want, "{preset} {spec}: greedy tokens differ from the reference on the kept tokens");
    // The report: what was kept, per tile, and fewer FLOPs than dense.
    let kept: usize = keep.iter().map(Vec::len).sum();
    assert_eq!(p.visual_tokens, kept);
    assert_eq!(answer.report.image_tokens, kept);
    assert_eq!(p.visual_tokens_dense, tiles * c.tokens_per_tile());
    let grids = &p.stages.last().unwrap().grids;
    assert_eq!(grids.len(), tiles);
    for (g, k) in grids.iter().zip(&keep) {
        let cells: Vec<usize> =
            (0..g.cells()).filter(|&i| g.fate(i) == glimpse::prune::report::PatchFate::Kept).collect();
        assert_eq!(&cells, k, "{preset} {spec}: kept cells of tile {}", g.tile);
    }
    assert!(p.flops_executed < p.flops_dense, "{p:?}");
}

/// SmartTrim end to end on a forged model with a random trimmer: for each question the engine
/// keeps the tokens the reference trimmer scores highest, answers as the reference does on
/// them, and counts the trimmer's FLOPs; a model without a trimmer is refused with a reason.
#[test]
fn engine_smarttrim_keeps_the_reference_trimmer_top_k() {
    use glimpse::model::preprocess::{PreprocessParams, preprocess};
    use glimpse::model::tokenizer::Tokenizer;
    use glimpse::prune::report::PatchFate;
    use glimpse::reference::vision::Vision;
    if gpu().is_none() {
        return;
    }
    let mut spec = ForgeSpec::preset("tiny-llava").unwrap();
    spec.set("vision.trimmer", "24").unwrap();
    let f = forge(&spec, &temp_dir("engine_smarttrim")).unwrap();
    let mut engine = Engine::load(&f.text, &f.mmproj, &EngineOptions::default()).unwrap();
    let (text, mmproj) = (Gguf::open(&f.text).unwrap(), Gguf::open(&f.mmproj).unwrap());
    let vision = Vision::load(&mmproj).unwrap();
    let img = picture(120, 70);
    let pre = preprocess(&img, &PreprocessParams::from_config(&vision.cfg), None).unwrap();
    let features = vision.forward(&pre.overview);
    let (d, n) = (vision.cfg.n_embd, vision.cfg.tokens_per_tile());
    let visual = &features[vision.cfg.has_cls as usize * d..];
    let mut picks = Vec::new();
    for question in ["Where is the square?", "What colour is the circle on the left?"] {
        let opts = AskOptions { max_tokens: MAX_TOKENS, prune: "smarttrim:30%".parse().unwrap(), ..Default::default() };
        let answer = engine.ask(&img, question, &opts, &mut |_| {}).unwrap();
        let ids = Tokenizer::from_gguf(&text).unwrap().encode(question).unwrap();
        let scores = glimpse::reference::prune::trimmer_scores(&mmproj, visual, &ids).unwrap();
        let keep = glimpse::prune::select::top_k(&scores, opts.prune.budget_tokens(n));
        let p = answer.report.pruning.clone().unwrap();
        let grid = &p.stages.last().unwrap().grids[0];
        let cells: Vec<usize> = (0..grid.cells()).filter(|&i| grid.fate(i) == PatchFate::Kept).collect();
        assert_eq!(cells, keep, "{question}: kept cells");
        let want = glimpse::reference::pipeline::greedy_answer_kept(
            &text,
            &mmproj,
            &img,
            question,
            MAX_TOKENS,
            None,
            Some(std::slice::from_ref(&keep)),
        )
        .unwrap();
        assert_eq!(answer.tokens, want, "{question}: greedy tokens on the kept tokens");
        let prune = p.flops_by_stage.iter().find(|s| s.0 == "prune").unwrap();
        assert!(prune.2 >= 2.0 * (n * d * 24) as f64, "the trimmer's FLOPs are counted: {prune:?}");
        picks.push(keep);
    }
    assert_ne!(picks[0], picks[1], "the pick depends on the question");

    let (_, mut plain) = forged_engine("engine_smarttrim_none", "tiny-llava", None);
    let opts = AskOptions { prune: "smarttrim:30%".parse().unwrap(), ..Default::default() };
    let e = plain.ask(&img, "Where?", &opts, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("learned token trimmer"), "{e}");
}

#[test]
fn engine_baselines_match_reference_on_kept_tokens() {
    check_kept("tiny", "grid:30%", None);
    check_kept("tiny-llava", "random:20%,seed=3", None);
}

/// VisionZip end to end: the budget is met exactly, every patch is accounted for (dominant,
/// contextual or merged into a contextual target), and a 100% budget is the dense model.
#[test]
fn engine_visionzip_meets_the_budget_and_full_budget_is_dense() {
    use glimpse::prune::report::PatchFate;
    if gpu().is_none() {
        return;
    }
    for (preset, spec, tiles) in [("tiny-llava", "visionzip:16", None), ("tiny", "visionzip:25%", None)] {
        let (_, mut engine) = forged_engine(&format!("engine_visionzip_{preset}"), preset, None);
        let img = picture(120, 70);
        let base = AskOptions { max_tokens: 8, max_tiles: tiles, ..Default::default() };
        let dense = engine.ask(&img, "What is it?", &base, &mut |_| {}).unwrap();
        let full = AskOptions { prune: "visionzip:100%".parse().unwrap(), ..base.clone() };
        let same = engine.ask(&img, "What is it?", &full, &mut |_| {}).unwrap();
        assert_eq!(same.tokens, dense.tokens, "{preset}: visionzip:100% differs from dense");
        let opts = AskOptions { prune: spec.parse().unwrap(), ..base.clone() };
        let pruned = engine.ask(&img, "What is it?", &opts, &mut |_| {}).unwrap();
        let p = pruned.report.pruning.unwrap();
        let budget = p.budget.unwrap();
        assert_eq!(p.visual_tokens, budget, "{preset} {spec}");
        assert_eq!(pruned.report.prompt_tokens, dense.report.prompt_tokens - (p.visual_tokens_dense - budget));
        let stage = p.stages.last().unwrap();
        let has_cls = engine.vision().cfg.has_cls;
        let mut sent = 0;
        for g in &stage.grids {
            let (dom, ctx, merged) =
                (g.count(PatchFate::Dominant), g.count(PatchFate::Contextual), g.count(PatchFate::Merged));
            assert_eq!(dom + ctx + merged, g.cells(), "{preset}: every patch is dominant, contextual or merged");
            for i in (0..g.cells()).filter(|&i| g.fate(i) == PatchFate::Merged) {
                let t = g.target(i).expect("a merged patch names its target");
                assert_eq!(g.fate(t), PatchFate::Contextual);
            }
            sent += dom + ctx;
        }
        // CLIP's CLS counts as a dominant token but is not a patch.
        assert_eq!(sent + has_cls as usize, budget, "{preset}: tokens sent");
        assert!(p.flops_executed < p.flops_dense);
        assert!(pruned.tokens.len() <= 8);
    }
}

/// In-LLM dropping end to end on 8-layer decoders: MustDrop with zero thresholds drops nothing
/// and must give the dense tokens exactly (the segmented prefill, the statistics submits and the
/// position bookkeeping change nothing); FastV and MustDrop then really drop, the per-layer
/// counts show it, later layers' caches hold fewer rows, and decoding goes on from them.
#[test]
fn engine_in_llm_dropping_fastv_and_mustdrop() {
    use glimpse::prune::report::PatchFate;
    if gpu().is_none() {
        return;
    }
    for preset in ["tiny-llava", "tiny"] {
        let (_, mut engine) = forged_engine(&format!("engine_in_llm_{preset}"), preset, Some(8));
        let img = picture(120, 70);
        let base = AskOptions { max_tokens: 8, ..Default::default() };
        let ask = |engine: &mut Engine, prune: &str| {
            let opts = AskOptions { prune: prune.parse().unwrap(), ..base.clone() };
            engine.ask(&img, "What is it?", &opts, &mut |_| {}).unwrap()
        };
        let dense = ask(&mut engine, "none");
        // Nothing merges (threshold 1) and nothing drops (thresholds 0): the split vision pass,
        // the stage submits and the position bookkeeping must not change a bit.
        let same = ask(&mut engine, "mustdrop:64,merge=1,global=0,individual=0");
        assert_eq!(same.tokens, dense.tokens, "{preset}: MustDrop dropping nothing differs from dense");
        let p = same.report.pruning.unwrap();
        assert_eq!(p.stages[0].name, "mustdrop.stage1");
        assert_eq!(p.stages[0].tokens_out, p.stages[0].tokens_in);
        let n_image = dense.report.image_tokens;

        let fastv = ask(&mut engine, "fastv:25%,layer=3");
        let p = fastv.report.pruning.unwrap();
        let keep = (n_image as f64 * 0.25).round() as usize;
        assert_eq!(&p.llm_tokens_per_layer[..3], &[n_image; 3], "{preset}");
        assert!(p.llm_tokens_per_layer[3..].iter().all(|&n| n == keep), "{preset}: {:?}", p.llm_tokens_per_layer);
        let kept_cells: usize = p.stages[0].grids.iter().map(|g| g.count(PatchFate::Kept)).sum();
        assert_eq!(kept_cells, keep, "{preset}: the overlay shows the kept tokens");
        assert!(p.flops_executed < p.flops_dense);
        assert!(fastv.report.kv_bytes_used < dense.report.kv_bytes_used);
        assert_eq!(fastv.tokens.len(), 8, "{preset}: decoding continues after the drop");

        let must = ask(&mut engine, "mustdrop:64,merge=1,global=0.05,individual=0.5");
        let p = must.report.pruning.unwrap();
        let layers = &p.llm_tokens_per_layer;
        assert!(layers.windows(2).all(|w| w[1] <= w[0]), "{preset}: {layers:?}");
        assert!(*layers.last().unwrap() < n_image, "{preset}: aggressive thresholds drop tokens");
        // The key set (8% per tile) is never dropped.
        let tiles = must.report.tiles;
        let per_tile = n_image / tiles;
        let key = tiles * (0.08 * per_tile as f64).ceil() as usize;
        assert!(*layers.last().unwrap() >= key, "{preset}: {layers:?} keeps the key set of {key}");
        // Stage 3: every layer's cache holds the survivors (plus text), so fewer bytes.
        assert!(must.report.kv_bytes_used < dense.report.kv_bytes_used);
        assert!(p.flops_executed < p.flops_dense);
    }
}

/// MustDrop stage 1 end to end: with a threshold every window passes, each whole 3 x 3 window
/// merges into one token; the ViT's later blocks and (for an mlp projector) the LLM see fewer
/// tokens, idefics3 copies merged tokens back before its pixel shuffle and keeps its count.
#[test]
fn engine_mustdrop_stage1_merges_windows() {
    use glimpse::prune::report::PatchFate;
    if gpu().is_none() {
        return;
    }
    for preset in ["tiny-llava", "tiny"] {
        let (_, mut engine) = forged_engine(&format!("engine_stage1_{preset}"), preset, None);
        let c = engine.vision().cfg.clone();
        let opts = AskOptions { max_tokens: 4, max_tiles: Some(1), ..Default::default() };
        let dense = engine.ask(&picture(64, 64), "What?", &opts, &mut |_| {}).unwrap();
        let opts = AskOptions { prune: "mustdrop:64,merge=-1,stage2=off".parse().unwrap(), ..opts };
        let a = engine.ask(&picture(64, 64), "What?", &opts, &mut |_| {}).unwrap();
        let p = a.report.pruning.unwrap();
        let side = c.patches_per_side();
        let windows = (side / 3).pow(2);
        let stage1 = &p.stages[0];
        assert_eq!(stage1.name, "mustdrop.stage1");
        assert_eq!(stage1.tokens_out, side * side - 8 * windows, "{preset}");
        assert_eq!(stage1.grids[0].count(PatchFate::Merged), 8 * windows);
        let want_image = if c.has_cls { side * side - 8 * windows } else { c.tokens_per_tile() };
        assert_eq!(a.report.image_tokens, want_image, "{preset}");
        assert_eq!(dense.report.image_tokens, c.tokens_per_tile());
        let vision = p.flops_by_stage.iter().find(|s| s.0 == "vision").unwrap();
        assert!(vision.2 < vision.1, "{preset}: later ViT blocks ran on fewer tokens: {vision:?}");
        assert!(a.tokens.len() <= 4);
    }
}

/// Adaptive budgets: each tile keeps the fewest tokens holding the asked share of its attention
/// mass, so the count grows with the share; the overlay marks exactly the kept tokens.
#[test]
fn engine_adaptive_keeps_an_attention_mass_share() {
    use glimpse::prune::report::PatchFate;
    if gpu().is_none() {
        return;
    }
    for preset in ["tiny-llava", "tiny"] {
        let (_, mut engine) = forged_engine(&format!("engine_adaptive_{preset}"), preset, None);
        let img = picture(120, 70);
        let mut last = 0;
        for mass in ["0.2", "0.5", "0.95"] {
            let opts =
                AskOptions { max_tokens: 2, prune: format!("adaptive:{mass}").parse().unwrap(), ..Default::default() };
            let a = engine.ask(&img, "What?", &opts, &mut |_| {}).unwrap();
            let p = a.report.pruning.unwrap();
            assert!(
                p.visual_tokens >= last && p.visual_tokens >= a.report.tiles,
                "{preset} {mass}: {}",
                p.visual_tokens
            );
            assert!(p.visual_tokens <= p.visual_tokens_dense);
            let kept: usize = p.stages[0].grids.iter().map(|g| g.count(PatchFate::Kept)).sum();
            assert_eq!(kept, p.visual_tokens, "{preset} {mass}");
            last = p.visual_tokens;
        }
        assert!(last > 1, "{preset}: 95% of the mass needs more than one token");
    }
}

/// Adaptive head trimming (`heads=F`): a threshold every head passes takes the per-head path
/// (probe, single-head attention calls, zeroed output) and gives the answer of the plain
/// adaptive plan; a large one trims heads in the ViT and the LLM prefill, at least one per
/// layer, for fewer FLOPs, and the answer still generates.
#[test]
fn engine_adaptive_head_trimming() {
    if gpu().is_none() {
        return;
    }
    for preset in ["tiny-llava", "tiny"] {
        let (_, mut engine) = forged_engine(&format!("engine_adaptive_heads_{preset}"), preset, None);
        let (vh, th, tl) = {
            let (v, t) = (&engine.vision().cfg, &engine.text().cfg);
            (v.n_head, t.n_head, t.n_layer)
        };
        let img = picture(120, 70);
        let question = "What colour is the circle?";
        let ask = |engine: &mut Engine, spec: &str| {
            let opts = AskOptions { max_tokens: 8, prune: spec.parse().unwrap(), ..Default::default() };
            engine.ask(&img, question, &opts, &mut |_| {}).unwrap()
        };
        let plain = ask(&mut engine, "adaptive:1");
        let all = ask(&mut engine, "adaptive:1,heads=0.000001");
        let p = all.report.pruning.clone().unwrap();
        let tiles = all.report.tiles;
        let vision_kept = p.vision_heads_kept.clone().expect("vision heads reported");
        assert!(vision_kept.iter().all(|&k| k == vh * tiles), "{preset}: {vision_kept:?}");
        assert_eq!(p.llm_heads_kept, Some(vec![th; tl]), "{preset}");
        assert_eq!(all.tokens, plain.tokens, "{preset}: every head kept must answer as without heads=");
        assert_eq!(plain.report.pruning.unwrap().llm_heads_kept, None);

        let trimmed = ask(&mut engine, "adaptive:1,heads=0.4");
        let p = trimmed.report.pruning.unwrap();
        let (v, l) = (p.vision_heads_kept.unwrap(), p.llm_heads_kept.unwrap());
        let tiles = trimmed.report.tiles;
        assert!(!v.is_empty() && v.iter().all(|&k| k >= tiles && k <= vh * tiles), "{preset}: {v:?}");
        assert!(l.len() == tl && l.iter().all(|&k| (1..=th).contains(&k)), "{preset}: {l:?}");
        assert!(v.iter().any(|&k| k < vh * tiles) && l.iter().any(|&k| k < th), "{preset}: {v:?} {l:?}");
        assert!(p.flops_executed < p.flops_dense, "{preset}: {} vs {}", p.flops_executed, p.flops_dense);
        let stage = |name: &str| p.flops_by_stage.iter().find(|s| s.0 == name).unwrap().clone();
        let (vision, prefill) = (stage("vision"), stage("prefill"));
        assert!(vision.2 < vision.1 && prefill.2 < prefill.1, "{preset}: {vision:?} {prefill:?}");
        assert!(matches!(trimmed.stop, Stop::MaxTokens | Stop::EndOfGeneration));
        assert_eq!(trimmed.report.generated_tokens, trimmed.tokens.len());
    }
}

/// A follow-up after in-LLM dropping runs on the uneven per-layer caches; a layer the model
/// lacks is refused before any work.
#[test]
fn engine_follow_up_after_dropping_and_bad_layers() {
    if gpu().is_none() {
        return;
    }
    let (_, mut engine) = forged_engine("engine_follow_up_dropping", "tiny-llava", Some(6));
    let opts = AskOptions {
        max_tokens: 4,
        prune: "mustdrop:64,global=0.05,individual=0.5".parse().unwrap(),
        ..Default::default()
    };
    let first = engine.ask(&picture(64, 64), "What is this?", &opts, &mut |_| {}).unwrap();
    let second = engine.follow_up("And its colour?", &opts, &mut |_| {}).unwrap();
    assert!(second.report.kv_tokens > first.report.kv_tokens);
    assert!(second.report.kv_bytes_used > first.report.kv_bytes_used);
    for bad in ["fastv:4,layer=6", "mustdrop:64,layers=2;7"] {
        let opts = AskOptions { prune: bad.parse().unwrap(), ..Default::default() };
        let e = engine.ask(&picture(64, 64), "What?", &opts, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("past the text model's 6 layers"), "{bad}: {e}");
    }
}
