//! SmartTrim-style learned token trimming at the connector: a small MLP scores each candidate
//! row (visual token) against a summary of the question, and the top `k` rows go on to the
//! projector. `score_i = fc2 . gelu(fc1 x_i + fc1.bias + q)`, with `q` the mean of the question's
//! rows in a learned per-token table (`glimpse.trim.*` in the mmproj; see `model::names`).
//!
//! The question part is the same for every token of a frame, so the CPU folds it into one bias
//! vector per frame ([`QuestionTable::bias`]); the GPU runs two GEMMs and a GELU over the tile's
//! rows. `glimpse-train` (trainer/) learns the weights with a straight-through top-k,
//! self-distillation against the unpruned model and a keep-ratio curriculum.

use crate::gguf::Gguf;
use crate::gpu::kernels::{self, MatmulOpts, Unary};
use crate::gpu::{Gpu, Recorder, Tensor, Weight};
use crate::model::Error;
use crate::model::layout::LinearDesc;
use crate::model::names::{TRIM_FC1, TRIM_FC1_BIAS, TRIM_FC2, TRIM_TOKEN_EMBD};
use crate::prune::flops;
use crate::prune::tokens::TileTokens;

/// The trimmer's CPU half: the question table `[n_vocab, hidden]` and fc1's bias.
pub struct QuestionTable {
    rows: Vec<f32>,
    fc1_bias: Vec<f32>,
    pub hidden: usize,
}

impl QuestionTable {
    /// The table of `g`, `None` when the file has no trimmer.
    pub fn load(g: &Gguf) -> Result<Option<QuestionTable>, Error> {
        if g.find_tensor(TRIM_TOKEN_EMBD).is_none() {
            return Ok(None);
        }
        let [hidden, _] = dims2(g, TRIM_TOKEN_EMBD)?;
        let rows = crate::model::weights::values(g, TRIM_TOKEN_EMBD)?;
        let fc1_bias = crate::model::weights::values(g, TRIM_FC1_BIAS)?;
        if hidden == 0 || fc1_bias.len() != hidden {
            return Err(shape_error(
                g,
                TRIM_FC1_BIAS,
                format!("{} values for a hidden width of {hidden}", fc1_bias.len()),
            ));
        }
        Ok(Some(QuestionTable { rows, fc1_bias, hidden }))
    }

    /// fc1's bias plus the mean of the rows of the question's token `ids` (ids past the table
    /// are skipped; no ids leave the bias alone).
    pub fn bias(&self, ids: &[u32]) -> Vec<f32> {
        let h = self.hidden;
        let known: Vec<usize> = ids.iter().map(|&i| i as usize).filter(|&i| (i + 1) * h <= self.rows.len()).collect();
        let mut out = self.fc1_bias.clone();
        for &i in &known {
            for (o, r) in out.iter_mut().zip(&self.rows[i * h..(i + 1) * h]) {
                *o += r / known.len() as f32;
            }
        }
        out
    }
}

/// A learned token trimmer on the GPU.
pub struct Trimmer {
    pub question: QuestionTable,
    fc1: Weight,
    fc2: Weight,
    /// Candidate row width (fc1's input).
    pub width: usize,
    /// `[max_rows, hidden]` fc1's output.
    hidden_rows: Tensor,
    /// `[max_rows]` the scores [`Trimmer::score`] writes.
    pub scores: Tensor,
    max_rows: usize,
}

impl Trimmer {
    /// The trimmer of mmproj `g` for candidate rows of `width` (up to `max_rows` per tile),
    /// `None` when the file has none.
    pub fn load(gpu: &Gpu, g: &Gguf, width: usize, max_rows: usize) -> Result<Option<Trimmer>, Error> {
        let Some(question) = QuestionTable::load(g)? else {
            return Ok(None);
        };
        let hidden = question.hidden;
        let [n_in, n_out] = dims2(g, TRIM_FC1)?;
        if (n_in, n_out) != (width, hidden) {
            let what = format!("[{n_out}, {n_in}], expected [{hidden}, {width}] (hidden x candidate width)");
            return Err(shape_error(g, TRIM_FC1, what));
        }
        if dims2(g, TRIM_FC2)? != [hidden, 1] {
            return Err(shape_error(g, TRIM_FC2, format!("expected one row of {hidden}")));
        }
        let linear = |name: &str, n_in, n_out| LinearDesc { weight: name.into(), bias: None, n_in, n_out };
        Ok(Some(Trimmer {
            fc1: crate::model::weights::matrix(gpu, g, &linear(TRIM_FC1, width, hidden))?,
            fc2: crate::model::weights::matrix(gpu, g, &linear(TRIM_FC2, hidden, 1))?,
            hidden_rows: gpu.tensor(max_rows * hidden, "trim.hidden")?,
            scores: gpu.tensor(max_rows, "trim.scores")?,
            question,
            width,
            max_rows,
        }))
    }

    /// Records the scores of tile `t`'s visual tokens (CLS excluded) into [`Trimmer::scores`]:
    /// `bias` is the frame's [`QuestionTable::bias`], uploaded.
    pub fn score(&self, rec: &mut Recorder, t: &TileTokens, bias: &Tensor) -> Result<(), Error> {
        let n = t.n_visual();
        if t.width != self.width || n > self.max_rows {
            return Err(Error::Unsupported(format!(
                "the trimmer takes up to {} rows of {}, the tile has {n} of {}",
                self.max_rows, self.width, t.width
            )));
        }
        let x_offset = t.has_cls as usize * t.width;
        let fc1 = MatmulOpts { bias: Some(bias), x_offset, ..Default::default() };
        kernels::matmul(rec, t.rows, &self.fc1, &self.hidden_rows, n, fc1)?;
        kernels::unary(rec, &self.hidden_rows, n * self.question.hidden, Unary::Gelu)?;
        kernels::matmul(rec, &self.hidden_rows, &self.fc2, &self.scores, n, MatmulOpts::default())?;
        Ok(())
    }

    /// FLOPs of scoring `n` rows (the two GEMMs).
    pub fn flops(&self, n: usize) -> f64 {
        flops::gemm(n, self.width, self.question.hidden) + flops::gemm(n, self.question.hidden, 1)
    }
}

/// A 2-D tensor's GGUF dims `[ne0, ne1]` (row length, rows).
fn dims2(g: &Gguf, name: &str) -> Result<[usize; 2], Error> {
    let t = g.tensor(name)?;
    match t.dims[..] {
        [a, b] => Ok([a as usize, b as usize]),
        _ => Err(shape_error(g, name, format!("{} dims, expected 2", t.dims.len()))),
    }
}

fn shape_error(g: &Gguf, name: &str, what: String) -> Error {
    Error::Gguf(crate::gguf::Error::Tensor { file: g.name().to_string(), name: name.to_string(), what })
}
