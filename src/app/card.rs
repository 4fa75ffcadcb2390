//! One method's answer about one frame: the kept-patch overlay of a chosen pruning stage with
//! its legend (swatches drawn by `prune::overlay`, so the picture and the legend agree), the
//! streamed answer and the numbers. The main view shows one card, compare mode two.

use std::sync::Arc;

use eframe::egui::{self, TextureHandle, TextureOptions};

use super::numbers;
use super::texture::{self, Cached};
use super::worker::Outcome;
use crate::frames::Frame;
use crate::prune::overlay::{self, FATES};
use crate::prune::report::{FrameReport, PatchGrid};

/// Side of a legend swatch, pixels.
const SWATCH: u32 = 14;
/// Overlays of frames smaller than this are upscaled (nearest) so patches stay visible.
const OVERLAY_MIN_SIDE: u32 = 512;

/// The legend swatches, one texture per fate in [`FATES`] order.
pub struct Swatches(Vec<TextureHandle>);

impl Swatches {
    pub fn new(ctx: &egui::Context) -> Swatches {
        Swatches(
            FATES
                .iter()
                .map(|&f| {
                    let img = overlay::swatch(f, SWATCH);
                    let c = egui::ColorImage::from_rgb([SWATCH as usize; 2], img.as_raw());
                    ctx.load_texture(overlay::fate_name(f), c, TextureOptions::NEAREST)
                })
                .collect(),
        )
    }
}

/// A slot: the frame, question and plan it ran, the answer so far and, when done, the outcome.
pub struct Slot {
    pub plan: String,
    pub frame: Arc<Frame>,
    pub question: String,
    pub answer: String,
    pub outcome: Option<Result<Box<Outcome>, String>>,
    /// The pruning stage shown (index into the report's stages); the last when out of range.
    stage: usize,
    overlay: Cached,
}

impl Slot {
    pub fn new(frame: Arc<Frame>, question: String, plan: String) -> Slot {
        Slot {
            plan,
            frame,
            question,
            answer: String::new(),
            outcome: None,
            stage: usize::MAX,
            overlay: Cached::default(),
        }
    }

    fn report(&self) -> Option<&FrameReport> {
        self.outcome.as_ref()?.as_ref().ok()?.answer.report.pruning.as_ref()
    }

    /// The grid shown: the chosen stage's last grid (the overview's when tiled).
    fn grid(&self) -> Option<(usize, &PatchGrid)> {
        let stages = &self.report()?.stages;
        let i = self.stage.min(stages.len().checked_sub(1)?);
        Some((i, stages[i].grids.last()?))
    }

    /// The card, its overlay at most `picture` points large.
    pub fn ui(&mut self, ui: &mut egui::Ui, swatches: &Swatches, picture: egui::Vec2) {
        ui.heading(&self.plan);
        self.overlay_ui(ui, swatches, picture);
        ui.label(format!("Q: {}", self.question));
        ui.strong("Answer");
        let text = match &self.outcome {
            Some(Err(e)) => format!("error: {e}"),
            Some(Ok(o)) => o.answer.text.trim().to_string(),
            None if self.answer.trim().is_empty() => "...".to_string(),
            None => self.answer.trim().to_string(),
        };
        ui.label(text);
        if let Some(Ok(o)) = &self.outcome {
            ui.separator();
            numbers::report_ui(ui, o);
        }
    }

    fn overlay_ui(&mut self, ui: &mut egui::Ui, swatches: &Swatches, picture: egui::Vec2) {
        let Some((stage, grid)) = self.grid().map(|(i, g)| (i, g.clone())) else {
            if self.outcome.is_some() {
                ui.label("no pruning ran: every patch kept");
            }
            return;
        };
        // A slot keeps its frame: only a new stage needs a new texture.
        let key = stage as u64;
        let frame = self.frame.clone();
        let tex = self.overlay.get(ui.ctx(), "overlay", key, || {
            let shown = texture::fit(&frame.image, texture::DISPLAY_SIDE)?;
            Some(overlay::upscale(&overlay::draw(&shown, &grid), OVERLAY_MIN_SIDE))
        });
        if let Some(tex) = tex {
            texture::show(ui, tex, picture);
        }
        let names: Vec<String> =
            self.report().map(|r| r.stages.iter().map(|s| s.name.clone()).collect()).unwrap_or_default();
        if names.len() > 1 {
            let mut chosen = stage;
            egui::ComboBox::from_id_salt(("stage", &self.plan)).selected_text(&names[stage]).show_ui(ui, |ui| {
                for (i, n) in names.iter().enumerate() {
                    ui.selectable_value(&mut chosen, i, n);
                }
            });
            self.stage = chosen;
        }
        ui.horizontal_wrapped(|ui| {
            for (f, tex) in FATES.iter().zip(&swatches.0) {
                let n = grid.count(*f);
                if n > 0 {
                    ui.image((tex.id(), tex.size_vec2()));
                    ui.label(format!("{} {n}", overlay::fate_name(*f)));
                }
            }
        });
        ui.label(format!("kept patches: {} of {}", grid.kept(), grid.cells()));
    }
}
