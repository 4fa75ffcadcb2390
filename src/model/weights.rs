//! GPU weights: matrices stay in their GGUF blocks (decoded inside the kernels); vectors (norms,
//! biases, embeddings added once) are dequantised to f32 on the CPU and uploaded.

use crate::gguf::{Gguf, quant};
use crate::gpu::kernels::MatmulOpts;
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

/// Uploads a matrix's blocks as they are in the file (the memory map is the only host copy),
/// as `d.n_out` rows of `d.n_in` (a conv kernel `[p, p, 3, n]` becomes n rows of 3 p p).
pub fn matrix(gpu: &Gpu, g: &Gguf, d: &LinearDesc) -> Result<Weight, Error> {
    let t = g.tensor(&d.weight)?;
    Ok(gpu.upload_weight(&d.weight, t.ty, &[d.n_in as u64, d.n_out as u64], g.tensor_data(t))?)
}

/// Dequantises a (small) tensor to f32 and uploads it.
pub fn vector(gpu: &Gpu, g: &Gguf, name: &str) -> Result<Tensor, Error> {
    Ok(gpu.upload_f32(&values(g, name)?, name)?)
}

/// A (small) tensor dequantised to f32 on the host.
pub fn values(g: &Gguf, name: &str) -> Result<Vec<f32>, Error> {
    let t = g.tensor(name)?;
    Ok(quant::dequantize_to_vec(t.ty, g.tensor_data(t)).map_err(|e| crate::gguf::Error::Tensor {
        file: g.name().to_string(),
        name: name.to_string(),
        what: e.to_string(),
    })?)
}

impl Linear {
    /// Matmul options carrying this layer's bias.
    pub fn opts(&self) -> MatmulOpts<'_> {
        MatmulOpts { bias: self.b.as_ref(), ..Default::default() }
    }

    /// `y += x W^T + b`: a residual branch's last projection, fused with the add.
    pub fn residual(&self) -> MatmulOpts<'_> {
        MatmulOpts { accumulate: true, ..self.opts() }
    }

    pub fn load(gpu: &Gpu, g: &Gguf, d: &LinearDesc) -> Result<Linear, Error> {
        Ok(Linear { w: matrix(gpu, g, d)?, b: d.bias.as_deref().map(|b| vector(gpu, g, b)).transpose()? })
    }
}

impl Norm {
    pub fn load(gpu: &Gpu, g: &Gguf, d: &NormDesc) -> Result<Norm, Error> {
        Ok(Norm { w: vector(gpu, g, &d.weight)?, b: d.bias.as_deref().map(|b| vector(gpu, g, b)).transpose()? })
    }
}
