//! The desktop app driven headlessly through egui_kittest: the real panels, worker and frame
//! feed on a forged model and generated scenes, rendered on wgpu (lavapipe in CI). Snapshots of
//! the main and compare views live in `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};
use glimpse::app::{AppOptions, GlimpseApp, Settings, SourceSpec};
use glimpse::dataset::Split;
use glimpse::engine::{Answer, Engine, EngineOptions};
use glimpse::forge::{ForgeSpec, forge};
use glimpse::frames::{FrameSource, Scenes};

use crate::gpu::gpu;
use crate::util::temp_dir;

/// Window size of the tests, points.
const SIZE: egui::Vec2 = egui::Vec2::new(1280.0, 860.0);
/// Longest wait for the worker (model load or one ask on lavapipe).
const TIMEOUT: Duration = Duration::from_secs(240);
/// Scene side, pixels.
const SCENE: u32 = 384;
/// Pixels allowed to differ from a snapshot (text anti-aliasing across Mesa builds).
const SNAPSHOT_PIXELS: usize = 400;

type AppHarness = Harness<'static, Option<GlimpseApp>>;

/// tiny-llava forged for `test`: (text, mmproj).
fn forged(test: &str) -> (PathBuf, PathBuf) {
    let f = forge(&ForgeSpec::preset("tiny-llava").unwrap(), &temp_dir(test)).unwrap();
    (f.text, f.mmproj)
}

/// The app on `source` with `model`, created inside the harness so it wakes the harness's
/// context.
fn harness(source: SourceSpec, model: (PathBuf, PathBuf), settings: Settings) -> AppHarness {
    harness_with(AppOptions { source, model: Some(model), settings, gpu: Default::default() }, true)
}

/// The app from `opts`, rendered on wgpu when `render` (for snapshots).
fn harness_with(opts: AppOptions, render: bool) -> AppHarness {
    let mut opts = Some(opts);
    // A forged model's random tokens include characters the bundled fonts lack: drawn as tofu,
    // as the app does outside tests.
    let builder = Harness::builder().with_size(SIZE).allow_missing_glyphs();
    let builder = if render { builder.wgpu() } else { builder };
    builder.build_ui_state(
        move |ui, app: &mut Option<GlimpseApp>| {
            if let Some(o) = opts.take() {
                *app = Some(GlimpseApp::new(ui.ctx(), o));
            }
            if let Some(a) = app {
                a.show(ui);
            }
        },
        None,
    )
}

fn app(h: &AppHarness) -> &GlimpseApp {
    h.state().as_ref().expect("created on the first step")
}

