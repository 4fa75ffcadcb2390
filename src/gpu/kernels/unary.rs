//! `unary.wgsl`: in-place elementwise activations.

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    offset: u32,
    _pad: [u32; 2],
}

const WG: u32 = 256;

/// The activation: the shader entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// GELU, tanh approximation (ggml's `ggml_gelu`).
    Gelu,
    /// `x * sigmoid(1.702 x)` (CLIP).
    QuickGelu,
    /// `x * sigmoid(x)`.
    Silu,
}

impl Unary {
    pub fn entry(self) -> &'static str {
        match self {
            Unary::Gelu => "gelu",
            Unary::QuickGelu => "quick_gelu",
            Unary::Silu => "silu",
        }
    }
}

/// `x[i] = op(x[i])` for i < n.
pub fn unary(rec: &mut Recorder, x: &Tensor, n: usize, op: Unary) -> Result<(), Error> {
    unary_at(rec, x, 0, n, op)
}

/// `x[offset + i] = op(x[offset + i])` for i < n.
pub fn unary_at(rec: &mut Recorder, x: &Tensor, offset: usize, n: usize, op: Unary) -> Result<(), Error> {
    let key = PipelineKey { shader: "unary", entry: op.entry(), constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params { n: n as u32, offset: offset as u32, _pad: [0; 2] };
    rec.dispatch(&key, &[x.buffer()], &params, grid_1d((n as u32).div_ceil(WG)))
}
