// topk.wgsl — sampling candidates: the k <= 64 largest of x[x_offset .. x_offset + n] and their
// indices, sorted by value descending, equal values by index ascending (a stable descending sort).
// Slots from min(n, k) to k get value -3.4028235e38 and index 0xffffffff. One workgroup.
// @binding(0) x: array<f32> read             [x_offset + n] (logits)
// @binding(1) values: array<f32> read_write  [out_offset + k]
// @binding(2) indices: array<u32> read_write [out_offset + k]
// @binding(3) p: Params uniform {n, k, x_offset, out_offset}
// dispatch (1, 1, 1); @workgroup_size(WG), WG an override (default 256, a power of two).
// Phase 1: invocation l scans i = l, l + WG, ... (coalesced) keeping a sorted private top-k list
// (insertion; most elements fail the first compare against the list's k-th). Phase 2: k rounds of
// a workgroup arg-max over the invocations' list heads; the winner (index i is owned by invocation
// i % WG) advances its head. NaNs are not handled.
// matches: reference::ops::topk

struct Params {
    n: u32,
    k: u32,
    x_offset: u32,
    out_offset: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 256u;

const K_MAX: u32 = 64u;
const NONE: u32 = 0xffffffffu;
const LOWEST: f32 = -3.4028235e38;

var<workgroup> head_v: array<f32, WG>;
var<workgroup> head_i: array<u32, WG>;

// True when (v, i) beats (bv, bi): a larger value, or an equal value at a lower index; NONE loses.
fn beats(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

@compute @workgroup_size(WG)
fn topk(@builtin(local_invocation_index) lid: u32) {
    let k = min(p.k, K_MAX);
    if (k == 0u) {
        return;
    }
    // This invocation's candidates, sorted descending; indices ascending among equal values
    // because the scan visits indices in increasing order and only a strictly larger value
    // moves ahead of an existing one.
    var lv: array<f32, K_MAX>;
    var li: array<u32, K_MAX>;
    var count = 0u;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[p.x_offset + i];
        if (count == k && !(v > lv[k - 1u])) {
            continue;
        }
        var pos = min(count, k - 1u);
        while (pos > 0u && v > lv[pos - 1u]) {
            lv[pos] = lv[pos - 1u];
            li[pos] = li[pos - 1u];
            pos -= 1u;
        }
        lv[pos] = v;
        li[pos] = i;
        count = min(count + 1u, k);
    }

    var head = 0u;
    for (var r = 0u; r < k; r++) {
        if (head < count) {
            head_v[lid] = lv[head];
            head_i[lid] = li[head];
        } else {
            head_v[lid] = LOWEST;
            head_i[lid] = NONE;
        }
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s /= 2u) {
            if (lid < s && beats(head_v[lid + s], head_i[lid + s], head_v[lid], head_i[lid])) {
                head_v[lid] = head_v[lid + s];
                head_i[lid] = head_i[lid + s];
            }
            workgroupBarrier();
        }
        let wv = head_v[0];
        let wi = head_i[0];
        if (lid == 0u) {
            values[p.out_offset + r] = select(LOWEST, wv, wi != NONE);
            indices[p.out_offset + r] = wi;
        }
        if (wi != NONE && wi % WG == lid) {
            head += 1u;
        }
        // Everyone has read the winner before the next round overwrites the heads.
        workgroupBarrier();
    }
}
