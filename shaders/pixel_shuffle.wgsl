// pixel_shuffle.wgsl — the idefics3 connector's space-to-depth: a [side * side, n] patch grid ->
// [(side / s)^2, n * s * s]. Output token (R, C), raster order over the side / s grid, is the
// concatenation over dy (outer) then dx (inner) of patch (R * s + dy, C * s + dx):
//   y[(R * (side / s) + C) * n s s + (dy * s + dx) * n + e] = x[((R * s + dy) * side + C * s + dx) * n + e]
// @binding(0) x: array<f32> read        [side * side, n]
// @binding(1) y: array<f32> read_write  [(side / s)^2, n * s * s]
// @binding(2) p: Params uniform {side, n, s, _pad}
// dispatch grid_1d(ceil(side * side * n / WG)) (side a multiple of s); one invocation per output
// element, linear id ((wid.x + wid.y * num_workgroups.x) * WG + lid): writes contiguous, reads
// contiguous runs of n; @workgroup_size(WG), WG an override (default 256).
// matches: reference::ops::pixel_shuffle

struct Params {
    side: u32,
    n: u32,
    s: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn pixel_shuffle(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let out_side = p.side / p.s;
    let row = p.n * p.s * p.s;
    if (i >= out_side * out_side * row) {
        return;
    }
    let tok = i / row;
    let col = i % row;
    let r = tok / out_side;
    let c = tok % out_side;
    let q = col / p.n;
    let e = col % p.n;
    let dy = q / p.s;
    let dx = q % p.s;
    y[i] = x[((r * p.s + dy) * p.side + c * p.s + dx) * p.n + e];
}
