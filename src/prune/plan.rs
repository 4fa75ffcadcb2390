//! The pruning plan a request carries, parsed from `--prune SPEC`.
//!
//! Grammar: `METHOD[:BUDGET][,key=value]*`, e.g. `visionzip:64`, `visionzip:10%`,
//! `mustdrop:64,stage1=off,layers=2;6;10;14`, `adaptive:0.9,heads=0.02`, `fastv:50%,layer=2`,
//! `random:25%,seed=7`, `grid:12.5%`, `smarttrim:25%`, `none`. A budget is the number of visual tokens entering the
//! LLM (`64`) or a percentage of the frame's visual tokens (`10%`, in (0, 100]); for `adaptive` the
//! number after the colon is the attention-mass share to keep, in (0, 1]. `Display` prints the
//! canonical spec, which parses back to the same plan.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The forms `--prune` accepts, listed in every parse error.
const FORMS: &str = "valid forms: none | visionzip:BUDGET[,dominant=N][,contextual=N] \
| mustdrop:BUDGET[,stage1=on|off][,stage2=on|off][,stage3=on|off][,merge=F][,window=2|3][,key=F][,global=F]\
[,individual=F][,layers=L;L;...] | adaptive:MASS[,heads=F] | fastv:BUDGET[,layer=N] | random:BUDGET[,seed=N] \
| grid:BUDGET | smarttrim:BUDGET, where BUDGET is a token count (64) or a percentage of the frame's visual tokens (10%) \
and MASS is an attention-mass share in (0, 1]";

/// A `--prune` spec that does not parse, or a VisionZip split that does not fit its budget.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    /// The part of the spec that is wrong (`part`) and why (`reason`).
    Spec { part: String, reason: String },
    /// A `dominant` / `contextual` override that does not fit the frame's budget.
    Split(String),
}

impl PlanError {
    fn spec(part: &str, reason: impl Into<String>) -> Self {
        PlanError::Spec { part: part.to_string(), reason: reason.into() }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Spec { part, reason } => write!(f, "bad --prune part `{part}`: {reason}; {FORMS}"),
            PlanError::Split(reason) => write!(f, "visionzip split: {reason}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// How many visual tokens enter the LLM: a count, or a percentage of the frame's visual tokens.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Budget {
    /// A token count, at least 1.
    Tokens(usize),
    /// A percentage of the frame's visual tokens, in (0, 100].
    Percent(f64),
}

impl Budget {
    /// The token count for a frame of `n_visual` visual tokens, clamped to `1..=n_visual`; a
    /// percentage rounds to the nearest count (halves away from zero). 0 only when `n_visual` is 0.
    pub fn tokens(&self, n_visual: usize) -> usize {
        let k = match *self {
            Budget::Tokens(k) => k,
            Budget::Percent(p) => (p / 100.0 * n_visual as f64).round() as usize,
        };
        k.max(1).min(n_visual)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Tokens(k) => write!(f, "{k}"),
            Budget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// VisionZip overrides of the dominant : contextual split (see [`visionzip_split`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VisionZipParams {
    /// Dominant tokens (attention-selected, a CLS token included).
    pub dominant: Option<usize>,
    /// Contextual tokens (similarity-merged).
    pub contextual: Option<usize>,
}

/// MustDrop settings (research/pruning.md section 2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MustDropParams {
    /// Stage 1: merge similar `window x window` patch windows after ViT block 0, and the key set S.
    pub stage1: bool,
    /// Stage 2: dual-attention filtering of image tokens at prefill.
    pub stage2: bool,
    /// Stage 3: trim earlier layers' KV caches to the final survivors.
    pub stage3: bool,
    /// Stage-1 window side in patches (3).
    pub window: usize,
    /// Stage-1 mean pairwise cosine at or above which a window merges (0.8).
    pub merge_threshold: f32,
    /// Share of tokens in the key set S, never dropped (0.08).
    pub key_share: f32,
    /// Stage-2 global threshold; `None` = from the budget ([`mustdrop_thresholds`]).
    pub global_threshold: Option<f32>,
    /// Stage-2 individual threshold; `None` = from the budget ([`mustdrop_thresholds`]).
    pub individual_threshold: Option<f32>,
    /// Stage-2 LLM layers; `None` = {2, 6, 10, 14} scaled to depth ([`mustdrop_layers`]).
    pub layers: Option<Vec<usize>>,
}

impl Default for MustDropParams {
    fn default() -> Self {
        MustDropParams {
            stage1: true,
            stage2: true,
            stage3: true,
            window: 3,
            merge_threshold: 0.8,
            key_share: 0.08,
            global_threshold: None,
            individual_threshold: None,
            layers: None,
        }
    }
}

/// Adaptive (SmartTrim-style, training-free) per-frame budgets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdaptiveParams {
    /// Keep the fewest visual tokens whose attention mass reaches this share of the total, in (0, 1].
    pub mass: f32,
    /// A head carrying less than this share of the attention output energy (per layer, on a
    /// probe of the layer's queries: `prune::frame::kept_heads`) is trimmed, in [0, 1), in the
    /// ViT blocks and the LLM prefill. Default 0: no head trimming.
    pub head_threshold: f32,
}

/// The default [`AdaptiveParams::head_threshold`]: no head trimming.
pub const DEFAULT_HEAD_THRESHOLD: f32 = 0.0;

/// FastV settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FastVParams {
    /// Image tokens are dropped from this LLM layer on, ranked by the attention of layer
    /// `layer - 1` (the last prompt token's row, head mean); at least 1. Default 2.
    pub layer: usize,
}

