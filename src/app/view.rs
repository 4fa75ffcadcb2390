//! The main view: the question box, the live frame, and one answer card per method (two side by
//! side in compare mode), each with the kept-patch overlay of the frame it answered.

use std::sync::Arc;

use eframe::egui;

use super::AppCommand;
use super::card::{Slot, Swatches};
use super::settings::Settings;
use super::texture::{self, Cached};
use crate::frames::Frame;

/// What the view shows; the app owns it.
pub struct View<'a> {
    pub settings: &'a mut Settings,
    pub live: Option<&'a Arc<Frame>>,
    pub live_tex: &'a mut Cached,
    pub slots: &'a mut [Slot],
    pub swatches: &'a Swatches,
}

impl View<'_> {
    pub fn ui(self, ui: &mut egui::Ui, cmds: &mut Vec<AppCommand>) {
        let s = self.settings;
        let scene = self.live.and_then(|f| f.question.as_ref());
        ui.horizontal(|ui| {
            let l = ui.label("Question");
            let own = scene.is_some() && s.own_question;
            let edit = ui
                .add_enabled(!own, egui::TextEdit::singleline(&mut s.question).desired_width(360.0))
                .labelled_by(l.id);
            if ui.button("Ask").clicked() || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))) {
                cmds.push(AppCommand::Ask);
            }
        });
        if let Some((q, expected)) = scene {
            ui.checkbox(&mut s.own_question, format!("ask the scene's question: {q} (expected: {expected})"));
        }
        ui.separator();

        let cols = 1 + self.slots.len().max(1);
        let width = ((ui.available_width() - 16.0 * cols as f32) / cols as f32).max(64.0);
        // Pictures take at most half the height, so answers and numbers stay in view.
        let picture = egui::vec2(width, (ui.available_height() * 0.5).clamp(64.0, width));
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(width);
                    ui.heading("Live");
                    match self.live {
                        Some(f) => {
                            ui.label(&f.label);
                            let key = Arc::as_ptr(f) as u64;
                            match self.live_tex.get(ui.ctx(), "live", key, || {
                                texture::fit(&f.image, texture::DISPLAY_SIDE).map(std::borrow::Cow::into_owned)
                            }) {
                                Some(tex) => {
                                    texture::show(ui, tex, picture);
                                }
                                None => {
                                    ui.label("empty frame");
                                }
                            }
                        }
                        None => {
                            ui.label("waiting for a frame ...");
                        }
                    }
                });
                for slot in self.slots.iter_mut() {
                    ui.separator();
                    ui.vertical(|ui| {
                        ui.set_width(width);
                        slot.ui(ui, self.swatches, picture);
                    });
                }
            });
        });
    }
}
