// matmul.wgsl — Y[r, c0 + o] = (acc ? Y[r, c0 + o] : 0) + sum_k X[r, k] * W[o, k] + b[c0 + o]
// Tiled GEMM for many rows (vision encoder, prefill): W is one part of a GGUF weight, decoded
// on the fly from its blocks (dequant.wgsl, override W_TYPE); f32 accumulate.
// @binding(0) x: array<f32> read        X[r, k] = x[x_offset + r * x_stride + k]
// @binding(1) w: array<u32> read        n rows of row_bytes bytes (GGUF blocks of W_TYPE)
// @binding(2) b: array<f32> read        [c0 + n] bias (the whole weight's) (bound to any buffer when flags & 1 == 0)
// @binding(3) y: array<f32> read_write  Y[r, c] = y[y_offset + r * y_stride + c]; this part
//                                       writes columns c0..c0+n
// @binding(4) p: Params uniform
// dispatch (ceil(n / 64), ceil(m / 64), 1); @workgroup_size(16, 16): each invocation owns a
// 4 x 4 block of the 64 x 64 output tile, rows ly + 16i and columns lx + 16j. K advances 32 at a
// time through workgroup memory holding both tiles transposed ([k][row]), 16 KiB in all.
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

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 32u;

var<workgroup> xs: array<f32, 2048>; // [BK][BM]
var<workgroup> ws: array<f32, 2048>; // [BK][BN]

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let t = lid.y * 16u + lid.x;
    // Tile loads: invocation t fetches 8 consecutive k of row (t / 4) of each tile.
    let load_row = t / 4u;
    let load_k = (t % 4u) * 8u;

    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kk = k0 + load_k;
        let xr = row0 + load_row;
        for (var i = 0u; i < 8u; i++) {
            var v = 0.0;
            if (xr < p.m && kk + i < p.k) {
                v = x[p.x_offset + xr * p.x_stride + kk + i];
            }
            xs[(load_k + i) * BM + load_row] = v;
        }
        let wr = col0 + load_row;
        var wv: array<f32, 8>;
        if (wr < p.n && kk < p.k) {
            let d = dequant8(wr * p.row_bytes, kk);
            wv = array<f32, 8>(d.lo.x, d.lo.y, d.lo.z, d.lo.w, d.hi.x, d.hi.y, d.hi.z, d.hi.w);
        }
        for (var i = 0u; i < 8u; i++) {
            // Elements past k are masked: the decoder may have read into the next row.
            ws[(load_k + i) * BN + load_row] = select(0.0, wv[i], kk + i < p.k);
        }
        workgroupBarrier();
        for (var q = 0u; q < BK; q++) {
            var a: array<f32, 4>;
            var c: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[q * BM + lid.y + 16u * i];
                c[i] = ws[q * BN + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(a[i], c[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let o = col0 + lid.x + 16u * j;
            if (r < p.m && o < p.n) {
                var v = acc[i][j];
                if ((p.flags & 1u) != 0u) {
                    v += b[p.c0 + o];
                }
                let at = p.y_offset + r * p.y_stride + p.c0 + o;
                if ((p.flags & 2u) != 0u) {
                    v += y[at];
                }
                y[at] = v;
            }
        }
    }
}
