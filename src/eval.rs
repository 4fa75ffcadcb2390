//! `glimpse eval`: accuracy of a model through the GPU engine on held-out generated questions
//! (`crate::dataset`), under any pruning plan, with the visual tokens, executed FLOPs and time
//! per frame; and the sweep — accuracy against budget for every method — with its plot of
//! accuracy against executed GFLOP (the papers' Table 1 and Pareto figure, for our model).

use std::time::Instant;

use image::{Rgb, RgbImage};

use crate::dataset::{Sample, SceneConfig, Split};
use crate::engine::{AskOptions, Engine};
use crate::model::Error;
use crate::prune::overlay::{draw_text, text_width};
use crate::prune::plan::PrunePlan;
use crate::prune::report::{FrameReport, PatchFate, PatchGrid};

/// The sweep's budgets (share of the frame's visual tokens) and methods.
pub const SWEEP_BUDGETS: [f64; 5] = [100.0, 50.0, 25.0, 12.5, 6.25];
pub const SWEEP_METHODS: [&str; 7] = ["visionzip", "mustdrop", "adaptive", "fastv", "random", "grid", "smarttrim"];

/// What one plan scored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalResult {
    pub plan: String,
    pub questions: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub mean_visual_tokens: f64,
    pub mean_gflops_executed: f64,
    pub mean_gflops_dense: f64,
    pub mean_ms: f64,
    /// Of the patches of the objects the questions are about (`Question::about`), the share that
    /// every pruning stage kept (kept, dominant or contextual; merged and dropped ones are lost):
    /// whether the plan kept what the answer needs. 1 without pruning (nothing to count).
    pub object_patches_kept: f64,
    /// (question kind, questions, correct).
    pub by_kind: Vec<(String, usize, usize)>,
}

/// The first word of a generated answer, lower case, number words as digits: what is compared
/// with the expected one-word answer.
pub fn normalise(answer: &str) -> String {
    let word: String =
        answer.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty()).unwrap_or("").to_lowercase();
    const NUMBERS: [&str; 9] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"];
    match NUMBERS.iter().position(|&n| n == word) {
        Some(i) => i.to_string(),
        None => word,
    }
}

/// Asks the first `n` questions of `split` (scenes rendered `size` x `size`) under `plan`.
pub fn run(
    engine: &mut Engine,
    split: Split,
    n: usize,
    size: u32,
    plan: &PrunePlan,
    base: &AskOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalResult, Error> {
    let cfg = SceneConfig::default();
    let opts = AskOptions { prune: plan.clone(), ..base.clone() };
    let (mut correct, mut tokens, mut exec, mut dense, mut ms) = (0, 0usize, 0.0, 0.0, 0.0);
    let mut by_kind: Vec<(String, usize, usize)> = Vec::new();
    let patch = engine.vision().cfg.patch_size as u32;
    let (mut object_patches, mut object_patches_kept) = (0usize, 0usize);
    for i in 0..n {
        let s = crate::dataset::sample(split, i as u64, &cfg, size);
        let t = Instant::now();
        let a = engine.ask(&s.image, &s.question.text, &opts, &mut |_| {})?;
        ms += t.elapsed().as_secs_f64() * 1e3;
        let ok = normalise(&a.text) == s.question.answer;
        correct += ok as usize;
        let kind = format!("{:?}", s.question.kind).to_lowercase();
        match by_kind.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += 1;
                k.2 += ok as usize;
            }
            None => by_kind.push((kind, 1, ok as usize)),
        }
        let p = a.report.pruning.as_ref();
        let (cells, kept) = p.map_or((0, 0), |p| objects_kept(&s, p, patch));
        object_patches += cells;
        object_patches_kept += kept;
        tokens += p.map_or(a.report.image_tokens, |p| p.stages.last().map_or(p.visual_tokens, |s| s.tokens_out));
        exec += p.map_or(0.0, |p| p.flops_executed);
        dense += p.map_or(0.0, |p| p.flops_dense);
        progress(i + 1);
    }
    let per = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
    Ok(EvalResult {
        plan: plan.to_string(),
        questions: n,
        correct,
        accuracy: per(correct as f64),
        mean_visual_tokens: per(tokens as f64),
        mean_gflops_executed: per(exec) / 1e9,
        mean_gflops_dense: per(dense) / 1e9,
        mean_ms: per(ms),
        object_patches_kept: if object_patches == 0 { 1.0 } else { object_patches_kept as f64 / object_patches as f64 },
        by_kind,
    })
}

