//! `glimpse compare`: the same frame and question under no pruning and under each method at one
//! budget — tokens, FLOPs dense vs executed, time and answer per method — and the kept-patch
//! overlay of each.

use std::time::Instant;

use crate::engine::{AskOptions, Engine};
use crate::model::Error;
use crate::prune::overlay;
use crate::prune::plan::PrunePlan;
use crate::prune::report::FrameReport;

/// The methods `compare` runs by default (those the engine implements).
pub const METHODS: &[&str] = &["visionzip", "mustdrop", "adaptive", "fastv", "random", "grid", "smarttrim"];

/// One method's run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CompareRow {
    pub plan: String,
    pub visual_tokens: usize,
    pub gflops_executed: f64,
    pub gflops_dense: f64,
    /// Dense FLOPs over executed.
    pub speedup: f64,
    /// Wall-clock milliseconds of the whole ask (vision to last token).
    pub ms: f64,
    pub answer: String,
    #[serde(skip)]
    pub report: Option<FrameReport>,
}

/// Asks `question` about `image` with no pruning, then with each of `methods` at `budget`
/// (e.g. `25%` or `64`), each timed after a two-token warm-up pass of every plan.
pub fn run(
    engine: &mut Engine,
    image: &image::RgbImage,
    question: &str,
    methods: &[String],
    budget: &str,
    base: &AskOptions,
) -> Result<Vec<CompareRow>, Error> {
    let mut specs = vec!["none".to_string()];
    specs.extend(methods.iter().map(|m| spec(m, budget)));
    let plans = specs
        .iter()
        .map(|s| s.parse::<PrunePlan>().map_err(|e| Error::Unsupported(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    // A short pass per plan first (prefill and one decode step), so shader compilation is not
    // timed.
    for plan in &plans {
        let warm = AskOptions { prune: plan.clone(), max_tokens: 2, ..base.clone() };
        engine.ask(image, question, &warm, &mut |_| {})?;
    }
    let mut rows = Vec::new();
    for (spec, plan) in specs.into_iter().zip(plans) {
        let opts = AskOptions { prune: plan, ..base.clone() };
        let t = Instant::now();
        let answer = engine.ask(image, question, &opts, &mut |_| {})?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let p = answer.report.pruning.clone();
        let (exec, dense) = p.as_ref().map_or((0.0, 0.0), |p| (p.flops_executed, p.flops_dense));
        rows.push(CompareRow {
            plan: spec,
            // Through the last stage (in-LLM methods drop after the prompt is laid out).
            visual_tokens: p
                .as_ref()
                .and_then(|p| p.stages.last())
                .map_or(answer.report.image_tokens, |s| s.tokens_out),
            gflops_executed: exec / 1e9,
            gflops_dense: dense / 1e9,
            speedup: p.as_ref().map_or(1.0, FrameReport::speedup),
            ms,
            answer: answer.text,
            report: p,
        });
    }
    Ok(rows)
}

/// `method:budget`; adaptive takes a share of the attention mass, so a percentage budget becomes
/// that share (25% -> 0.25), as in `glimpse eval --sweep`.
pub fn spec(method: &str, budget: &str) -> String {
    match (method, budget.strip_suffix('%').and_then(|p| p.trim().parse::<f64>().ok())) {
        ("adaptive", Some(pct)) => format!("adaptive:{}", pct / 100.0),
        _ => format!("{method}:{budget}"),
    }
}

/// The comparison as an aligned text table.
pub fn table(rows: &[CompareRow]) -> String {
    let base_ms = rows.first().map_or(1.0, |r| r.ms);
    let mut out = format!(
        "{:<22} {:>7} {:>10} {:>8} {:>9} {:>8}  answer\n",
        "method", "tokens", "GFLOP", "FLOPs x", "ms", "time x"
    );
    for r in rows {
        let answer: String = r.answer.replace('\n', " ").chars().take(60).collect();
        out += &format!(
            "{:<22} {:>7} {:>10.2} {:>8.2} {:>9.0} {:>8.2}  {answer}\n",
            r.plan,
            r.visual_tokens,
            r.gflops_executed,
            r.speedup,
            r.ms,
            base_ms / r.ms.max(1e-9)
        );
    }
    out
}

/// The overlay of a row's last pruning stage (the overview's grid when tiled) over `image`,
/// with a legend; `None` for rows without pruning.
pub fn overlay_image(image: &image::RgbImage, row: &CompareRow) -> Option<image::RgbImage> {
    let p = row.report.as_ref()?;
    let grid = p.stages.last()?.grids.last()?;
    Some(overlay::draw_with_legend(&overlay::upscale(image, 768), grid, &p.summary()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_takes_the_budget_share_as_its_mass() {
        assert_eq!(spec("adaptive", "25%"), "adaptive:0.25");
        assert_eq!(spec("visionzip", "25%"), "visionzip:25%");
        assert_eq!(spec("grid", "64"), "grid:64");
    }
}
