//! `glimpse app`: the egui desktop front end — a camera assistant and a pruning visualiser.
//!
//! Follows emilk's `egui_demo_app` (`wrap_app.rs`, `http_app.rs`): [`Settings`] (what the user
//! chose) is kept apart from runtime handles; each panel is its own module drawing into a `Ui`
//! and returning [`AppCommand`]s that are applied after drawing; slow work never blocks a
//! frame — a worker thread owns the engine ([`worker`]) and a feed thread pulls frames
//! ([`feed`]), both waking the UI when something lands.
//!
//! The engine opens its own wgpu device (with the limits and features it needs, see
//! `gpu::context`); eframe's renderer has another. Frames reach the screen as egui textures.

mod card;
mod controls;
mod feed;
mod numbers;
mod settings;
mod texture;
mod view;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

pub use feed::SourceSpec;
pub use settings::{Continuous, Settings, methods};

use card::{Slot, Swatches};
use feed::Feed;
use worker::{AskJob, Event, Worker};

use crate::frames::Frame;
use crate::gpu::{Gpu, GpuOptions};

/// Height of the strip of plots at the bottom of the window, points.
pub const PLOT_STRIP_HEIGHT: f32 = numbers::PLOT_HEIGHT + 12.0;

/// How the app starts.
pub struct AppOptions {
    pub source: SourceSpec,
    /// The (text, mmproj) pair; the bundled model when `None`.
    pub model: Option<(PathBuf, PathBuf)>,
    pub settings: Settings,
    pub gpu: GpuOptions,
}

/// What a panel asks the app to do.
pub enum AppCommand {
    LoadModel,
    Ask,
    NextFrame,
    OpenSource(SourceSpec),
}

/// Where the model is.
pub enum ModelState {
    /// None loaded yet, and why (e.g. no bundled model).
    Missing(String),
    /// Weights on their way to the GPU (the device appears once it is open).
    Loading {
        gpu: Option<Arc<Gpu>>,
        total: u64,
    },
    /// Ready on the described device.
    Ready(String),
    Failed(String),
}

pub struct GlimpseApp {
    pub settings: Settings,
    model: ModelState,
    worker: Worker,
    feed: Option<Feed>,
    source_form: controls::SourceForm,
    /// Why the source could not be opened, or why the last ask could not be sent.
    message: Option<String>,
    slots: Vec<Slot>,
    history: numbers::History,
    live_tex: texture::Cached,
    swatches: Option<Swatches>,
    /// The frame shown as live (held, so its address keys its texture).
    live: Option<Arc<Frame>>,
    /// When the last ask was sent, and about which frame (for continuous mode).
    last_ask: Option<(Instant, Arc<Frame>)>,
    ctx: egui::Context,
}

impl GlimpseApp {
    /// Starts the worker and the feed, and loads the model (the given pair, else the bundled
    /// one; its absence is shown in the model panel).
    pub fn new(ctx: &egui::Context, opts: AppOptions) -> GlimpseApp {
        let c = ctx.clone();
        let mut app = GlimpseApp {
            settings: opts.settings,
            model: ModelState::Missing(String::new()),
            worker: Worker::spawn(opts.gpu, move || c.request_repaint()),
            feed: None,
            source_form: controls::SourceForm::new(&opts.source),
            message: None,
            slots: Vec::new(),
            history: numbers::History::default(),
            live_tex: texture::Cached::default(),
            swatches: None,
            live: None,
            last_ask: None,
            ctx: ctx.clone(),
        };
        app.open_source(&opts.source);
        match opts.model.map_or_else(crate::bundled::model_pair, Ok) {
            Ok((text, mmproj)) => {
                app.settings.text = text.display().to_string();
                app.settings.mmproj = mmproj.display().to_string();
                app.apply(AppCommand::LoadModel);
            }
            Err(e) => app.model = ModelState::Missing(e),
        }
        app
    }

    /// Whether the worker is loading or answering, or has a job waiting.
    pub fn busy(&self) -> bool {
        self.worker.busy()
    }

    /// Whether a model is loaded.
    pub fn model_ready(&self) -> bool {
        matches!(self.model, ModelState::Ready(_))
    }

    /// Whether every method of the last ask has finished.
    pub fn answered(&self) -> bool {
        !self.slots.is_empty() && self.slots.iter().all(|s| s.outcome.is_some())
    }

    /// The label of the frame the first method answered about, once it has.
    pub fn answered_frame(&self) -> Option<&str> {
        let s = self.slots.first()?;
        matches!(s.outcome, Some(Ok(_))).then_some(s.frame.label.as_str())
    }

    /// The newest frame, if any arrived.
    pub fn live_frame(&self) -> Option<Arc<Frame>> {
        self.feed.as_ref()?.latest()
    }

    /// The whole window.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.drain_events();
        let mut cmds = Vec::new();
        if let Some(f) = self.live_frame() {
            self.live = Some(f);
        }
        self.continuous(&mut cmds);
        let swatches = self.swatches.get_or_insert_with(|| Swatches::new(ui.ctx()));

