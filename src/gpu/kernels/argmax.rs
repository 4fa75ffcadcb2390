//! `argmax.wgsl`: greedy sampling, the index of the largest logit, on the GPU.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    x_offset: u32,
    out_offset: u32,
    _pad: u32,
}

/// Invocations of the one workgroup (a power of two).
const WG: u32 = 256;

/// `out[0]` (a u32 tensor) = the index of the largest of `x[x_offset .. x_offset + n]`, the
/// lowest index among equal maxima.
pub fn argmax(rec: &mut Recorder, x: &Tensor, x_offset: usize, n: usize, out: &Tensor) -> Result<(), Error> {
    let key = PipelineKey { shader: "argmax", entry: "argmax", constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params { n: n as u32, x_offset: x_offset as u32, out_offset: 0, _pad: 0 };
    rec.dispatch(&key, &[x.buffer(), out.buffer()], &params, [1, 1, 1])
}
