//! What the user chose in the app (model files, methods, budget, sampling, question, pacing),
//! apart from the runtime handles (emilk's `wrap_app.rs` keeps `State` apart the same way), and
//! the one place those choices become a checked [`AskOptions`].

use std::collections::BTreeMap;

use crate::engine::AskOptions;
use crate::model::sampler::Sampling;
use crate::prune::plan::PrunePlan;

/// The methods the method pickers offer: no pruning, then what `glimpse compare` runs.
pub fn methods() -> impl Iterator<Item = &'static str> {
    std::iter::once("none").chain(crate::compare::METHODS.iter().copied())
}

/// When to ask again without a click.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuous {
    Off,
    /// On every new frame (when the worker is free; frames that arrive meanwhile are skipped).
    EveryFrame,
    /// Every `n` milliseconds, about the newest frame.
    EveryMs(u64),
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// Text model and mmproj paths as typed.
    pub text: String,
    pub mmproj: String,
    /// The pruning method (one of [`methods`]) and, in compare mode, the second one.
    pub method: String,
    pub compare_method: String,
    pub compare: bool,
    /// Visual-token budget, percent of the frame's tokens (adaptive: its attention-mass share).
    pub budget_pct: u32,
    /// Extra `key=value` settings per method, comma-separated (`dominant=40`, `stage1=off`, ...).
    pub params: BTreeMap<String, String>,
    /// idefics3 tiles (the live camera default is 1: the overview only).
    pub max_tiles: usize,
    pub temperature: f32,
    pub max_tokens: usize,
    pub question: String,
    /// Ask a generated scene's own question instead of the question box.
    pub own_question: bool,
    pub continuous: Continuous,
    /// Milliseconds between slideshow frames (files and generated scenes).
    pub slideshow_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            text: String::new(),
            mmproj: String::new(),
            method: "visionzip".into(),
            compare_method: "mustdrop".into(),
            compare: false,
            budget_pct: 25,
            params: BTreeMap::new(),
            max_tiles: 1,
            temperature: 0.0,
            max_tokens: 32,
            question: "What is in the picture?".into(),
            own_question: true,
            continuous: Continuous::Off,
            slideshow_ms: 3000,
        }
    }
}

impl Settings {
    /// The `--prune` spec of `method` at the budget with its parameters, e.g.
    /// `visionzip:25%,dominant=40`.
    pub fn spec(&self, method: &str) -> String {
        let mut spec = match method {
            "none" => "none".to_string(),
            m => crate::compare::spec(m, &format!("{}%", self.budget_pct)),
        };
        if let Some(p) = self.params.get(method).map(|p| p.trim().trim_matches(',')).filter(|p| !p.is_empty()) {
            spec = format!("{spec},{p}");
        }
        spec
    }

    /// The request for `method`, or the spec's parse error (shown beside the controls).
    pub fn ask_options(&self, method: &str) -> Result<AskOptions, String> {
        let prune: PrunePlan = self.spec(method).parse().map_err(|e: crate::prune::plan::PlanError| e.to_string())?;
        Ok(AskOptions {
            max_tokens: self.max_tokens.max(1),
            sampling: Sampling { temperature: self.temperature.max(0.0), ..Sampling::default() },
            max_tiles: Some(self.max_tiles.max(1)),
            prune,
            ..AskOptions::default()
        })
    }

    /// The methods one ask runs: the main one, and the second in compare mode.
    pub fn methods_to_run(&self) -> Vec<String> {
        let mut m = vec![self.method.clone()];
        if self.compare {
            m.push(self.compare_method.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_carries_budget_and_each_methods_own_params() {
        let mut s = Settings { budget_pct: 10, ..Settings::default() };
        s.params.insert("visionzip".into(), " dominant=40, ".into());
        s.params.insert("mustdrop".into(), "stage1=off".into());
        assert_eq!(s.spec("visionzip"), "visionzip:10%,dominant=40");
        assert_eq!(s.spec("mustdrop"), "mustdrop:10%,stage1=off");
        assert_eq!(s.spec("adaptive"), "adaptive:0.1");
        assert_eq!(s.spec("none"), "none");
        let o = s.ask_options("mustdrop").unwrap();
        assert_eq!(o.prune.to_string(), "mustdrop:10%,stage1=off");
        assert_eq!(o.max_tiles, Some(1));
    }

    #[test]
    fn bad_params_are_an_error_message() {
        let mut s = Settings::default();
        s.params.insert("grid".into(), "bogus=1".into());
        let e = s.ask_options("grid").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        assert!(Settings::default().ask_options("no-such-method").is_err());
    }

    #[test]
    fn compare_mode_runs_two_methods() {
        let s = Settings { compare: true, ..Settings::default() };
        assert_eq!(s.methods_to_run(), vec!["visionzip".to_string(), "mustdrop".to_string()]);
        assert_eq!(methods().next(), Some("none"));
    }
}
