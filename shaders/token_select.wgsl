// token_select.wgsl — the k highest-scoring of n tokens, as index lists in raster order, on the
// GPU: order[0 .. K) = the kept indices ascending, order[K .. n) = the others ascending,
// K = min(k, n). Token j is kept when fewer than k tokens rank above it; i ranks above j when
// s_i > s_j, or s_i == s_j and i < j (ties go to the lower index). NaN scores rank lowest.
// `forced` (0xffffffff: none) ranks above everything (VisionZip's CLS).
// @binding(0) scores: array<f32> read     [score_offset + n]
// @binding(1) order: array<u32> read_write [n]
// @binding(2) p: Params uniform {n, k, forced, score_offset}
// entry `select_top_k`: dispatch (1, 1, 1), @workgroup_size(WG). Invocation l owns the tokens
//   l * c .. (l + 1) * c, c = ceil(n / WG): it ranks them (every score read at the same address
//   by all invocations), counts its kept ones, a workgroup prefix sum gives each invocation its
//   write positions, and a second ranking pass writes the indices. n^2 / WG compares per
//   invocation, twice: microseconds for the few thousand tokens of a frame.
// matches: prune::select::top_k (kept part)

struct Params {
    n: u32,
    k: u32,
    forced: u32,
    score_offset: u32,
}

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> order: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

var<workgroup> counts: array<u32, WG>;

// A sortable key: forced highest, NaN lowest.
fn key(i: u32) -> f32 {
    if (i == p.forced) {
        return bitcast<f32>(0x7f800000u);
    }
    let s = scores[p.score_offset + i];
    // NaN by its bits: drivers may fold `s != s` away.
    if ((bitcast<u32>(s) & 0x7fffffffu) > 0x7f800000u) {
        return bitcast<f32>(0xff800000u);
    }
    return s;
}

fn is_kept(j: u32) -> bool {
    let sj = key(j);
    var above = 0u;
    for (var i = 0u; i < p.n; i++) {
        let si = key(i);
        if (si > sj || (si == sj && i < j)) {
            above++;
        }
    }
    return above < p.k;
}

@compute @workgroup_size(WG)
fn select_top_k(@builtin(local_invocation_index) l: u32) {
    let c = (p.n + WG - 1u) / WG;
    let begin = min(l * c, p.n);
    let end = min(begin + c, p.n);
    var mine = 0u;
    for (var j = begin; j < end; j++) {
        if (is_kept(j)) {
            mine++;
        }
    }
    counts[l] = mine;
    workgroupBarrier();
    // Kept ones before this invocation's range (WG is small; a serial sum per invocation).
    var kept_before = 0u;
    var kept_total = 0u;
    for (var i = 0u; i < WG; i++) {
        if (i < l) {
            kept_before += counts[i];
        }
        kept_total += counts[i];
    }
    var a = kept_before;
    var b = kept_total + begin - kept_before;
    for (var j = begin; j < end; j++) {
        if (is_kept(j)) {
            order[a] = j;
            a++;
        } else {
            order[b] = j;
            b++;
        }
    }
}