/// The patches of the objects `sample`'s question is about, in the grid of the frame's first
/// tile (cells `patch` pixels wide, mapped by normalised position so any grid size works), and
/// how many of them every stage of `report` kept.
fn objects_kept(sample: &Sample, report: &FrameReport, patch: u32) -> (usize, usize) {
    let mut grids: Vec<&PatchGrid> = report.stages.iter().flat_map(|s| &s.grids).filter(|g| g.tile == 0).collect();
    let Some(&first) = grids.first() else {
        return (0, 0);
    };
    grids.retain(|g| g.rows == first.rows && g.cols == first.cols);
    let side = |cells: usize| u32::try_from(cells).unwrap_or(u32::MAX).saturating_mul(patch);
    let objects = sample.scene.object_patches(side(first.cols), side(first.rows), patch);
    let cells: Vec<usize> = sample.question.about.iter().flat_map(|&o| objects[o].iter().copied()).collect();
    let survives = |c: usize| {
        grids.iter().all(|g| matches!(g.fate(c), PatchFate::Kept | PatchFate::Dominant | PatchFate::Contextual))
    };
    (cells.len(), cells.iter().filter(|&&c| survives(c)).count())
}

/// The sweep's plans: none, then each method at each budget below 100% (adaptive keeps the
/// same share of the attention mass instead of the tokens).
pub fn sweep_plans(methods: &[&str]) -> Vec<PrunePlan> {
    let mut plans = vec![PrunePlan::none()];
    for m in methods {
        for b in SWEEP_BUDGETS.iter().filter(|&&b| b < 100.0) {
            let spec = if *m == "adaptive" { format!("adaptive:{}", b / 100.0) } else { format!("{m}:{b}%") };
            if let Ok(p) = spec.parse() {
                plans.push(p);
            }
        }
    }
    plans
}

/// The results as an aligned table.
pub fn table(rows: &[EvalResult]) -> String {
    let mut out = format!(
        "{:<20} {:>9} {:>8} {:>10} {:>10} {:>9} {:>13}\n",
        "plan", "accuracy", "tokens", "GFLOP", "of dense", "ms", "objects kept"
    );
    for r in rows {
        let share = if r.mean_gflops_dense > 0.0 { r.mean_gflops_executed / r.mean_gflops_dense } else { 1.0 };
        out += &format!(
            "{:<20} {:>8.1}% {:>8.1} {:>10.3} {:>9.1}% {:>9.0} {:>12.1}%\n",
            r.plan,
            100.0 * r.accuracy,
            r.mean_visual_tokens,
            r.mean_gflops_executed,
            100.0 * share,
            r.mean_ms,
            100.0 * r.object_patches_kept
        );
    }
    out
}

