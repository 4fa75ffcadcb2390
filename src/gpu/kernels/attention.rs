//! `attention.wgsl`: fused multi-head attention with grouped-query heads and an online softmax;
//! the `[n_q, n_kv]` score matrix never exists. Three entry points: on GPUs `attention` tiles
//! queries for prefill and the ViT and `attention_decode` splits keys across a workgroup for a few
//! queries; on CPU adapters `attention_rows` does both (see [`AttentionVariant`]).

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, Gpu, PipelineKey, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_q: u32,
    n_kv: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    causal: u32,
    pos0: u32,
    q_offset: u32,
    q_stride: u32,
    k_offset: u32,
    v_offset: u32,
    kv_stride: u32,
    o_offset: u32,
    o_stride: u32,
    scale: f32,
    _pad: u32,
}

/// Shapes and layout of one attention call. Row `t` of head `h` of Q is
/// `q[q_offset + t * q_stride + h * head_dim ..][..head_dim]`; K and V rows (head `hk`) use
/// `k_offset` / `v_offset` and `kv_stride`; O rows use `o_offset` and `o_stride`. A stride of 0
/// means packed rows (`n_head * head_dim` for Q and O, `n_head_kv * head_dim` for K and V).
/// Offsets and strides are in f32 elements and must be multiples of 4.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionArgs {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Query `t` sees keys `0..=pos0 + t` only.
    pub causal: bool,
    /// Keys cached before this chunk of queries (the position of query 0).
    pub pos0: usize,
    pub q_offset: usize,
    pub q_stride: usize,
    pub k_offset: usize,
    pub v_offset: usize,
    pub kv_stride: usize,
    pub o_offset: usize,
    pub o_stride: usize,
}

/// The largest head_dim the shader's register arrays hold (`MAX_DIMS_PER_LANE * 4`).
pub const ATTENTION_MAX_HEAD_DIM: usize = 128;
/// Invocations per query in the prefill entry (the shader's `TPQ`).
const TPQ: usize = 4;
/// Invocations per workgroup of the decode entry; head_dim <= 4 * DECODE_WG.
const DECODE_WG: usize = 64;
/// At most this many queries use `attention_decode` (one workgroup per query and head). Above
/// it the query tiles of `attention` win: each K/V block they load serves BQ = 16 queries.
/// Measured on lavapipe (docs/perf.md, attention; n_kv = 640, 9/3 heads, d = 64): decode costs
/// about 5 ms per query, a 16-query prefill tile about 23 ms however full, so the cut is at 4.
pub const ATTENTION_DECODE_MAX_Q: usize = 4;
/// Prefill tilings (WG, BK), best first; the first whose workgroup memory fits the device wins.
const PREFILL_TILES: [(usize, usize); 4] = [(64, 32), (64, 16), (32, 16), (32, 8)];

/// Which entry points run attention. Both give the same result; tests run every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionVariant {
    /// `attention` (query tiles, 4 invocations per query) for more than
    /// [`ATTENTION_DECODE_MAX_Q`] queries, else `attention_decode`: for GPUs.
    Tiled,
    /// `attention_rows`: one (query, head) row per invocation, the K/V block read by every
    /// invocation at the same address: for CPU adapters (lavapipe), where that is a broadcast
    /// and per-invocation addresses are gathers (docs/perf.md, attention).
    Rows,
}

impl AttentionVariant {
    pub const ALL: [AttentionVariant; 2] = [AttentionVariant::Tiled, AttentionVariant::Rows];

    /// `Rows` on CPU adapters, else `Tiled`.
    pub fn for_gpu(gpu: &Gpu) -> Self {
        if gpu.is_cpu_adapter() { AttentionVariant::Rows } else { AttentionVariant::Tiled }
    }
}

/// Invocations per workgroup of the rows entry, keys per block (the shader's `RB`), and the
/// fewest (workgroup, key split) pairs worth spreading over a CPU's cores.
const ROWS_WG: usize = 32;
const ROWS_KEY_BLOCK: usize = 16;
const ROWS_MIN_ITEMS: usize = 16;
/// Rows per invocation of the rows entry (the shader's 4).
const ROWS_PER_INVOCATION: usize = 4;

/// Workgroup bytes of the rows entry (its header's formula): K and V blocks, merge buffers.
fn rows_shared_bytes(wg: usize, d: usize) -> usize {
    2 * ROWS_KEY_BLOCK * 4 * d + 16 * wg + 64 * wg
}

/// KS of the rows entry: WG / KS invocations of 4 rows each per workgroup, each walking 1 / KS
/// of the key blocks. `rows` rows (queries x heads of a group) per KV head, `n_kv` keys,
/// `n_kv_heads` workgroup columns. Splits keys until the workgroup is full of invocations and there are
/// ROWS_MIN_ITEMS (workgroup, split) pairs to balance over the cores, but never more splits than
/// key blocks (measured, docs/perf.md: decode 6.9 -> 0.8 ms at n_kv 640 with 32 splits).
fn rows_splits(rows: usize, n_kv: usize, n_kv_heads: usize) -> usize {
    let quads = rows.div_ceil(ROWS_PER_INVOCATION);
    let blocks = n_kv.div_ceil(ROWS_KEY_BLOCK).max(1);
    let mut ks = (ROWS_WG / quads.next_power_of_two()).max(1);
    let items = |ks: usize| quads.div_ceil(ROWS_WG / ks) * n_kv_heads * ks;
    while ks < ROWS_WG && 2 * ks <= blocks && items(ks) < ROWS_MIN_ITEMS {
        ks *= 2;
    }
    ks.min(blocks.next_power_of_two())
}

