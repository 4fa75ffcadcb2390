// im2col.wgsl — patches for the patch-embedding convolution done as a GEMM: planar pixels
// [3, h, w] -> patches [n_patches, 3 * p * p], n_patches = (h / p) * (w / p), patch (py, px) in
// raster order (px fastest), columns in (c, ky, kx) order with kx fastest — the layout of the ggml
// conv kernel v.patch_embd.weight (ne = [p, p, 3, n_embd]) read as n_embd rows of 3 * p * p, so
// matmul(patches, weight) is the convolution.
//   patches[(py * (w / p) + px) * 3pp + (c * p + ky) * p + kx] = pixels[(c * h + py * p + ky) * w + px * p + kx]
// @binding(0) pixels: array<f32> read        [3, h, w]
// @binding(1) patches: array<f32> read_write [n_patches, 3 * p * p]
// @binding(2) p: Params uniform {h, w, patch_size, _pad}
// dispatch grid_1d(ceil(n_patches * 3 * p * p / WG)); one invocation per output element, linear
// id ((wid.x + wid.y * num_workgroups.x) * WG + lid): writes are contiguous, reads contiguous
// along kx; @workgroup_size(WG), WG an override (default 256).
// matches: reference::ops::im2col

struct Params {
    h: u32,
    w: u32,
    patch_size: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> pixels: array<f32>;
@group(0) @binding(1) var<storage, read_write> patches: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let ps = p.patch_size;
    let pw = p.w / ps;
    let cols = 3u * ps * ps;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (ps == 0u || i >= (p.h / ps) * pw * cols) {
        return;
    }
    let patch_i = i / cols;
    let col = i % cols;
    let py = patch_i / pw;
    let px = patch_i % pw;
    let c = col / (ps * ps);
    let ky = (col / ps) % ps;
    let kx = col % ps;
    patches[i] = pixels[(c * p.h + py * ps + ky) * p.w + px * ps + kx];
}
