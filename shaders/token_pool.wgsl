// token_pool.wgsl — the mean of G equal slices of each row: y[y_offset + t w + c] = (1 / G) sum_g
// x[x_offset + t * x_stride + g * w + c]. Head-mean keys (the slices are a row's heads) and the
// pooling of pixel-shuffled rows (the slices are a merged token's s x s patches).
// @binding(0) x: array<f32> read        rows of x_stride (>= G * w) from x_offset
// @binding(1) y: array<f32> read_write  [n, w] from y_offset
// @binding(2) p: Params uniform {n, w, groups, x_offset, x_stride, y_offset, _, _}
// dispatch grid_1d(ceil(n * w / WG)); one invocation per output element, linear id
// ((wid.x + wid.y * num_workgroups.x) * WG + lid); reads of consecutive c are contiguous.
// @workgroup_size(WG), WG an override (default 256).
// matches: reference::prune::head_mean_keys, reference::prune::pool_groups

struct Params {
    n: u32,
    w: u32,
    groups: u32,
    x_offset: u32,
    x_stride: u32,
    y_offset: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn group_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n * p.w) {
        return;
    }
    let t = i / p.w;
    let c = i % p.w;
    let base = p.x_offset + t * p.x_stride + c;
    var sum = 0.0;
    for (var g = 0u; g < p.groups; g++) {
        sum += x[base + g * p.w];
    }
    y[p.y_offset + i] = sum / f32(p.groups);
}
