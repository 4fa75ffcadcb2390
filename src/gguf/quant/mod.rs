//! CPU (de)quantisation of the ggml tensor types: how `reference` turns every weight into f32, and
//! the oracle the WGSL dequantisers are tested against.
//!
//! Dequantisation follows ggml's `dequantize_row_*` (`ggml/src/ggml-quants.c`) operation for
//! operation, in the same order, so its results are bit-identical to llama.cpp's CPU path and to
//! gguf-py's numpy port (`tests/it/quant.rs` checks the latter on every bit pattern). Block layouts
//! come from `ggml/src/ggml-common.h`; research/formats-and-models.md section B summarises them.
//! Every multi-byte field is little-endian and every `d`, `m` and `dmin` is an IEEE binary16.
//!
//! Quantisation is round-to-nearest in the manner of ggml's `quantize_row_*_ref`. The legacy
//! formats use ggml's formulas exactly; the K-quants use one pass without ggml's scale search
//! (see `kquants`). The output is a faithful encoding that any ggml reader decodes close to the
//! input, not a bit-for-bit copy of what llama-quantize would write.
//!
//! - `legacy`: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (32 values per block).
//! - `kquants`: Q4_K, Q5_K, Q6_K (256 values per super-block).
//! - here: the public API, F32/F16/BF16, and the bit-packing helpers the block formats share.

mod kquants;
mod legacy;
#[cfg(test)]
mod tests;

use half::f16;

use super::types::GgmlType;

/// A length that does not fit the tensor type. Each message names the type and the sizes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    #[error("{ty}: {bytes} bytes is not a whole number of {block_bytes}-byte blocks")]
    PartialBlock { ty: GgmlType, bytes: usize, block_bytes: usize },
    #[error("{ty}: {bytes} bytes hold {expected} values, but the output has room for {found}")]
    OutputLength { ty: GgmlType, bytes: usize, expected: usize, found: usize },
    #[error("{ty}: {len} values is not a whole number of {block_size}-value blocks")]
    PartialInput { ty: GgmlType, len: usize, block_size: usize },
    #[error("{ty}: value {index} is {value}; only finite values can be quantised to a block format")]
    NonFinite { ty: GgmlType, index: usize, value: f32 },
}

/// Decodes one block: `block` is exactly `block_bytes()` long and `y` exactly `block_size()`.
type DequantizeBlock = fn(block: &[u8], y: &mut [f32]);
/// Encodes one block: `x` is exactly `block_size()` long and `block` exactly `block_bytes()`.
type QuantizeBlock = fn(x: &[f32], block: &mut [u8]);

/// The block coders for `ty`. The float types are "blocks" of one value.
fn block_coders(ty: GgmlType) -> (DequantizeBlock, QuantizeBlock) {
    use GgmlType::*;
    match ty {
        F32 => (dequantize_f32, quantize_f32),
        F16 => (dequantize_f16, quantize_f16),
        BF16 => (dequantize_bf16, quantize_bf16),
        Q4_0 => (legacy::dequantize_q4_0, legacy::quantize_q4_0),
        Q4_1 => (legacy::dequantize_q4_1, legacy::quantize_q4_1),
        Q5_0 => (legacy::dequantize_q5_0, legacy::quantize_q5_0),
        Q5_1 => (legacy::dequantize_q5_1, legacy::quantize_q5_1),
        Q8_0 => (legacy::dequantize_q8_0, legacy::quantize_q8_0),
        Q4K => (kquants::dequantize_q4_k, kquants::quantize_q4_k),
        Q5K => (kquants::dequantize_q5_k, kquants::quantize_q5_k),
        Q6K => (kquants::dequantize_q6_k, kquants::quantize_q6_k),
    }
}

/// Dequantises `data` (whole blocks of `ty`) into `out`, whose length must be the element count.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let expected = value_count(ty, data.len())?;
    if out.len() != expected {
        return Err(QuantError::OutputLength { ty, bytes: data.len(), expected, found: out.len() });
    }
    let (dequantize_block, _) = block_coders(ty);
    for (block, y) in data.chunks_exact(ty.block_bytes()).zip(out.chunks_exact_mut(ty.block_size())) {
        dequantize_block(block, y);
    }
    Ok(())
}

/// Dequantises `data` (whole blocks of `ty`) into a new vector.
pub fn dequantize_to_vec(ty: GgmlType, data: &[u8]) -> Result<Vec<f32>, QuantError> {
    let mut out = vec![0.0; value_count(ty, data.len())?];
    dequantize(ty, data, &mut out)?;
    Ok(out)
}

