//! `attention_received.wgsl`: the head-mean softmax attention each key column receives from a
//! set of query rows, in two passes (row log-sum-exp, then column sums), no score matrix stored.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Error, PipelineKey, Recorder, Tensor};

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
    k_stride: u32,
    k0: u32,
    n_cols: u32,
    lse_offset: u32,
    scale: f32,
    max_offset: u32,
}

/// Which rows and columns to score. Query row `i` of head `h` is
/// `q[q_offset + i * q_stride + h * head_dim ..][..head_dim]`; key `j` of KV head `hk` is
/// `k[k_offset + j * k_stride + hk * head_dim ..]`. Offsets and strides in f32 units, multiples
/// of 4. Columns `k0 .. k0 + n_cols` are scored (keys `0 .. n_kv` enter each row's softmax).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceivedArgs {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Query `i` sits at position `pos0 + i` and sees keys `0..=pos0 + i` only.
    pub causal: bool,
    pub pos0: usize,
    pub q_offset: usize,
    pub q_stride: usize,
    pub k_offset: usize,
    pub k_stride: usize,
    pub k0: usize,
    pub n_cols: usize,
}

const WG: usize = 64;
const MAX_HEAD_DIM: usize = 128;

/// Elements of `stats` the call needs: the scores, then `n_head * n_q` row normalisers, then
/// (for [`attention_received_max`]) the maxima at [`received_max_offset`].
pub fn received_stats_len(a: &ReceivedArgs) -> usize {
    received_max_offset(a) + a.n_cols
}

/// Where [`attention_received_max`] writes its maxima in `stats`.
pub fn received_max_offset(a: &ReceivedArgs) -> usize {
    a.n_cols.next_multiple_of(4) + a.n_head * a.n_q
}

/// `stats[c]` = the attention key `k0 + c` receives, summed over the query rows, averaged over
/// heads (`stats` holds at least [`received_stats_len`] elements; the rest is scratch).
pub fn attention_received(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    stats: &Tensor,
    a: ReceivedArgs,
) -> Result<(), Error> {
    received(rec, q, k, stats, a, "received")
}

/// As [`attention_received`], and `stats[received_max_offset(a) + c]` = the largest head-mean
/// attention any single query row gives key `k0 + c`. For a few query rows (text rows).
pub fn attention_received_max(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    stats: &Tensor,
    a: ReceivedArgs,
) -> Result<(), Error> {
    received(rec, q, k, stats, a, "received_max")
}

fn received(
    rec: &mut Recorder,
    q: &Tensor,
    k: &Tensor,
    stats: &Tensor,
    a: ReceivedArgs,
    entry: &'static str,
) -> Result<(), Error> {
    let d = a.head_dim;
    let bad = |what: String| Error::Invalid { kernel: "attention_received", what };
    if d == 0 || !d.is_multiple_of(4) || d > MAX_HEAD_DIM {
        return Err(bad(format!("head_dim {d} must be a multiple of 4 in 4..={MAX_HEAD_DIM}")));
    }
    if a.n_head_kv == 0 || !a.n_head.is_multiple_of(a.n_head_kv) {
        return Err(bad(format!("n_head {} is not a multiple of n_head_kv {}", a.n_head, a.n_head_kv)));
    }
    if a.n_q == 0 || a.n_cols == 0 || a.k0 + a.n_cols > a.n_kv {
        return Err(bad(format!("no rows, or columns {}..{} outside the {} keys", a.k0, a.k0 + a.n_cols, a.n_kv)));
    }
    let layout = [a.q_offset, a.q_stride, a.k_offset, a.k_stride];
    if layout.iter().any(|x| x % 4 != 0) {
        return Err(bad(format!("offsets and strides must be multiples of 4: {a:?}")));
    }
    if stats.len() < received_stats_len(&a) {
        return Err(bad(format!("stats holds {} of {} elements", stats.len(), received_stats_len(&a))));
    }
    let lse_offset = a.n_cols.next_multiple_of(4);
    let params = Params {
        n_q: a.n_q as u32,
        n_kv: a.n_kv as u32,
        n_head: a.n_head as u32,
        n_head_kv: a.n_head_kv as u32,
        head_dim: d as u32,
        causal: a.causal as u32,
        pos0: a.pos0 as u32,
        q_offset: a.q_offset as u32,
        q_stride: a.q_stride as u32,
        k_offset: a.k_offset as u32,
        k_stride: a.k_stride as u32,
        k0: a.k0 as u32,
        n_cols: a.n_cols as u32,
        lse_offset: lse_offset as u32,
        scale: 1.0 / (d as f32).sqrt(),
        max_offset: received_max_offset(&a) as u32,
    };
    let c = |name: &'static str, value: usize| (name, (value as f64).to_bits());
    let constants = vec![c("HEAD_DIM", d), c("WG", WG)];
    let buffers = [q.buffer(), k.buffer(), stats.buffer()];
    let lse = PipelineKey { shader: "attention_received", entry: "row_lse", constants: constants.clone() };
    rec.dispatch(&lse, &buffers, &params, [a.n_q.div_ceil(WG) as u32, a.n_head as u32, 1])?;
    let cols = PipelineKey { shader: "attention_received", entry, constants };
    rec.dispatch(&cols, &buffers, &params, [a.n_cols.div_ceil(WG) as u32, 1, 1])
}
