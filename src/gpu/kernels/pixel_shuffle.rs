//! `pixel_shuffle.wgsl`: the idefics3 connector's space-to-depth of the patch grid.

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    side: u32,
    n: u32,
    s: u32,
    _pad: u32,
}

const WG: u32 = 256;

/// x `[side * side, n]` -> y `[(side / s)^2, n * s * s]`: output token (R, C) is patches
/// (R*s + dy, C*s + dx) concatenated over dy (outer) then dx (inner). `side` a multiple of `s`.
pub fn pixel_shuffle(rec: &mut Recorder, x: &Tensor, y: &Tensor, side: usize, n: usize, s: usize) -> Result<(), Error> {
    if s == 0 || !side.is_multiple_of(s) {
        return Err(Error::Invalid {
            kernel: "pixel_shuffle",
            what: format!("factor {s} does not divide side {side}"),
        });
    }
    let key = PipelineKey {
        shader: "pixel_shuffle",
        entry: "pixel_shuffle",
        constants: vec![("WG", f64::from(WG).to_bits())],
    };
    let params = Params { side: side as u32, n: n as u32, s: s as u32, _pad: 0 };
    rec.dispatch(&key, &[x.buffer(), y.buffer()], &params, grid_1d(((side * side * n) as u32).div_ceil(WG)))
}