        egui::Panel::top("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("glimpse");
                if let Some(f) = &self.feed {
                    ui.label(f.describe());
                    if ui.button("Next frame").clicked() {
                        cmds.push(AppCommand::NextFrame);
                    }
                    if let Some(e) = f.error() {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    } else if f.ended() {
                        ui.label("no more frames");
                    }
                }
                if let Some(m) = &self.message {
                    ui.colored_label(ui.visuals().warn_fg_color, m);
                }
                if self.worker.busy() {
                    ui.spinner();
                    ui.label("working");
                }
            });
        });
        egui::Panel::bottom("plots").exact_size(PLOT_STRIP_HEIGHT).show(ui, |ui| self.history.ui(ui));
        egui::Panel::left("controls").default_size(300.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                controls::ui(ui, &mut self.settings, &self.model, &mut self.source_form, &mut cmds);
            });
        });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            view::View {
                settings: &mut self.settings,
                live: self.live.as_ref(),
                live_tex: &mut self.live_tex,
                slots: &mut self.slots,
                swatches,
            }
            .ui(ui, &mut cmds);
        });
        if matches!(self.model, ModelState::Loading { .. }) {
            // Progress comes from the device's byte count, not from events.
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        for c in cmds {
            self.apply(c);
        }
    }

    fn drain_events(&mut self) {
        let events: Vec<Event> = self.worker.events().collect();
        for e in events {
            match e {
                Event::Loading { gpu, total } => self.model = ModelState::Loading { gpu: Some(gpu), total },
                Event::Loaded(Ok(device)) => self.model = ModelState::Ready(device),
                Event::Loaded(Err(e)) => self.model = ModelState::Failed(e),
                Event::Started { frame, question, plans } => {
                    self.slots = plans.into_iter().map(|p| Slot::new(frame.clone(), question.clone(), p)).collect();
                }
                Event::Token { slot, text } => {
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.answer.push_str(&text);
                    }
                }
                Event::Answered { slot, result } => {
                    if let (0, Ok(o)) = (slot, &result) {
                        self.history.push(o);
                    }
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.outcome = Some(result);
                    }
                }
            }
        }
    }

    /// Continuous mode: asks about a new frame (or after the period) when the worker is free.
    fn continuous(&self, cmds: &mut Vec<AppCommand>) {
        let (Some(frame), true) = (&self.live, self.model_ready()) else { return };
        if self.worker.busy() {
            return;
        }
        let since = self.last_ask.as_ref().map(|(t, _)| t.elapsed());
        let new_frame = self.last_ask.as_ref().is_none_or(|(_, f)| !Arc::ptr_eq(f, frame));
        match self.settings.continuous {
            Continuous::Off => {}
            Continuous::EveryFrame if new_frame => cmds.push(AppCommand::Ask),
            Continuous::EveryFrame => {}
            Continuous::EveryMs(n) => {
                let period = Duration::from_millis(n);
                match since {
                    Some(t) if t < period => self.ctx.request_repaint_after(period - t),
                    _ => cmds.push(AppCommand::Ask),
                }
            }
        }
    }

    fn apply(&mut self, cmd: AppCommand) {
        match cmd {
            AppCommand::LoadModel => {
                let (t, m) = (self.settings.text.trim(), self.settings.mmproj.trim());
                if t.is_empty() || m.is_empty() {
                    self.model = ModelState::Missing("give both the text model and the mmproj file".into());
                    return;
                }
                self.worker.load(t.into(), m.into());
                self.model = ModelState::Loading { gpu: None, total: 0 };
            }
            AppCommand::Ask => self.ask(),
            AppCommand::NextFrame => {
                if let Some(f) = &self.feed {
                    f.next();
                }
            }
            AppCommand::OpenSource(spec) => self.open_source(&spec),
        }
    }

    fn ask(&mut self) {
        let Some(frame) = self.live.clone() else {
            self.message = Some("no frame to ask about yet".into());
            return;
        };
        let question = match (&frame.question, self.settings.own_question) {
            (Some((q, _)), true) => q.clone(),
            _ => self.settings.question.trim().to_string(),
        };
        if question.is_empty() {
            self.message = Some("type a question".into());
            return;
        }
        let runs: Result<Vec<_>, String> = self
            .settings
            .methods_to_run()
            .into_iter()
            .map(|m| self.settings.ask_options(&m).map(|o| (self.settings.spec(&m), o)))
            .collect();
        match runs {
            Ok(runs) => {
                self.message = None;
                self.last_ask = Some((Instant::now(), frame.clone()));
                self.worker.ask(AskJob { frame, question, runs });
            }
            Err(e) => self.message = Some(e),
        }
    }

    fn open_source(&mut self, spec: &SourceSpec) {
        let period = if spec.is_live() { Duration::ZERO } else { Duration::from_millis(self.settings.slideshow_ms) };
        match spec.open() {
            Ok(source) => {
                let c = self.ctx.clone();
                self.feed = Some(Feed::start(source, period, move || c.request_repaint()));
                self.message = None;
            }
            Err(e) => self.message = Some(format!("cannot open the source: {e}")),
        }
    }
}

impl eframe::App for GlimpseApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}

/// Opens the window and runs the app until it is closed. The window uses eframe's wgpu
/// renderer (the same wgpu as the engine, on its own device).
pub fn run(opts: AppOptions) -> Result<(), eframe::Error> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("glimpse").with_inner_size([1360.0, 860.0]),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native("glimpse", native, Box::new(|cc| Ok(Box::new(GlimpseApp::new(&cc.egui_ctx, opts)))))
}