/// Steps the UI until `done(app)` holds (then a few more steps so the UI shows it).
fn wait_for(h: &mut AppHarness, what: &str, done: impl Fn(&GlimpseApp) -> bool) {
    let start = Instant::now();
    loop {
        h.step();
        if h.state().as_ref().is_some_and(&done) {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(4);
}

/// A paused slideshow: settings whose period outlasts any test.
fn paused() -> Settings {
    Settings { slideshow_ms: 3_600_000, ..Settings::default() }
}

/// What the engine itself answers about the first test scene with `method` at the default
/// budget, through the same settings the app uses.
fn expected(model: &(PathBuf, PathBuf), settings: &Settings, method: &str) -> Answer {
    let frame = Scenes::new(Split::Test, SCENE).next_frame().unwrap().unwrap();
    let (question, _) = frame.question.clone().unwrap();
    let mut engine = Engine::load(&model.0, &model.1, &EngineOptions::default()).unwrap();
    engine.ask(&frame.image, &question, &settings.ask_options(method).unwrap(), &mut |_| {}).unwrap()
}

/// The labels the app shows for an answer: its text, the kept-patch count, the FLOPs line.
fn answer_labels(a: &Answer) -> [String; 3] {
    let p = a.report.pruning.as_ref().expect("a pruning report");
    let grid = p.stages.last().and_then(|s| s.grids.last()).expect("a kept-patch grid");
    [
        a.text.trim().to_string(),
        format!("kept patches: {} of {}", grid.kept(), grid.cells()),
        format!(
            "FLOPs {:.3} of {:.3} GFLOP dense ({:.1}x fewer)",
            p.flops_executed / 1e9,
            p.flops_dense / 1e9,
            p.speedup()
        ),
    ]
}

/// Picks `option` in the combo box labelled `combo`.
fn pick(h: &mut AppHarness, combo: &str, option: &str) {
    h.get_by_label(combo).click();
    h.run_steps(2);
    h.get_by_label(option).click();
    h.run_steps(2);
}

/// Compares against the checked-in snapshot, masking what varies between runs and machines:
/// the model paths, the device name, timings and the latency plot.
fn snapshot(h: &mut AppHarness, name: &str) {
    let mut masks: Vec<egui::Rect> =
        ["Text model (GGUF)", "Projector (mmproj GGUF)"].iter().map(|l| h.get_by_label(l).rect()).collect();
    masks.extend(h.get_all_by_label_contains("ready on").map(|n| n.rect()));
    // Timing lines vary in width too: masked to the right edge.
    masks.extend(h.get_all_by_label_contains("time ").map(|n| n.rect().with_max_x(SIZE.x)));
    // The latency plot: the right half of the plot strip at the bottom (its axis labels reach
    // a little above it).
    let strip = glimpse::app::PLOT_STRIP_HEIGHT + 12.0;
    masks.push(egui::Rect::from_min_max(egui::pos2(SIZE.x / 2.0, SIZE.y - strip), SIZE.to_pos2()));
    for m in masks {
        h.mask(m);
    }
    h.snapshot_options(name, &SnapshotOptions::new().max_failed_pixels(SNAPSHOT_PIXELS));
}

#[test]
fn app_answers_a_scene_with_overlay_and_flops() {
    if gpu().is_none() {
        return;
    }
    let model = forged("app_answers_a_scene");
    let mut settings = paused();
    settings.method = "grid".into();
    let mut h = harness(SourceSpec::Scenes { size: SCENE }, model.clone(), settings.clone());
    wait_for(&mut h, "the model and a frame", |a| a.model_ready() && a.live_frame().is_some());

    // Pick VisionZip at 50% through the controls.
    pick(&mut h, "Method", "visionzip");
    h.get_by_role_and_label(Role::Slider, "Budget %").set_value_accesskit(50.0);
    h.run_steps(2);
    assert_eq!((app(&h).settings.method.as_str(), app(&h).settings.budget_pct), ("visionzip", 50));

    h.get_by_label("Ask").click();
    wait_for(&mut h, "the answer", |a| a.answered() && !a.busy());

    let want = expected(&model, &Settings { budget_pct: 50, ..settings }, "visionzip");
    for label in answer_labels(&want) {
        h.get_by_label(&label);
    }
    h.get_by_label("visionzip:50%");
    snapshot(&mut h, "app_main");
}

#[test]
fn app_compare_mode_shows_two_methods_on_one_frame() {
    if gpu().is_none() {
        return;
    }
    let model = forged("app_compare_mode");
    let settings = paused();
    let mut h = harness(SourceSpec::Scenes { size: SCENE }, model.clone(), settings.clone());
    wait_for(&mut h, "the model and a frame", |a| a.model_ready() && a.live_frame().is_some());

    h.get_by_label("Compare with").click();
    h.run_steps(2);
    pick(&mut h, "Second method", "grid");
    h.get_by_label("Ask").click();
    wait_for(&mut h, "both answers", |a| a.answered() && !a.busy());

    // Each card shows its method's kept patches and FLOPs (equal labels appear once per card).
    let mut want = Vec::new();
    for method in ["visionzip", "grid"] {
        h.get_by_label(&format!("{method}:25%"));
        let [_, kept, flops] = answer_labels(&expected(&model, &settings, method));
        want.extend([kept, flops]);
    }
    for label in &want {
        let n = want.iter().filter(|l| *l == label).count();
        assert_eq!(h.get_all_by_label(label).count(), n, "{label}");
    }
    snapshot(&mut h, "app_compare");
}

/// Frames that cannot be read, or are empty, huge or grayscale, never stop the app: bad ones
/// show as an error, the good ones are answered in continuous mode.
#[test]
fn app_survives_bad_frames_in_continuous_mode() {
    if gpu().is_none() {
        return;
    }
    let dir = temp_dir("app_bad_frames");
    let gray = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([(x * 6 + y) as u8]));
    gray.save(dir.join("a-gray.png")).unwrap();
    std::fs::write(dir.join("b-empty.png"), b"").unwrap();
    image::RgbImage::from_pixel(4200, 6, image::Rgb([200, 30, 30])).save(dir.join("c-huge.png")).unwrap();
    std::fs::write(dir.join("d-corrupt.jpg"), b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9])).save(dir.join("e-one-pixel.png")).unwrap();

    let settings = Settings {
        slideshow_ms: 50,
        continuous: glimpse::app::Continuous::EveryFrame,
        own_question: false,
        ..Settings::default()
    };
    let model = forged("app_bad_frames_model");
    let mut h = harness(SourceSpec::Images(vec![dir]), model, settings);
    let start = Instant::now();
    let (mut errors, mut answered) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    while answered.len() < 3 || errors.len() < 2 {
        h.step();
        for file in ["b-empty.png", "d-corrupt.jpg"] {
            if h.query_by_label_contains(file).is_some() {
                errors.insert(file);
            }
        }
        if let Some(f) = h.state().as_ref().and_then(GlimpseApp::answered_frame) {
            answered.insert(f.to_string());
        }
        assert!(start.elapsed() < TIMEOUT, "answered {answered:?}, errors seen {errors:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(answered.iter().all(|f| ["a-gray.png", "c-huge.png", "e-one-pixel.png"].iter().any(|n| f.ends_with(n))));
}

/// A model that cannot be read is reported in the model panel; the app keeps running.
#[test]
fn app_shows_why_a_model_does_not_load() {
    let missing = PathBuf::from("/nonexistent/text.gguf");
    let opts = AppOptions {
        source: SourceSpec::Scenes { size: 64 },
        model: Some((missing.clone(), missing.with_file_name("mmproj.gguf"))),
        settings: paused(),
        gpu: Default::default(),
    };
    let mut h = harness_with(opts, false);
    wait_for(&mut h, "the load to fail", |a| !a.busy() && !a.model_ready() && a.live_frame().is_some());
    h.get_by_label_contains("cannot read the model files");
    h.get_by_label("Ask").click();
    h.run_steps(4);
    wait_for(&mut h, "the ask to be refused", |a| a.answered());
    h.get_by_label("error: no model loaded");
}
