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
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            if err.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)) {
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
    }
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
