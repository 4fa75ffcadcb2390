// binary.wgsl — in-place elementwise add of two buffers, for i < n:
//   add:    x[x_offset + i] += y[y_offset + i % y_len]          (residuals, position embeddings;
//           y_len < n broadcasts y over rows of y_len, e.g. a bias)
// (The SwiGLU is fused into the GEMM / GEMV epilogue: store_y.wgsl.)
// @binding(0) x: array<f32> read_write  [x_offset + n]
// @binding(1) y: array<f32> read        [y_offset + y_len]; must not alias x
// @binding(2) p: Params uniform {n, x_offset, y_offset, y_len}
// dispatch grid_1d(ceil(n / WG)); one invocation per element, linear id
// ((wid.x + wid.y * num_workgroups.x) * WG + lid); @workgroup_size(WG), WG an override
// (default 256); f32.
// matches: reference::ops::add

struct Params {
    n: u32,
    x_offset: u32,
    y_offset: u32,
    y_len: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    x[p.x_offset + i] += y[p.y_offset + i % p.y_len];
}