/// Workgroup bytes of the prefill entry (its header's formula).
fn prefill_shared_bytes(wg: usize, bk: usize, d: usize) -> usize {
    let (bq, d4) = (wg / TPQ, d / 4);
    16 * (bq * (d4 + 1) + bk * (d4 + 1) + bk * d4) + 4 * (bq * (bk + 1) + wg)
}

/// `O = softmax(Q K^T / sqrt(d)) V` per head (see [`AttentionArgs`] for the layouts). `o` must be
/// a different buffer from `q`, `k` and `v`, which may all be the same one.
pub fn attention(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    a: AttentionArgs,
) -> Result<(), Error> {
    let variant = AttentionVariant::for_gpu(rec.gpu());
    attention_variant(rec, q, k, v, o, a, variant)
}

/// [`attention`] with the entry points of `variant` (tests and timing run each).
pub fn attention_variant(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    a: AttentionArgs,
    variant: AttentionVariant,
) -> Result<(), Error> {
    let d = a.head_dim;
    let bad = |message: String| Error::Shader { shader: "attention".into(), message };
    if d == 0 || !d.is_multiple_of(TPQ) || d > ATTENTION_MAX_HEAD_DIM {
        return Err(bad(format!("head_dim {d} must be a multiple of {TPQ} in 4..={ATTENTION_MAX_HEAD_DIM}")));
    }
    if a.n_head_kv == 0 || !a.n_head.is_multiple_of(a.n_head_kv) {
        return Err(bad(format!("n_head {} is not a multiple of n_head_kv {}", a.n_head, a.n_head_kv)));
    }
    // The shader reads and writes whole vec4s.
    let q_stride = if a.q_stride == 0 { a.n_head * d } else { a.q_stride };
    let kv_stride = if a.kv_stride == 0 { a.n_head_kv * d } else { a.kv_stride };
    let o_stride = if a.o_stride == 0 { a.n_head * d } else { a.o_stride };
    let layout = [a.q_offset, q_stride, a.k_offset, a.v_offset, kv_stride, a.o_offset, o_stride];
    if layout.iter().any(|x| x % 4 != 0) {
        return Err(bad(format!("offsets and strides must be multiples of 4 (q, k, v, o rows are vec4s): {a:?}")));
    }
    let params = Params {
        n_q: a.n_q as u32,
        n_kv: a.n_kv as u32,
        n_head: a.n_head as u32,
        n_head_kv: a.n_head_kv as u32,
        head_dim: d as u32,
        causal: a.causal as u32,
        pos0: a.pos0 as u32,
        q_offset: a.q_offset as u32,
        q_stride: q_stride as u32,
        k_offset: a.k_offset as u32,
        v_offset: a.v_offset as u32,
        kv_stride: kv_stride as u32,
        o_offset: a.o_offset as u32,
        o_stride: o_stride as u32,
        scale: 1.0 / (d as f32).sqrt(),
        _pad: 0,
    };
    let buffers = [q.buffer(), k.buffer(), v.buffer(), o.buffer()];
    let c = |name: &'static str, value: usize| (name, (value as f64).to_bits());
    let limit = rec.gpu().limits.max_compute_workgroup_storage_size as usize;
    // Too little workgroup memory for the rows entry (not on lavapipe): the tiled entries.
    if variant == AttentionVariant::Rows && rows_shared_bytes(ROWS_WG, d) <= limit {
        // Rows (query, head of the group) per KV head; each workgroup takes WG / KS invocations'
        // worth of them, ROWS_PER_INVOCATION each.
        let rows = a.n_q * (a.n_head / a.n_head_kv);
        let ks = rows_splits(rows, a.n_kv, a.n_head_kv);
        let key = PipelineKey {
            shader: "attention",
            entry: "attention_rows",
            constants: vec![c("HEAD_DIM", d), c("WG", ROWS_WG), c("KS", ks)],
        };
        let per_group = ROWS_WG / ks * ROWS_PER_INVOCATION;
        let groups = [rows.div_ceil(per_group) as u32, a.n_head_kv as u32, 1];
        return rec.dispatch(&key, &buffers, &params, groups);
    }
    if a.n_q <= ATTENTION_DECODE_MAX_Q {
        let key = PipelineKey {
            shader: "attention",
            entry: "attention_decode",
            constants: vec![c("HEAD_DIM", d), c("WG", DECODE_WG)],
        };
        return rec.dispatch(&key, &buffers, &params, [a.n_q as u32, a.n_head as u32, 1]);
    }
    let (wg, bk) = PREFILL_TILES
        .into_iter()
        .find(|&(wg, bk)| prefill_shared_bytes(wg, bk, d) <= limit)
        .ok_or_else(|| bad(format!("no tiling for head_dim {d} fits {limit} bytes of workgroup memory")))?;
    let key = PipelineKey {
        shader: "attention",
        entry: "attention",
        constants: vec![c("HEAD_DIM", d), c("WG", wg), c("BK", bk)],
    };
    let groups = [a.n_q.div_ceil(wg / TPQ) as u32, a.n_head as u32, 1];
    rec.dispatch(&key, &buffers, &params, groups)
}
