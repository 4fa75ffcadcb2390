//! The control panel: model files (a path field and a Load button: a native file dialog would
//! pull GTK into the build), the frame source, method and budget with each method's own
//! parameters, compare mode, tiles, sampling and continuous mode. Actions come back as
//! [`AppCommand`]s, applied after drawing.

use eframe::egui;

use super::feed::SourceSpec;
use super::settings::{Continuous, Settings, methods};
use super::{AppCommand, ModelState};

/// The source picker's fields as typed.
pub struct SourceForm {
    pub kind: SourceKind,
    pub images: String,
    pub scene_size: u32,
    #[cfg(feature = "camera")]
    pub camera: CameraForm,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Scenes,
    Images,
    #[cfg(feature = "camera")]
    Camera,
}

/// Camera choice: the listed devices, the one picked and the resolution asked for.
#[cfg(feature = "camera")]
#[derive(Default)]
pub struct CameraForm {
    pub devices: Vec<crate::frames::camera::CameraInfo>,
    pub index: u32,
    pub resolution: Option<(u32, u32)>,
}

/// Resolutions offered for cameras (`None`: the camera's fastest format).
#[cfg(feature = "camera")]
const RESOLUTIONS: [Option<(u32, u32)>; 4] = [None, Some((640, 480)), Some((1280, 720)), Some((1920, 1080))];

impl SourceForm {
    /// The form showing `spec`.
    pub fn new(spec: &SourceSpec) -> SourceForm {
        let mut f = SourceForm {
            kind: SourceKind::Scenes,
            images: String::new(),
            scene_size: 384,
            #[cfg(feature = "camera")]
            camera: CameraForm::default(),
        };
        match spec {
            SourceSpec::Scenes { size } => f.scene_size = *size,
            SourceSpec::Images(p) => {
                f.kind = SourceKind::Images;
                f.images = p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(";");
            }
            #[cfg(feature = "camera")]
            SourceSpec::Camera { index, resolution } => {
                f.kind = SourceKind::Camera;
                f.camera =
                    CameraForm { devices: crate::frames::camera::list(), index: *index, resolution: *resolution };
            }
        }
        f
    }

    fn spec(&self) -> SourceSpec {
        match self.kind {
            SourceKind::Scenes => SourceSpec::Scenes { size: self.scene_size },
            SourceKind::Images => SourceSpec::Images(self.images.split(';').map(|p| p.trim().into()).collect()),
            #[cfg(feature = "camera")]
            SourceKind::Camera => SourceSpec::Camera { index: self.camera.index, resolution: self.camera.resolution },
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, cmds: &mut Vec<AppCommand>) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.kind, SourceKind::Scenes, "Scenes");
            ui.selectable_value(&mut self.kind, SourceKind::Images, "Images");
            #[cfg(feature = "camera")]
            ui.selectable_value(&mut self.kind, SourceKind::Camera, "Camera");
        });
        match self.kind {
            SourceKind::Scenes => {
                ui.add(egui::Slider::new(&mut self.scene_size, 64..=1024).text("scene px"));
            }
            SourceKind::Images => labelled_edit(ui, "Image files or folders (; between)", &mut self.images),
            #[cfg(feature = "camera")]
            SourceKind::Camera => self.camera.ui(ui),
        }
        if ui.button("Open source").clicked() {
            cmds.push(AppCommand::OpenSource(self.spec()));
        }
    }
}

#[cfg(feature = "camera")]
impl CameraForm {
    fn ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let name = |i: u32| {
                self.devices.iter().find(|d| d.index == i).map_or(format!("camera {i}"), |d| format!("{i}: {}", d.name))
            };
            egui::ComboBox::from_label("Device").selected_text(name(self.index)).show_ui(ui, |ui| {
                for d in &self.devices {
                    ui.selectable_value(&mut self.index, d.index, format!("{}: {}", d.index, d.name));
                }
            });
            if ui.button("Refresh").clicked() {
                self.devices = crate::frames::camera::list();
            }
        });
        if self.devices.is_empty() {
            ui.label("no camera found");
        }
        let text = |r: Option<(u32, u32)>| r.map_or("fastest".to_string(), |(w, h)| format!("{w}x{h}"));
        egui::ComboBox::from_label("Resolution").selected_text(text(self.resolution)).show_ui(ui, |ui| {
            for r in RESOLUTIONS {
                ui.selectable_value(&mut self.resolution, r, text(r));
            }
        });
    }
}

