// matvec.wgsl — Y[r, c0 + o] = (acc ? Y[r, c0 + o] : 0) + sum_k X[r, k] * W[o, k] + b[c0 + o]
// (gated: Y[r, c0 + o] = silu(Y[r, c0 + o]) * (sum_k X[r, k] * W[o, k] + b[c0 + o]), a fused SwiGLU)
// GEMV for decode (m = 1..8 rows of X): bound by the bytes of W, so each weight block is decoded
// once (dequant.wgsl, override W_TYPE) and applied to all M rows of X; f32 accumulate.
// Same bindings and Params as matmul.wgsl, so kernels::matmul can route small m here.
// Two entry points with this contract: `matvec` (below) takes every type and layout; `matvec_blocks`
// (further down) takes F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K and Q6_K when k is a multiple of 32,
// X rows sit at multiples of 4 floats and the part is whole 16-byte words; it reads W and X as
// vec4s.
// ---- matvec ------------------------------------------------------------------------------------
// @binding(0) x: array<f32> read        X[r, k] = x[x_offset + r * x_stride + k]
// @binding(1) w: array<u32> read        n rows of row_bytes bytes (GGUF blocks of W_TYPE)
// @binding(2) b: array<f32> read        [c0 + n] bias (the whole weight's) (bound to any buffer when flags & 1 == 0)
// @binding(3) y: array<f32> read_write  Y[r, c] = y[y_offset + r * y_stride + c]; this part
//                                       writes columns c0..c0+n
// @binding(4) p: Params uniform {m, n, k, row_bytes, x_stride, y_stride, c0, flags, x_offset, y_offset, _, _}
//                                       (p.m must equal the override M)
// dispatch (gx, gy, 1) with gx * gy >= ceil(n / ROWS) (gy > 1 only past the 65535 limit); workgroup
// g = gy_id * gx + gx_id owns weight rows g * ROWS .. g * ROWS + ROWS. @workgroup_size(WG), WG a
// power-of-two override (default 64). Invocation t walks k in 8-element chunks t, t + WG, ...:
// it decodes ROWS chunks of W (one dequant8 each), loads the matching X chunk of each of the M
// rows once, and keeps M x ROWS partial sums in registers. A tree reduction over the WG partials
// in workgroup memory (WG * M * ROWS f32) finishes; invocation r * ROWS + o writes Y[r, c0 + o].
// Overrides: W_TYPE (ggml type id), M (rows of X, 1..=8), ROWS (weight rows per workgroup, 1..=8).
// matches: reference::ops::matmul

struct Params {
    m: u32,
    n: u32,
    k: u32,
    row_bytes: u32,
    x_stride: u32,
    y_stride: u32,
    c0: u32,
    flags: u32, // bit 0: add bias; bit 1: accumulate into y; bit 2: y = silu(y) * product
    x_offset: u32,
    y_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG: u32 = 64u;
override M: u32 = 1u;
override ROWS: u32 = 4u;

// Register arrays are sized for the largest M and ROWS; loops run to the overrides, so a driver
// that unrolls them keeps only M * ROWS accumulators live.
const MAX_M: u32 = 8u;
const MAX_ROWS: u32 = 8u;

var<workgroup> red: array<f32, WG * M * ROWS>; // [M * ROWS][WG]

@compute @workgroup_size(WG)
fn matvec(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let o0 = (wg.y * nwg.x + wg.x) * ROWS;
    if (o0 >= p.n) {
        return; // uniform: the whole workgroup leaves (only in the last row of a 2-D dispatch)
    }
    let n_rows = min(ROWS, p.n - o0);

    var acc: array<f32, 64>; // [MAX_M][MAX_ROWS], acc[r * MAX_ROWS + o]
    let n_chunks = (p.k + 7u) / 8u;
    for (var c = t; c < n_chunks; c += WG) {
        let kk = c * 8u;
        var wv: array<W8, MAX_ROWS>;
        for (var o = 0u; o < ROWS; o++) {
            if (o < n_rows) {
                wv[o] = dequant8((o0 + o) * p.row_bytes, kk);
            }
        }
        // Only F32/F16/BF16 rows can end mid-chunk (their block is one element): mask the tail,
        // where the decoder read into the next row (or past the buffer).
        let tail = kk + 8u > p.k;
        if (tail) {
            let i = vec4<u32>(kk, kk + 1u, kk + 2u, kk + 3u);
            let lo_in = i < vec4<u32>(p.k);
            let hi_in = i + 4u < vec4<u32>(p.k);
            for (var o = 0u; o < ROWS; o++) {
                wv[o].lo = select(vec4<f32>(0.0), wv[o].lo, lo_in);
                wv[o].hi = select(vec4<f32>(0.0), wv[o].hi, hi_in);
            }
        }
        for (var r = 0u; r < M; r++) {
            let xb = p.x_offset + r * p.x_stride + kk;
            var xlo: vec4<f32>;
            var xhi: vec4<f32>;
            if (tail) {
                for (var i = 0u; i < 4u; i++) {
                    xlo[i] = select(0.0, x[xb + i], kk + i < p.k);
                    xhi[i] = select(0.0, x[xb + 4u + i], kk + 4u + i < p.k);
                }
            } else {
                xlo = vec4<f32>(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u]);
                xhi = vec4<f32>(x[xb + 4u], x[xb + 5u], x[xb + 6u], x[xb + 7u]);
            }
            for (var o = 0u; o < ROWS; o++) {
                acc[r * MAX_ROWS + o] += dot(xlo, wv[o].lo) + dot(xhi, wv[o].hi);
            }
        }
    }

