// rope.wgsl — rotary position embedding, in place. For token t < n_tokens at position
// positions[t], head h < n_head and pair j < rope_dim / 2, with theta = positions[t] * freq[j]:
//   (a, b) <- (a cos(theta) - b sin(theta), a sin(theta) + b cos(theta))
// where (a, b) are head dims (2j, 2j + 1) in mode 0 (adjacent pairs: llama-arch GGUFs, whose q/k
// were permuted at conversion) or (j, j + rope_dim / 2) in mode 1 (halves: qwen2, NEOX).
// Dims from rope_dim to head_dim are left alone.
// freq[j] = base^(-2j / rope_dim) comes from the host, computed with the reference's own f32
// expression: a GPU pow is exp2(y * log2(x)), a few ulps off, and at position 2000 one ulp of
// freq is already ~1e-4 rad. theta = f32(pos) * freq[j] is then the same correctly rounded product
// as on the CPU, and the angle is reduced mod 2 pi here (three-part Cody-Waite) because GPU sin/cos
// are only accurate on [-pi, pi].
// @binding(0) x: array<f32> read_write  x[offset + t * row_stride + h * head_dim + i]
// @binding(1) positions: array<u32> read [n_tokens]
// @binding(2) p: Params uniform {n_tokens, n_head, head_dim, rope_dim, offset, row_stride, mode,
//                                _pad, freq: array<vec4<f32>, 32> (freq[j] = freq[j / 4][j % 4])}
// dispatch grid_1d(ceil(n_tokens * n_head * rope_dim / 2 / WG)); one invocation per pair, linear id
// ((wid.x + wid.y * num_workgroups.x) * WG + lid), pairs fastest, then heads, then tokens;
// @workgroup_size(WG), WG an override (default 64); f32 throughout.
// matches: reference::ops::rope_pairs (mode 0), reference::ops::rope_halves (mode 1)

struct Params {
    n_tokens: u32,
    n_head: u32,
    head_dim: u32,
    rope_dim: u32,
    offset: u32,
    row_stride: u32,
    mode: u32, // 0: adjacent pairs; 1: halves
    _pad: u32,
    freq: array<vec4<f32>, 32>,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 64u;

// 2 pi = C1 + C2 + C3: C1 and C2 have at most 11 significant bits, so k * C1 and k * C2 are exact
// for k < 2^13 (|theta| up to ~51000); the residual beyond C3 is 7e-15.
const TWO_PI_C1: f32 = 6.28125;
const TWO_PI_C2: f32 = 0.0019350051879882812;
const TWO_PI_C3: f32 = 3.019916050561733e-7;
const INV_TWO_PI: f32 = 0.15915494309189535;

@compute @workgroup_size(WG)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let half = p.rope_dim / 2u;
    let id = (wid.x + wid.y * nwg.x) * WG + lid;
    if (half == 0u || id >= p.n_tokens * p.n_head * half) {
        return;
    }
    let j = id % half;
    let th = id / half;
    let h = th % p.n_head;
    let t = th / p.n_head;

    let theta = f32(positions[t]) * p.freq[j / 4u][j % 4u];
    let k = round(theta * INV_TWO_PI);
    let r = ((theta - k * TWO_PI_C1) - k * TWO_PI_C2) - k * TWO_PI_C3;
    let s = sin(r);
    let c = cos(r);

    let base = p.offset + t * p.row_stride + h * p.head_dim;
    var ia = base + 2u * j;
    var ib = ia + 1u;
    if (p.mode == 1u) {
        ia = base + j;
        ib = ia + half;
    }
    let a = x[ia];
    let b = x[ib];
    x[ia] = a * c - b * s;
    x[ib] = a * s + b * c;
}
