// unary.wgsl — in-place elementwise activations on x[offset .. offset + n]:
//   gelu:       x = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))   (ggml's tanh approximation)
//   quick_gelu: x = x * sigmoid(1.702 x)                                 (CLIP)
//   silu:       x = x * sigmoid(x)
// @binding(0) x: array<f32> read_write  [offset + n]
// @binding(1) p: Params uniform {n, offset, _pad0, _pad1}
// dispatch grid_1d(ceil(n / WG)); one invocation per element, linear id
// ((wid.x + wid.y * num_workgroups.x) * WG + lid); @workgroup_size(WG), WG an override
// (default 256); f32.
// matches: reference::ops::gelu, reference::ops::quick_gelu, reference::ops::silu

struct Params {
    n: u32,
    offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

override WG: u32 = 256u;

// tanh written out: some backends build tanh from sinh / cosh, which overflow to inf / inf = NaN
// for |z| past ~89. Clamped, 1 - 2 / (e^2z + 1) is within 1e-7 of the true value everywhere.
fn tanh_safe(z: f32) -> f32 {
    let e = exp(2.0 * clamp(z, -15.0, 15.0));
    return 1.0 - 2.0 / (e + 1.0);
}

// exp(-z) overflows to inf for z < -88; v / inf is then -0, as on the CPU.
fn sigmoid_times(v: f32, z: f32) -> f32 {
    return v / (1.0 + exp(-z));
}

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[p.offset + i];
    x[p.offset + i] = 0.5 * v * (1.0 + tanh_safe(0.7978846 * (v + 0.044715 * v * v * v)));
}

@compute @workgroup_size(WG)
fn quick_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[p.offset + i];
    x[p.offset + i] = sigmoid_times(v, 1.702 * v);
}

@compute @workgroup_size(WG)
fn silu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[p.offset + i];
    x[p.offset + i] = sigmoid_times(v, v);
}