    for (var r = 0u; r < M; r++) {
        for (var o = 0u; o < ROWS; o++) {
            red[(r * ROWS + o) * WG + t] = acc[r * MAX_ROWS + o];
        }
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (var i = 0u; i < M * ROWS; i++) {
                red[i * WG + t] += red[i * WG + t + s];
            }
        }
        workgroupBarrier();
    }

    if (t < M * ROWS) {
        let r = t / ROWS;
        let o = t % ROWS;
        if (o < n_rows && r < p.m) {
            store_y(r, o0 + o, red[t * WG]);
        }
    }
}

// ---- matvec_blocks -----------------------------------------------------------------------------
// Whole 32-weight blocks of a row per step: for Q4_0 (18-byte blocks: f16 d, qs[16]), Q4_1 (20: d,
// m, qs[16]), Q5_0 (22: d, qh[4], qs[16]), Q5_1 (24: d, m, qh[4], qs[16]) and Q8_0 (34: d, 32 x
// i8) one GGUF block, read as the 2 or 3 vec4s covering it and aligned in registers (a block
// starts at any even byte offset mod 16); for F32, F16 and BF16 8, 4 and 4 aligned vec4s; for
// Q4_K (144-byte super-blocks of 256, always 16-byte aligned) the super-block's header vec4 and
// the two vec4s of qs holding the block's nibbles, and for Q5_K (176 bytes, aligned) the two of
// qh besides; for Q6_K (210
// bytes, any even offset) 3 + 3 + 2 vec4s covering the block's ql, qh and the scales and d,
// aligned in registers like Q8_0. The wrapper routes
// here only when k % 32 == 0, x_offset and x_stride are multiples of 4 and the part's bytes
// (n * row_bytes) a multiple of 16 (every vec4 in range).
// @binding(0) x4: array<vec4<f32>> read    X[r, 4i..4i+4] = x4[(x_offset + r * x_stride) / 4 + i]
// @binding(1) w4: array<vec4<u32>> read    n rows of row_bytes bytes (GGUF blocks of W_TYPE)
// @binding(2) b, (3) y, (4) p              as for `matvec`
// dispatch (gx, gy, 1) with gx * gy >= ceil(n / ((WG / KT) * ROWS)) (gy > 1 only past 65535);
// @workgroup_size(WG); workgroup g = gy_id * gx + gx_id owns weight rows g * (WG / KT) * ROWS ..
// (WG / KT row groups of ROWS rows). Invocation t = rg * KT + kt owns the ROWS rows of row group
// rg and walks their blocks kt, kt + KT, ... (adjacent invocations read adjacent blocks): per
// block it loads the block's 8 vec4s of X once for each of the M rows of X, then per weight row
// the block's vec4s of W, and keeps M x ROWS partial sums in registers. The KT partials of each
// output meet in workgroup memory (WG * M * ROWS f32); invocations t, t + WG, ... below
// (WG / KT) * M * ROWS each add KT of them and write one Y element.
// Overrides: W_TYPE (0, 1, 2, 3, 6, 7, 8, 12, 13, 14 or 30), WG (a multiple of KT), KT (invocations per row group
// along k), M (rows of X, 1..=8), ROWS (weight rows per invocation, 1..=16).
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<u32>>;