impl Default for FastVParams {
    fn default() -> Self {
        FastVParams { layer: 2 }
    }
}

/// Random-selection settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RandomParams {
    /// PRNG seed (0).
    pub seed: u64,
}

/// A pruning method and its settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Method {
    /// No pruning.
    None,
    /// VisionZip: dominant tokens by attention plus contextual tokens merged by key similarity.
    VisionZip(VisionZipParams),
    /// MustDrop: window merging in the ViT, dual-attention filtering at prefill, KV trimming.
    MustDrop(MustDropParams),
    /// Per-frame adaptive token and head budgets from attention mass.
    Adaptive(AdaptiveParams),
    /// FastV: drop low-attention image tokens inside the LLM.
    FastV(FastVParams),
    /// Uniformly random tokens.
    Random(RandomParams),
    /// A uniform spatial grid of tokens.
    Grid,
    /// The model's learned token trimmer (SmartTrim-style; `prune::trimmer`): the tokens it
    /// scores highest for the question.
    SmartTrim,
}

/// The pruning a request asks for: a method and, for methods with one, a budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrunePlan {
    /// What prunes.
    pub method: Method,
    /// Visual tokens entering the LLM; `None` for `none` and `adaptive`.
    pub budget: Option<Budget>,
}

impl Default for PrunePlan {
    fn default() -> Self {
        PrunePlan::none()
    }
}

impl PrunePlan {
    /// No pruning.
    pub fn none() -> Self {
        PrunePlan { method: Method::None, budget: None }
    }

    /// The method's name as written in a spec: "none", "visionzip", "mustdrop", "adaptive",
    /// "fastv", "random", "grid" or "smarttrim".
    pub fn name(&self) -> &'static str {
        match self.method {
            Method::None => "none",
            Method::VisionZip(_) => "visionzip",
            Method::MustDrop(_) => "mustdrop",
            Method::Adaptive(_) => "adaptive",
            Method::FastV(_) => "fastv",
            Method::Random(_) => "random",
            Method::Grid => "grid",
            Method::SmartTrim => "smarttrim",
        }
    }

    /// Visual tokens entering the LLM for a frame of `n_visual` tokens (`n_visual` for none/adaptive).
    pub fn budget_tokens(&self, n_visual: usize) -> usize {
        match (&self.method, &self.budget) {
            (Method::None | Method::Adaptive(_), _) | (_, None) => n_visual,
            (_, Some(b)) => b.tokens(n_visual),
        }
    }
}