/// Quantises `src` (a whole number of blocks) to `ty` with round-to-nearest. Block formats need
/// finite input; the float types keep infinities and NaNs.
pub fn quantize(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>, QuantError> {
    let block_size = ty.block_size();
    if !src.len().is_multiple_of(block_size) {
        return Err(QuantError::PartialInput { ty, len: src.len(), block_size });
    }
    if let Some(index) = src.iter().position(|x| !x.is_finite()).filter(|_| ty.is_quantized()) {
        return Err(QuantError::NonFinite { ty, index, value: src[index] });
    }
    let (_, quantize_block) = block_coders(ty);
    let mut out = vec![0u8; src.len() / block_size * ty.block_bytes()];
    for (x, block) in src.chunks_exact(block_size).zip(out.chunks_exact_mut(ty.block_bytes())) {
        quantize_block(x, block);
    }
    Ok(out)
}

/// The element count of `bytes` bytes of `ty`, if they are whole blocks.
fn value_count(ty: GgmlType, bytes: usize) -> Result<usize, QuantError> {
    let block_bytes = ty.block_bytes();
    if !bytes.is_multiple_of(block_bytes) {
        return Err(QuantError::PartialBlock { ty, bytes, block_bytes });
    }
    Ok(bytes / block_bytes * ty.block_size())
}

// ---- The float types ------------------------------------------------------------------------

fn dequantize_f32(b: &[u8], y: &mut [f32]) {
    y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
}

fn quantize_f32(x: &[f32], b: &mut [u8]) {
    b.copy_from_slice(&x[0].to_le_bytes());
}

fn dequantize_f16(b: &[u8], y: &mut [f32]) {
    y[0] = read_f16(b, 0);
}

fn quantize_f16(x: &[f32], b: &mut [u8]) {
    write_f16(b, 0, x[0]);
}

/// BF16 is the upper half of an f32 (ggml `GGML_BF16_TO_FP32`).
fn dequantize_bf16(b: &[u8], y: &mut [f32]) {
    y[0] = f32::from_bits((read_u16(b, 0) as u32) << 16);
}

/// As ggml's `GGML_FP32_TO_BF16`: a NaN stays NaN (made quiet), anything else rounds to nearest,
/// ties to even (so the largest finite values round to infinity).
fn quantize_bf16(x: &[f32], b: &mut [u8]) {
    let bits = x[0].to_bits();
    let h = if bits & 0x7fff_ffff > 0x7f80_0000 {
        (bits >> 16) | 64
    } else {
        ((bits as u64 + 0x7fff + ((bits >> 16) & 1) as u64) >> 16) as u32
    };
    b.copy_from_slice(&(h as u16).to_le_bytes());
}

// ---- Field access (little-endian) ----------------------------------------------------------

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the binary16 at byte `at` as f32 (ggml `GGML_FP16_TO_FP32`; exact).
fn read_f16(b: &[u8], at: usize) -> f32 {
    f16::from_bits(read_u16(b, at)).to_f32()
}

/// Stores `x` as binary16 at byte `at` (round to nearest even, like `GGML_FP32_TO_FP16`) and
/// returns the stored value, which is what a decoder will see.
fn write_f16(b: &mut [u8], at: usize, x: f32) -> f32 {
    let h = f16::from_f32(x);
    b[at..at + 2].copy_from_slice(&h.to_le_bytes());
    h.to_f32()
}

// ---- Bit packing shared by the block formats -------------------------------------------------

/// Splits the bytes of `qs` into 4-bit values, `q.len() == 2 * qs.len()`. `qs` is read in runs
/// of `run` bytes; a run holds `2 * run` consecutive values, the low nibbles first, then the high
/// nibbles. Run 16 is the legacy layout (values j and j+16 share byte j), run 32 is Q4_K/Q5_K's
/// (values 64c+l and 64c+32+l share byte 32c+l), run 64 is Q6_K's `ql` (l and l+64 share byte l).
fn unpack_nibbles(qs: &[u8], run: usize, q: &mut [u8]) {
    for (qs, q) in qs.chunks_exact(run).zip(q.chunks_exact_mut(2 * run)) {
        for (l, &byte) in qs.iter().enumerate() {
            q[l] = byte & 0x0f;
            q[run + l] = byte >> 4;
        }
    }
}

/// The inverse of `unpack_nibbles`, keeping the low 4 bits of each value in `q`.
fn pack_nibbles(q: &[u8], run: usize, qs: &mut [u8]) {
    for (qs, q) in qs.chunks_exact_mut(run).zip(q.chunks_exact(2 * run)) {
        for (l, byte) in qs.iter_mut().enumerate() {
            *byte = (q[l] & 0x0f) | (q[run + l] << 4);
        }
    }
}

/// ORs high bits into 4-bit values, making `4 + bits`-bit values: value i takes `bits` bits of
/// byte `i % 32` of `qh`, starting at bit `bits * (i / 32)`. Q5_K: 1 bit, one `qh[32]` for all
/// 256 values. Q6_K: 2 bits, a `qh[32]` per half of 128 values.
fn or_high_bits(qh: &[u8], bits: usize, q: &mut [u8]) {
    let mask = (1u8 << bits) - 1;
    for (i, q) in q.iter_mut().enumerate() {
        *q |= ((qh[i % 32] >> (bits * (i / 32))) & mask) << 4;
    }
}

/// The inverse of `or_high_bits`: stores bits 4.. of each value of `q` in `qh`.
fn pack_high_bits(q: &[u8], bits: usize, qh: &mut [u8]) {
    let mask = (1u8 << bits) - 1;
    qh.fill(0);
    for (i, &q) in q.iter().enumerate() {
        qh[i % 32] |= ((q >> 4) & mask) << (bits * (i / 32));
    }
}

/// The value of largest magnitude in `x`, with its sign (the first one on a tie, like ggml).
fn signed_max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |best, &v| if v.abs() > best.abs() { v } else { best })
}
