// norm.wgsl — row norms, out of place. One workgroup per row.
//   layer_norm: y[r] = (x[r] - mean(x[r])) / sqrt(var(x[r]) + eps) * w + b
//   rms_norm:   y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w
// layer_norm takes the mean first, then the mean of squared deviations (two passes over the row,
// not E[x^2] - E[x]^2, which cancels badly when |mean| >> std).
// @binding(0) x: array<f32> read        X[r, i] = x[x_offset + r * x_stride + i], [n_rows, n]
// @binding(1) w: array<f32> read        [n]
// @binding(2) b: array<f32> read        [n] (layer_norm; rms_norm is bound to w here and ignores it)
// @binding(3) y: array<f32> read_write  Y[r, i] = y[y_offset + r * y_stride + i], [n_rows, n];
//                                       must not alias x (wgpu forbids read + read_write bindings
//                                       of one buffer in a dispatch)
// @binding(4) p: Params uniform {n, n_rows, eps, x_offset, y_offset, x_stride, y_stride, _pad}
// dispatch grid_1d(n_rows): row = wid.x + wid.y * num_workgroups.x; @workgroup_size(WG), WG an
// override (default 256, a power of two); strided coalesced loads, tree reduction in workgroup
// memory; f32 accumulate.
// matches: reference::ops::layer_norm, reference::ops::rms_norm

struct Params {
    n: u32,
    n_rows: u32,
    eps: f32,
    x_offset: u32,
    y_offset: u32,
    x_stride: u32,
    y_stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG: u32 = 256u;

var<workgroup> partial: array<f32, WG>;

// The sum of `v` over the workgroup, returned to every invocation. Called in uniform control flow.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Everyone has read partial[0] before the next call overwrites it.
    workgroupBarrier();
    return total;
}

fn norm_row(row: u32, lid: u32, rms: bool) {
    // `row` is uniform across the workgroup, so returning here keeps the barriers uniform.
    if (row >= p.n_rows) {
        return;
    }
    let xb = p.x_offset + row * p.x_stride;
    let yb = p.y_offset + row * p.y_stride;
    let nf = f32(p.n);
    var mean = 0.0;
    if (!rms) {
        var s = 0.0;
        for (var i = lid; i < p.n; i += WG) {
            s += x[xb + i];
        }
        mean = workgroup_sum(lid, s) / nf;
    }
    // layer_norm: sum of squared deviations from the mean; rms_norm: sum of squares (mean = 0).
    var ss = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let d = x[xb + i] - mean;
        ss += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(lid, ss) / nf + p.eps);
    for (var i = lid; i < p.n; i += WG) {
        var v = (x[xb + i] - mean) * inv * w[i];
        if (!rms) {
            v += b[i];
        }
        y[yb + i] = v;
    }
}

@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    norm_row(wid.x + wid.y * nwg.x, lid, false);
}

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    norm_row(wid.x + wid.y * nwg.x, lid, true);
}