/// Parses a budget: `N` tokens (at least 1) or `P%` with P in (0, 100].
fn parse_budget(s: &str) -> Result<Budget, PlanError> {
    if let Some(p) = s.strip_suffix('%') {
        let v: f64 = p.parse().map_err(|_| PlanError::spec(s, "the percentage is not a number"))?;
        if !(v > 0.0 && v <= 100.0) {
            return Err(PlanError::spec(s, "a percentage budget must be in (0, 100]"));
        }
        Ok(Budget::Percent(v))
    } else {
        let k: usize = s.parse().map_err(|_| PlanError::spec(s, "a budget is a token count or a percentage"))?;
        if k == 0 {
            return Err(PlanError::spec(s, "a token budget must be at least 1"));
        }
        Ok(Budget::Tokens(k))
    }
}

/// Parses a value of `key=value` in `part` as `T`.
fn num<T: FromStr>(part: &str, v: &str, what: &str) -> Result<T, PlanError> {
    v.parse().map_err(|_| PlanError::spec(part, format!("the value must be {what}")))
}

/// Parses a finite f32 in `lo..=hi`.
fn real(part: &str, v: &str, lo: f32, hi: f32) -> Result<f32, PlanError> {
    let x: f32 = num(part, v, "a number")?;
    if !(x >= lo && x <= hi) {
        return Err(PlanError::spec(part, format!("the value must be in [{lo}, {hi}]")));
    }
    Ok(x)
}

/// Parses `on` / `off`.
fn switch(part: &str, v: &str) -> Result<bool, PlanError> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(PlanError::spec(part, "the value must be on or off")),
    }
}

/// Parses a `;`-separated, strictly increasing list of layer indices.
fn layer_list(part: &str, v: &str) -> Result<Vec<usize>, PlanError> {
    let layers = v.split(';').map(|l| num(part, l, "layer indices separated by ;")).collect::<Result<Vec<_>, _>>()?;
    if !layers.is_sorted_by(|a, b| a < b) {
        return Err(PlanError::spec(part, "layers must be strictly increasing"));
    }
    Ok(layers)
}

/// Applies one `key=value` (`part`) to a method's settings.
fn apply_key(method: &mut Method, part: &str, key: &str, v: &str) -> Result<(), PlanError> {
    match method {
        Method::VisionZip(p) => match key {
            "dominant" => {
                let d = num(part, v, "a token count")?;
                if d == 0 {
                    return Err(PlanError::spec(part, "dominant must be at least 1"));
                }
                p.dominant = Some(d);
            }
            "contextual" => p.contextual = Some(num(part, v, "a token count")?),
            _ => return Err(PlanError::spec(part, "visionzip takes the keys dominant and contextual")),
        },
        Method::MustDrop(p) => match key {
            "stage1" => p.stage1 = switch(part, v)?,
            "stage2" => p.stage2 = switch(part, v)?,
            "stage3" => p.stage3 = switch(part, v)?,
            "merge" => p.merge_threshold = real(part, v, -1.0, 1.0)?,
            "window" => {
                p.window = num(part, v, "a window side in patches")?;
                if !(2..=3).contains(&p.window) {
                    return Err(PlanError::spec(part, "the window side must be at least 2 and at most 3"));
                }
            }
            "key" => p.key_share = real(part, v, 0.0, 1.0)?,
            "global" => p.global_threshold = Some(real(part, v, 0.0, 1.0)?),
            "individual" => p.individual_threshold = Some(real(part, v, 0.0, 1.0)?),
            "layers" => p.layers = Some(layer_list(part, v)?),
            _ => {
                return Err(PlanError::spec(
                    part,
                    "mustdrop takes the keys stage1, stage2, stage3, merge, window, key, global, individual and layers",
                ));
            }
        },
        Method::Adaptive(p) => match key {
            "heads" => {
                p.head_threshold = real(part, v, 0.0, 1.0)?;
                if p.head_threshold >= 1.0 {
                    return Err(PlanError::spec(part, "the head threshold must be below 1"));
                }
            }
            _ => return Err(PlanError::spec(part, "adaptive takes the key heads")),
        },
        Method::FastV(p) => match key {
            "layer" => {
                p.layer = num(part, v, "a layer index")?;
                if p.layer == 0 {
                    return Err(PlanError::spec(part, "the fastv layer must be at least 1"));
                }
            }
            _ => return Err(PlanError::spec(part, "fastv takes the key layer")),
        },
        Method::Random(p) => match key {
            "seed" => p.seed = num(part, v, "an unsigned integer")?,
            _ => return Err(PlanError::spec(part, "random takes the key seed")),
        },
        Method::None | Method::Grid | Method::SmartTrim => {
            return Err(PlanError::spec(part, "this method takes no keys"));
        }
    }
    Ok(())
}

