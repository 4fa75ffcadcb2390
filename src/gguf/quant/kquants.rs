//! The K-quants, 256 values per super-block (ggml `QK_K`):
//! - Q4_K and Q5_K: eight sub-blocks of 32, y = d·sc_j·q − dmin·m_j, with 6-bit sc_j and m_j
//!   packed into 12 bytes (`get_scale_min_k4`) and f16 super-block scales d and dmin;
//! - Q6_K: sixteen sub-blocks of 16, y = d·sc_j·(q − 32), with i8 sc_j and an f16 d.
//!
//! Dequantisers: ggml `dequantize_row_q{4,5,6}_K`, same operations in the same order.
//!
//! Quantisers: one pass, no search. ggml's `quantize_row_q*_K_ref` also searches each sub-block
//! for the scale with the least squared error (`make_qkx2_quants`, `make_qx_quants`).
//! 1. Each sub-block gets the exact scale (and min) that spans its values.
//! 2. Those are quantised against the super-block's largest, rounding magnitudes *up*, so every
//!    value stays inside the range its sub-block can represent.
//! 3. Each value is rounded to the nearest code under the scales as the decoder will see them.
//!
//! The error per value is then about half a step of its own sub-block. It is never a clamp at a
//! scale that rounding shrank.

use std::array::from_fn;

use super::{or_high_bits, pack_high_bits, pack_nibbles, read_f16, signed_max_abs, unpack_nibbles, write_f16};

const QK_K: usize = 256;

// ---- 6-bit scale packing (Q4_K, Q5_K) -----------------------------------------------------

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes `q`, as ggml's
/// `get_scale_min_k4`:
/// - bytes 0..4: sc[0..4] in bits 0..6; bits 6..8 hold bits 4..6 of sc[4..8];
/// - bytes 4..8: m[0..4] in bits 0..6; bits 6..8 hold bits 4..6 of m[4..8];
/// - bytes 8..12: bits 0..4 of sc[4..8] in the low nibble, of m[4..8] in the high nibble.
pub(super) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// The inverse of `get_scale_min_k4`: packs eight 6-bit scales and mins into 12 bytes.
pub(super) fn put_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..4 {
        q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
    }
    q
}

// ---- Dequantisation ------------------------------------------------------------------------

/// Q4_K, 144 bytes: d f16 @0 | dmin f16 @2 | scales[12] @4 | qs[128] @16.
/// Value 64c+l (c < 4, l < 32) is the low nibble of qs[32c+l], value 64c+32+l its high nibble.
pub(super) fn dequantize_q4_k(block: &[u8], y: &mut [f32]) {
    let mut q = [0u8; QK_K];
    unpack_nibbles(&block[16..144], 32, &mut q);
    dequantize_scale_min(block, &q, y);
}

/// Q5_K, 176 bytes: d f16 @0 | dmin f16 @2 | scales[12] @4 | qh[32] @16 | qs[128] @48.
/// As Q4_K, plus bit 4 of value 32k+l (k < 8, l < 32) in bit k of qh[l].
pub(super) fn dequantize_q5_k(block: &[u8], y: &mut [f32]) {
    let mut q = [0u8; QK_K];
    unpack_nibbles(&block[48..176], 32, &mut q);
    or_high_bits(&block[16..48], 1, &mut q);
    dequantize_scale_min(block, &q, y);
}

/// The part Q4_K and Q5_K share: d @0, dmin @2, scales @4..16 and the unpacked codes `q`.
fn dequantize_scale_min(block: &[u8], q: &[u8; QK_K], y: &mut [f32]) {
    let (d, dmin) = (read_f16(block, 0), read_f16(block, 2));
    for (j, (q, y)) in q.chunks_exact(32).zip(y.chunks_exact_mut(32)).enumerate() {
        let (sc, m) = get_scale_min_k4(j, &block[4..16]);
        let (d1, m1) = (d * sc as f32, dmin * m as f32);
        for (y, &q) in y.iter_mut().zip(q) {
            *y = d1 * q as f32 - m1;
        }
    }
}

/// Q6_K, 210 bytes: ql[128] @0 | qh[64] @128 | scales[16] i8 @192 | d f16 @208 (last).
/// Two halves of 128 values, each with 64 bytes of ql and 32 of qh. Value 32k+l of a half
/// (k < 4, l < 32) has its low 4 bits in ql[l + 32·(k&1)] (low nibble for k < 2, high for
/// k ≥ 2) and its top 2 bits in bits 2k..2k+2 of qh[l]. Sub-block j is values 16j..16j+16.
pub(super) fn dequantize_q6_k(block: &[u8], y: &mut [f32]) {
    let mut q = [0u8; QK_K];
    unpack_nibbles(&block[0..128], 64, &mut q);
    for (qh, q) in block[128..192].chunks_exact(32).zip(q.chunks_exact_mut(128)) {
        or_high_bits(qh, 2, q);
    }
    let d = read_f16(block, 208);
    for (j, (q, y)) in q.chunks_exact(16).zip(y.chunks_exact_mut(16)).enumerate() {
        let dj = d * (block[192 + j] as i8) as f32;
        for (y, &q) in y.iter_mut().zip(q) {
            *y = dj * (q as i32 - 32) as f32;
        }
    }
}

