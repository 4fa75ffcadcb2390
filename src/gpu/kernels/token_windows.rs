//! `token_windows.wgsl`: MustDrop stage 1's mean pairwise cosine per patch window.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    side: u32,
    w: u32,
    d: u32,
    first: u32,
}

const WG: u32 = 64;

/// `score[i]` = the mean pairwise cosine of window i's `w x w` tokens, for the
/// `(side / w)^2` whole windows of the `side x side` grid of rows `first..` of `x` (`[_, d]`).
/// `w` is 2 or 3.
pub fn window_similarity(
    rec: &mut Recorder,
    x: &Tensor,
    score: &Tensor,
    side: usize,
    w: usize,
    d: usize,
    first: usize,
) -> Result<(), Error> {
    let windows = (side / w.max(1)).pow(2);
    if !(2..=3).contains(&w) || x.len() < (first + side * side) * d || score.len() < windows {
        return Err(Error::Invalid {
            kernel: "window_similarity",
            what: format!("window {w} (2 or 3) over {side} x {side} rows of {d} from {first}"),
        });
    }
    let key = PipelineKey {
        shader: "token_windows",
        entry: "window_similarity",
        constants: vec![("WG", f64::from(WG).to_bits())],
    };
    let params = Params { side: side as u32, w: w as u32, d: d as u32, first: first as u32 };
    rec.dispatch(&key, &[x.buffer(), score.buffer()], &params, [windows as u32, 1, 1])
}
