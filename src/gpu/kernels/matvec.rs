//! `matvec.wgsl`: Y = X W^T (+ b) (+ Y) for a few rows of X (decode), W a GGUF weight decoded on
//! the fly. The same Params and bindings as `matmul.wgsl`; `matmul` routes small m here. One
//! dispatch per weight part.

use bytemuck::{Pod, Zeroable};

use super::matmul::MatmulOpts;
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
    x_offset: u32,
    y_offset: u32,
    _pad: [u32; 2],
}

/// The most rows of X one dispatch handles (the shader's `MAX_M`); more run in several dispatches.
pub const MATVEC_MAX_M: usize = 8;
/// Invocations per workgroup (override `WG`, a power of two).
const WG: u32 = 64;
/// Weight rows per workgroup (override `ROWS`).
const ROWS: u32 = 4;
/// Workgroups per dispatch dimension before wrapping into a second one.
const MAX_GROUPS_X: u32 = 65535;

/// `Y[r, o] = sum_k X[r, k] * W[o, k]` for `m` rows: X `[m, w.n_in]`, Y `[m, w.n_out]`, the same
/// contract as [`super::matmul`]. Rows beyond `MATVEC_MAX_M` go in further dispatches.
pub fn matvec(rec: &mut Recorder, x: &Tensor, w: &Weight, y: &Tensor, m: usize, opts: MatmulOpts) -> Result<(), Error> {
    let x_stride = if opts.x_stride == 0 { w.n_in } else { opts.x_stride };
    let y_stride = if opts.y_stride == 0 { w.n_out } else { opts.y_stride };
    let flags = opts.bias.is_some() as u32 | (opts.accumulate as u32) << 1;
    for r0 in (0..m).step_by(MATVEC_MAX_M) {
        let rows = (m - r0).min(MATVEC_MAX_M);
        let key = PipelineKey {
            shader: "matvec",
            entry: "matvec",
            constants: vec![
                ("W_TYPE", f64::from(w.ty.id()).to_bits()),
                ("WG", f64::from(WG).to_bits()),
                ("M", (rows as f64).to_bits()),
                ("ROWS", f64::from(ROWS).to_bits()),
            ],
        };
        for part in &w.parts {
            let params = Params {
                m: rows as u32,
                n: part.n_rows as u32,
                k: w.n_in as u32,
                row_bytes: w.row_bytes() as u32,
                x_stride: x_stride as u32,
                y_stride: y_stride as u32,
                c0: part.row_start as u32,
                flags,
                x_offset: (opts.x_offset + r0 * x_stride) as u32,
                y_offset: (opts.y_offset + r0 * y_stride) as u32,
                _pad: [0; 2],
            };
            let bias = opts.bias.map_or(&part.buffer, |b| b.buffer());
            let blocks = (part.n_rows as u32).div_ceil(ROWS);
            let groups = [blocks.min(MAX_GROUPS_X), blocks.div_ceil(MAX_GROUPS_X), 1];
            rec.dispatch(&key, &[x.buffer(), &part.buffer, bias, y.buffer()], &params, groups)?;
        }
    }
    Ok(())
}
