//! `token_gather.wgsl`: the kept rows in order, then VisionZip's merged contextual rows.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    width: u32,
    n_kept: u32,
    n_targets: u32,
    step: u32,
    n_rest: u32,
    x_offset: u32,
    x_stride: u32,
    _pad: u32,
}

const WG: u32 = 256;

/// The rows to gather: `x` row `i` is `x[x_offset + i * x_stride ..][..width]`; `order` lists
/// `n_kept` kept tokens, then `n_rest` remaining ones, of which `n_targets` at `step` are
/// contextual targets (`n_targets` = 0: a plain gather).
#[derive(Clone, Copy, Debug, Default)]
pub struct GatherArgs {
    pub width: usize,
    pub n_kept: usize,
    pub n_targets: usize,
    pub step: usize,
    pub n_rest: usize,
    pub x_offset: usize,
    pub x_stride: usize,
}

/// `y[r] = x[order[r]]` for r < n_kept, then `y[n_kept + t]` = target t's row + the mean of the
/// rows `assign` gave it (see the shader header). `order` and `assign` are u32 tensors.
pub fn gather_merge(
    rec: &mut Recorder,
    x: &Tensor,
    order: &Tensor,
    assign: &Tensor,
    y: &Tensor,
    a: GatherArgs,
) -> Result<(), Error> {
    let rows = a.n_kept + a.n_targets;
    let targets_fit = a.n_targets == 0 || (a.step >= 1 && (a.n_targets - 1) * a.step < a.n_rest);
    if a.width == 0 || !targets_fit || order.len() < a.n_kept + a.n_rest || y.len() < rows * a.width {
        return Err(Error::Invalid { kernel: "gather_merge", what: format!("{a:?} with order {}", order.len()) });
    }
    let key =
        PipelineKey { shader: "token_gather", entry: "gather_merge", constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params {
        width: a.width as u32,
        n_kept: a.n_kept as u32,
        n_targets: a.n_targets as u32,
        step: a.step.max(1) as u32,
        n_rest: a.n_rest as u32,
        x_offset: a.x_offset as u32,
        x_stride: a.x_stride as u32,
        _pad: 0,
    };
    let groups = [(a.width as u32).div_ceil(WG), rows as u32, 1];
    rec.dispatch(&key, &[x.buffer(), order.buffer(), assign.buffer(), y.buffer()], &params, groups)
}

/// `y` = the rows `list` of `x` (`[_, width]`, packed rows), packed: the list is uploaded and
/// gathered in one dispatch (`gather_merge` without targets).
pub fn gather_rows(rec: &mut Recorder, x: &Tensor, width: usize, list: &[u32], y: &Tensor) -> Result<(), Error> {
    let order = rec.gpu().upload_u32(list, "gather.rows")?;
    let args = GatherArgs { width, n_kept: list.len(), x_stride: width, ..Default::default() };
    gather_merge(rec, x, &order, &order, y, args)
}
