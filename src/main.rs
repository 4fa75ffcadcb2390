//! The `glimpse` command line. stdout carries only the result (or JSON with `--json`); progress,
//! logs and errors go to stderr. Exit codes: 0 success (also on a closed pipe), 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "glimpse", version, about = "A small vision-language model on any GPU, with visual-token pruning")]
#[command(propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a GGUF file holds: model summary, metadata and tensor table
    Inspect {
        /// The GGUF file (a text model or an mmproj)
        file: PathBuf,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write a random-weight model pair (text.gguf + mmproj.gguf) in llama.cpp's exact format
    Forge {
        /// Model shapes: tiny, tiny-qwen2, tiny-llava, smolvlm-256m, smolvlm-500m, llava
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Type of the quantisable weights: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k
        #[arg(long)]
        qtype: Option<glimpse::gguf::GgmlType>,
        /// Seed for the weights (the same seed writes byte-identical files)
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Override a setting, e.g. text.n_layer=4 or vision.qtype.ffn=q4_k (repeatable;
        /// an unknown key lists them all)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Output directory (created if missing)
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            if err
                .chain()
                .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { file, json } => inspect(&file, json),
        Command::Forge { preset, qtype, seed, set, out } => forge(&preset, qtype, seed, &set, &out),
    }
}

fn forge(
    preset: &str,
    qtype: Option<glimpse::gguf::GgmlType>,
    seed: u64,
    set: &[String],
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use glimpse::forge::ForgeSpec;
    let mut spec = ForgeSpec::preset(preset)?;
    spec.seed = seed;
    if let Some(ty) = qtype {
        spec.set_qtype(ty);
    }
    for kv in set {
        let (key, value) = kv.split_once('=').with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
        spec.set(key.trim(), value.trim()).with_context(|| format!("--set {kv}"))?;
    }
    let start = std::time::Instant::now();
    eprintln!("forging preset {preset} (seed {seed}) into {} ...", out.display());
    let forged = glimpse::forge::forge(&spec, out)?;
    eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    println!("{}\n{}", forged.text.display(), forged.mmproj.display());
    Ok(ExitCode::SUCCESS)
}

fn inspect(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let g = glimpse::gguf::Gguf::open(file).context("cannot read the GGUF file")?;
    let out = if json {
        serde_json::to_string_pretty(&glimpse::inspect::render_json(&g))? + "\n"
    } else {
        glimpse::inspect::render_text(&g)
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