override KT: u32 = 8u;

// The blocks entry's accumulators allow 16 rows per invocation.
const MAX_ROWS_BLOCKS: u32 = 16u;

var<workgroup> red_blk: array<f32, WG * M * ROWS>; // [(WG / KT) * M * ROWS][KT]

// Byte offset of 32-weight block `blk` of the row at `row_base`: for the K-quants its 256-weight
// super-block's.
fn block_byte(row_base: u32, blk: u32) -> u32 {
    if (W_TYPE == 12u || W_TYPE == 13u || W_TYPE == 14u) {
        return row_base + (blk / 8u) * w_block_bytes();
    }
    return row_base + blk * w_block_bytes() * (32u / w_block_size());
}

// The vec4s holding 32 weights (block `blk`) of a row that start at `byte` (block_byte): for F32
// (8), F16 and BF16 (4) the weights themselves (byte is a multiple of 16); for Q4_0 (2), Q5_0 and
// Q8_0 (3) the vec4s covering the block, which starts byte % 16 into them (the last may lie past
// the buffer where Q5_0 needs only two: clamped, unused; Q4_1 and Q5_1 take 3 too); for Q4_K
// the super-block's header (d, dmin, scales[12]) and the 32 bytes of qs holding the block's
// nibbles, for Q5_K also its qh[32] (w[3], w[4]); for Q6_K see below.
fn load_w32(byte: u32, blk: u32) -> array<vec4<u32>, 8> {
    let v = byte / 16u;
    var w: array<vec4<u32>, 8>;
    if (W_TYPE == 12u || W_TYPE == 13u) {
        // Q5_K's qh[32] sits between the header and qs.
        let qh = select(0u, 2u, W_TYPE == 13u);
        let qs = v + 1u + qh + 2u * ((blk % 8u) / 2u);
        w[0] = w4[v];
        w[1] = w4[qs];
        w[2] = w4[qs + 1u];
        if (W_TYPE == 13u) {
            w[3] = w4[v + 1u];
            w[4] = w4[v + 2u];
        }
        return w;
    }
    if (W_TYPE == 14u) {
        // Q6_K: ql, qh and scales + d all sit at multiples of 16 from the super-block, so at its
        // offset mod 16: three vec4s for the block's 32 bytes of ql, three for its 32 of qh, two
        // for scales[16] d (bytes 192..210).
        let j = blk % 8u;
        let ql = v + 4u * (j / 4u) + 2u * (j % 2u);
        let qh = v + 8u + 2u * (j / 4u);
        for (var i = 0u; i < 3u; i++) {
            w[i] = w4[ql + i];
            w[3u + i] = w4[qh + i];
        }
        w[6] = w4[v + 12u];
        w[7] = w4[v + 13u];
        return w;
    }
    var n = 3u;
    switch W_TYPE {
        case 0u: { n = 8u; }
        case 1u, 30u: { n = 4u; }
        case 2u: { n = 2u; }
        default: {}
    }
    let last = arrayLength(&w4) - 1u;
    for (var i = 0u; i < n; i++) {
        w[i] = w4[min(v + i, last)];
    }
    return w;
}

// The 12 words of v0 v1 v2 rotated left by s / 4 words (s even, 0..14), as words 0..7 (c0 c1) and
// words 1..8 (n0 n1): two steps of 2 and 1 words.
fn rotate_words(v0: vec4<u32>, v1: vec4<u32>, v2: vec4<u32>, s: u32) -> array<vec4<u32>, 4> {
    let two = (s & 8u) != 0u;
    let one = (s & 4u) != 0u;
    let a0 = select(v0, vec4<u32>(v0.zw, v1.xy), two);
    let a1 = select(v1, vec4<u32>(v1.zw, v2.xy), two);
    let a2 = select(v2.xy, v2.zw, two);
    let c0 = select(a0, vec4<u32>(a0.yzw, a1.x), one);
    let c1 = select(a1, vec4<u32>(a1.yzw, a2.x), one);
    let c2 = select(a2.x, a2.y, one);
    return array<vec4<u32>, 4>(c0, c1, vec4<u32>(c0.yzw, c1.x), vec4<u32>(c1.yzw, c2));
}

