//! `matmul.wgsl`: Y = X W^T (+ b) (+ Y), W a GGUF weight decoded on the fly. One dispatch per
//! weight part (parts exist when W is larger than one storage binding).

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, Gpu, PipelineKey, Recorder, Tensor, Weight};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    row_bytes: u32,
    x_stride: u32,
    y_stride: u32,
    c0: u32,
    flags: u32,
    x_offset: u32,
    y_offset: u32,
    _pad: [u32; 2],
}

/// The entry points of `matmul.wgsl`: the same contract, different tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulTiling {
    /// `matmul`: 64 x 64 output tile, 4 x 4 per invocation, K step 32. For GPUs.
    T64,
    /// `matmul_128`: 128 x 128 output tile, 16 x 16 per invocation, K step 16, vec4 workgroup
    /// memory. For CPU adapters (lavapipe), where workgroup-memory reads dominate (docs/perf.md).
    T128,
}

impl MatmulTiling {
    pub const ALL: [MatmulTiling; 2] = [MatmulTiling::T64, MatmulTiling::T128];

    /// The tiling for this adapter: `T128` on a CPU (measured on lavapipe, docs/perf.md), `T64`
    /// elsewhere (more workgroups to fill a GPU at prefill sizes).
    pub fn for_gpu(gpu: &Gpu) -> MatmulTiling {
        if gpu.is_cpu_adapter() { MatmulTiling::T128 } else { MatmulTiling::T64 }
    }

    fn entry(self) -> &'static str {
        match self {
            MatmulTiling::T64 => "matmul",
            MatmulTiling::T128 => "matmul_128",
        }
    }

    /// Output rows (and columns) of one workgroup's tile.
    fn tile(self) -> u32 {
        match self {
            MatmulTiling::T64 => 64,
            MatmulTiling::T128 => 128,
        }
    }
}

/// Where X and Y live inside their buffers, and what to add. Strides default to the weight's
/// widths (`x_stride = n_in`, `y_stride = n_out`) when zero.
#[derive(Clone, Copy, Default)]
pub struct MatmulOpts<'a> {
    pub bias: Option<&'a Tensor>,
    /// Add the product to what Y holds (a fused residual add).
    pub accumulate: bool,
    /// Y = silu(Y) * the product: Y holds the gate of a SwiGLU and the weight is its up
    /// projection (a SwiGLU fused into the epilogue, `reference::ops::swiglu`). Not with
    /// `accumulate`.
    pub gated: bool,
    /// Element offset of X[0, 0] and Y[0, 0].
    pub x_offset: usize,
    pub y_offset: usize,
    /// Elements between rows of X and of Y (0: the weight's n_in / n_out).
    pub x_stride: usize,
    pub y_stride: usize,
}

impl MatmulOpts<'_> {
    /// The shaders' `Params::flags`: bit 0 bias, bit 1 accumulate, bit 2 gated.
    pub(crate) fn flags(&self, kernel: &'static str) -> Result<u32, Error> {
        if self.accumulate && self.gated {
            return Err(Error::Invalid { kernel, what: "accumulate and gated together".into() });
        }
        Ok(self.bias.is_some() as u32 | (self.accumulate as u32) << 1 | (self.gated as u32) << 2)
    }
}

/// At most this many rows of X go to `matvec.wgsl` instead of the tiled GEMM. Measured on lavapipe
/// (docs/perf.md, matvec): the GEMV is faster at every m <= 8 for decode-sized weights (the tiles
/// pad m to 64), and 8 is the GEMV's largest M.
pub const MATMUL_MATVEC_MAX_M: usize = super::matvec::MATVEC_MAX_M;

/// `Y[r, o] = sum_k X[r, k] * W[o, k]` for `m` rows: X `[m, w.n_in]`, Y `[m, w.n_out]`. Routes
/// `m <= MATMUL_MATVEC_MAX_M` (decode) to [`super::matvec()`], the rest to [`matmul_tiled`].
pub fn matmul(rec: &mut Recorder, x: &Tensor, w: &Weight, y: &Tensor, m: usize, opts: MatmulOpts) -> Result<(), Error> {
    if m <= MATMUL_MATVEC_MAX_M {
        return super::matvec::matvec(rec, x, w, y, m, opts);
    }
    matmul_tiled(rec, x, w, y, m, opts)
}

/// The tiled GEMM of `matmul.wgsl`, whatever m (the contract of [`matmul`]), tiled for the
/// adapter ([`MatmulTiling::for_gpu`]).
pub fn matmul_tiled(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Weight,
    y: &Tensor,
    m: usize,
    opts: MatmulOpts,
) -> Result<(), Error> {
    let tiling = MatmulTiling::for_gpu(rec.gpu());
    matmul_tiled_with(rec, x, w, y, m, opts, tiling)
}

/// [`matmul_tiled`] with a chosen tiling (tests run every one; benchmarks compare them).
pub fn matmul_tiled_with(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Weight,
    y: &Tensor,
    m: usize,
    opts: MatmulOpts,
    tiling: MatmulTiling,
) -> Result<(), Error> {
    let key = PipelineKey {
        shader: "matmul",
        entry: tiling.entry(),
        constants: vec![("W_TYPE", f64::from(w.ty.id()).to_bits())],
    };
    let tile = tiling.tile();
    let flags = opts.flags("matmul")?;
    let x_stride = if opts.x_stride == 0 { w.n_in } else { opts.x_stride };
    let y_stride = if opts.y_stride == 0 { w.n_out } else { opts.y_stride };
    for part in &w.parts {
        let params = Params {
            m: m as u32,
            n: part.n_rows as u32,
            k: w.n_in as u32,
            row_bytes: w.row_bytes() as u32,
            x_stride: x_stride as u32,
            y_stride: y_stride as u32,
            c0: part.row_start as u32,
            flags,
            x_offset: opts.x_offset as u32,
            y_offset: opts.y_offset as u32,
            _pad: [0; 2],
        };
        let bias = opts.bias.map_or(&part.buffer, |b| b.buffer());
        let groups = [(part.n_rows as u32).div_ceil(tile), (m as u32).div_ceil(tile), 1];
        rec.dispatch(&key, &[x.buffer(), &part.buffer, bias, y.buffer()], &params, groups)?;
    }
    Ok(())
}
