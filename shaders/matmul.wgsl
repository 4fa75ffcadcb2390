// matmul.wgsl — Y[r, c0 + o] = (acc ? Y[r, c0 + o] : 0) + sum_k X[r, k] * W[o, k] + b[c0 + o]
// (gated: Y[r, c0 + o] = silu(Y[r, c0 + o]) * (sum_k X[r, k] * W[o, k] + b[c0 + o]), a fused SwiGLU)
// Tiled GEMM for many rows (vision encoder, prefill): W is one part of a GGUF weight, decoded
// on the fly from its blocks (dequant.wgsl, override W_TYPE); f32 accumulate.
// @binding(0) x: array<f32> read        X[r, k] = x[x_offset + r * x_stride + k]
// @binding(1) w: array<u32> read        n rows of row_bytes bytes (GGUF blocks of W_TYPE)
// @binding(2) b: array<f32> read        [c0 + n] bias (the whole weight's) (bound to any buffer when flags & 1 == 0)
// @binding(3) y: array<f32> read_write  Y[r, c] = y[y_offset + r * y_stride + c]; this part
//                                       writes columns c0..c0+n
// @binding(4) p: Params uniform
// Two entry points, the same contract; kernels::matmul picks one per adapter:
// matmul      dispatch (ceil(n / 64), ceil(m / 64), 1); @workgroup_size(16, 16): each invocation
//             owns a 4 x 4 block of the 64 x 64 output tile, rows ly + 16i and columns lx + 16j.
//             K advances 32 at a time through workgroup memory holding both tiles transposed
//             ([k][row]), 16 KiB in all. For GPUs.
// matmul_128  dispatch (ceil(n / 128), ceil(m / 128), 1); @workgroup_size(8, 8): a 16 x 16 block
//             of a 128 x 128 tile per invocation (rows ly + 8i, columns lx + 8j), K advancing
//             16 at a time through workgroup memory laid out as vec4s along k ([row][k / 4]),
//             16 KiB in all: 32 vec4 reads per 4 k for 1024 multiply-adds. For CPU adapters
//             (lavapipe), where each workgroup-memory read, whatever its width, costs a scalar
//             loop over the SIMD lanes (docs/perf.md).
// Both keep partial sums in vec4s indexed only by constants: a private array indexed by a loop
// variable lives in memory on lavapipe and halves the speed.
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

var<workgroup> xs: array<f32, 2048>; // [bk][bm] X tile, k-major
var<workgroup> ws: array<f32, 2048>; // [bk][bn] W tile, k-major

// Stages the X tile rows row0 .. row0 + bm, k0 .. k0 + bk into xs ([bk][bm]); zero outside X.
// Invocation t (of 256) loads elements t, t + 256, ...: consecutive invocations read
// consecutive k of a row.
fn stage_x(t: u32, row0: u32, k0: u32, bm: u32, bk: u32) {
    for (var e = t; e < bm * bk; e += 256u) {
        let r = row0 + e / bk;
        let k = k0 + e % bk;
        var v = 0.0;
        if (r < p.m && k < p.k) {
            v = x[p.x_offset + r * p.x_stride + k];
        }
        xs[(e % bk) * bm + e / bk] = v;
    }
}

// Stages W rows col0 .. col0 + bn, k0 .. k0 + bk into ws ([bk][bn]), eight k per dequant8 call;
// zero outside W. Elements past k are masked: the decoder may have read into the next row.
fn stage_w(t: u32, col0: u32, k0: u32, bn: u32, bk: u32) {
    for (var e = t; e < bn * bk / 8u; e += 256u) {
        let o = col0 + e / (bk / 8u);
        let kq = (e % (bk / 8u)) * 8u;
        let kk = k0 + kq;
        var d = W8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (o < p.n && kk < p.k) {
            d = dequant8(o * p.row_bytes, kk);
        }
        let at = kq * bn + e / (bk / 8u);
        for (var i = 0u; i < 8u; i++) {
            let v = select(d.hi[i % 4u], d.lo[i % 4u], i < 4u);
            ws[at + i * bn] = select(0.0, v, kk + i < p.k);
        }
    }
}

