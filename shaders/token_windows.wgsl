// token_windows.wgsl — MustDrop stage 1's window score: for each non-overlapping w x w window
// of a side x side patch grid (windows past the last whole one are not scored), the mean cosine
// similarity over the w^2 (w^2 - 1) ordered pairs of distinct tokens in it (= the mean over
// unordered pairs). Windows in raster order over the (side / w) x (side / w) window grid.
// @binding(0) x: array<f32> read          patch (r, c) at x[(first + r * side + c) * d ..][..d]
// @binding(1) score: array<f32> read_write [(side / w)^2]
// @binding(2) p: Params uniform {side, w, d, first}
// dispatch ((side / w)^2, 1, 1), @workgroup_size(WG): one workgroup per window. Invocation t
// walks the feature dims t, t + WG, ... (reads of the window's rows coalesced) accumulating the
// w^2 squared norms and the w^2 (w^2 - 1) / 2 dot products of its window in registers; a tree
// reduction in workgroup memory (45 WG f32) sums them. w <= 3 (at most 9 tokens, 36 pairs).
// matches: reference::prune::window_similarity

struct Params {
    side: u32,
    w: u32,
    d: u32,
    first: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> score: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 64u;

const MAX_T: u32 = 9u;
const MAX_ACC: u32 = 45u; // 9 norms + 36 pairs

var<workgroup> part: array<f32, MAX_ACC * WG>;

@compute @workgroup_size(WG)
fn window_similarity(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let per_side = p.side / p.w;
    let wy = wg.x / per_side;
    let wx = wg.x % per_side;
    let n = p.w * p.w;
    var rows: array<u32, MAX_T>;
    for (var i = 0u; i < n; i++) {
        let r = wy * p.w + i / p.w;
        let c = wx * p.w + i % p.w;
        rows[i] = (p.first + r * p.side + c) * p.d;
    }
    var acc: array<f32, MAX_ACC>;
    for (var a = 0u; a < MAX_ACC; a++) {
        acc[a] = 0.0;
    }
    for (var e = t; e < p.d; e += WG) {
        var v: array<f32, MAX_T>;
        for (var i = 0u; i < n; i++) {
            v[i] = x[rows[i] + e];
            acc[i] += v[i] * v[i];
        }
        var k = MAX_T;
        for (var i = 0u; i < n; i++) {
            for (var j = i + 1u; j < n; j++) {
                acc[k] += v[i] * v[j];
                k++;
            }
        }
    }
    for (var a = 0u; a < MAX_ACC; a++) {
        part[a * WG + t] = acc[a];
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) {
            for (var a = 0u; a < MAX_ACC; a++) {
                part[a * WG + t] += part[a * WG + t + stride];
            }
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        var sum = 0.0;
        var k = MAX_T;
        for (var i = 0u; i < n; i++) {
            for (var j = i + 1u; j < n; j++) {
                let norms = sqrt(part[i * WG]) * sqrt(part[j * WG]);
                sum += part[k * WG] / max(norms, 1e-30);
                k++;
            }
        }
        score[wg.x] = sum / f32(n * (n - 1u) / 2u);
    }
}
