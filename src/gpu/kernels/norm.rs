//! `norm.wgsl`: LayerNorm and RMSNorm over rows, out of place, one workgroup per row.

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    n_rows: u32,
    eps: f32,
    x_offset: u32,
    y_offset: u32,
    x_stride: u32,
    y_stride: u32,
    _pad: u32,
}

/// Invocations per row (the shader's `WG` override; a power of two).
const WG: u32 = 256;

/// Which norm: the shader entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps) * w + b`.
    Layer,
    /// `x / sqrt(mean(x^2) + eps) * w`.
    Rms,
}

/// Where the rows of X and Y live in their buffers. Strides default to `n` when zero.
#[derive(Clone, Copy, Debug, Default)]
pub struct NormOpts {
    pub x_offset: usize,
    pub y_offset: usize,
    pub x_stride: usize,
    pub y_stride: usize,
}

/// LayerNorm of `n_rows` rows of `n`: x `[n_rows, n]` -> y `[n_rows, n]`; w, b `[n]`.
/// `y` must be another buffer than `x`.
pub fn layer_norm(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    n_rows: usize,
    n: usize,
    eps: f32,
) -> Result<(), Error> {
    norm(rec, NormKind::Layer, x, w, Some(b), y, n_rows, n, eps, NormOpts::default())
}

/// RMSNorm of `n_rows` rows of `n`: x `[n_rows, n]` -> y `[n_rows, n]`; w `[n]`.
/// `y` must be another buffer than `x`.
pub fn rms_norm(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    n_rows: usize,
    n: usize,
    eps: f32,
) -> Result<(), Error> {
    norm(rec, NormKind::Rms, x, w, None, y, n_rows, n, eps, NormOpts::default())
}

/// Either norm with explicit row placement. `b` is required for `NormKind::Layer` and ignored for
/// `NormKind::Rms` (binding 2 then takes `w`).
pub fn norm(
    rec: &mut Recorder,
    op: NormKind,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: &Tensor,
    n_rows: usize,
    n: usize,
    eps: f32,
    opts: NormOpts,
) -> Result<(), Error> {
    let entry = match op {
        NormKind::Layer => "layer_norm",
        NormKind::Rms => "rms_norm",
    };
    if op == NormKind::Layer && b.is_none() {
        return Err(Error::Invalid { kernel: "layer_norm", what: "no bias given".into() });
    }
    let key = PipelineKey { shader: "norm", entry, constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params {
        n: n as u32,
        n_rows: n_rows as u32,
        eps,
        x_offset: opts.x_offset as u32,
        y_offset: opts.y_offset as u32,
        x_stride: if opts.x_stride == 0 { n } else { opts.x_stride } as u32,
        y_stride: if opts.y_stride == 0 { n } else { opts.y_stride } as u32,
        _pad: 0,
    };
    let b = b.unwrap_or(w);
    rec.dispatch(&key, &[x.buffer(), w.buffer(), b.buffer(), y.buffer()], &params, grid_1d(n_rows as u32))
}
