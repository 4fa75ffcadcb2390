// argmax.wgsl — greedy sampling: out[out_offset] = the index i < n of the largest
// x[x_offset + i]; ties go to the lowest index. One workgroup.
// @binding(0) x: array<f32> read        [x_offset + n] (logits)
// @binding(1) out: array<u32> read_write [out_offset + 1]
// @binding(2) p: Params uniform {n, x_offset, out_offset, _pad}
// dispatch (1, 1, 1); @workgroup_size(WG), WG an override (default 256, a power of two).
// Invocation l scans i = l, l + WG, ... (coalesced), keeping its first maximum; then a tree
// reduction in workgroup memory over (value, index), lower index winning ties. NaNs are not
// handled (WGSL lets implementations assume there are none). n = 0 writes 0xffffffff.
// matches: reference::ops::argmax

struct Params {
    n: u32,
    x_offset: u32,
    out_offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

const NONE: u32 = 0xffffffffu;

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

// True when (v, i) beats (bv, bi): a larger value, or an equal value at a lower index; NONE loses.
fn beats(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

@compute @workgroup_size(WG)
fn argmax(@builtin(local_invocation_index) lid: u32) {
    var bv = 0.0;
    var bi = NONE;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[p.x_offset + i];
        // Indices only grow along the scan, so strict > keeps the first maximum.
        if (bi == NONE || v > bv) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid < s && beats(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid])) {
            best_v[lid] = best_v[lid + s];
            best_i[lid] = best_i[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[p.out_offset] = best_i[0];
    }
}