// The words that start 2 bytes into each word of c (n: the words after those of c).
fn half_word_on(c: vec4<u32>, n: vec4<u32>) -> vec4<u32> {
    return (c >> vec4<u32>(16u)) | (n << vec4<u32>(16u));
}

// The 8 words starting at byte s (even, 0..14) of the 12 words of v0 v1 v2.
fn words_at(v0: vec4<u32>, v1: vec4<u32>, v2: vec4<u32>, s: u32) -> array<vec4<u32>, 2> {
    let r = rotate_words(v0, v1, v2, s);
    let odd = (s & 2u) != 0u;
    return array<vec4<u32>, 2>(select(r[0], half_word_on(r[0], r[2]), odd), select(r[1], half_word_on(r[1], r[3]), odd));
}

// Q6_K: dot(x, w) over block j (0..7) of a super-block (ql[128] qh[64] scales[16] d), from the
// vec4s of load_w32 at offset s. Block j: n = j / 4, quarter = j % 4; weight l (0..31) has the low
// nibble (quarter < 2) or high nibble of ql[64n + 32 (quarter & 1) + l], bits 2 quarter.. of
// qh[32n + l] above them, scale scales[8n + 2 quarter + l / 16]; w = d * scale * (q - 32).
fn dot32_q6_k(wv: array<vec4<u32>, 8>, s: u32, j: u32, xs: array<vec4<f32>, 8>) -> f32 {
    let ql = words_at(wv[0], wv[1], wv[2], s);
    let qh = words_at(wv[3], wv[4], wv[5], s);
    let sd = words_at(wv[6], wv[7], wv[7], s); // bytes 192..210 of the super-block: words 0..4
    let quarter = j % 4u;
    let si = 8u * (j / 4u) + 2u * quarter; // scales[si], scales[si + 1]: one 16-bit half of a word
    let sw = sd[0][si / 4u] >> (8u * (si % 4u)); // si <= 14: within the first four words
    let sc0 = f32(bitcast<i32>(sw << 24u) >> 24u);
    let sc1 = f32(bitcast<i32>(sw << 16u) >> 24u);
    let d = unpack2x16float(sd[1].x).x;
    let lo_shift = select(0u, 4u, quarter >= 2u);
    let hi_shift = 2u * quarter;
    var s0 = 0.0;
    var s1 = 0.0;
    for (var i = 0u; i < 4u; i++) {
        let a = ((ql[0][i] >> lo_shift) & 0x0f0f0f0fu) | (((qh[0][i] >> hi_shift) & 0x03030303u) << 4u);
        let b = ((ql[1][i] >> lo_shift) & 0x0f0f0f0fu) | (((qh[1][i] >> hi_shift) & 0x03030303u) << 4u);
        s0 += dot(xs[i], vec4<f32>(unpack4xU8(a)) - 32.0);
        s1 += dot(xs[i + 4u], vec4<f32>(unpack4xU8(b)) - 32.0);
    }
    return d * (sc0 * s0 + sc1 * s1);
}

// Q4_K / Q5_K: dot(x, w) over block j (0..7) of a super-block, w = d * sc * q - dmin * m with
// the 6-bit (sc, m) of sub-block j (ggml's get_scale_min_k4) and q the low (j even) or high
// nibbles of the 32 qs bytes; Q5_K adds bit j of qh[e] as weight e's fifth bit.
fn dot32_q45_k(wv: array<vec4<u32>, 8>, j: u32, xs: array<vec4<f32>, 8>) -> f32 {
    let h = wv[0];
    let dm = unpack2x16float(h.x);
    // Scale byte i (0..11) is byte i % 4 of h.y, h.z, h.w.
    let sj = byte_of(select(h.y, h.z, j >= 4u), j % 4u); // scales[j] for j < 8
    let sj4 = byte_of(select(h.z, h.w, j >= 4u), j % 4u); // scales[j + 4]
    let sjm4 = byte_of(h.y, j % 4u); // scales[j - 4] for j >= 4
    let lo = j < 4u;
    let sc = select((sj4 & 15u) | ((sjm4 >> 6u) << 4u), sj & 63u, lo);
    let m = select((sj4 >> 4u) | ((sj >> 6u) << 4u), sj4 & 63u, lo);
    let shift = vec4<u32>(4u * (j % 2u));
    var sq = 0.0;
    var sx = 0.0;
    let five = W_TYPE == 13u;
    for (var i = 0u; i < 4u; i++) {
        var q0 = (wv[1][i] >> shift.x) & 0x0f0f0f0fu;
        var q1 = (wv[2][i] >> shift.x) & 0x0f0f0f0fu;
        if (five) {
            q0 |= ((wv[3][i] >> j) & 0x01010101u) << 4u;
            q1 |= ((wv[4][i] >> j) & 0x01010101u) << 4u;
        }
        sq += dot(xs[i], vec4<f32>(unpack4xU8(q0))) + dot(xs[i + 4u], vec4<f32>(unpack4xU8(q1)));
        sx += dot(xs[i], vec4<f32>(1.0)) + dot(xs[i + 4u], vec4<f32>(1.0));
    }
    return dm.x * f32(sc) * sq - dm.y * f32(m) * sx;
}

