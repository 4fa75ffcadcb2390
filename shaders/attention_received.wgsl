// attention_received.wgsl — attention statistics for token pruning, without the N x N matrix:
// for a set of query rows and a range of key columns, the head-mean post-softmax attention each
// key receives, summed over the query rows. VisionZip scores encoders without CLS by this
// (every row), CLS encoders by the CLS row alone (n_q = 1: the head mean of the CLS attention,
// rank-equal to its head sum); FastV / MustDrop read text rows against image columns.
// s[h, i, j] = (Q[i, h] . K[j, hk]) / sqrt(d), hk = h / (n_head / n_head_kv) (grouped-query).
// causal: query i sits at position pos0 + i and sees keys j <= pos0 + i; else all n_kv keys.
// Two passes over Q K^T, both through `stats`:
//   row_lse:  stats[lse_offset + h * n_q + i] = log sum_{j visible} exp(s[h, i, j])
//   received: stats[j - k0] = sum_i (1 / n_head) sum_h exp(s[h, i, j] - lse[h, i]),
//             for j in k0 .. k0 + n_cols (keys a query does not see contribute 0)
//   received_max: the same sums, and stats[max_offset + j - k0] = max_i (1 / n_head) sum_h
//             exp(s[h, i, j] - lse[h, i]) (MustDrop's strongest single text token)
// @binding(0) q: array<vec4<f32>> read        Q[i, h, e] = q[q_offset + i * q_stride + h * d + e]
// @binding(1) k: array<vec4<f32>> read        K[j, hk, e] = k[k_offset + j * k_stride + hk * d + e]
// @binding(2) stats: array<f32> read_write    [n_cols] scores, [n_head * n_q] at lse_offset, and
//                                             for received_max [n_cols] maxima at max_offset
// @binding(3) p: Params uniform {n_q, n_kv, n_head, n_head_kv, head_dim, causal, pos0, q_offset,
//                                q_stride, k_offset, k_stride, k0, n_cols, lse_offset, scale,
//                                max_offset}
// Offsets and strides in f32 units, multiples of 4; HEAD_DIM (override) = p.head_dim, a multiple
// of 4, <= 128.
// entry `row_lse`: dispatch (ceil(n_q / WG), n_head, 1), @workgroup_size(WG): invocation = query
//   row, workgroup y = head. The query row lives in registers; each key row is read by every
//   invocation at the same address (one head per workgroup), online max and sum.
// entry `received`: dispatch (ceil(n_cols / WG), 1, 1): invocation = key column. Per head its key
//   row lives in registers; query rows and their lse are read at the same address by every
//   invocation. Cost of each pass: n_q * n_cols (n_kv) * n_head * d multiply-adds.
// entry `received_max`: as `received`, but query rows outer and heads inner (the head mean of
//   each row is needed for the maximum), so key rows are re-read per query row: for the few
//   text rows of MustDrop, not for all-rows scoring.
// matches: reference::prune::attention_received (all rows), reference::prune::cls_attention (row 0)

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

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override HEAD_DIM: u32 = 64u;
override WG: u32 = 64u;

const MAX_D4: u32 = 32u;
const NEG: f32 = -3.0e38;

fn visible(i: u32) -> u32 {
    if (p.causal != 0u) {
        return min(p.n_kv, p.pos0 + i + 1u);
    }
    return p.n_kv;
}

fn q_at(i: u32, h: u32) -> u32 {
    return (p.q_offset + i * p.q_stride + h * HEAD_DIM) / 4u;
}

fn k_at(j: u32, hk: u32) -> u32 {
    return (p.k_offset + j * p.k_stride + hk * HEAD_DIM) / 4u;
}

@compute @workgroup_size(WG)
fn row_lse(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d4 = HEAD_DIM / 4u;
    let h = wg.y;
    let hk = h / (p.n_head / p.n_head_kv);
    // Invocations past n_q still walk the keys (clamped row) so every load stays uniform.
    let i = wg.x * WG + t;
    let row = min(i, p.n_q - 1u);
    var qr: array<vec4<f32>, MAX_D4>;
    for (var e = 0u; e < d4; e++) {
        qr[e] = q[q_at(row, h) + e];
    }
    let vis = visible(row);
    let n_keys = visible(min(wg.x * WG + WG, p.n_q) - 1u);
    var m = NEG;
    var l = 0.0;
    for (var j = 0u; j < n_keys; j++) {
        let kj = k_at(j, hk);
        var s = 0.0;
        for (var e = 0u; e < d4; e++) {
            s += dot(qr[e], k[kj + e]);
        }
        s *= p.scale;
        if (j < vis) {
            let m_new = max(m, s);
            l = l * exp(m - m_new) + exp(s - m_new);
            m = m_new;
        }
    }
    if (i < p.n_q) {
        stats[p.lse_offset + h * p.n_q + i] = m + log(l);
    }
}

@compute @workgroup_size(WG)
fn received(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d4 = HEAD_DIM / 4u;
    let c = wg.x * WG + t;
    let j = p.k0 + min(c, p.n_cols - 1u);
    var total = 0.0;
    for (var h = 0u; h < p.n_head; h++) {
        let hk = h / (p.n_head / p.n_head_kv);
        var kr: array<vec4<f32>, MAX_D4>;
        for (var e = 0u; e < d4; e++) {
            kr[e] = k[k_at(j, hk) + e];
        }
        for (var i = 0u; i < p.n_q; i++) {
            let qi = q_at(i, h);
            var s = 0.0;
            for (var e = 0u; e < d4; e++) {
                s += dot(q[qi + e], kr[e]);
            }
            s *= p.scale;
            if (j < visible(i)) {
                total += exp(s - stats[p.lse_offset + h * p.n_q + i]);
            }
        }
    }
    if (c < p.n_cols) {
        stats[c] = total / f32(p.n_head);
    }
}

@compute @workgroup_size(WG)
fn received_max(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d4 = HEAD_DIM / 4u;
    let c = wg.x * WG + t;
    let j = p.k0 + min(c, p.n_cols - 1u);
    var total = 0.0;
    var most = 0.0;
    for (var i = 0u; i < p.n_q; i++) {
        var row = 0.0;
        for (var h = 0u; h < p.n_head; h++) {
            let hk = h / (p.n_head / p.n_head_kv);
            let qi = q_at(i, h);
            let kj = k_at(j, hk);
            var s = 0.0;
            for (var e = 0u; e < d4; e++) {
                s += dot(q[qi + e], k[kj + e]);
            }
            s *= p.scale;
            if (j < visible(i)) {
                row += exp(s - stats[p.lse_offset + h * p.n_q + i]);
            }
        }
        row /= f32(p.n_head);
        total += row;
        most = max(most, row);
    }
    if (c < p.n_cols) {
        stats[c] = total;
        stats[p.max_offset + c] = most;
    }
}