// ---- Quantisation --------------------------------------------------------------------------

pub(super) fn quantize_q4_k(x: &[f32], block: &mut [u8]) {
    let q = quantize_scale_min(x, 15, block);
    pack_nibbles(&q, 32, &mut block[16..144]);
}

pub(super) fn quantize_q5_k(x: &[f32], block: &mut [u8]) {
    let q = quantize_scale_min(x, 31, block);
    pack_high_bits(&q, 1, &mut block[16..48]);
    pack_nibbles(&q, 32, &mut block[48..176]);
}

/// The part Q4_K and Q5_K share: writes d, dmin and the scales (bytes 0..16) and returns the
/// codes, each in 0..=`top`.
fn quantize_scale_min(x: &[f32], top: u8, block: &mut [u8]) -> [u8; QK_K] {
    let sub = |j: usize| &x[32 * j..32 * j + 32];
    // Sub-block j spans [−min_j, max_j]. min_j ≥ 0 because the decoder subtracts it (ggml also
    // clamps the minimum to ≤ 0).
    let min: [f32; 8] = from_fn(|j| -sub(j).iter().fold(0.0f32, |a, &v| a.min(v)));
    let max: [f32; 8] = from_fn(|j| sub(j).iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)));
    // The mins: m_j·dmin ≥ min_j, so no value falls below code 0.
    let dmin = write_f16(block, 2, largest(&min) / 63.0);
    let m: [u8; 8] = from_fn(|j| steps_up(min[j], dmin, 63) as u8);
    // The scales: `top` steps of sc_j·d must reach from −m_j·dmin up to max_j.
    let step: [f32; 8] = from_fn(|j| ((max[j] + dmin * m[j] as f32) / top as f32).max(0.0));
    let d = write_f16(block, 0, largest(&step) / 63.0);
    let sc: [u8; 8] = from_fn(|j| steps_up(step[j], d, 63) as u8);
    block[4..16].copy_from_slice(&put_scale_min_k4(&sc, &m));

    from_fn(|i| {
        let j = i / 32;
        let (d1, m1) = (d * sc[j] as f32, dmin * m[j] as f32);
        nearest_code((x[i] + m1) / d1, 0.0, top as f32) as u8
    })
}

/// Q6_K: per sub-block of 16 the symmetric scale of Q4_0, s_j = max_j / −32 (the value of
/// largest magnitude gets code −32), then i8 sc_j = s_j/d rounded away from zero, with
/// d = max|s_j| / 127.
pub(super) fn quantize_q6_k(x: &[f32], block: &mut [u8]) {
    let s: [f32; 16] = from_fn(|j| signed_max_abs(&x[16 * j..16 * j + 16]) / -32.0);
    let d = write_f16(block, 208, largest(&s.map(f32::abs)) / 127.0);
    let sc: [i8; 16] = from_fn(|j| (steps_up(s[j].abs(), d, 127) * s[j].signum()) as i8);
    for (byte, &sc) in block[192..208].iter_mut().zip(&sc) {
        *byte = sc as u8;
    }
    let q: [u8; QK_K] = from_fn(|i| {
        let dj = d * sc[i / 16] as f32;
        (nearest_code(x[i] / dj, -32.0, 31.0) + 32.0) as u8
    });
    pack_nibbles(&q, 64, &mut block[0..128]);
    for (qh, q) in block[128..192].chunks_exact_mut(32).zip(q.chunks_exact(128)) {
        pack_high_bits(q, 2, qh);
    }
}

/// The largest of non-negative values (0 for all zeros).
fn largest(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |a, &v| a.max(v))
}

/// The fewest whole `unit`s that reach `v` ≥ 0, at most `max` (0 when `unit` is 0).
fn steps_up(v: f32, unit: f32, max: u8) -> f32 {
    if unit > 0.0 { (v / unit).ceil().min(max as f32) } else { 0.0 }
}

/// `v` rounded to the nearest integer in [lo, hi]; `lo.max(0)` when `v` is NaN (a 0/0 from an
/// all-zero sub-block).
fn nearest_code(v: f32, lo: f32, hi: f32) -> f32 {
    if v.is_nan() { lo.max(0.0) } else { v.round().clamp(lo, hi) }
}
