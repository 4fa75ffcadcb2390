//! `token_pool.wgsl`: the mean of equal slices of each row (head-mean keys, pooled groups).

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    w: u32,
    groups: u32,
    x_offset: u32,
    x_stride: u32,
    y_offset: u32,
    _pad: [u32; 2],
}

const WG: u32 = 256;

/// The rows of one [`group_mean`]: `n` rows of `groups` slices of width `w`, `x` rows from
/// `x_offset` at `x_stride` (`>= groups * w`), written packed into `y` from `y_offset`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupMean {
    pub n: usize,
    pub w: usize,
    pub groups: usize,
    pub x_offset: usize,
    pub x_stride: usize,
    pub y_offset: usize,
}

/// `y[y_offset + t * w + c] = mean over g < groups of x[x_offset + t * x_stride + g * w + c]`.
pub fn group_mean(rec: &mut Recorder, x: &Tensor, y: &Tensor, a: GroupMean) -> Result<(), Error> {
    let GroupMean { n, w, groups, x_offset, x_stride, y_offset } = a;
    if groups == 0
        || x_stride < groups * w
        || (n > 0 && x_offset + (n - 1) * x_stride + groups * w > x.len())
        || y_offset + n * w > y.len()
    {
        return Err(Error::Invalid {
            kernel: "group_mean",
            what: format!("{n} rows of {groups} x {w} at stride {x_stride} from {x_offset} overrun {}", x.len()),
        });
    }
    let key =
        PipelineKey { shader: "token_pool", entry: "group_mean", constants: vec![("WG", f64::from(WG).to_bits())] };
    let params = Params {
        n: n as u32,
        w: w as u32,
        groups: groups as u32,
        x_offset: x_offset as u32,
        x_stride: x_stride as u32,
        y_offset: y_offset as u32,
        _pad: [0; 2],
    };
    rec.dispatch(&key, &[x.buffer(), y.buffer()], &params, grid_1d(((n * w) as u32).div_ceil(WG)))
}
