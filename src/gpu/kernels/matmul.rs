//! `matmul.wgsl`: y = x W^T (+ b) (+ y), W a GGUF weight decoded on the fly. One dispatch per
//! weight part (parts exist when W is larger than one storage binding).

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor, Weight};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    row_bytes: u32,
    x_stride: u32,
    y_stride: u32,
    c0: u32,
    flags: u32,
}

const TILE: u32 = 64;

/// Options of one matmul.
#[derive(Clone, Copy, Default)]
pub struct MatmulOpts<'a> {
    pub bias: Option<&'a Tensor>,
    /// Add the product to what `y` holds (fused residual add).
    pub accumulate: bool,
}

/// `y[r, o] = sum_k x[r, k] * w[o, k]` for `m` rows: x `[m, w.n_in]`, y `[m, w.n_out]`.
pub fn matmul(rec: &mut Recorder, x: &Tensor, w: &Weight, y: &Tensor, m: usize, opts: MatmulOpts) -> Result<(), Error> {
    let key = PipelineKey { shader: "matmul", entry: "matmul", constants: vec![("W_TYPE", f64::from(w.ty.id()).to_bits())] };
    let flags = opts.bias.is_some() as u32 | (opts.accumulate as u32) << 1;
    for part in &w.parts {
        let params = Params {
            m: m as u32,
            n: part.n_rows as u32,
            k: w.n_in as u32,
            row_bytes: w.row_bytes() as u32,
            x_stride: w.n_in as u32,
            y_stride: w.n_out as u32,
            c0: part.row_start as u32,
            flags,
        };
        let bias = opts.bias.map_or(&part.buffer, |b| b.buffer());
        let groups = [(part.n_rows as u32).div_ceil(TILE), (m as u32).div_ceil(TILE), 1];
        rec.dispatch(&key, &[x.buffer(), &part.buffer, bias, y.buffer()], &params, groups)?;
    }
    Ok(())
}
