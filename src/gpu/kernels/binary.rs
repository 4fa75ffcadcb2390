//! `binary.wgsl`: in-place elementwise add of two buffers (residuals, position embeddings).

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    x_offset: u32,
    y_offset: u32,
    y_len: u32,
}

const WG: u32 = 256;

/// Element offsets into X and Y, and broadcasting: Y element `i % y_len` pairs with X element i
/// (0: y_len = n, no broadcast).
#[derive(Clone, Copy, Debug, Default)]
pub struct BinaryOpts {
    pub x_offset: usize,
    pub y_offset: usize,
    pub y_len: usize,
}

/// `x[i] += y[i]` for i < n (residuals, position embeddings). `y` must be another buffer.
pub fn add(rec: &mut Recorder, x: &Tensor, y: &Tensor, n: usize) -> Result<(), Error> {
    add_with(rec, x, y, n, BinaryOpts::default())
}

/// `x[x_offset + i] += y[y_offset + i % y_len]` for i < n.
pub fn add_with(rec: &mut Recorder, x: &Tensor, y: &Tensor, n: usize, opts: BinaryOpts) -> Result<(), Error> {
    let key = PipelineKey { shader: "binary", entry: "add", constants: vec![("WG", f64::from(WG).to_bits())] };
    let y_len = if opts.y_len == 0 { n } else { opts.y_len };
    let params =
        Params { n: n as u32, x_offset: opts.x_offset as u32, y_offset: opts.y_offset as u32, y_len: y_len as u32 };
    rec.dispatch(&key, &[x.buffer(), y.buffer()], &params, grid_1d((n as u32).div_ceil(WG)))
}
