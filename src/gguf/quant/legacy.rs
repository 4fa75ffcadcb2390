//! The legacy formats, 32 values per block (ggml `QK4_0` = `QK8_0` = 32):
//! - Q4_0 and Q5_0 are symmetric, y = (q − 2^(bits−1))·d;
//! - Q4_1 and Q5_1 are affine, y = q·d + m;
//! - Q8_0 is y = q·d with q an i8.
//!
//! In the 4- and 5-bit formats value j < 16 is the low nibble of `qs[j]` and value j + 16 its high
//! nibble; the 5-bit formats keep bit 4 of value j in bit j of the little-endian u32 `qh`.
//! Dequantisers: ggml `dequantize_row_q{4,5}_{0,1}`, `dequantize_row_q8_0`. Quantisers: ggml
//! `quantize_row_*_ref`, formula for formula (including the f32, not f16, `1/d`).

use super::{pack_nibbles, read_f16, read_u32, signed_max_abs, unpack_nibbles, write_f16};

const QK: usize = 32;

// ---- Dequantisation ------------------------------------------------------------------------

/// Q4_0, 18 bytes: d f16 @0 | qs[16] @2.
pub(super) fn dequantize_q4_0(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 0);
    let q = unpack_q(None, &block[2..18]);
    symmetric(d, &q, 8, y);
}

/// Q5_0, 22 bytes: d f16 @0 | qh u32 @2 | qs[16] @6.
pub(super) fn dequantize_q5_0(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 0);
    let q = unpack_q(Some(read_u32(block, 2)), &block[6..22]);
    symmetric(d, &q, 16, y);
}

/// Q4_1, 20 bytes: d f16 @0 | m f16 @2 | qs[16] @4.
pub(super) fn dequantize_q4_1(block: &[u8], y: &mut [f32]) {
    let (d, m) = (read_f16(block, 0), read_f16(block, 2));
    let q = unpack_q(None, &block[4..20]);
    affine(d, m, &q, y);
}

/// Q5_1, 24 bytes: d f16 @0 | m f16 @2 | qh u32 @4 | qs[16] @8.
pub(super) fn dequantize_q5_1(block: &[u8], y: &mut [f32]) {
    let (d, m) = (read_f16(block, 0), read_f16(block, 2));
    let q = unpack_q(Some(read_u32(block, 4)), &block[8..24]);
    affine(d, m, &q, y);
}

/// Q8_0, 34 bytes: d f16 @0 | qs[32] i8 @2.
pub(super) fn dequantize_q8_0(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 0);
    for (y, &q) in y.iter_mut().zip(&block[2..34]) {
        *y = (q as i8) as f32 * d;
    }
}

/// The 32 codes of a block: nibbles from `qs`, plus bit 4 from `qh` in the 5-bit formats.
fn unpack_q(qh: Option<u32>, qs: &[u8]) -> [u8; QK] {
    let mut q = [0; QK];
    unpack_nibbles(qs, QK / 2, &mut q);
    if let Some(qh) = qh {
        for (j, q) in q.iter_mut().enumerate() {
            *q |= (((qh >> j) & 1) as u8) << 4;
        }
    }
    q
}

/// y = (q − offset)·d, the integer subtraction first as in ggml.
fn symmetric(d: f32, q: &[u8; QK], offset: i32, y: &mut [f32]) {
    for (y, &q) in y.iter_mut().zip(q) {
        *y = (q as i32 - offset) as f32 * d;
    }
}

/// y = q·d + m.
fn affine(d: f32, m: f32, q: &[u8; QK], y: &mut [f32]) {
    for (y, &q) in y.iter_mut().zip(q) {
        *y = q as f32 * d + m;
    }
}

// ---- Quantisation --------------------------------------------------------------------------

pub(super) fn quantize_q4_0(x: &[f32], block: &mut [u8]) {
    let (d, q) = quantize_symmetric(x, 4);
    write_f16(block, 0, d);
    pack_nibbles(&q, QK / 2, &mut block[2..18]);
}

pub(super) fn quantize_q5_0(x: &[f32], block: &mut [u8]) {
    let (d, q) = quantize_symmetric(x, 5);
    write_f16(block, 0, d);
    block[2..6].copy_from_slice(&pack_qh(&q).to_le_bytes());
    pack_nibbles(&q, QK / 2, &mut block[6..22]);
}

pub(super) fn quantize_q4_1(x: &[f32], block: &mut [u8]) {
    let (d, m, q) = quantize_affine(x, 4);
    write_f16(block, 0, d);
    write_f16(block, 2, m);
    pack_nibbles(&q, QK / 2, &mut block[4..20]);
}

pub(super) fn quantize_q5_1(x: &[f32], block: &mut [u8]) {
    let (d, m, q) = quantize_affine(x, 5);
    write_f16(block, 0, d);
    write_f16(block, 2, m);
    block[4..8].copy_from_slice(&pack_qh(&q).to_le_bytes());
    pack_nibbles(&q, QK / 2, &mut block[8..24]);
}

/// d = amax/127, q = round(x/d) (half away from zero, C's `roundf`).
pub(super) fn quantize_q8_0(x: &[f32], block: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(block, 0, d);
    for (byte, &x) in block[2..34].iter_mut().zip(x) {
        *byte = (x * id).round() as i8 as u8;
    }
}

/// Q4_0/Q5_0: the value of largest magnitude, `max` with its sign, gets code 0, so
/// d = max / −2^(bits−1) and the codes 0..2^bits span [max, −max); a value of the opposite sign
/// near −max is clamped to the top code (error up to d).
fn quantize_symmetric(x: &[f32], bits: u32) -> (f32, [u8; QK]) {
    let half = (1u32 << (bits - 1)) as f32;
    let top = (1u8 << bits) - 1;
    let d = signed_max_abs(x) / -half;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // `as u8` truncates like ggml's `(int8_t)` cast; the operand is at least 0.5 here.
    let q = std::array::from_fn(|j| ((x[j] * id + (half + 0.5)) as u8).min(top));
    (d, q)
}

/// Q4_1/Q5_1: m = min(x), d = (max − min)/(2^bits − 1), q = round((x − m)/d).
fn quantize_affine(x: &[f32], bits: u32) -> (f32, f32, [u8; QK]) {
    let top = (1u8 << bits) - 1;
    let min = x.iter().fold(f32::INFINITY, |a, &v| a.min(v));
    let max = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let d = (max - min) / top as f32;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = std::array::from_fn(|j| (((x[j] - min) * id + 0.5) as u8).min(top));
    (d, min, q)
}

/// Bit 4 of each code, code j at bit j (the inverse of `unpack_q`'s `qh`).
fn pack_qh(q: &[u8; QK]) -> u32 {
    q.iter().enumerate().fold(0, |qh, (j, &q)| qh | (((q >> 4) & 1) as u32) << j)
}
