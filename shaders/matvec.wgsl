// matvec.wgsl — Y[r, c0 + o] = (acc ? Y[r, c0 + o] : 0) + sum_k X[r, k] * W[o, k] + b[c0 + o]
// GEMV for decode (m = 1..8 rows of X): bound by the bytes of W, so each weight block is decoded
// once (dequant.wgsl, override W_TYPE) and applied to all M rows of X; f32 accumulate.
// Same bindings and Params as matmul.wgsl, so kernels::matmul can route small m here.
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
    flags: u32, // bit 0: add bias; bit 1: accumulate into y
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
            var v = red[t * WG];
            if ((p.flags & 1u) != 0u) {
                v += b[p.c0 + o0 + o];
            }
            let at = p.y_offset + r * p.y_stride + p.c0 + o0 + o;
            if ((p.flags & 2u) != 0u) {
                v += y[at];
            }
            y[at] = v;
        }
    }
}