/// Accuracy (y) against mean executed GFLOP per frame (x), one coloured line per method, the
/// dense model as a black point.
pub fn plot(rows: &[EvalResult]) -> RgbImage {
    const W: u32 = 880;
    const H: u32 = 560;
    let (left, right, top, bottom) = (80u32, 200u32, 40u32, 60u32);
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let (pw, ph) = (W - left - right, H - top - bottom);
    let max_x = rows.iter().map(|r| r.mean_gflops_executed).fold(0.0, f64::max).max(1e-9) * 1.05;
    let to_px = |gflop: f64, acc: f64| {
        let x = left as f64 + gflop / max_x * pw as f64;
        let y = (top + ph) as f64 - acc.clamp(0.0, 1.0) * ph as f64;
        (x.round() as i64, y.round() as i64)
    };
    let grey = Rgb([170, 170, 170]);
    let black = Rgb([20, 20, 20]);
    for i in 0..=4 {
        let acc = i as f64 / 4.0;
        let (_, y) = to_px(0.0, acc);
        line(&mut img, (left as i64, y), ((left + pw) as i64, y), grey);
        draw_text(&mut img, 12, (y - 8).max(0) as u32, &format!("{:>3}%", (acc * 100.0) as u32), black);
    }
    line(&mut img, (left as i64, top as i64), (left as i64, (top + ph) as i64), black);
    for i in 0..=4 {
        let g = max_x * i as f64 / 4.0;
        let (x, _) = to_px(g, 0.0);
        let label = format!("{g:.2}");
        let lx = (x - text_width(&label) as i64 / 2).max(0) as u32;
        draw_text(&mut img, lx, top + ph + 8, &label, black);
    }
    draw_text(&mut img, left, H - 26, "GFLOP executed per frame", black);
    draw_text(&mut img, left, 10, "accuracy vs. executed FLOPs", black);
    // Okabe-Ito colours, one per method.
    const COLOURS: [[u8; 3]; 7] = [
        [0xE6, 0x9F, 0x00],
        [0x56, 0xB4, 0xE9],
        [0x00, 0x9E, 0x73],
        [0xD5, 0x5E, 0x00],
        [0xCC, 0x79, 0xA7],
        [0x00, 0x72, 0xB2],
        [0xF0, 0xE4, 0x42],
    ];
    let mut methods: Vec<&str> = Vec::new();
    for r in rows {
        let m = r.plan.split(':').next().unwrap_or("");
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    for (k, m) in methods.iter().enumerate() {
        let colour = if *m == "none" { black } else { Rgb(COLOURS[k % COLOURS.len()]) };
        let mut pts: Vec<(i64, i64)> = rows
            .iter()
            .filter(|r| r.plan.split(':').next() == Some(m))
            .map(|r| to_px(r.mean_gflops_executed, r.accuracy))
            .collect();
        pts.sort_unstable();
        for w in pts.windows(2) {
            line(&mut img, w[0], w[1], colour);
        }
        for &p in &pts {
            for dy in -3..=3 {
                for dx in -3..=3 {
                    put(&mut img, p.0 + dx, p.1 + dy, colour);
                }
            }
        }
        let ly = top + 10 + 26 * k as u32;
        for dy in 0..12 {
            for dx in 0..24 {
                put(&mut img, (W - right + 16 + dx) as i64, (ly + dy) as i64, colour);
            }
        }
        draw_text(&mut img, W - right + 48, ly.saturating_sub(2), m, black);
    }
    img
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// A 2 px line (Bresenham).
fn line(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), c: Rgb<u8>) {
    let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
    let (sx, sy) = (if a.0 < b.0 { 1 } else { -1 }, if a.1 < b.1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (a.0, a.1, dx + dy);
    loop {
        put(img, x, y, c);
        put(img, x, y + 1, c);
        if x == b.0 && y == b.1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::report::StageReport;

    #[test]
    fn answers_are_normalised_to_one_word() {
        assert_eq!(normalise(" Red."), "red");
        assert_eq!(normalise("Two circles"), "2");
        assert_eq!(normalise("yes, it is"), "yes");
        assert_eq!(normalise("<|im_end|>"), "im");
        assert_eq!(normalise(""), "");
    }

    #[test]
    fn sweep_has_every_method_at_every_budget_below_full() {
        let plans = sweep_plans(&SWEEP_METHODS);
        assert_eq!(plans.len(), 1 + SWEEP_METHODS.len() * 4);
        assert_eq!(plans[0], PrunePlan::none());
        assert!(plans.iter().any(|p| p.to_string() == "adaptive:0.5"));
        assert!(plans.iter().any(|p| p.to_string() == "visionzip:6.25%"));
    }

    /// The asked-about objects' cells are counted in the first tile's grid, and a cell counts as
    /// kept only when no stage merged or dropped it; grids of other tiles are ignored.
    #[test]
    fn object_patches_kept_follows_every_stage() {
        let cfg = SceneConfig::default();
        let sample = (0..50)
            .map(|i| crate::dataset::sample(Split::Test, i, &cfg, 96))
            .find(|s| s.question.about.len() == 2)
            .expect("a relation question");
        let objects = sample.scene.object_patches(96, 96, 6);
        let (a, b) = (&objects[sample.question.about[0]], &objects[sample.question.about[1]]);
        assert!(a.len() >= 2 && !b.is_empty());
        let mut first = PatchGrid::new(0, 16, 16);
        first.fates[a[0]] = PatchFate::Merged;
        first.fates[b[0]] = PatchFate::Dominant;
        let mut second = PatchGrid::new(0, 16, 16);
        second.fates[a[1]] = PatchFate::Dropped;
        let mut other_tile = PatchGrid::new(1, 16, 16);
        other_tile.fates.fill(PatchFate::Dropped);
        let stage = |grids| StageReport { name: "s".into(), grids, tokens_in: 256, tokens_out: 200 };
        let report = |stages| FrameReport {
            method: "test".into(),
            budget: None,
            visual_tokens_dense: 256,
            visual_tokens: 200,
            stages,
            llm_tokens_per_layer: Vec::new(),
            vision_heads_kept: None,
            llm_heads_kept: None,
            flops_dense: 1.0,
            flops_executed: 1.0,
            flops_by_stage: Vec::new(),
        };
        let both = report(vec![stage(vec![first, other_tile]), stage(vec![second])]);
        assert_eq!(objects_kept(&sample, &both, 6), (a.len() + b.len(), a.len() + b.len() - 2));
        assert_eq!(objects_kept(&sample, &report(Vec::new()), 6), (0, 0));
    }

    #[test]
    fn plot_draws_every_method() {
        let row = |plan: &str, g: f64, acc: f64| EvalResult {
            plan: plan.into(),
            questions: 1,
            correct: 0,
            accuracy: acc,
            mean_visual_tokens: 0.0,
            mean_gflops_executed: g,
            mean_gflops_dense: 1.0,
            mean_ms: 0.0,
            object_patches_kept: 1.0,
            by_kind: Vec::new(),
        };
        let img = plot(&[row("none", 1.0, 0.9), row("visionzip:50%", 0.5, 0.85), row("visionzip:25%", 0.3, 0.7)]);
        // The VisionZip colour (first after none) appears.
        assert!(img.pixels().any(|p| p.0 == [0x56, 0xB4, 0xE9]));
        assert!(plot(&[]).width() > 0);
    }
}
