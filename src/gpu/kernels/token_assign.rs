//! `token_assign.wgsl`: VisionZip's contextual assignment by key cosine similarity.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    n_kept: u32,
    n_targets: u32,
    step: u32,
    kd: u32,
    _pad: [u32; 3],
}

const WG: u32 = 64;
const MAX_KD: usize = 128;

/// For each remaining token `order[n_kept + q]` (q < n - n_kept), `assign[q]` = the target it
/// joins: the one of `order[n_kept + t * step]` (t < n_targets) with the most cosine-similar
/// key in `keys` (`[n, kd]`), ties to the earlier target; a target gets its own index.
pub fn assign_targets(
    rec: &mut Recorder,
    keys: &Tensor,
    order: &Tensor,
    assign: &Tensor,
    n: usize,
    n_kept: usize,
    n_targets: usize,
    step: usize,
    kd: usize,
) -> Result<(), Error> {
    let n_rest = n.saturating_sub(n_kept);
    let fits = n_targets >= 1 && step >= 1 && (n_targets - 1) * step < n_rest;
    if !fits || kd == 0 || kd > MAX_KD || keys.len() < n * kd || order.len() < n || assign.len() < n_rest {
        return Err(Error::Invalid {
            kernel: "assign_targets",
            what: format!("{n_targets} targets at step {step} among {n_rest} tokens, key width {kd} (<= {MAX_KD})"),
        });
    }
    let key = PipelineKey {
        shader: "token_assign",
        entry: "assign_targets",
        constants: vec![("WG", f64::from(WG).to_bits())],
    };
    let params = Params {
        n: n as u32,
        n_kept: n_kept as u32,
        n_targets: n_targets as u32,
        step: step as u32,
        kd: kd as u32,
        _pad: [0; 3],
    };
    let groups = [(n_rest as u32).div_ceil(WG), 1, 1];
    rec.dispatch(&key, &[keys.buffer(), order.buffer(), assign.buffer()], &params, groups)
}