// The fifth bits of weights first..first + 3 of a Q5_0 / Q5_1 block (bit e of qh for weight e),
// each at bit 4 of its byte.
fn fifth_bits(qh: u32, first: u32) -> vec4<u32> {
    let spread = vec4<u32>(1u, 2u, 4u, 8u);
    return min(vec4<u32>((qh >> first) & 15u) & spread, vec4<u32>(1u)) << vec4<u32>(4u);
}

// dot(x, w) over the 32 weights `wv` (from load_w32) of one row, x = xs[0..8] (4 elements each);
// for the quantised types the block starts s bytes into wv[0].
fn dot32(wv: array<vec4<u32>, 8>, s: u32, xs: array<vec4<f32>, 8>) -> f32 {
    var sum = 0.0;
    switch W_TYPE {
        case 0u: { // F32
            for (var i = 0u; i < 8u; i++) {
                sum += dot(xs[i], bitcast<vec4<f32>>(wv[i]));
            }
            return sum;
        }
        case 1u: { // F16: two weights per word
            for (var i = 0u; i < 4u; i++) {
                let w = wv[i];
                sum += dot(xs[2u * i], vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)));
                sum += dot(xs[2u * i + 1u], vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
            }
            return sum;
        }
        case 30u: { // BF16: the upper half of an f32, two per word
            for (var i = 0u; i < 4u; i++) {
                let lo = bitcast<vec4<f32>>(wv[i] << vec4<u32>(16u));
                let hi = bitcast<vec4<f32>>(wv[i] & vec4<u32>(0xffff0000u));
                sum += dot(xs[2u * i], vec4<f32>(lo.x, hi.x, lo.y, hi.y));
                sum += dot(xs[2u * i + 1u], vec4<f32>(lo.z, hi.z, lo.w, hi.w));
            }
            return sum;
        }
        case 3u, 7u: { // Q4_1: d m qs[16] | Q5_1: d m qh[4] qs[16]; w = d q + m
            let ws = words_at(wv[0], wv[1], wv[2], s);
            let dm = unpack2x16float(ws[0].x);
            let five = W_TYPE == 7u;
            let qh = select(0u, ws[0].y, five);
            let qs = select(vec4<u32>(ws[0].yzw, ws[1].x), vec4<u32>(ws[0].zw, ws[1].xy), five);
            var sx = 0.0;
            for (var i = 0u; i < 4u; i++) {
                // Q4_1's qh is 0: no fifth bits.
                let lo = vec4<f32>(unpack4xU8(qs[i] & 0x0f0f0f0fu) | fifth_bits(qh, 4u * i));
                let hi = vec4<f32>(unpack4xU8((qs[i] >> 4u) & 0x0f0f0f0fu) | fifth_bits(qh, 16u + 4u * i));
                sum += dot(xs[i], lo) + dot(xs[i + 4u], hi);
                sx += dot(xs[i], vec4<f32>(1.0)) + dot(xs[i + 4u], vec4<f32>(1.0));
            }
            return dm.x * sum + dm.y * sx;
        }
        default: {}
    }
    // Q4_0, Q5_0, Q8_0: each starts with its f16 d, so the payload after it starts 2 bytes in.
    // s % 4 == 2: d is the high half of word 0 and the payload words are words 1..8; s % 4 == 0:
    // d is the low half and each payload word straddles two.
    let r = rotate_words(wv[0], wv[1], wv[2], s);
    let odd = (s & 2u) != 0u;
    let d = unpack2x16float(select(r[0].x, r[0].x >> 16u, odd)).x;
    let q0 = select(half_word_on(r[0], r[2]), r[2], odd);
    switch W_TYPE {
        case 2u: { // Q4_0: qs[16]; element e < 16 is the low nibble of qs[e], e >= 16 the high one
            for (var i = 0u; i < 4u; i++) {
                let lo = vec4<f32>(unpack4xU8(q0[i] & 0x0f0f0f0fu)) - 8.0;
                let hi = vec4<f32>(unpack4xU8((q0[i] >> 4u) & 0x0f0f0f0fu)) - 8.0;
                sum += dot(xs[i], lo) + dot(xs[i + 4u], hi);
            }
        }
        case 6u: { // Q5_0: qh[4] qs[16]; as Q4_0 plus bit e of qh as the fifth bit
            let q1 = select(half_word_on(r[1], r[3]), r[3], odd);
            let qh = q0.x;
            let qs = vec4<u32>(q0.yzw, q1.x);
            for (var i = 0u; i < 4u; i++) {
                let lo = vec4<f32>(unpack4xU8(qs[i] & 0x0f0f0f0fu) | fifth_bits(qh, 4u * i)) - 16.0;
                let hi = vec4<f32>(unpack4xU8((qs[i] >> 4u) & 0x0f0f0f0fu) | fifth_bits(qh, 16u + 4u * i)) - 16.0;
                sum += dot(xs[i], lo) + dot(xs[i + 4u], hi);
            }
        }
        default: { // Q8_0: qs[32] (i8)
            let q1 = select(half_word_on(r[1], r[3]), r[3], odd);
            for (var i = 0u; i < 4u; i++) {
                sum += dot(xs[i], vec4<f32>(unpack4xI8(q0[i]))) + dot(xs[i + 4u], vec4<f32>(unpack4xI8(q1[i])));
            }
        }
    }
    return d * sum;
}

