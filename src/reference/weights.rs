//! Weights for the reference, dequantised to f32 once (with `gguf::quant`, the same decoder the
//! GPU shaders are checked against).

use crate::gguf::{Error, Gguf, Result, quant};
use crate::model::layout::{LinearDesc, NormDesc};
use crate::reference::ops;

/// A whole tensor as f32, in ggml memory order.
pub fn tensor(g: &Gguf, name: &str) -> Result<Vec<f32>> {
    let t = g.tensor(name)?;
    quant::dequantize_to_vec(t.ty, g.tensor_data(t)).map_err(|e| Error::Tensor {
        file: g.name().to_string(),
        name: name.to_string(),
        what: e.to_string(),
    })
}

/// A Linear layer: `w` is `[n_out, n_in]` row-major.
pub struct Linear {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub n_in: usize,
    pub n_out: usize,
}

impl Linear {
    pub fn load(g: &Gguf, d: &LinearDesc) -> Result<Linear> {
        let b = d.bias.as_deref().map(|b| tensor(g, b)).transpose()?;
        Ok(Linear { w: tensor(g, &d.weight)?, b, n_in: d.n_in, n_out: d.n_out })
    }

    /// `x [rows, n_in] -> [rows, n_out]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        ops::matmul(x, &self.w, self.b.as_deref(), self.n_in, self.n_out)
    }
}

/// LayerNorm (with bias) or RMSNorm (without).
pub struct Norm {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub n: usize,
}

impl Norm {
    pub fn load(g: &Gguf, d: &NormDesc) -> Result<Norm> {
        let b = d.bias.as_deref().map(|b| tensor(g, b)).transpose()?;
        Ok(Norm { w: tensor(g, &d.weight)?, b, n: d.n })
    }

    pub fn layer_norm(&self, x: &[f32], eps: f32) -> Vec<f32> {
        let zeros;
        let b = match &self.b {
            Some(b) => b,
            None => {
                zeros = vec![0.0; self.n];
                &zeros
            }
        };
        ops::layer_norm(x, &self.w, b, self.n, eps)
    }

    pub fn rms_norm(&self, x: &[f32], eps: f32) -> Vec<f32> {
        ops::rms_norm(x, &self.w, self.n, eps)
    }
}
