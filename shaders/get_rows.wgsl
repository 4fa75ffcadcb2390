// get_rows.wgsl — embedding gather from a GGUF weight: y[i, :] = dequant(W[ids[i], :]) for
// i < n_ids, W decoded from its blocks (dequant.wgsl, prepended; override W_TYPE). W may be split
// into parts by rows: one dispatch per part, each writing only the ids in row_start..row_start +
// n_rows. Ids >= n_out (no row) give a zero row, written by the dispatch with zero_invalid = 1.
// @binding(0) ids: array<u32> read       [n_ids]
// @binding(1) w: array<u32> read         n_rows rows of row_bytes bytes (GGUF blocks of W_TYPE)
// @binding(2) y: array<f32> read_write   y[y_offset + i * n_in + k], [n_ids, n_in]
// @binding(3) p: Params uniform {n_in, n_ids, row_bytes, row_start, n_rows, n_out, zero_invalid,
//                                y_offset}
// dispatch grid_1d(ceil(n_ids * n_in / 8 / WG)); one invocation per 8 consecutive elements of
// an output row (n_in a multiple of 8), linear id ((wid.x + wid.y * num_workgroups.x) * WG + lid),
// chunks of a row fastest; @workgroup_size(WG), WG an override (default 64); f32.
// matches: gguf::quant::dequantize of the selected rows (the reference indexes its f32 copy)

struct Params {
    n_in: u32,
    n_ids: u32,
    row_bytes: u32,
    row_start: u32,
    n_rows: u32,
    n_out: u32,
    zero_invalid: u32,
    y_offset: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn get_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let chunks = p.n_in / 8u;
    let g = (wid.x + wid.y * nwg.x) * WG + lid;
    if (g >= p.n_ids * chunks) {
        return;
    }
    let i = g / chunks;
    let k = (g % chunks) * 8u;
    let id = ids[i];
    let at = p.y_offset + i * p.n_in + k;
    if (id >= p.n_out) {
        if (p.zero_invalid != 0u) {
            for (var e = 0u; e < 8u; e++) {
                y[at + e] = 0.0;
            }
        }
        return;
    }
    if (id < p.row_start || id - p.row_start >= p.n_rows) {
        return; // another part holds this row
    }
    let d = dequant8((id - p.row_start) * p.row_bytes, k);
    y[at] = d.lo.x;
    y[at + 1u] = d.lo.y;
    y[at + 2u] = d.lo.z;
    y[at + 3u] = d.lo.w;
    y[at + 4u] = d.hi.x;
    y[at + 5u] = d.hi.y;
    y[at + 6u] = d.hi.z;
    y[at + 7u] = d.hi.w;
}