@compute @workgroup_size(WG)
fn matvec_blocks(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let groups = WG / KT;
    let rg = t / KT;
    let kt = t % KT;
    let g0 = (wg.y * nwg.x + wg.x) * groups * ROWS;
    if (g0 >= p.n) {
        return; // uniform: the whole workgroup leaves (only in the last row of a 2-D dispatch)
    }
    let o0 = g0 + rg * ROWS;
    let n_blocks = p.k / 32u;

    var acc: array<f32, MAX_M * MAX_ROWS_BLOCKS>; // acc[r * MAX_ROWS_BLOCKS + o]
    for (var blk = kt; blk < n_blocks; blk += KT) {
        var xs: array<array<vec4<f32>, 8>, MAX_M>;
        for (var r = 0u; r < M; r++) {
            let xb = (p.x_offset + r * p.x_stride) / 4u + blk * 8u;
            for (var i = 0u; i < 8u; i++) {
                xs[r][i] = x4[xb + i];
            }
        }
        for (var o = 0u; o < ROWS; o++) {
            // Rows past n read the last row (in range) and are never written.
            let byte = block_byte(min(o0 + o, p.n - 1u) * p.row_bytes, blk);
            let wv = load_w32(byte, blk);
            for (var r = 0u; r < M; r++) {
                if (W_TYPE == 12u || W_TYPE == 13u) {
                    acc[r * MAX_ROWS_BLOCKS + o] += dot32_q45_k(wv, blk % 8u, xs[r]);
                } else if (W_TYPE == 14u) {
                    acc[r * MAX_ROWS_BLOCKS + o] += dot32_q6_k(wv, byte % 16u, blk % 8u, xs[r]);
                } else {
                    acc[r * MAX_ROWS_BLOCKS + o] += dot32(wv, byte % 16u, xs[r]);
                }
            }
        }
    }

    for (var r = 0u; r < M; r++) {
        for (var o = 0u; o < ROWS; o++) {
            red_blk[((rg * M + r) * ROWS + o) * KT + kt] = acc[r * MAX_ROWS_BLOCKS + o];
        }
    }
    workgroupBarrier();
    for (var j = t; j < groups * M * ROWS; j += WG) {
        var v = 0.0;
        for (var i = 0u; i < KT; i++) {
            v += red_blk[j * KT + i];
        }
        let o = (j / (M * ROWS)) * ROWS + j % ROWS;
        let r = (j / ROWS) % M;
        let col = g0 + o;
        if (col < p.n) {
            store_y(r, col, v);
        }
    }
}
