//! `token_select.wgsl`: the top-k tokens by score as raster-order index lists, on the GPU.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    k: u32,
    forced: u32,
    score_offset: u32,
}

const WG: u32 = 256;

/// `order[0..min(k, n))` = the indices of the `k` highest of `scores[score_offset..][..n]`
/// ascending (ties to the lower index, NaN lowest, `forced` always kept), `order[min(k, n)..n]`
/// = the other indices ascending. `order` is a u32 tensor.
pub fn select_top_k(
    rec: &mut Recorder,
    scores: &Tensor,
    score_offset: usize,
    n: usize,
    k: usize,
    forced: Option<usize>,
    order: &Tensor,
) -> Result<(), Error> {
    if n == 0 || score_offset + n > scores.len() || order.len() < n || forced.is_some_and(|f| f >= n) {
        return Err(Error::Invalid {
            kernel: "select_top_k",
            what: format!(
                "{n} scores from {score_offset} in {}, order of {}, forced {forced:?}",
                scores.len(),
                order.len()
            ),
        });
    }
    let key =
        PipelineKey { shader: "token_select", entry: "select_top_k", constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params {
        n: n as u32,
        k: k as u32,
        forced: forced.map_or(u32::MAX, |f| f as u32),
        score_offset: score_offset as u32,
    };
    rec.dispatch(&key, &[scores.buffer(), order.buffer()], &params, [1, 1, 1])
}