/// A single-line text field with an accessible label.
fn labelled_edit(ui: &mut egui::Ui, label: &str, text: &mut String) {
    let l = ui.label(label);
    ui.add(egui::TextEdit::singleline(text).desired_width(f32::INFINITY)).labelled_by(l.id);
}

/// A method picker, and the parameter field of the method picked.
fn method_ui(
    ui: &mut egui::Ui,
    label: &str,
    method: &mut String,
    s_params: &mut std::collections::BTreeMap<String, String>,
) {
    egui::ComboBox::from_label(label).selected_text(method.as_str()).show_ui(ui, |ui| {
        for m in methods() {
            ui.selectable_value(method, m.to_string(), m);
        }
    });
    if method != "none" {
        labelled_edit(ui, &format!("{method} parameters"), s_params.entry(method.clone()).or_default());
    }
}

/// The whole panel.
pub fn ui(
    ui: &mut egui::Ui,
    s: &mut Settings,
    model: &ModelState,
    source: &mut SourceForm,
    cmds: &mut Vec<AppCommand>,
) {
    ui.heading("Model");
    labelled_edit(ui, "Text model (GGUF)", &mut s.text);
    labelled_edit(ui, "Projector (mmproj GGUF)", &mut s.mmproj);
    if ui.button("Load").clicked() {
        cmds.push(AppCommand::LoadModel);
    }
    match model {
        ModelState::Missing(e) | ModelState::Failed(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ModelState::Loading { gpu, total } => {
            let done = gpu.as_ref().map_or(0, |g| g.allocated_bytes());
            let share = (done as f64 / (*total).max(1) as f64).min(1.0) as f32;
            ui.add(egui::ProgressBar::new(share).text(format!("loading {:.0}%", share * 100.0)));
        }
        ModelState::Ready(device) => {
            ui.label(format!("ready on {device}"));
        }
    }

    ui.separator();
    ui.heading("Frames");
    source.ui(ui, cmds);
    ui.add(egui::Slider::new(&mut s.slideshow_ms, 200..=10_000).text("slideshow ms (on open)"));

    ui.separator();
    ui.heading("Pruning");
    method_ui(ui, "Method", &mut s.method, &mut s.params);
    ui.add(egui::Slider::new(&mut s.budget_pct, 1..=100).text("Budget %"));
    ui.checkbox(&mut s.compare, "Compare with");
    if s.compare {
        method_ui(ui, "Second method", &mut s.compare_method, &mut s.params);
    }
    ui.label(egui::RichText::new("parameters: key=value, comma-separated (see glimpse ask --help)").small());

    ui.separator();
    ui.heading("Generation");
    ui.add(egui::Slider::new(&mut s.max_tiles, 1..=16).text("max tiles"));
    ui.add(egui::Slider::new(&mut s.temperature, 0.0..=2.0).text("temperature"));
    ui.add(egui::Slider::new(&mut s.max_tokens, 1..=256).text("max tokens"));

    ui.separator();
    ui.heading("Continuous");
    let mut every_ms = match s.continuous {
        Continuous::EveryMs(n) => n,
        _ => 1000,
    };
    ui.radio_value(&mut s.continuous, Continuous::Off, "off");
    ui.radio_value(&mut s.continuous, Continuous::EveryFrame, "every new frame");
    ui.horizontal(|ui| {
        ui.radio_value(&mut s.continuous, Continuous::EveryMs(every_ms), "every");
        if ui.add(egui::DragValue::new(&mut every_ms).range(100..=60_000).suffix(" ms")).changed()
            && matches!(s.continuous, Continuous::EveryMs(_))
        {
            s.continuous = Continuous::EveryMs(every_ms);
        }
    });
}
