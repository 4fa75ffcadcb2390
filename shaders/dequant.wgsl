// dequant.wgsl — decoders for GGUF weight blocks, read straight from the file's bytes.
// Prepended to every kernel that reads weights. The including shader declares
//   @group(0) @binding(1) var<storage, read> w: array<u32>;   // the weight part's raw bytes
// and sets the override W_TYPE to the ggml type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 6 Q5_0,
// 7 Q5_1, 8 Q8_0, 12 Q4_K, 13 Q5_K, 14 Q6_K, 30 BF16). Blocks are packed with no padding, so
// fields sit at any byte offset: every read goes through the byte helpers below.
// Layouts (byte offsets) follow ggml-common.h; see gguf::quant for the CPU twins.
// matches: gguf::quant::dequantize

override W_TYPE: u32 = 0u;

// ---- byte access --------------------------------------------------------------------------
fn w_u8(byte: u32) -> u32 {
    return (w[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
}

// A little-endian u32 at any byte offset (two word loads when it straddles).
fn w_u32(byte: u32) -> u32 {
    let shift = (byte & 3u) * 8u;
    let lo = w[byte >> 2u];
    if (shift == 0u) {
        return lo;
    }
    let hi = w[(byte >> 2u) + 1u];
    return (lo >> shift) | (hi << (32u - shift));
}

fn w_u16(byte: u32) -> u32 {
    return w_u32(byte) & 0xffffu;
}

fn w_f16(byte: u32) -> f32 {
    return unpack2x16float(w_u16(byte)).x;
}

// Byte i (0..3) of a word.
fn byte_of(word: u32, i: u32) -> u32 {
    return (word >> (i * 8u)) & 0xffu;
}

// ---- block parameters -------------------------------------------------------------------------
fn w_block_size() -> u32 {
    switch W_TYPE {
        case 0u, 1u, 30u: { return 1u; }
        case 12u, 13u, 14u: { return 256u; }
        default: { return 32u; }
    }
}

fn w_block_bytes() -> u32 {
    switch W_TYPE {
        case 0u: { return 4u; }
        case 1u, 30u: { return 2u; }
        case 2u: { return 18u; }
        case 3u: { return 20u; }
        case 6u: { return 22u; }
        case 7u: { return 24u; }
        case 8u: { return 34u; }
        case 12u: { return 144u; }
        case 13u: { return 176u; }
        default: { return 210u; }
    }
}

// K-quant 6-bit scale and min of sub-block j (0..7) from the 12 scale bytes at `sb`
// (ggml's get_scale_min_k4).
fn scale_min_k4(sb: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(w_u8(sb + j) & 63u), f32(w_u8(sb + j + 4u) & 63u));
    }
    let sc = (w_u8(sb + j + 4u) & 15u) | ((w_u8(sb + j - 4u) >> 6u) << 4u);
    let m = (w_u8(sb + j + 4u) >> 4u) | ((w_u8(sb + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

// ---- the decoder ----------------------------------------------------------------------------
// Eight consecutive weights of one row: elements k..k+8 of the row starting at byte `row_base`.
// k is a multiple of 8, so the eight share one block and one sub-block scale. Returned as two
// vec4s (elements 0-3, 4-7).
struct W8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn dequant8(row_base: u32, k: u32) -> W8 {
    var v: array<f32, 8>;
    let bs = w_block_size();
    let base = row_base + (k / bs) * w_block_bytes();
    let j = k % bs;
    switch W_TYPE {
        case 0u: { // F32
            for (var i = 0u; i < 8u; i++) { v[i] = bitcast<f32>(w_u32(base + 4u * i)); }
        }
        case 1u: { // F16
            for (var i = 0u; i < 8u; i += 2u) {
                let h = unpack2x16float(w_u32(base + 2u * i));
                v[i] = h.x;
                v[i + 1u] = h.y;
            }
        }
        case 30u: { // BF16: the upper half of an f32
            for (var i = 0u; i < 8u; i += 2u) {
                let p = w_u32(base + 2u * i);
                v[i] = bitcast<f32>(p << 16u);
                v[i + 1u] = bitcast<f32>(p & 0xffff0000u);
            }
        }
        case 2u, 3u, 6u, 7u: { // Q4_0 d qs[16] | Q4_1 d m qs[16] | Q5_0 d qh[4] qs[16] | Q5_1 d m qh[4] qs[16]
            // Element e < 16 is the low nibble of qs[e], e >= 16 the high nibble of qs[e - 16];
            // Q5 adds bit e of qh as the fifth bit.
            let has_min = W_TYPE == 3u || W_TYPE == 7u;
            let five = W_TYPE == 6u || W_TYPE == 7u;
            let d = w_f16(base);
            var m = 0.0;
            if (has_min) { m = w_f16(base + 2u); }
            var qs = base + 2u;
            if (has_min) { qs += 2u; }
            var qh = 0u;
            if (five) { qh = w_u32(qs); qs += 4u; }
            let shift = select(0u, 4u, j >= 16u);
            let q0 = w_u32(qs + (j % 16u));
            let q1 = w_u32(qs + (j % 16u) + 4u);
            var offset = 0.0;
            if (!has_min) { offset = select(8.0, 16.0, five); }
            for (var i = 0u; i < 8u; i++) {
                var q = (byte_of(select(q1, q0, i < 4u), i % 4u) >> shift) & 15u;
                if (five) { q |= ((qh >> (j + i)) & 1u) << 4u; }
                v[i] = (f32(q) - offset) * d + m;
            }
        }
        case 8u: { // Q8_0: d qs[32] (i8)
            let d = w_f16(base);
            let q0 = w_u32(base + 2u + j);
            let q1 = w_u32(base + 6u + j);
            for (var i = 0u; i < 8u; i++) {
                let b = byte_of(select(q1, q0, i < 4u), i % 4u);
                v[i] = f32(bitcast<i32>(b << 24u) >> 24u) * d;
            }
        }
        case 12u, 13u: { // Q4_K d dmin scales[12] qs[128] | Q5_K d dmin scales[12] qh[32] qs[128]
            // Element e: c = e / 64; l = e % 64. l < 32: low nibble of qs[32c + l], sub-block 2c;
            // else high nibble of qs[32c + l - 32], sub-block 2c + 1. Q5_K: bit (2c + (l >= 32))
            // of qh[l % 32] is the fifth bit.
            let five = W_TYPE == 13u;
            let d = w_f16(base);
            let dmin = w_f16(base + 2u);
            let c = j / 64u;
            let l = j % 64u;
            let sub = 2u * c + select(0u, 1u, l >= 32u);
            let sm = scale_min_k4(base + 4u, sub);
            let qs = base + select(16u, 48u, five) + 32u * c + (l % 32u);
            let shift = select(0u, 4u, l >= 32u);
            let q0 = w_u32(qs);
            let q1 = w_u32(qs + 4u);
            var h0 = 0u;
            var h1 = 0u;
            if (five) { h0 = w_u32(base + 16u + (l % 32u)); h1 = w_u32(base + 20u + (l % 32u)); }
            for (var i = 0u; i < 8u; i++) {
                var q = (byte_of(select(q1, q0, i < 4u), i % 4u) >> shift) & 15u;
                if (five) { q += ((byte_of(select(h1, h0, i < 4u), i % 4u) >> sub) & 1u) * 16u; }
                v[i] = d * sm.x * f32(q) - dmin * sm.y;
            }
        }
        default: { // Q6_K: ql[128] qh[64] scales[16] (i8) d
            // Element e: n = e / 128, r = e % 128, l = r % 32, quarter = r / 32.
            // low 4 bits: ql[64n + l + 32 (quarter & 1)], low nibble for quarters 0-1, high for 2-3;
            // high 2 bits: qh[32n + l] >> (2 quarter); scale: scales[8n + l / 16 + 2 quarter].
            let d = w_f16(base + 208u);
            let n = j / 128u;
            let r = j % 128u;
            let l = r % 32u;
            let quarter = r / 32u;
            let ql = base + 64u * n + l + 32u * (quarter & 1u);
            let qh = base + 128u + 32u * n + l;
            let sc = f32(bitcast<i32>(w_u8(base + 192u + 8u * n + l / 16u + 2u * quarter) << 24u) >> 24u);
            let shift = select(0u, 4u, quarter >= 2u);
            let l0 = w_u32(ql);
            let l1 = w_u32(ql + 4u);
            let h0 = w_u32(qh);
            let h1 = w_u32(qh + 4u);
            for (var i = 0u; i < 8u; i++) {
                let lo = (byte_of(select(l1, l0, i < 4u), i % 4u) >> shift) & 15u;
                let hi = (byte_of(select(h1, h0, i < 4u), i % 4u) >> (2u * quarter)) & 3u;
                v[i] = d * sc * (f32(lo | (hi << 4u)) - 32.0);
            }
        }
    }
    return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}
