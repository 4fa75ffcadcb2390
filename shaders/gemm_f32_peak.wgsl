// gemm_f32_peak.wgsl — C[r, c] = sum_k A[r, k] * B[k, c], everything plain f32: the best case
// of a GEMM on this device, used only to measure "peak" (docs/perf.md); no model calls it.
// @binding(0) a: array<f32> read        A [m, k] row-major
// @binding(1) b: array<f32> read        B [k, n] row-major
// @binding(2) c: array<f32> read_write  C [m, n] row-major
// @binding(3) p: Params uniform {m, n, k, _}; k a multiple of 4
// Two entry points, chosen per adapter (kernels::peak), each the same structure as the matching
// entry of matmul.wgsl with the weight decode taken out:
// gemm_f32_peak_tiled (CPU adapters): dispatch (ceil(n / 128), ceil(m / 128), 1);
//   @workgroup_size(8, 8); 16 x 16 outputs per invocation (rows ly + 8i, columns lx + 8j) of a
//   128 x 128 tile; K steps of 16 through workgroup memory laid out as vec4s along k, so each
//   invocation reads 32 vec4s per 4 k for 1024 multiply-adds.
// gemm_f32_peak_tiled4 (GPUs): dispatch (ceil(n / 64), ceil(m / 64), 1); @workgroup_size(16, 16);
//   4 x 4 outputs per invocation of a 64 x 64 tile, K steps of 32, scalar workgroup memory.
// Out-of-range rows and columns are clamped when read and skipped when written.
// matches: reference::ops::matmul (with W = B^T)

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> at_: array<f32, 2048>; // [32 k][64 rows] A tile (gemm_f32_peak_tiled4)
var<workgroup> bt_: array<f32, 2048>; // [32 k][64 cols] B tile (gemm_f32_peak_tiled4)

@compute @workgroup_size(16, 16)
fn gemm_f32_peak_tiled4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    let t = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += 32u) {
        for (var i = 0u; i < 8u; i++) {
            let e = t + 256u * i;
            let ar = min(row0 + e / 32u, p.m - 1u);
            let ak = k0 + e % 32u;
            at_[(e % 32u) * 64u + e / 32u] = select(0.0, a[ar * p.k + min(ak, p.k - 1u)], ak < p.k);
            let bk = k0 + e / 64u;
            let bc = min(col0 + e % 64u, p.n - 1u);
            bt_[e] = select(0.0, b[min(bk, p.k - 1u) * p.n + bc], bk < p.k);
        }
        workgroupBarrier();
        for (var q = 0u; q < 32u; q++) {
            let ab = q * 64u + lid.y;
            let bb = q * 64u + lid.x;
            let bv = vec4<f32>(bt_[bb], bt_[bb + 16u], bt_[bb + 32u], bt_[bb + 48u]);
            acc0 = fma(vec4<f32>(at_[ab]), bv, acc0);
            acc1 = fma(vec4<f32>(at_[ab + 16u]), bv, acc1);
            acc2 = fma(vec4<f32>(at_[ab + 32u]), bv, acc2);
            acc3 = fma(vec4<f32>(at_[ab + 48u]), bv, acc3);
        }
        workgroupBarrier();
    }
    let r0 = row0 + lid.y;
    let c0 = col0 + lid.x;
    store4(r0, c0, acc0);
    store4(r0 + 16u, c0, acc1);
    store4(r0 + 32u, c0, acc2);
    store4(r0 + 48u, c0, acc3);
}

// C[r, c0 + 16j] = v[j] for j < 4, skipping what lies outside C.
fn store4(r: u32, c0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let o = c0 + 16u * j;
        if (o < p.n) {
            c[r * p.n + o] = v[j];
        }
    }
}

var<workgroup> a4_: array<vec4<f32>, 512>; // [128 rows][4]: A[row0 + r, k0 + 4q .. + 4] (gemm_f32_peak_tiled)
var<workgroup> b4_: array<vec4<f32>, 512>; // [128 cols][4]: B[k0 + 4q .. + 4, col0 + o] (gemm_f32_peak_tiled)
// The four columns lx + 8 (4h + j), j < 4, of k-quad q, as the columns of a matrix (so that
// v * m holds the four dot products of v with them).
fn b4x4(lx: u32, h: u32, q: u32) -> mat4x4<f32> {
    let at = (lx + 32u * h) * 4u + q;
    return mat4x4<f32>(b4_[at], b4_[at + 32u], b4_[at + 64u], b4_[at + 96u]);
}

