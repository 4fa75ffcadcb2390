//! CPU (de)quantisation of ggml block formats. Placeholder signatures; implemented in full by
//! the quant work.

use super::types::GgmlType;

/// Dequantises `data` (whole blocks of `ty`) into `out`, whose length must be the element count.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), String> {
    let _ = (ty, data, out);
    Err("not implemented".into())
}

/// Quantises `src` (a whole number of blocks) to `ty` with round-to-nearest.
pub fn quantize(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>, String> {
    let _ = (ty, src);
    Err("not implemented".into())
}