impl FromStr for PrunePlan {
    type Err = PlanError;

    fn from_str(spec: &str) -> Result<Self, PlanError> {
        let spec = spec.trim();
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default();
        let (name, arg) = match head.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (head, None),
        };
        let mut method = match name {
            "none" => Method::None,
            "visionzip" => Method::VisionZip(VisionZipParams::default()),
            "mustdrop" => Method::MustDrop(MustDropParams::default()),
            "adaptive" => Method::Adaptive(AdaptiveParams { mass: 0.0, head_threshold: DEFAULT_HEAD_THRESHOLD }),
            "fastv" => Method::FastV(FastVParams::default()),
            "random" => Method::Random(RandomParams::default()),
            "grid" => Method::Grid,
            "smarttrim" => Method::SmartTrim,
            _ => return Err(PlanError::spec(name, "unknown method")),
        };
        let budget = match (&mut method, arg) {
            (Method::None, None) => None,
            (Method::None, Some(_)) => return Err(PlanError::spec(head, "none takes no budget")),
            (Method::Adaptive(p), Some(a)) => {
                p.mass = real(head, a, 0.0, 1.0)?;
                if p.mass <= 0.0 {
                    return Err(PlanError::spec(head, "the attention-mass share must be in (0, 1]"));
                }
                None
            }
            (Method::Adaptive(_), None) => {
                return Err(PlanError::spec(head, "adaptive needs an attention-mass share, e.g. adaptive:0.9"));
            }
            (_, Some(a)) => Some(parse_budget(a)?),
            (_, None) => return Err(PlanError::spec(head, "this method needs a budget, e.g. visionzip:64")),
        };
        let mut seen: Vec<&str> = Vec::new();
        for part in parts {
            let (key, v) = part.split_once('=').ok_or_else(|| PlanError::spec(part, "expected key=value"))?;
            if seen.contains(&key) {
                return Err(PlanError::spec(part, "the key is given twice"));
            }
            seen.push(key);
            apply_key(&mut method, part, key, v)?;
        }
        if let (Method::VisionZip(VisionZipParams { dominant: Some(d), contextual: Some(c) }), Some(Budget::Tokens(b))) =
            (&method, &budget)
            && d + c != *b
        {
            return Err(PlanError::spec(spec, format!("dominant + contextual = {} but the budget is {b}", d + c)));
        }
        Ok(PrunePlan { method, budget })
    }
}