@compute @workgroup_size(8, 8)
fn gemm_f32_peak_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 128u;
    let col0 = wg.x * 128u;
    let t = lid.y * 8u + lid.x;
    // acc[4i + h][j]: row ly + 8i, column lx + 8 (4h + j).
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        for (var e = t; e < 512u; e += 64u) {
            let ka = k0 + (e % 4u) * 4u;
            let ar = min(row0 + e / 4u, p.m - 1u) * p.k + min(ka, p.k - 4u);
            a4_[e] = select(vec4<f32>(0.0), vec4<f32>(a[ar], a[ar + 1u], a[ar + 2u], a[ar + 3u]), ka < p.k);
            let o = e % 128u;
            let kb = k0 + (e / 128u) * 4u;
            let bk = min(kb, p.k - 4u) * p.n + min(col0 + o, p.n - 1u);
            let bq = vec4<f32>(b[bk], b[bk + p.n], b[bk + 2u * p.n], b[bk + 3u * p.n]);
            b4_[o * 4u + e / 128u] = select(vec4<f32>(0.0), bq, kb < p.k);
        }
        workgroupBarrier();
        for (var q = 0u; q < 4u; q++) {
            let m0 = b4x4(lid.x, 0u, q);
            let m1 = b4x4(lid.x, 1u, q);
            let m2 = b4x4(lid.x, 2u, q);
            let m3 = b4x4(lid.x, 3u, q);
            let ab = lid.y * 4u + q;
            let a0 = a4_[ab];
            acc[0] += a0 * m0;
            acc[1] += a0 * m1;
            acc[2] += a0 * m2;
            acc[3] += a0 * m3;
            let a1 = a4_[ab + 32u];
            acc[4] += a1 * m0;
            acc[5] += a1 * m1;
            acc[6] += a1 * m2;
            acc[7] += a1 * m3;
            let a2 = a4_[ab + 64u];
            acc[8] += a2 * m0;
            acc[9] += a2 * m1;
            acc[10] += a2 * m2;
            acc[11] += a2 * m3;
            let a3 = a4_[ab + 96u];
            acc[12] += a3 * m0;
            acc[13] += a3 * m1;
            acc[14] += a3 * m2;
            acc[15] += a3 * m3;
            let a4 = a4_[ab + 128u];
            acc[16] += a4 * m0;
            acc[17] += a4 * m1;
            acc[18] += a4 * m2;
            acc[19] += a4 * m3;
            let a5 = a4_[ab + 160u];
            acc[20] += a5 * m0;
            acc[21] += a5 * m1;
            acc[22] += a5 * m2;
            acc[23] += a5 * m3;
            let a6 = a4_[ab + 192u];
            acc[24] += a6 * m0;
            acc[25] += a6 * m1;
            acc[26] += a6 * m2;
            acc[27] += a6 * m3;
            let a7 = a4_[ab + 224u];
            acc[28] += a7 * m0;
            acc[29] += a7 * m1;
            acc[30] += a7 * m2;
            acc[31] += a7 * m3;
            let a8 = a4_[ab + 256u];
            acc[32] += a8 * m0;
            acc[33] += a8 * m1;
            acc[34] += a8 * m2;
            acc[35] += a8 * m3;
            let a9 = a4_[ab + 288u];
            acc[36] += a9 * m0;
            acc[37] += a9 * m1;
            acc[38] += a9 * m2;
            acc[39] += a9 * m3;
            let a10 = a4_[ab + 320u];
            acc[40] += a10 * m0;
            acc[41] += a10 * m1;
            acc[42] += a10 * m2;
            acc[43] += a10 * m3;
            let a11 = a4_[ab + 352u];
            acc[44] += a11 * m0;
            acc[45] += a11 * m1;
            acc[46] += a11 * m2;
            acc[47] += a11 * m3;
            let a12 = a4_[ab + 384u];
            acc[48] += a12 * m0;
            acc[49] += a12 * m1;
            acc[50] += a12 * m2;
            acc[51] += a12 * m3;
            let a13 = a4_[ab + 416u];
            acc[52] += a13 * m0;
            acc[53] += a13 * m1;
            acc[54] += a13 * m2;
            acc[55] += a13 * m3;
            let a14 = a4_[ab + 448u];
            acc[56] += a14 * m0;
            acc[57] += a14 * m1;
            acc[58] += a14 * m2;
            acc[59] += a14 * m3;
            let a15 = a4_[ab + 480u];
            acc[60] += a15 * m0;
            acc[61] += a15 * m1;
            acc[62] += a15 * m2;
            acc[63] += a15 * m3;
        }
        workgroupBarrier();
    }
    let r0 = row0 + lid.y;
    let c0 = col0 + lid.x;
    store4_8(r0, c0, acc[0]);
    store4_8(r0, c0 + 32u, acc[1]);
    store4_8(r0, c0 + 64u, acc[2]);
    store4_8(r0, c0 + 96u, acc[3]);
    store4_8(r0 + 8u, c0, acc[4]);
    store4_8(r0 + 8u, c0 + 32u, acc[5]);
    store4_8(r0 + 8u, c0 + 64u, acc[6]);
    store4_8(r0 + 8u, c0 + 96u, acc[7]);
    store4_8(r0 + 16u, c0, acc[8]);
    store4_8(r0 + 16u, c0 + 32u, acc[9]);
    store4_8(r0 + 16u, c0 + 64u, acc[10]);
    store4_8(r0 + 16u, c0 + 96u, acc[11]);
    store4_8(r0 + 24u, c0, acc[12]);
    store4_8(r0 + 24u, c0 + 32u, acc[13]);
    store4_8(r0 + 24u, c0 + 64u, acc[14]);
    store4_8(r0 + 24u, c0 + 96u, acc[15]);
    store4_8(r0 + 32u, c0, acc[16]);
    store4_8(r0 + 32u, c0 + 32u, acc[17]);
    store4_8(r0 + 32u, c0 + 64u, acc[18]);
    store4_8(r0 + 32u, c0 + 96u, acc[19]);
    store4_8(r0 + 40u, c0, acc[20]);
    store4_8(r0 + 40u, c0 + 32u, acc[21]);
    store4_8(r0 + 40u, c0 + 64u, acc[22]);
    store4_8(r0 + 40u, c0 + 96u, acc[23]);
    store4_8(r0 + 48u, c0, acc[24]);
    store4_8(r0 + 48u, c0 + 32u, acc[25]);
    store4_8(r0 + 48u, c0 + 64u, acc[26]);
    store4_8(r0 + 48u, c0 + 96u, acc[27]);
    store4_8(r0 + 56u, c0, acc[28]);
    store4_8(r0 + 56u, c0 + 32u, acc[29]);
    store4_8(r0 + 56u, c0 + 64u, acc[30]);
    store4_8(r0 + 56u, c0 + 96u, acc[31]);
    store4_8(r0 + 64u, c0, acc[32]);
    store4_8(r0 + 64u, c0 + 32u, acc[33]);
    store4_8(r0 + 64u, c0 + 64u, acc[34]);
    store4_8(r0 + 64u, c0 + 96u, acc[35]);
    store4_8(r0 + 72u, c0, acc[36]);
    store4_8(r0 + 72u, c0 + 32u, acc[37]);
    store4_8(r0 + 72u, c0 + 64u, acc[38]);
    store4_8(r0 + 72u, c0 + 96u, acc[39]);
    store4_8(r0 + 80u, c0, acc[40]);
    store4_8(r0 + 80u, c0 + 32u, acc[41]);
    store4_8(r0 + 80u, c0 + 64u, acc[42]);
    store4_8(r0 + 80u, c0 + 96u, acc[43]);
    store4_8(r0 + 88u, c0, acc[44]);
    store4_8(r0 + 88u, c0 + 32u, acc[45]);
    store4_8(r0 + 88u, c0 + 64u, acc[46]);
    store4_8(r0 + 88u, c0 + 96u, acc[47]);
    store4_8(r0 + 96u, c0, acc[48]);
    store4_8(r0 + 96u, c0 + 32u, acc[49]);
    store4_8(r0 + 96u, c0 + 64u, acc[50]);
    store4_8(r0 + 96u, c0 + 96u, acc[51]);
    store4_8(r0 + 104u, c0, acc[52]);
    store4_8(r0 + 104u, c0 + 32u, acc[53]);
    store4_8(r0 + 104u, c0 + 64u, acc[54]);
    store4_8(r0 + 104u, c0 + 96u, acc[55]);
    store4_8(r0 + 112u, c0, acc[56]);
    store4_8(r0 + 112u, c0 + 32u, acc[57]);
    store4_8(r0 + 112u, c0 + 64u, acc[58]);
    store4_8(r0 + 112u, c0 + 96u, acc[59]);
    store4_8(r0 + 120u, c0, acc[60]);
    store4_8(r0 + 120u, c0 + 32u, acc[61]);
    store4_8(r0 + 120u, c0 + 64u, acc[62]);
    store4_8(r0 + 120u, c0 + 96u, acc[63]);
}

// C[r, c0 + 8j] = v[j] for j < 4, skipping what lies outside C.
fn store4_8(r: u32, c0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let o = c0 + 8u * j;
        if (o < p.n) {
            c[r * p.n + o] = v[j];
        }
    }
}
