//! `matvec.wgsl`: Y = X W^T (+ b) (+ Y) for a few rows of X (decode), W a GGUF weight decoded on
//! the fly. The same Params and bindings as `matmul.wgsl`; `matmul` routes small m here. One
//! dispatch per weight part, on the entry `matvec_blocks` where the type and alignment allow
//! (whole 32-weight blocks, vec4 reads of W and X) and on the generic `matvec` otherwise.

use bytemuck::{Pod, Zeroable};

use super::matmul::MatmulOpts;
use crate::gguf::GgmlType;
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
/// Invocations per workgroup of `matvec` (override `WG`, a power of two).
const WG: u32 = 64;
/// Weight rows per workgroup of `matvec` (override `ROWS`).
const ROWS: u32 = 4;
/// Workgroups per dispatch dimension before wrapping into a second one.
const MAX_GROUPS_X: u32 = 65535;

/// `matvec_blocks`: weight rows per invocation (override `ROWS`, at most the shader's 16).
const BLOCK_ROWS: u32 = 16;
/// `matvec_blocks`: row groups per workgroup (`WG / KT`); a workgroup owns `BLOCK_GROUPS *
/// BLOCK_ROWS` weight rows.
const BLOCK_GROUPS: u32 = 4;
/// `matvec_blocks`: at most this many invocations share a row group along k (override `KT`).
const BLOCK_KT_MAX: u32 = 8;

/// `Y[r, o] = sum_k X[r, k] * W[o, k]` for `m` rows: X `[m, w.n_in]`, Y `[m, w.n_out]`, the same
/// contract as [`super::matmul`]. Rows beyond `MATVEC_MAX_M` go in further dispatches. Parts the
/// block-wise `matvec_blocks` can read (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants; k a multiple
/// of 32; X rows at multiples of 4 floats; whole 16-byte words) run there, the rest on `matvec`.
pub fn matvec(rec: &mut Recorder, x: &Tensor, w: &Weight, y: &Tensor, m: usize, opts: MatmulOpts) -> Result<(), Error> {
    matvec_with(rec, x, w, y, m, opts, true)
}

/// [`matvec`] on the generic `matvec` entry for every type and part (tests and timings compare
/// it with `matvec_blocks`).
pub fn matvec_generic(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Weight,
    y: &Tensor,
    m: usize,
    opts: MatmulOpts,
) -> Result<(), Error> {
    matvec_with(rec, x, w, y, m, opts, false)
}

/// Whether `matvec_blocks` can run a part of `n_rows` rows of `w`: a type it decodes, k a multiple
/// of 32, X rows at multiples of 4 floats (its vec4 alias of X) and a part of whole 16-byte words
/// (its vec4 alias of W).
fn takes_blocks(w: &Weight, n_rows: usize, x_offset: usize, x_stride: usize) -> bool {
    use GgmlType::*;
    matches!(w.ty, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4K | Q5K | Q6K)
        && w.n_in.is_multiple_of(32)
        && x_offset.is_multiple_of(4)
        && x_stride.is_multiple_of(4)
        && (n_rows * w.row_bytes()).is_multiple_of(16)
}

fn matvec_with(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Weight,
    y: &Tensor,
    m: usize,
    opts: MatmulOpts,
    blocks: bool,
) -> Result<(), Error> {
    let x_stride = if opts.x_stride == 0 { w.n_in } else { opts.x_stride };
    let y_stride = if opts.y_stride == 0 { w.n_out } else { opts.y_stride };
    let flags = opts.flags("matvec")?;
    // matvec_blocks: the fewest invocations along k that keep the steps per invocation at
    // ceil(blocks / BLOCK_KT_MAX) (k = 576: 18 blocks, 6 invocations of 3 rather than 8 of 2-3).
    let n_blocks = (w.n_in / 32).max(1) as u32;
    let kt = n_blocks.div_ceil(n_blocks.div_ceil(BLOCK_KT_MAX));
    for r0 in (0..m).step_by(MATVEC_MAX_M) {
        let rows = (m - r0).min(MATVEC_MAX_M);
        for part in &w.parts {
            let key = |entry, wg: u32, rows_per: u32| PipelineKey {
                shader: "matvec",
                entry,
                constants: vec![
                    ("W_TYPE", f64::from(w.ty.id()).to_bits()),
                    ("WG", f64::from(wg).to_bits()),
                    ("M", (rows as f64).to_bits()),
                    ("ROWS", f64::from(rows_per).to_bits()),
                ],
            };
            let (key, rows_per_group) =
                if blocks && takes_blocks(w, part.n_rows, opts.x_offset + r0 * x_stride, x_stride) {
                    let mut key = key("matvec_blocks", kt * BLOCK_GROUPS, BLOCK_ROWS);
                    key.constants.push(("KT", f64::from(kt).to_bits()));
                    (key, BLOCK_GROUPS * BLOCK_ROWS)
                } else {
                    (key("matvec", WG, ROWS), ROWS)
                };
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
            let n_groups = (part.n_rows as u32).div_ceil(rows_per_group);
            let groups = [n_groups.min(MAX_GROUPS_X), n_groups.div_ceil(MAX_GROUPS_X), 1];
            rec.dispatch(&key, &[x.buffer(), &part.buffer, bias, y.buffer()], &params, groups)?;
        }
    }
    Ok(())
}