// Y[r, c0 + o + step j] = v[j] for j < 4 through store_y (store_y.wgsl: bias, accumulate or
// gate as the flags ask); skips what lies outside this part of Y.
fn store4(r: u32, o: u32, step: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let oj = o + step * j;
        if (oj < p.n) {
            store_y(r, oj, v[j]);
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    let t = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += 32u) {
        stage_x(t, row0, k0, 64u, 32u);
        stage_w(t, col0, k0, 64u, 32u);
        workgroupBarrier();
        for (var q = 0u; q < 32u; q++) {
            let ab = q * 64u + lid.y;
            let bb = q * 64u + lid.x;
            let c = vec4<f32>(ws[bb], ws[bb + 16u], ws[bb + 32u], ws[bb + 48u]);
            acc0 = fma(vec4<f32>(xs[ab]), c, acc0);
            acc1 = fma(vec4<f32>(xs[ab + 16u]), c, acc1);
            acc2 = fma(vec4<f32>(xs[ab + 32u]), c, acc2);
            acc3 = fma(vec4<f32>(xs[ab + 48u]), c, acc3);
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y;
    let o = col0 + lid.x;
    store4(r, o, 16u, acc0);
    store4(r + 16u, o, 16u, acc1);
    store4(r + 32u, o, 16u, acc2);
    store4(r + 48u, o, 16u, acc3);
}

var<workgroup> xs4: array<vec4<f32>, 512>; // [128 rows][4]: X[row0 + r, k0 + 4q .. + 4] (matmul_128)
var<workgroup> ws4: array<vec4<f32>, 512>; // [128 cols][4]: W[col0 + o, k0 + 4q .. + 4] (matmul_128)

// The four columns lx + 8 (4h + j), j < 4, of k-quad q, as the columns of a matrix (so that
// v * m holds the four dot products of v with them).
fn w4(lx: u32, h: u32, q: u32) -> mat4x4<f32> {
    let at = (lx + 32u * h) * 4u + q;
    return mat4x4<f32>(ws4[at], ws4[at + 32u], ws4[at + 64u], ws4[at + 96u]);
}

@compute @workgroup_size(8, 8)
fn matmul_128(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 128u;
    let col0 = wg.x * 128u;
    let t = lid.y * 8u + lid.x;
    // acc[4i + h][j]: row ly + 8i, column lx + 8 (4h + j).
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        // X: 128 rows x 4 k-quads, 8 quads per invocation (consecutive invocations, consecutive k).
        for (var e = t; e < 512u; e += 64u) {
            let r = row0 + e / 4u;
            let k = k0 + (e % 4u) * 4u;
            var v = vec4<f32>(0.0);
            if (r < p.m) {
                let at = p.x_offset + r * p.x_stride + k;
                // Elements past k are zero: the tail of the last quad may not exist.
                v = vec4<f32>(
                    select(0.0, x[at], k < p.k),
                    select(0.0, x[at + 1u], k + 1u < p.k),
                    select(0.0, x[at + 2u], k + 2u < p.k),
                    select(0.0, x[at + 3u], k + 3u < p.k),
                );
            }
            xs4[e] = v;
        }
        // W: 128 rows x 16 k as 256 runs of 8 (one dequant8 each), 4 per invocation; past k is
        // masked (the decoder may have read into the next row).
        for (var e = t; e < 256u; e += 64u) {
            let o = col0 + e / 2u;
            let kk = k0 + (e % 2u) * 8u;
            var d = W8(vec4<f32>(0.0), vec4<f32>(0.0));
            if (o < p.n && kk < p.k) {
                d = dequant8(o * p.row_bytes, kk);
            }
            let lane = vec4<u32>(0u, 1u, 2u, 3u);
            ws4[e * 2u] = select(vec4<f32>(0.0), d.lo, vec4<u32>(kk) + lane < vec4<u32>(p.k));
            ws4[e * 2u + 1u] = select(vec4<f32>(0.0), d.hi, vec4<u32>(kk + 4u) + lane < vec4<u32>(p.k));
        }
        workgroupBarrier();
        for (var q = 0u; q < 4u; q++) {
            let m0 = w4(lid.x, 0u, q);
            let m1 = w4(lid.x, 1u, q);
            let m2 = w4(lid.x, 2u, q);
            let m3 = w4(lid.x, 3u, q);
            let ab = lid.y * 4u + q;
            let a0 = xs4[ab];
            acc[0] += a0 * m0;
            acc[1] += a0 * m1;
            acc[2] += a0 * m2;
            acc[3] += a0 * m3;
            let a1 = xs4[ab + 32u];
            acc[4] += a1 * m0;
            acc[5] += a1 * m1;
            acc[6] += a1 * m2;
            acc[7] += a1 * m3;
            let a2 = xs4[ab + 64u];
            acc[8] += a2 * m0;
            acc[9] += a2 * m1;
            acc[10] += a2 * m2;
            acc[11] += a2 * m3;
            let a3 = xs4[ab + 96u];
            acc[12] += a3 * m0;
            acc[13] += a3 * m1;
            acc[14] += a3 * m2;
            acc[15] += a3 * m3;
            let a4 = xs4[ab + 128u];
            acc[16] += a4 * m0;
            acc[17] += a4 * m1;
            acc[18] += a4 * m2;
            acc[19] += a4 * m3;
            let a5 = xs4[ab + 160u];
            acc[20] += a5 * m0;
            acc[21] += a5 * m1;
            acc[22] += a5 * m2;
            acc[23] += a5 * m3;
            let a6 = xs4[ab + 192u];
            acc[24] += a6 * m0;
            acc[25] += a6 * m1;
            acc[26] += a6 * m2;
            acc[27] += a6 * m3;
            let a7 = xs4[ab + 224u];
            acc[28] += a7 * m0;
            acc[29] += a7 * m1;
            acc[30] += a7 * m2;
            acc[31] += a7 * m3;
            let a8 = xs4[ab + 256u];
            acc[32] += a8 * m0;
            acc[33] += a8 * m1;
            acc[34] += a8 * m2;
            acc[35] += a8 * m3;
            let a9 = xs4[ab + 288u];
            acc[36] += a9 * m0;
            acc[37] += a9 * m1;
            acc[38] += a9 * m2;
            acc[39] += a9 * m3;
            let a10 = xs4[ab + 320u];
            acc[40] += a10 * m0;
            acc[41] += a10 * m1;
            acc[42] += a10 * m2;
            acc[43] += a10 * m3;
            let a11 = xs4[ab + 352u];
            acc[44] += a11 * m0;
            acc[45] += a11 * m1;
            acc[46] += a11 * m2;
            acc[47] += a11 * m3;
            let a12 = xs4[ab + 384u];
            acc[48] += a12 * m0;
            acc[49] += a12 * m1;
            acc[50] += a12 * m2;
            acc[51] += a12 * m3;
            let a13 = xs4[ab + 416u];
            acc[52] += a13 * m0;
            acc[53] += a13 * m1;
            acc[54] += a13 * m2;
            acc[55] += a13 * m3;
            let a14 = xs4[ab + 448u];
            acc[56] += a14 * m0;
            acc[57] += a14 * m1;
            acc[58] += a14 * m2;
            acc[59] += a14 * m3;
            let a15 = xs4[ab + 480u];
            acc[60] += a15 * m0;
            acc[61] += a15 * m1;
            acc[62] += a15 * m2;
            acc[63] += a15 * m3;
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y;
    let o = col0 + lid.x;
    store4(r, o, 8u, acc[0]);
    store4(r, o + 32u, 8u, acc[1]);
    store4(r, o + 64u, 8u, acc[2]);
    store4(r, o + 96u, 8u, acc[3]);
    store4(r + 8u, o, 8u, acc[4]);
    store4(r + 8u, o + 32u, 8u, acc[5]);
    store4(r + 8u, o + 64u, 8u, acc[6]);
    store4(r + 8u, o + 96u, 8u, acc[7]);
    store4(r + 16u, o, 8u, acc[8]);
    store4(r + 16u, o + 32u, 8u, acc[9]);
    store4(r + 16u, o + 64u, 8u, acc[10]);
    store4(r + 16u, o + 96u, 8u, acc[11]);
    store4(r + 24u, o, 8u, acc[12]);
    store4(r + 24u, o + 32u, 8u, acc[13]);
    store4(r + 24u, o + 64u, 8u, acc[14]);
    store4(r + 24u, o + 96u, 8u, acc[15]);
    store4(r + 32u, o, 8u, acc[16]);
    store4(r + 32u, o + 32u, 8u, acc[17]);
    store4(r + 32u, o + 64u, 8u, acc[18]);
    store4(r + 32u, o + 96u, 8u, acc[19]);
    store4(r + 40u, o, 8u, acc[20]);
    store4(r + 40u, o + 32u, 8u, acc[21]);
    store4(r + 40u, o + 64u, 8u, acc[22]);
    store4(r + 40u, o + 96u, 8u, acc[23]);
    store4(r + 48u, o, 8u, acc[24]);
    store4(r + 48u, o + 32u, 8u, acc[25]);
    store4(r + 48u, o + 64u, 8u, acc[26]);
    store4(r + 48u, o + 96u, 8u, acc[27]);
    store4(r + 56u, o, 8u, acc[28]);
    store4(r + 56u, o + 32u, 8u, acc[29]);
    store4(r + 56u, o + 64u, 8u, acc[30]);
    store4(r + 56u, o + 96u, 8u, acc[31]);
    store4(r + 64u, o, 8u, acc[32]);
    store4(r + 64u, o + 32u, 8u, acc[33]);
    store4(r + 64u, o + 64u, 8u, acc[34]);
    store4(r + 64u, o + 96u, 8u, acc[35]);
    store4(r + 72u, o, 8u, acc[36]);
    store4(r + 72u, o + 32u, 8u, acc[37]);
    store4(r + 72u, o + 64u, 8u, acc[38]);
    store4(r + 72u, o + 96u, 8u, acc[39]);
    store4(r + 80u, o, 8u, acc[40]);
    store4(r + 80u, o + 32u, 8u, acc[41]);
    store4(r + 80u, o + 64u, 8u, acc[42]);
    store4(r + 80u, o + 96u, 8u, acc[43]);
    store4(r + 88u, o, 8u, acc[44]);
    store4(r + 88u, o + 32u, 8u, acc[45]);
    store4(r + 88u, o + 64u, 8u, acc[46]);
    store4(r + 88u, o + 96u, 8u, acc[47]);
    store4(r + 96u, o, 8u, acc[48]);
    store4(r + 96u, o + 32u, 8u, acc[49]);
    store4(r + 96u, o + 64u, 8u, acc[50]);
    store4(r + 96u, o + 96u, 8u, acc[51]);
    store4(r + 104u, o, 8u, acc[52]);
    store4(r + 104u, o + 32u, 8u, acc[53]);
    store4(r + 104u, o + 64u, 8u, acc[54]);
    store4(r + 104u, o + 96u, 8u, acc[55]);
    store4(r + 112u, o, 8u, acc[56]);
    store4(r + 112u, o + 32u, 8u, acc[57]);
    store4(r + 112u, o + 64u, 8u, acc[58]);
    store4(r + 112u, o + 96u, 8u, acc[59]);
    store4(r + 120u, o, 8u, acc[60]);
    store4(r + 120u, o + 32u, 8u, acc[61]);
    store4(r + 120u, o + 64u, 8u, acc[62]);
    store4(r + 120u, o + 96u, 8u, acc[63]);
}
