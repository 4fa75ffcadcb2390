//! `im2col.wgsl`: planar pixels to conv patches, so the patch embedding is one matmul.

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    h: u32,
    w: u32,
    patch_size: u32,
    _pad: u32,
}

const WG: u32 = 256;

/// Pixels `[3, h, w]` -> patches `[(h / p) * (w / p), 3 * p * p]`, raster order, columns
/// (c, ky, kx) with kx fastest (the ggml conv kernel's layout, `ne = [p, p, 3, n_embd]`).
pub fn im2col(
    rec: &mut Recorder,
    pixels: &Tensor,
    patches: &Tensor,
    h: usize,
    w: usize,
    p: usize,
) -> Result<(), Error> {
    if p == 0 {
        return Err(Error::Invalid { kernel: "im2col", what: "patch size 0".into() });
    }
    let key = PipelineKey { shader: "im2col", entry: "im2col", constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params { h: h as u32, w: w as u32, patch_size: p as u32, _pad: 0 };
    let n = ((h / p) * (w / p) * 3 * p * p) as u32;
    rec.dispatch(&key, &[pixels.buffer(), patches.buffer()], &params, grid_1d(n.div_ceil(WG)))
}
