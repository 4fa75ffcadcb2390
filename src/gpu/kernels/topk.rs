//! `topk.wgsl`: the k largest logits and their indices, sorted, for sampling on the CPU.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    k: u32,
    x_offset: u32,
    out_offset: u32,
}

/// Invocations of the one workgroup (a power of two).
const WG: u32 = 256;

/// The most candidates `topk` returns (the shader's `K_MAX`).
pub const TOPK_MAX: usize = 64;

/// The `k` (1..=64) largest of `x[x_offset .. x_offset + n]`, sorted descending (equal values by
/// index ascending), into `values[0..k]` (f32) and `indices[0..k]` (u32). When n < k the last
/// k - n slots hold value `f32::MIN` and index `u32::MAX`.
pub fn topk(
    rec: &mut Recorder,
    x: &Tensor,
    x_offset: usize,
    n: usize,
    k: usize,
    values: &Tensor,
    indices: &Tensor,
) -> Result<(), Error> {
    if !(1..=TOPK_MAX).contains(&k) {
        return Err(Error::Invalid { kernel: "topk", what: format!("k = {k} outside 1..={TOPK_MAX}") });
    }
    let key = PipelineKey { shader: "topk", entry: "topk", constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params { n: n as u32, k: k as u32, x_offset: x_offset as u32, out_offset: 0 };
    rec.dispatch(&key, &[x.buffer(), values.buffer(), indices.buffer()], &params, [1, 1, 1])
}