impl fmt::Display for PrunePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Some(b) = &self.budget {
            write!(f, ":{b}")?;
        }
        match &self.method {
            Method::None | Method::Grid | Method::SmartTrim => {}
            Method::VisionZip(p) => {
                if let Some(d) = p.dominant {
                    write!(f, ",dominant={d}")?;
                }
                if let Some(c) = p.contextual {
                    write!(f, ",contextual={c}")?;
                }
            }
            Method::MustDrop(p) => {
                let d = MustDropParams::default();
                let on_off = |b: bool| if b { "on" } else { "off" };
                for (key, v, dv) in
                    [("stage1", p.stage1, d.stage1), ("stage2", p.stage2, d.stage2), ("stage3", p.stage3, d.stage3)]
                {
                    if v != dv {
                        write!(f, ",{key}={}", on_off(v))?;
                    }
                }
                if p.merge_threshold != d.merge_threshold {
                    write!(f, ",merge={}", p.merge_threshold)?;
                }
                if p.window != d.window {
                    write!(f, ",window={}", p.window)?;
                }
                if p.key_share != d.key_share {
                    write!(f, ",key={}", p.key_share)?;
                }
                if let Some(g) = p.global_threshold {
                    write!(f, ",global={g}")?;
                }
                if let Some(i) = p.individual_threshold {
                    write!(f, ",individual={i}")?;
                }
                if let Some(layers) = &p.layers {
                    let l: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
                    write!(f, ",layers={}", l.join(";"))?;
                }
            }
            Method::Adaptive(p) => {
                write!(f, ":{}", p.mass)?;
                if p.head_threshold != DEFAULT_HEAD_THRESHOLD {
                    write!(f, ",heads={}", p.head_threshold)?;
                }
            }
            Method::FastV(p) => {
                if p.layer != FastVParams::default().layer {
                    write!(f, ",layer={}", p.layer)?;
                }
            }
            Method::Random(p) => {
                if p.seed != 0 {
                    write!(f, ",seed={}", p.seed)?;
                }
            }
        }
        Ok(())
    }
}

/// VisionZip's dominant : contextual split of a frame's `budget` (from [`PrunePlan::budget_tokens`],
/// so at most the frame's visual tokens), 5.4 : 1 as in the paper's ablation: contextual =
/// round(budget / 6.4), dominant = budget - contextual (64 -> 54 + 10, 128 -> 108 + 20,
/// 192 -> 162 + 30). One override sets its part and the other takes the rest of the budget; with
/// both, their sum must be the budget. The dominant count includes a CLS token (CLS models feed
/// CLS + dominant - 1 patches), so it must be at least 1. Because the budget never exceeds the
/// frame's visual tokens and the candidates are those tokens (plus CLS), a split that sums to
/// the budget always fits the frame.
pub fn visionzip_split(p: &VisionZipParams, budget: usize) -> Result<(usize, usize), PlanError> {
    let (dominant, contextual) = match (p.dominant, p.contextual) {
        (Some(d), Some(c)) => {
            if d + c != budget {
                return Err(PlanError::Split(format!(
                    "dominant {d} + contextual {c} = {} but the frame's budget is {budget} tokens",
                    d + c
                )));
            }
            (d, c)
        }
        (Some(d), None) => {
            if d > budget {
                return Err(PlanError::Split(format!("dominant {d} exceeds the frame's budget of {budget} tokens")));
            }
            (d, budget - d)
        }
        (None, Some(c)) => {
            if c >= budget {
                return Err(PlanError::Split(format!(
                    "contextual {c} leaves no dominant token in the frame's budget of {budget} tokens"
                )));
            }
            (budget - c, c)
        }
        (None, None) => {
            let c = (budget as f64 / 6.4).round() as usize;
            (budget - c, c)
        }
    };
    if dominant < 1 {
        return Err(PlanError::Split(format!("the budget of {budget} tokens leaves no dominant token")));
    }
    Ok((dominant, contextual))
}

/// MustDrop's published stage-2 thresholds (global, individual) per average-token budget, tuned
/// on LLaVA-1.5-7B's 576 image tokens.
const MUSTDROP_THRESHOLDS: [(usize, f32, f32); 3] = [(64, 0.011, 0.01), (128, 0.0012, 0.001), (192, 0.001, 0.001)];

/// MustDrop stage-2 (global, individual) thresholds for `budget` tokens per the published table
/// (192: 0.001 / 0.001, 128: 0.0012 / 0.001, 64: 0.011 / 0.01). Other budgets take the row
/// nearest in ratio (|ln(budget / row)|; budgets are multiplicative, so 90 -> 64, 91 -> 128,
/// 156 -> 128, 157 -> 192, 8 -> 64, 500 -> 192), ties to the smaller row. Each of the params'
/// thresholds overrides its table value.
pub fn mustdrop_thresholds(p: &MustDropParams, budget: usize) -> (f32, f32) {
    let distance = |row: usize| (budget.max(1) as f64 / row as f64).ln().abs();
    let mut best = MUSTDROP_THRESHOLDS[0];
    for row in MUSTDROP_THRESHOLDS {
        if distance(row.0) < distance(best.0) {
            best = row;
        }
    }
    (p.global_threshold.unwrap_or(best.1), p.individual_threshold.unwrap_or(best.2))
}

