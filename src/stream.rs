//! `glimpse stream`: the headless loop of a Jetson deployment — frames in, one JSON line per
//! frame out (answer, visual tokens, FLOPs dense vs executed, milliseconds). A frame that cannot
//! be read or answered gives an error line and the loop goes on.

use std::io::Write;
use std::time::Instant;

use crate::engine::{AskOptions, Engine};
use crate::frames::{Frame, FrameError, FrameSource};

/// One frame's line.
#[derive(Debug, serde::Serialize)]
pub struct FrameLine {
    pub frame: u64,
    pub label: String,
    /// The frame's own question, when the source gave one (generated scenes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The answer the source expects, when it knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub visual_tokens: usize,
    pub visual_tokens_dense: usize,
    pub gflops_executed: f64,
    pub gflops_dense: f64,
    /// Wall-clock milliseconds from frame to last token.
    pub ms: f64,
}

/// What a whole stream did.
#[derive(Debug, Default)]
pub struct Summary {
    pub answered: u64,
    pub failed: u64,
}

/// Asks `question` (or, when `None`, each frame's own question) about every frame of `source`
/// (at most `max_frames` when given), writing one JSON line per frame to `out`. Errors of a frame
/// become its line; only a failing `out` ends the stream early.
pub fn run(
    engine: &mut Engine,
    source: &mut dyn FrameSource,
    question: Option<&str>,
    opts: &AskOptions,
    max_frames: Option<u64>,
    out: &mut dyn Write,
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    let mut seen = 0u64;
    while max_frames.is_none_or(|m| seen < m) {
        let t = Instant::now();
        let line = match source.next_frame() {
            Ok(None) => break,
            Err(FrameError::Unreadable { label, message }) => FrameLine::failed(seen, label, message),
            Err(e) => FrameLine::failed(seen, String::new(), e.to_string()),
            Ok(Some(frame)) => match ask(engine, &frame, question, opts) {
                Ok((a, asked)) => {
                    let p = a.report.pruning.as_ref();
                    FrameLine {
                        frame: frame.index,
                        label: frame.label,
                        question: frame.question.as_ref().map(|_| asked),
                        expected: frame.question.map(|(_, answer)| answer),
                        answer: Some(a.text.trim().to_string()),
                        error: None,
                        visual_tokens: p.map_or(a.report.image_tokens, |p| p.visual_tokens),
                        visual_tokens_dense: p.map_or(a.report.image_tokens, |p| p.visual_tokens_dense),
                        gflops_executed: p.map_or(0.0, |p| p.flops_executed / 1e9),
                        gflops_dense: p.map_or(0.0, |p| p.flops_dense / 1e9),
                        ms: t.elapsed().as_secs_f64() * 1e3,
                    }
                }
                Err(e) => FrameLine::failed(frame.index, frame.label, e.to_string()),
            },
        };
        seen += 1;
        if line.error.is_some() {
            summary.failed += 1;
        } else {
            summary.answered += 1;
        }
        let json = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
        out.flush()?;
    }
    Ok(summary)
}

/// Answers the stream's question, or the frame's own; returns the answer and the question asked.
fn ask(
    engine: &mut Engine,
    frame: &Frame,
    question: Option<&str>,
    opts: &AskOptions,
) -> Result<(crate::engine::Answer, String), crate::model::Error> {
    let q = match (question, &frame.question) {
        (Some(q), _) => q.to_string(),
        (None, Some((q, _))) => q.clone(),
        (None, None) => return Err(crate::model::Error::Unsupported("no question for this frame".into())),
    };
    Ok((engine.ask(&frame.image, &q, opts, &mut |_| {})?, q))
}

impl FrameLine {
    fn failed(frame: u64, label: String, error: String) -> FrameLine {
        FrameLine {
            frame,
            label,
            question: None,
            expected: None,
            answer: None,
            error: Some(error),
            visual_tokens: 0,
            visual_tokens_dense: 0,
            gflops_executed: 0.0,
            gflops_dense: 0.0,
            ms: 0.0,
        }
    }
}
