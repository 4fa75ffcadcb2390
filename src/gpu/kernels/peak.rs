//! The device's best cases, which docs/perf.md and `glimpse bench` compare the model's kernels with.
//! Benchmarks call them; models never do.
//! - `gemm_f32_peak.wgsl`: C = A B with A `[m, k]` and B `[k, n]` plain f32, the peak GEMM.
//! - `read_peak.wgsl`: an XOR fold of a buffer, the shader read rate that bounds a GEMV.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, Gpu, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

/// Which entry point of `gemm_f32_peak.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakTiling {
    /// `gemm_f32_peak_tiled`: 128 x 128 tiles, 16 x 16 outputs per invocation, vec4 workgroup
    /// memory along k (the structure of `matmul_128`).
    T128,
    /// `gemm_f32_peak_tiled4`: 64 x 64 tiles, 4 x 4 outputs per invocation (that of `matmul`).
    T64,
}

impl PeakTiling {
    pub const ALL: [PeakTiling; 2] = [PeakTiling::T128, PeakTiling::T64];

    /// The tiling for the adapter's kind, as `MatmulTiling::for_gpu` chooses (docs/perf.md).
    pub fn for_gpu(gpu: &Gpu) -> PeakTiling {
        if gpu.is_cpu_adapter() { PeakTiling::T128 } else { PeakTiling::T64 }
    }
}

/// `C[r, c] = sum_k A[r, k] * B[k, c]`: A `[m, k]`, B `[k, n]`, C `[m, n]`, all row-major from
/// element 0; `k` a multiple of 4.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_peak(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    tiling: PeakTiling,
) -> Result<(), Error> {
    if !k.is_multiple_of(4) || a.len() < m * k || b.len() < k * n || c.len() < m * n {
        return Err(Error::Invalid {
            kernel: "gemm_f32_peak",
            what: format!("m={m} n={n} k={k} (k % 4 == 0) with A {}, B {}, C {} elements", a.len(), b.len(), c.len()),
        });
    }
    let params = Params { m: m as u32, n: n as u32, k: k as u32, _pad: 0 };
    let (entry, tile) = match tiling {
        PeakTiling::T128 => ("gemm_f32_peak_tiled", 128),
        PeakTiling::T64 => ("gemm_f32_peak_tiled4", 64),
    };
    let key = PipelineKey { shader: "gemm_f32_peak", entry, constants: vec![] };
    let groups = [(n as u32).div_ceil(tile), (m as u32).div_ceil(tile), 1];
    rec.dispatch(&key, &[a.buffer(), b.buffer(), c.buffer()], &params, groups)
}

/// Which entry point of `read_peak.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPattern {
    /// `read_peak_runs`: each invocation reads a contiguous run (CPU adapters).
    Runs,
    /// `read_peak_strided`: adjacent invocations read adjacent vec4s (coalesced, GPUs).
    Strided,
}

impl ReadPattern {
    pub const ALL: [ReadPattern; 2] = [ReadPattern::Runs, ReadPattern::Strided];

    /// The pattern a device of this kind reads fastest with.
    pub fn for_gpu(gpu: &Gpu) -> ReadPattern {
        if gpu.is_cpu_adapter() { ReadPattern::Runs } else { ReadPattern::Strided }
    }
}

/// Invocations per workgroup of `read_peak.wgsl`.
const READ_WG: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReadParams {
    threads: u32,
    per: u32,
    _pad: [u32; 2],
}

/// `dst[g]` = the XOR of the words invocation g of `threads` reads, each reading `per` of the
/// `threads * per` vec4s at the start of `src` (16 bytes each) in `pattern`; `threads` a multiple
/// of 64.
pub fn read_peak(
    rec: &mut Recorder,
    src: &Tensor,
    dst: &Tensor,
    threads: usize,
    per: usize,
    pattern: ReadPattern,
) -> Result<(), Error> {
    if threads == 0 || !threads.is_multiple_of(READ_WG) || src.len() < 4 * threads * per || dst.len() < threads {
        return Err(Error::Invalid {
            kernel: "read_peak",
            what: format!(
                "{threads} invocations (a multiple of {READ_WG}) x {per} vec4s with src {} and dst {} words",
                src.len(),
                dst.len()
            ),
        });
    }
    let params = ReadParams { threads: threads as u32, per: per as u32, _pad: [0; 2] };
    let entry = match pattern {
        ReadPattern::Runs => "read_peak_runs",
        ReadPattern::Strided => "read_peak_strided",
    };
    let key = PipelineKey { shader: "read_peak", entry, constants: vec![] };
    rec.dispatch(&key, &[src.buffer(), dst.buffer()], &params, [(threads / READ_WG) as u32, 1, 1])
}
