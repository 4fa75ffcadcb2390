//! `rope.wgsl`: rotary position embedding in place, adjacent pairs (llama) or halves (qwen2).

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

/// Most rotated pairs per head: `freq` in `Params` holds `rope_dim / 2 <= 128` values.
const MAX_PAIRS: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_tokens: u32,
    n_head: u32,
    head_dim: u32,
    rope_dim: u32,
    offset: u32,
    row_stride: u32,
    mode: u32,
    _pad: u32,
    /// `freq[j] = base^(-2j / rope_dim)`, as WGSL `array<vec4<f32>, 32>`.
    freq: [[f32; 4]; MAX_PAIRS / 4],
}

const WG: u32 = 64;

/// Which rows RoPE rotates: `x[offset + t * row_stride + h * head_dim + i]` for t < n_tokens,
/// h < n_head, i < rope_dim; token t sits at position `positions[t]`.
#[derive(Clone, Copy, Debug)]
pub struct RopeArgs {
    pub n_tokens: usize,
    pub n_head: usize,
    pub head_dim: usize,
    /// Dims rotated per head (even, at most 256); the rest pass through.
    pub rope_dim: usize,
    pub base: f32,
    /// Pairs (j, j + rope_dim / 2) — NEOX, qwen2 — instead of adjacent (2j, 2j + 1) — llama.
    pub halves: bool,
    pub offset: usize,
    /// Elements between tokens (usually `n_head * head_dim`).
    pub row_stride: usize,
}

/// RoPE in place on `x`; `positions` is a u32 tensor of at least `n_tokens` positions.
pub fn rope(rec: &mut Recorder, x: &Tensor, positions: &Tensor, a: RopeArgs) -> Result<(), Error> {
    if !(a.rope_dim.is_multiple_of(2) && a.rope_dim / 2 <= MAX_PAIRS && a.rope_dim <= a.head_dim) {
        let what = format!(
            "rope_dim {} must be even, at most {} and at most head_dim {}",
            a.rope_dim,
            2 * MAX_PAIRS,
            a.head_dim
        );
        return Err(Error::Invalid { kernel: "rope", what });
    }
    // The frequencies are computed here with the reference's own f32 expression
    // (`ops::rope_pairs`): a GPU pow is exp2(y * log2(x)), a few ulps off, and at position 2000
    // one ulp of a frequency is already 1e-4 rad.
    let mut freq = [[0f32; 4]; MAX_PAIRS / 4];
    for j in 0..a.rope_dim / 2 {
        freq[j / 4][j % 4] = a.base.powf(-2.0 * j as f32 / a.rope_dim as f32);
    }
    let params = Params {
        n_tokens: a.n_tokens as u32,
        n_head: a.n_head as u32,
        head_dim: a.head_dim as u32,
        rope_dim: a.rope_dim as u32,
        offset: a.offset as u32,
        row_stride: a.row_stride as u32,
        mode: a.halves as u32,
        _pad: 0,
        freq,
    };
    let key = PipelineKey { shader: "rope", entry: "rope", constants: vec![("WG", f64::from(WG).to_bits())] };
    let n_pairs = (a.n_tokens * a.n_head * (a.rope_dim / 2)) as u32;
    rec.dispatch(&key, &[x.buffer(), positions.buffer()], &params, grid_1d(n_pairs.div_ceil(WG)))
}
