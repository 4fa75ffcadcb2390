//! GPU weights: matrices stay in their GGUF blocks (decoded inside the kernels); vectors (norms,
//! biases, embeddings added once) are dequantised to f32 on the CPU and uploaded.

use crate::gguf::{Gguf, quant};
use crate::gpu::{Gpu, Tensor, Weight};
use crate::model::Error;
use crate::model::layout::{LinearDesc, NormDesc};

/// A Linear layer on the GPU.
pub struct Linear {
    pub w: Weight,
    pub b: Option<Tensor>,
}

/// A LayerNorm (weight + bias) or RMSNorm (weight) on the GPU.
pub struct Norm {
    pub w: Tensor,
    pub b: Option<Tensor>,
}

/// Uploads a matrix's blocks as they are in the file (the memory map is the only host copy).
pub fn matrix(gpu: &Gpu, g: &Gguf, name: &str) -> Result<Weight, Error> {
    let t = g.tensor(name)?;
    Ok(gpu.upload_weight(name, t.ty, &t.dims, g.tensor_data(t))?)
}

/// Dequantises a (small) tensor to f32 and uploads it.
pub fn vector(gpu: &Gpu, g: &Gguf, name: &str) -> Result<Tensor, Error> {
    let t = g.tensor(name)?;
    let v = quant::dequantize_to_vec(t.ty, g.tensor_data(t)).map_err(|e| crate::gguf::Error::Tensor {
        file: g.name().to_string(),
        name: name.to_string(),
        what: e.to_string(),
    })?;
    Ok(gpu.upload_f32(&v, name)?)
}

impl Linear {
    pub fn load(gpu: &Gpu, g: &Gguf, d: &LinearDesc) -> Result<Linear, Error> {
        Ok(Linear { w: matrix(gpu, g, &d.weight)?, b: d.bias.as_deref().map(|b| vector(gpu, g, b)).transpose()? })
    }
}

impl Norm {
    pub fn load(gpu: &Gpu, g: &Gguf, d: &NormDesc) -> Result<Norm, Error> {
        Ok(Norm { w: vector(gpu, g, &d.weight)?, b: d.bias.as_deref().map(|b| vector(gpu, g, b)).transpose()? })
    }
}
