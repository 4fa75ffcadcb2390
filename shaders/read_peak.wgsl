// read_peak.wgsl — dst[g] = the XOR of every word invocation g reads from src: the best case of
// reading memory from a shader, loads and nothing else. It measures the device's shader read
// rate, the ceiling of a GEMV bound by weight bytes (docs/perf.md); no model calls it.
// @binding(0) src: array<vec4<u32>> read        threads * per vec4s
// @binding(1) dst: array<u32> read_write        dst[g], g < threads
// @binding(2) p: Params uniform {threads, per, _, _}; threads a multiple of 64
// Two entry points, chosen per adapter (kernels::peak::ReadPattern); both read every vec4 once:
// read_peak_runs (CPU adapters): invocation g reads the run src[g * per + i], i < per. A CPU
//   adapter loads per invocation, and a run keeps each core on its own cache lines.
// read_peak_strided (GPUs): invocation g reads src[g + i * threads], i < per: adjacent
//   invocations read adjacent vec4s (coalesced).
// dispatch (threads / 64, 1, 1), @workgroup_size(64).
// matches: the XOR fold in tests/it/kernels/read_peak.rs

struct Params {
    threads: u32,
    per: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

fn fold(v: vec4<u32>) -> u32 {
    return v.x ^ v.y ^ v.z ^ v.w;
}

@compute @workgroup_size(64)
fn read_peak_runs(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = vec4<u32>(0u);
    let base = gid.x * p.per;
    for (var i = 0u; i < p.per; i++) {
        acc ^= src[base + i];
    }
    dst[gid.x] = fold(acc);
}

@compute @workgroup_size(64)
fn read_peak_strided(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < p.per; i++) {
        acc ^= src[gid.x + i * p.threads];
    }
    dst[gid.x] = fold(acc);
}
