//! `get_rows.wgsl`: embedding lookup, decoding the selected rows of a GGUF weight. One dispatch
//! per weight part.

use bytemuck::{Pod, Zeroable};

use super::grid_1d;
use crate::gpu::{Error, PipelineKey, Recorder, Tensor, Weight};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_in: u32,
    n_ids: u32,
    row_bytes: u32,
    row_start: u32,
    n_rows: u32,
    n_out: u32,
    zero_invalid: u32,
    y_offset: u32,
}

const WG: u32 = 64;

/// `y[i, :] = w[ids[i], :]` dequantised, for i < n_ids: ids a u32 tensor, y `[n_ids, w.n_in]`.
/// An id with no row (>= `w.n_out`) gives a row of zeros. `w.n_in` must be a multiple of 8.
pub fn get_rows(rec: &mut Recorder, w: &Weight, ids: &Tensor, y: &Tensor, n_ids: usize) -> Result<(), Error> {
    if !w.n_in.is_multiple_of(8) {
        let what = format!("{} has rows of {} elements, not a multiple of 8", w.name, w.n_in);
        return Err(Error::Invalid { kernel: "get_rows", what });
    }
    let key = PipelineKey {
        shader: "get_rows",
        entry: "get_rows",
        constants: vec![("W_TYPE", f64::from(w.ty.id()).to_bits()), ("WG", f64::from(WG).to_bits())],
    };
    let groups = grid_1d(((n_ids * w.n_in / 8) as u32).div_ceil(WG));
    for (i, part) in w.parts.iter().enumerate() {
        let params = Params {
            n_in: w.n_in as u32,
            n_ids: n_ids as u32,
            row_bytes: w.row_bytes() as u32,
            row_start: part.row_start as u32,
            n_rows: part.n_rows as u32,
            n_out: w.n_out as u32,
            zero_invalid: (i == 0) as u32,
            y_offset: 0,
        };
        rec.dispatch(&key, &[ids.buffer(), &part.buffer, y.buffer()], &params, groups)?;
    }
    Ok(())
}