/// MustDrop's stage-2 layers of a 32-layer LLM.
const MUSTDROP_LAYERS: [usize; 4] = [2, 6, 10, 14];

/// MustDrop stage-2 layers for an LLM of `n_layer` layers: the published {2, 6, 10, 14} of
/// 32 layers scaled as round(l * n_layer / 32) (halves up), then raised to at least 1 (layer 0's
/// attention is not yet informative; the paper's shallowest is 2 of 32) and lowered to at most
/// n_layer - 1, deduplicated, ascending: 32 -> [2, 6, 10, 14], 30 -> [2, 6, 9, 13], 4 -> [1, 2],
/// 1 -> [0], 0 -> []. Explicit params layers override, keeping only those below n_layer.
pub fn mustdrop_layers(p: &MustDropParams, n_layer: usize) -> Vec<usize> {
    let mut layers: Vec<usize> = match &p.layers {
        Some(l) => l.iter().copied().filter(|&l| l < n_layer).collect(),
        None if n_layer == 0 => Vec::new(),
        None => MUSTDROP_LAYERS.iter().map(|&l| ((2 * l * n_layer + 32) / 64).max(1).min(n_layer - 1)).collect(),
    };
    layers.dedup();
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: [&str; 15] = [
        "none",
        "visionzip:64",
        "visionzip:10%",
        "visionzip:64,dominant=54,contextual=10",
        "mustdrop:64",
        "mustdrop:64,stage1=off,stage2=on,stage3=on,merge=0.8,window=3,key=0.08,global=0.011,individual=0.01,layers=2;6;10;14",
        "adaptive:0.9",
        "adaptive:0.9,heads=0.02",
        "fastv:50%",
        "fastv:64,layer=2",
        "random:25%,seed=7",
        "grid:12.5%",
        "smarttrim:25%",
        "mustdrop:10%,stage3=off,merge=0.75,window=2,key=0.1,layers=1;3",
        "adaptive:1,heads=0.05",
    ];

    fn parse(s: &str) -> PrunePlan {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn examples_parse() {
        assert_eq!(parse("none"), PrunePlan::none());
        assert_eq!(parse("none"), PrunePlan::default());
        assert_eq!(
            parse("visionzip:64"),
            PrunePlan { method: Method::VisionZip(VisionZipParams::default()), budget: Some(Budget::Tokens(64)) }
        );
        assert_eq!(parse("visionzip:10%").budget, Some(Budget::Percent(10.0)));
        assert_eq!(
            parse("visionzip:64,dominant=54,contextual=10").method,
            Method::VisionZip(VisionZipParams { dominant: Some(54), contextual: Some(10) })
        );
        assert_eq!(parse("mustdrop:64").method, Method::MustDrop(MustDropParams::default()));
        let full = parse(EXAMPLES[5]);
        assert_eq!(
            full.method,
            Method::MustDrop(MustDropParams {
                stage1: false,
                global_threshold: Some(0.011),
                individual_threshold: Some(0.01),
                layers: Some(vec![2, 6, 10, 14]),
                ..MustDropParams::default()
            })
        );
        assert_eq!(
            parse("adaptive:0.9"),
            PrunePlan { method: Method::Adaptive(AdaptiveParams { mass: 0.9, head_threshold: 0.0 }), budget: None }
        );
        assert_eq!(parse("adaptive:0.9,heads=0"), parse("adaptive:0.9"));
        assert_eq!(parse("fastv:50%").method, Method::FastV(FastVParams { layer: 2 }));
        assert_eq!(
            parse("fastv:64,layer=2"),
            PrunePlan { method: Method::FastV(FastVParams { layer: 2 }), ..parse("fastv:64") }
        );
        assert_eq!(parse("random:25%,seed=7").method, Method::Random(RandomParams { seed: 7 }));
        assert_eq!(parse("grid:12.5%"), PrunePlan { method: Method::Grid, budget: Some(Budget::Percent(12.5)) });
        for s in EXAMPLES {
            parse(s);
        }
    }

    #[test]
    fn names() {
        let names: Vec<&str> = EXAMPLES.iter().map(|s| parse(s).name()).collect();
        for (s, n) in EXAMPLES.iter().zip(names) {
            assert!(s.starts_with(n), "{s} -> {n}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in EXAMPLES {
            let plan = parse(s);
            let canonical = plan.to_string();
            assert_eq!(parse(&canonical), plan, "{s} -> {canonical}");
        }
        assert_eq!(parse("visionzip:64").to_string(), "visionzip:64");
        assert_eq!(parse("grid:12.5%").to_string(), "grid:12.5%");
        assert_eq!(parse("adaptive:0.9,heads=0").to_string(), "adaptive:0.9");
        assert_eq!(parse("fastv:64,layer=3").to_string(), "fastv:64,layer=3");
        assert_eq!(
            parse(EXAMPLES[5]).to_string(),
            "mustdrop:64,stage1=off,global=0.011,individual=0.01,layers=2;6;10;14"
        );
    }

    #[test]
    fn errors() {
        let bad = [
            ("", "``"),
            ("fast:64", "`fast`"),
            ("none:64", "`none:64`"),
            ("visionzip", "needs a budget"),
            ("visionzip:0", "at least 1"),
            ("visionzip:0%", "(0, 100]"),
            ("visionzip:101%", "(0, 100]"),
            ("visionzip:nan%", "(0, 100]"),
            ("visionzip:-5", "token count or a percentage"),
            ("visionzip:abc", "token count or a percentage"),
            ("visionzip:64,seed=3", "visionzip takes"),
            ("visionzip:64,dominant=0", "at least 1"),
            ("visionzip:64,dominant=50,contextual=10", "= 60 but the budget is 64"),
            ("visionzip:64,dominant", "expected key=value"),
            ("visionzip:64,dominant=5,dominant=6", "given twice"),
            ("mustdrop:64,stage1=maybe", "on or off"),
            ("mustdrop:64,merge=1.5", "[-1, 1]"),
            ("mustdrop:64,window=1", "at least 2"),
            ("mustdrop:64,window=4", "at most 3"),
            ("mustdrop:64,key=x", "a number"),
            ("mustdrop:64,global=-0.1", "[0, 1]"),
            ("mustdrop:64,layers=2;x", "layer indices"),
            ("mustdrop:64,layers=6;2", "strictly increasing"),
            ("mustdrop:64,layer=2", "mustdrop takes"),
            ("adaptive", "attention-mass share"),
            ("adaptive:0", "(0, 1]"),
            ("adaptive:1.5", "[0, 1]"),
            ("adaptive:0.9,heads=1", "below 1"),
            ("fastv:64,layer=0", "at least 1"),
            ("random:25%,seed=-1", "unsigned integer"),
            ("grid:64,seed=1", "takes no keys"),
            ("smarttrim:25%,ratio=2", "takes no keys"),
            ("smarttrim", "needs a budget"),
        ];
        for (spec, needle) in bad {
            let e = spec.parse::<PrunePlan>().expect_err(spec).to_string();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.contains("valid forms: none | visionzip:BUDGET"), "{spec}: {e}");
        }
    }

    #[test]
    fn budget_tokens() {
        assert_eq!(Budget::Tokens(64).tokens(576), 64);
        assert_eq!(Budget::Tokens(1000).tokens(576), 576);
        assert_eq!(Budget::Percent(10.0).tokens(576), 58);
        assert_eq!(Budget::Percent(0.01).tokens(576), 1);
        assert_eq!(Budget::Percent(100.0).tokens(576), 576);
        assert_eq!(Budget::Tokens(5).tokens(0), 0);
        assert_eq!(parse("none").budget_tokens(576), 576);
        assert_eq!(parse("adaptive:0.5").budget_tokens(576), 576);
        assert_eq!(parse("fastv:50%").budget_tokens(576), 288);
        assert_eq!(parse("grid:12.5%").budget_tokens(576), 72);
    }

    #[test]
    fn split() {
        let p = VisionZipParams::default();
        assert_eq!(visionzip_split(&p, 64), Ok((54, 10)));
        assert_eq!(visionzip_split(&p, 128), Ok((108, 20)));
        assert_eq!(visionzip_split(&p, 192), Ok((162, 30)));
        // 10% of 576 = 58 tokens: contextual round(58 / 6.4) = round(9.06) = 9.
        let b = parse("visionzip:10%").budget_tokens(576);
        assert_eq!(visionzip_split(&p, b), Ok((49, 9)));
        assert_eq!(visionzip_split(&p, 1), Ok((1, 0)));
        assert_eq!(visionzip_split(&VisionZipParams { dominant: Some(60), contextual: None }, 64), Ok((60, 4)));
        assert_eq!(visionzip_split(&VisionZipParams { dominant: None, contextual: Some(4) }, 64), Ok((60, 4)));
        assert_eq!(visionzip_split(&VisionZipParams { dominant: Some(54), contextual: Some(10) }, 64), Ok((54, 10)));
        assert_eq!(visionzip_split(&VisionZipParams { dominant: Some(64), contextual: Some(0) }, 64), Ok((64, 0)));
        for bad in [
            (VisionZipParams { dominant: Some(54), contextual: Some(10) }, 58),
            (VisionZipParams { dominant: Some(70), contextual: None }, 64),
            (VisionZipParams { dominant: None, contextual: Some(64) }, 64),
            (VisionZipParams { dominant: Some(0), contextual: Some(64) }, 64),
            (VisionZipParams::default(), 0),
        ] {
            let e = visionzip_split(&bad.0, bad.1).expect_err("split");
            assert!(matches!(e, PlanError::Split(_)), "{e}");
        }
    }

    #[test]
    fn thresholds() {
        let p = MustDropParams::default();
        assert_eq!(mustdrop_thresholds(&p, 192), (0.001, 0.001));
        assert_eq!(mustdrop_thresholds(&p, 128), (0.0012, 0.001));
        assert_eq!(mustdrop_thresholds(&p, 64), (0.011, 0.01));
        assert_eq!(mustdrop_thresholds(&p, 8), (0.011, 0.01));
        assert_eq!(mustdrop_thresholds(&p, 90), (0.011, 0.01));
        assert_eq!(mustdrop_thresholds(&p, 91), (0.0012, 0.001));
        assert_eq!(mustdrop_thresholds(&p, 156), (0.0012, 0.001));
        assert_eq!(mustdrop_thresholds(&p, 157), (0.001, 0.001));
        assert_eq!(mustdrop_thresholds(&p, 576), (0.001, 0.001));
        let over = MustDropParams { global_threshold: Some(0.005), ..MustDropParams::default() };
        assert_eq!(mustdrop_thresholds(&over, 64), (0.005, 0.01));
        let over = MustDropParams { individual_threshold: Some(0.002), ..MustDropParams::default() };
        assert_eq!(mustdrop_thresholds(&over, 192), (0.001, 0.002));
    }

    #[test]
    fn layers() {
        let p = MustDropParams::default();
        assert_eq!(mustdrop_layers(&p, 32), vec![2, 6, 10, 14]);
        assert_eq!(mustdrop_layers(&p, 30), vec![2, 6, 9, 13]);
        assert_eq!(mustdrop_layers(&p, 4), vec![1, 2]);
        assert_eq!(mustdrop_layers(&p, 2), vec![1]);
        assert_eq!(mustdrop_layers(&p, 1), vec![0]);
        assert_eq!(mustdrop_layers(&p, 0), Vec::<usize>::new());
        let over = MustDropParams { layers: Some(vec![0, 3, 8]), ..MustDropParams::default() };
        assert_eq!(mustdrop_layers(&over, 30), vec![0, 3, 8]);
        assert_eq!(mustdrop_layers(&over, 4), vec![0, 3]);
    }
}
