//! The numbers people read at a glance: a frame's FLOPs dense vs executed (label and bar),
//! visual tokens, KV-cache bytes and per-stage milliseconds, and rolling plots of FLOPs and
//! latency over the last frames.

use std::collections::VecDeque;

use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints, PlotUi, Points};

use super::worker::Outcome;
use crate::prune::report::FrameReport;

/// Frames kept in the rolling plots.
const HISTORY: usize = 120;
/// Height of the plot strip, in points.
pub const PLOT_HEIGHT: f32 = 150.0;

/// `FLOPs 0.123 of 0.987 GFLOP dense (8.0x fewer)`.
pub fn flops_label(p: &FrameReport) -> String {
    format!("FLOPs {:.3} of {:.3} GFLOP dense ({:.1}x fewer)", p.flops_executed / 1e9, p.flops_dense / 1e9, p.speedup())
}

/// `time 812 ms (preprocess 3, vision 120, ...)`: wall time and the per-stage split (GPU time
/// when the device has timestamps).
pub fn time_label(o: &Outcome) -> String {
    let r = &o.answer.report;
    let stages = if r.gpu_ms.is_empty() { &r.wall_ms } else { &r.gpu_ms };
    let parts: Vec<String> = stages.iter().map(|(n, ms)| format!("{n} {ms:.0}")).collect();
    format!("time {:.0} ms ({})", o.ms, parts.join(", "))
}

/// One answer's numbers.
pub fn report_ui(ui: &mut egui::Ui, o: &Outcome) {
    let r = &o.answer.report;
    if let Some(p) = &r.pruning {
        ui.label(flops_label(p));
        let share = if p.flops_dense > 0.0 { (p.flops_executed / p.flops_dense) as f32 } else { 1.0 };
        ui.add(egui::ProgressBar::new(share.clamp(0.0, 1.0)).desired_height(10.0));
        let kept = p.stages.last().map_or(p.visual_tokens, |s| s.tokens_out);
        ui.label(format!("visual tokens {kept} of {}", p.visual_tokens_dense));
    }
    ui.label(format!(
        "KV cache {:.1} of {:.1} KiB",
        r.kv_bytes_used as f64 / 1024.0,
        r.kv_bytes_allocated as f64 / 1024.0
    ));
    // One line whatever the timings, so the layout below does not move with them.
    ui.add(egui::Label::new(time_label(o)).truncate());
}

/// (frame number, GFLOP executed, GFLOP dense, ms)
type Row = (f64, f64, f64, f64);

/// FLOPs and latency of the last [`HISTORY`] answered frames (the first method's, in compare
/// mode).
#[derive(Default)]
pub struct History {
    rows: VecDeque<Row>,
    n: u64,
}

impl History {
    pub fn push(&mut self, o: &Outcome) {
        let (exec, dense) = o.answer.report.pruning.as_ref().map_or((0.0, 0.0), |p| (p.flops_executed, p.flops_dense));
        self.n += 1;
        self.rows.push_back((self.n as f64, exec / 1e9, dense / 1e9, o.ms));
        if self.rows.len() > HISTORY {
            self.rows.pop_front();
        }
    }

    /// Two plots side by side: GFLOP per frame (executed and dense), milliseconds per frame;
    /// lines with a marker per frame (so the first frame shows too).
    pub fn ui(&self, ui: &mut egui::Ui) {
        let draw = |p: &mut PlotUi<'_>, name: &str, f: fn(&Row) -> f64| {
            let pts = || -> PlotPoints<'_> { self.rows.iter().map(|r| [r.0, f(r)]).collect() };
            p.line(Line::new(name, pts()));
            p.points(Points::new(name, pts()).radius(2.0));
        };
        ui.columns(2, |c| {
            plot("flops_plot", "GFLOP").show(&mut c[0], |p| {
                draw(p, "executed", |r| r.1);
                draw(p, "dense", |r| r.2);
            });
            plot("latency_plot", "ms").show(&mut c[1], |p| draw(p, "latency", |r| r.3));
        });
    }
}

/// A fixed (no drag or zoom) plot from 0 up, with a legend.
fn plot(id: &str, unit: &str) -> Plot<'static> {
    Plot::new(id)
        .height(PLOT_HEIGHT)
        .legend(Legend::default())
        .include_y(0.0)
        .y_axis_label(unit.to_string())
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
}
