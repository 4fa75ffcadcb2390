//! The `glimpse` binary end to end: exit codes, and stdout carrying only the result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::temp_dir;

fn glimpse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse")).args(args).output().expect("run glimpse")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A model pair of `preset` forged by the CLI into a fresh directory for `test`:
/// (directory, text.gguf, mmproj.gguf).
fn forged(test: &str, preset: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = temp_dir(test);
    let out = glimpse(&["forge", "--preset", preset, "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (model, mmproj) = (dir.join("text.gguf"), dir.join("mmproj.gguf"));
    (dir, model, mmproj)
}

/// `glimpse CMD -m MODEL --mmproj MMPROJ REST...`.
fn glimpse_on(cmd: &str, model: &Path, mmproj: &Path, rest: &[&str]) -> Output {
    let mut args = vec![cmd, "-m", model.to_str().unwrap(), "--mmproj", mmproj.to_str().unwrap()];
    args.extend_from_slice(rest);
    glimpse(&args)
}

#[test]
fn cli_forge_then_inspect_reports_the_model() {
    let dir = temp_dir("cli_forge_then_inspect");
    let out = glimpse(&["forge", "--preset", "tiny", "--seed", "3", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "forge failed: {}", text(&out.stderr));
    // stdout lists exactly the two files; progress went to stderr.
    let listed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(listed.len(), 2, "stdout: {listed:?}");

    let out = glimpse(&["inspect", dir.join("mmproj.gguf").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("mmproj idefics3"), "{report}");
    assert!(report.contains("visual tokens per tile"), "{report}");
    assert!(report.contains("v.blk.0.attn_out.weight"), "{report}");

    let out = glimpse(&["inspect", "--json", dir.join("text.gguf").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    assert_eq!(json["config"]["text"]["arch"], "llama");
    assert!(json["tensors"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "token_embd.weight")));
}

#[test]
fn cli_inspect_truncated_file_is_a_clear_error() {
    let (dir, model, _) = forged("cli_inspect_truncated", "tiny");
    let full = std::fs::read(model).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &full[..full.len() - 1000]).unwrap();
    let out = glimpse(&["inspect", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains("cut.gguf") && err.contains("past the end of the file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn cli_bad_arguments_fail_without_panicking() {
    for args in [
        &["inspect", "/no/such/file.gguf"][..],
        &["forge", "--preset", "nope", "--out", "/tmp/x"],
        &["forge", "--set", "text.n_layer", "--out", "/tmp/x"],
    ] {
        let out = glimpse(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("error:") && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn cli_ask_streams_the_answer_and_reports_json() {
    if crate::gpu::gpu().is_none() {
        return;
    }
    let (_, model, mmproj) = forged("cli_ask", "tiny");
    let image = crate::util::repo_path("assets/shapes.png");
    let ask = |json: bool| {
        let mut rest = vec!["--image", image.to_str().unwrap(), "-n", "8", "What is in the picture?"];
        if json {
            rest.push("--json");
        }
        glimpse_on("ask", &model, &mmproj, &rest)
    };
    let out = ask(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ask --json prints one JSON document");
    assert_eq!(json["tokens"].as_array().map(Vec::len), Some(8));
    assert!(json["report"]["image_tokens"].as_u64().unwrap() > 0);
    // Without --json, stdout is the answer text and a newline only.
    let out = ask(false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end_matches('\n'), json["text"].as_str().unwrap());

    let out = glimpse_on("ask", &model, &mmproj, &["--image", model.to_str().unwrap(), "hi"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot decode image") && !err.contains("panicked"), "{err}");
}

#[test]
fn cli_ask_prunes_reports_and_draws_the_overlay() {
    if crate::gpu::gpu().is_none() {
        return;
    }
    let (dir, model, mmproj) = forged("cli_ask_prune", "tiny-llava");
    let overlay = dir.join("kept.png");
    let image = crate::util::repo_path("assets/shapes.png");
    let ask = |prune: &str| {
        let rest = [
            "--image",
            image.to_str().unwrap(),
            "-n",
            "4",
            "--prune",
            prune,
            "--overlay",
            overlay.to_str().unwrap(),
            "--json",
            "What is in the picture?",
        ];
        glimpse_on("ask", &model, &mmproj, &rest)
    };
    let out = ask("visionzip:16");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &json["report"]["pruning"];
    assert_eq!(p["visual_tokens"], 16, "{p}");
    assert_eq!(json["report"]["image_tokens"], 16);
    assert!(p["flops_executed"].as_f64().unwrap() < p["flops_dense"].as_f64().unwrap());
    let fates = p["stages"][0]["grids"][0]["fates"].as_array().unwrap();
    assert_eq!(fates.iter().filter(|f| *f == "dominant").count() + 1, 13, "CLS + 12 dominant patches, 3 contextual");
    let png = image::open(&overlay).expect("the overlay is a PNG");
    assert!(png.width() >= 768);

    for bad in ["visionzip:0", "nonsense:5", "visionzip:64,colour=red"] {
        let out = ask(bad);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(text(&out.stderr).contains("--prune"), "{bad}: {}", text(&out.stderr));
    }
}

#[test]
fn cli_compare_prints_a_row_and_an_overlay_per_method() {
    if crate::gpu::gpu().is_none() {
        return;
    }
    let (dir, model, mmproj) = forged("cli_compare", "tiny");
    let pngs = dir.join("overlays");
    let image = crate::util::repo_path("assets/shapes.png");
    let run = |methods: &str| {
        let rest = [
            "--image",
            image.to_str().unwrap(),
            "--max-tiles",
            "1",
            "-n",
            "3",
            "--budget",
            "8",
            "--methods",
            methods,
            "--out",
            pngs.to_str().unwrap(),
            "--json",
            "What is here?",
        ];
        glimpse_on("compare", &model, &mmproj, &rest)
    };
    let out = run("visionzip,grid");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plans: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["plan"].as_str().unwrap()).collect();
    assert_eq!(plans, ["none", "visionzip:8", "grid:8"]);
    assert_eq!(rows[1]["visual_tokens"], 8);
    assert!(rows[1]["speedup"].as_f64().unwrap() > 1.0);
    for m in ["visionzip", "grid"] {
        image::open(pngs.join(format!("{m}.png"))).expect("one overlay per method");
    }
    // An unknown method is an error naming the bad part, exit code 2, before any model work.
    let out = run("nonsense");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad --prune part"), "{}", text(&out.stderr));
}

#[test]
fn cli_stream_writes_a_json_line_per_frame_and_survives_bad_frames() {
    if crate::gpu::gpu().is_none() {
        return;
    }
    let (dir, model, mmproj) = forged("cli_stream", "tiny");
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::copy(crate::util::repo_path("assets/shapes.png"), frames.join("1.png")).unwrap();
    std::fs::write(frames.join("2.png"), b"truncated").unwrap();
    std::fs::write(frames.join("3.jpg"), b"").unwrap();
    let rest = [
        "--images",
        frames.to_str().unwrap(),
        "--loop",
        "--frames",
        "4",
        "-n",
        "3",
        "--prune",
        "grid:50%",
        "What is here?",
    ];
    let out = glimpse_on("stream", &model, &mmproj, &rest);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON document per line")).collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0]["answer"].is_string() && lines[0]["error"].is_null());
    assert_eq!(lines[0]["visual_tokens"].as_u64().unwrap() * 2, lines[0]["visual_tokens_dense"].as_u64().unwrap());
    for bad in [&lines[1], &lines[2]] {
        assert!(bad["error"].as_str().is_some_and(|e| e.contains("cannot decode image")), "{bad}");
    }
    assert_eq!(lines[3]["label"], lines[0]["label"], "the loop starts over");

    // Generated scenes bring their own question and expected answer.
    let rest = ["--synthetic", "--frames", "2", "--scene-size", "96", "-n", "2"];
    let out = glimpse_on("stream", &model, &mmproj, &rest);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(l["question"].as_str().is_some_and(|q| q.ends_with('?')) && l["expected"].is_string(), "{l}");
    }
    // Files without a question is a usage error.
    let out = glimpse(&["stream", "-m", "x", "--mmproj", "y", "--images", frames.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cli_eval_scores_a_plan_and_sweeps_with_a_plot() {
    if crate::gpu::gpu().is_none() {
        return;
    }
    let (dir, model, mmproj) = forged("cli_eval", "tiny-llava");
    let plot = dir.join("sweep.png");
    let run = |extra: &[&str]| {
        let mut rest = vec!["--scene-size", "96", "-n", "2", "--json"];
        rest.extend_from_slice(extra);
        glimpse_on("eval", &model, &mmproj, &rest)
    };
    let out = run(&["-N", "3", "--prune", "grid:25%"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["plan"], "grid:25%");
    assert_eq!(rows[0]["questions"], 3);
    assert_eq!(rows[0]["mean_visual_tokens"], 16.0);
    // A random-weight model answers nothing right: the score is a number, not a crash.
    assert!(rows[0]["accuracy"].as_f64().unwrap() <= 1.0);

    let out = run(&["-N", "1", "--sweep", "--plot", plot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // FastV's default layer 2 does not exist in a 2-layer decoder: skipped, the rest run.
    let plans: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["plan"].as_str().unwrap()).collect();
    assert_eq!(plans[0], "none");
    assert!(plans.contains(&"visionzip:6.25%") && !plans.iter().any(|p| p.starts_with("fastv")), "{plans:?}");
    assert!(text(&out.stderr).contains("skipped fastv"));
    image::open(&plot).expect("the sweep plot is a PNG");
}
