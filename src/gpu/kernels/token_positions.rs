//! `token_positions.wgsl`: the unpruned-prompt positions of the rows a pruned tile sends on.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_kept: u32,
    n_targets: u32,
    step: u32,
    first: u32,
    src: u32,
    dst: u32,
    base: u32,
    _pad: u32,
}

const WG: u32 = 64;

/// The rows whose positions to write: `order[src..]` lists `n_kept` kept tokens, then the
/// remaining ones, of which every `step`-th (the first `n_targets`) is a contextual target, as
/// for [`super::gather_merge`]; token `i` stands at cell `i - first` (a CLS row, `i < first`, at
/// cell 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct PositionArgs {
    pub n_kept: usize,
    pub n_targets: usize,
    pub step: usize,
    pub first: usize,
    pub src: usize,
    /// The first row's slot in `pos`.
    pub dst: usize,
    /// The position of cell 0.
    pub base: usize,
}

/// `pos[dst + r]` = `base` + the cell of the token row `r` was gathered from (see the shader
/// header). `order` and `pos` are u32 tensors.
pub fn token_positions(rec: &mut Recorder, order: &Tensor, pos: &Tensor, a: PositionArgs) -> Result<(), Error> {
    let rows = a.n_kept + a.n_targets;
    let last_read = a.src + a.n_kept + a.n_targets.saturating_sub(1) * a.step;
    // A position is `base` plus a token index, and every index is below the list's length.
    let fits = u32::try_from(a.base + order.len()).is_ok();
    if (a.n_targets > 0 && (a.step == 0 || last_read >= order.len())) || a.src + a.n_kept > order.len() || !fits {
        return Err(Error::Invalid { kernel: "token_positions", what: format!("{a:?} with order {}", order.len()) });
    }
    if a.dst + rows > pos.len() {
        return Err(Error::Invalid { kernel: "token_positions", what: format!("{a:?} with {} positions", pos.len()) });
    }
    let key = PipelineKey {
        shader: "token_positions",
        entry: "token_positions",
        constants: vec![("WG", f64::from(WG).to_bits())],
    };
    let params = Params {
        n_kept: a.n_kept as u32,
        n_targets: a.n_targets as u32,
        step: a.step.max(1) as u32,
        first: a.first as u32,
        src: a.src as u32,
        dst: a.dst as u32,
        base: a.base as u32,
        _pad: 0,
    };
    rec.dispatch(&key, &[order.buffer(), pos.buffer()], &params, [(rows as u32).div_ceil(WG), 1, 1])
}
