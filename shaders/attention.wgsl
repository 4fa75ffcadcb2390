// attention.wgsl — O[t, h] = softmax_j(Q[t, h] . K[j, hk] / sqrt(d)) V[j, hk], fused: no score
// matrix is stored. Online softmax (flash attention): a running max m, sum l and output o per
// query, rescaled by exp(m_old - m_new) as each key block arrives. f32 throughout.
// Grouped-query heads: hk = h / (n_head / n_head_kv). causal: query t (at position pos0 + t)
// sees keys 0..=pos0 + t (pos0 = keys cached before this chunk); else all n_kv keys.
// Rows may sit anywhere in their buffers (a fused QKV buffer, or a KV cache [n_ctx, n_head_kv d]),
// but every offset and stride is a multiple of 4: the buffers are read and written as vec4s.
// @binding(0) q: array<vec4<f32>> read        Q[t, h, i] = q[q_offset + t * q_stride + h * d + i]
// @binding(1) k: array<vec4<f32>> read        K[j, hk, i] = k[k_offset + j * kv_stride + hk * d + i]
// @binding(2) v: array<vec4<f32>> read        V[j, hk, i] = v[v_offset + j * kv_stride + hk * d + i]
// @binding(3) o: array<vec4<f32>> read_write  O[t, h, i] = o[o_offset + t * o_stride + h * d + i]
//                                             (indices in f32 units; q, k, v may be one buffer,
//                                             o must be another)
// @binding(4) p: Params uniform {n_q, n_kv, n_head, n_head_kv, head_dim, causal, pos0, q_offset,
//                                q_stride, k_offset, v_offset, kv_stride, o_offset, o_stride, scale, _}
// Overrides: HEAD_DIM (= p.head_dim, a multiple of 4, <= 128), WG (invocations per workgroup),
// BK (prefill keys per block, a multiple of 4, <= 64), KS (key splits, attention_rows; a power of
// two dividing WG).
//
// entry `attention` (prefill, ViT): dispatch (ceil(n_q / BQ), n_head, 1), @workgroup_size(WG),
//   BQ = WG / 4 queries of one head per workgroup, 4 invocations per query. Keys stream through
//   workgroup memory in blocks of BK: the block's K and V rows are loaded coalesced, invocation
//   (query qi, lane s) scores keys s, s + 4, ... of the block, then accumulates P V into output
//   vec4 columns s, s + 4, .... Workgroup memory, in bytes:
//   16 (BQ (d/4 + 1) + BK (d/4 + 1) + BK d/4) + 4 (BQ (BK + 1) + WG).
// entry `attention_decode` (few queries): dispatch (n_q, n_head, 1), @workgroup_size(WG): one
//   workgroup per query and head. In each block of WG keys invocation j scores key j; for P V,
//   invocation t owns vec4 column t % (d/4) of keys t / (d/4), + WG / (d/4), ... (V rows read
//   coalesced); the WG / (d/4) partial outputs are summed at the end. Workgroup memory
//   4 d + 4 WG + 16 WG bytes.
// entry `attention_rows` (CPU adapters; kernels::attention::AttentionVariant): rows are the
//   (query, head) pairs of one KV head hk, row r = query r / g of head hk g + r % g
//   (g = n_head / n_head_kv). Dispatch (ceil(n_q g / (4 WG / KS)), n_head_kv, 1),
//   @workgroup_size(WG): WG / KS invocations of 4 consecutive rows each, held in registers
//   (queries, outputs, running max and sum), times KS key splits. Keys go in blocks of RB = 16:
//   the 4 rows' 16 scores are 4 mat4x4 (q chunk * mat4x4(4 K rows)), one online-softmax update
//   per block, then mat4x4(4 V rows) * p; every K or V vec4 read serves 4 rows x 4 keys. KS = 1:
//   the block is loaded coalesced into workgroup memory and read by all invocations at the same
//   address. KS > 1 (few rows, decode): split s reads blocks s, s + KS, ... straight from k and v
//   and the splits' states are merged through workgroup memory at the end (on a GPU those reads
//   are uncoalesced; the variant is for CPU adapters, where every load is per invocation
//   anyway). Workgroup memory 2 * 16 * 4 d + 16 WG + 64 WG bytes.
// matches: reference::ops::attention

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
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

override HEAD_DIM: u32 = 64u;
override WG: u32 = 64u;
override BK: u32 = 32u;
override KS: u32 = 1u;

// Invocations per query in the prefill kernel.
const TPQ: u32 = 4u;
// Register arrays are sized for the largest head_dim (128) and BK (64); loops run to the
// overrides, so a driver that unrolls them keeps only what is used.
const MAX_COLS_PER_LANE: u32 = 8u; // vec4 columns: 128 / 4 / TPQ
const MAX_KEYS_PER_LANE: u32 = 16u; // 64 / TPQ
const MAX_D4: u32 = 32u; // vec4 columns of the largest head_dim (rows entry)
const RB: u32 = 16u; // keys per block of the rows entry
// Masked scores and the initial running max. Finite, so exp(m - m_new) never sees inf - inf.
const NEG: f32 = -3.0e38;

// Number of keys query t may see.
fn visible(t: u32) -> u32 {
    if (p.causal != 0u) {
        return min(p.n_kv, p.pos0 + t + 1u);
    }
    return p.n_kv;
}

// vec4 index of Q[t, h, 0], K[j, hk, 0], V[j, hk, 0], O[t, h, 0] (offsets and strides are
// multiples of 4).
fn q_at(t: u32, h: u32) -> u32 {
    return (p.q_offset + t * p.q_stride + h * HEAD_DIM) / 4u;
}
fn kv_at(offset: u32, j: u32, hk: u32) -> u32 {
    return (offset + j * p.kv_stride + hk * HEAD_DIM) / 4u;
}
fn o_at(t: u32, h: u32) -> u32 {
    return (p.o_offset + t * p.o_stride + h * HEAD_DIM) / 4u;
}

// ---- prefill: BQ queries x one head per workgroup ---------------------------------------------
// Rows of qs and ks are padded by one vec4 against bank conflicts.
var<workgroup> qs: array<vec4<f32>, (WG / TPQ) * (HEAD_DIM / 4u + 1u)>; // [BQ][d/4 + 1], pre-scaled
var<workgroup> ks: array<vec4<f32>, BK * (HEAD_DIM / 4u + 1u)>; // [BK][d/4 + 1]
var<workgroup> vs: array<vec4<f32>, BK * (HEAD_DIM / 4u)>; // [BK][d/4]
var<workgroup> ps: array<f32, (WG / TPQ) * (BK + 1u)>; // [BQ][BK + 1]: exp(s - m_new)
var<workgroup> mx: array<f32, WG>; // per-invocation block max

@compute @workgroup_size(WG)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let bq = WG / TPQ;
    let d4 = HEAD_DIM / 4u;
    let rs = d4 + 1u;
    let h = wg.y;
    let hk = h / (p.n_head / p.n_head_kv);
    let q0 = wg.x * bq;
    let qi = t / TPQ;
    let lane = t % TPQ;
    let qt = q0 + qi;

    for (var e = t; e < bq * d4; e += WG) {
        let r = e / d4;
        let i = e % d4;
        var val = vec4<f32>(0.0);
        if (q0 + r < p.n_q) {
            val = q[q_at(q0 + r, h) + i] * p.scale;
        }
        qs[r * rs + i] = val;
    }
    // Keys past the last one any query of this tile sees are skipped (uniform per workgroup).
    let kv_end = visible(min(q0 + bq, p.n_q) - 1u);
    let vis = visible(qt);

    var m = NEG;
    var l = 0.0;
    var acc: array<vec4<f32>, MAX_COLS_PER_LANE>; // output columns lane, lane + TPQ, ...
    for (var j0 = 0u; j0 < kv_end; j0 += BK) {
        for (var e = t; e < BK * d4; e += WG) {
            let r = e / d4;
            let i = e % d4;
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (j0 + r < p.n_kv) {
                kv = k[kv_at(p.k_offset, j0 + r, hk) + i];
                vv = v[kv_at(p.v_offset, j0 + r, hk) + i];
            }
            ks[r * rs + i] = kv;
            vs[r * d4 + i] = vv;
        }
        workgroupBarrier();

        // Scores of keys lane, lane + TPQ, ... of the block; each q chunk serves them all.
        var s: array<f32, MAX_KEYS_PER_LANE>;
        for (var i = 0u; i < d4; i++) {
            let qv = qs[qi * rs + i];
            for (var c = 0u; c < BK / TPQ; c++) {
                s[c] += dot(qv, ks[(lane + TPQ * c) * rs + i]);
            }
        }
        var m_lane = NEG;
        for (var c = 0u; c < BK / TPQ; c++) {
            s[c] = select(NEG, s[c], j0 + lane + TPQ * c < vis);
            m_lane = max(m_lane, s[c]);
        }
        mx[t] = m_lane;
        workgroupBarrier();

        var m_new = m;
        for (var c = 0u; c < TPQ; c++) {
            m_new = max(m_new, mx[qi * TPQ + c]);
        }
        for (var c = 0u; c < BK / TPQ; c++) {
            let r = lane + TPQ * c;
            ps[qi * (BK + 1u) + r] = select(0.0, exp(s[c] - m_new), j0 + r < vis);
        }
        workgroupBarrier();

        let alpha = exp(m - m_new);
        m = m_new;
        l *= alpha;
        for (var c = 0u; c < MAX_COLS_PER_LANE; c++) {
            acc[c] *= alpha;
        }
        for (var r = 0u; r < BK; r++) {
            let pr = ps[qi * (BK + 1u) + r];
            l += pr;
            for (var c = 0u; c < (d4 + TPQ - 1u) / TPQ; c++) {
                let col = lane + TPQ * c;
                if (col < d4) {
                    acc[c] = fma(vec4<f32>(pr), vs[r * d4 + col], acc[c]);
                }
            }
        }
        workgroupBarrier(); // before the next block overwrites ks, vs, ps
    }

    if (qt < p.n_q) {
        // No visible key (n_kv = 0): the reference's empty sum, 0.
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let base = o_at(qt, h);
        for (var c = 0u; c < (d4 + TPQ - 1u) / TPQ; c++) {
            let col = lane + TPQ * c;
            if (col < d4) {
                o[base + col] = acc[c] * inv;
            }
        }
    }
}

// ---- decode: one query x one head per workgroup -----------------------------------------------
var<workgroup> qd: array<vec4<f32>, HEAD_DIM / 4u>; // pre-scaled
var<workgroup> sd: array<f32, WG>; // block scores, then exp(s - m_new)
var<workgroup> red: array<vec4<f32>, WG>; // per-group partial outputs, [group][d/4]

@compute @workgroup_size(WG)
fn attention_decode(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d4 = HEAD_DIM / 4u;
    let qt = wg.x;
    let h = wg.y;
    let hk = h / (p.n_head / p.n_head_kv);
    for (var i = t; i < d4; i += WG) {
        qd[i] = q[q_at(qt, h) + i] * p.scale;
    }
    let vis = visible(qt);
    // For P V, invocation t owns column t % (d/4) of the keys t / (d/4) + n_groups * i.
    let col = t % d4;
    let g = t / d4;
    let n_groups = WG / d4;
    workgroupBarrier();

    var m = NEG;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var j0 = 0u; j0 < vis; j0 += WG) {
        let j = j0 + t;
        var s = NEG;
        if (j < vis) {
            let kb = kv_at(p.k_offset, j, hk);
            var dot4 = vec4<f32>(0.0);
            for (var i = 0u; i < d4; i++) {
                dot4 = fma(qd[i], k[kb + i], dot4);
            }
            s = dot4.x + dot4.y + dot4.z + dot4.w;
        }
        sd[t] = s;
        workgroupBarrier();
        var m_new = m;
        for (var r = 0u; r < WG; r++) {
            m_new = max(m_new, sd[r]);
        }
        workgroupBarrier(); // every invocation has read the scores
        sd[t] = select(0.0, exp(s - m_new), j < vis);
        workgroupBarrier();

        let alpha = exp(m - m_new);
        m = m_new;
        l *= alpha;
        acc *= alpha;
        let n_r = min(WG, vis - j0);
        for (var r = 0u; r < n_r; r++) {
            l += sd[r];
        }
        if (g < n_groups) {
            for (var r = g; r < n_r; r += n_groups) {
                acc = fma(vec4<f32>(sd[r]), v[kv_at(p.v_offset, j0 + r, hk) + col], acc);
            }
        }
        workgroupBarrier(); // before the next block overwrites sd
    }

    red[t] = acc;
    workgroupBarrier();
    if (t < d4) {
        var sum = vec4<f32>(0.0);
        for (var gi = 0u; gi < n_groups; gi++) {
            sum += red[gi * d4 + t];
        }
        let inv = select(0.0, 1.0 / l, l > 0.0);
        o[o_at(qt, h) + t] = sum * inv;
    }
}

// ---- rows (CPU adapters): 4 (query, head) rows per invocation, 16-key blocks ------------------
// lavapipe turns every storage or workgroup load whose address is not a compile-time constant
// into one scalar load per invocation, so the cost is the number of loads per FMA: this entry
// keeps scores in mat4x4s indexed by constants and reuses each loaded vec4 16 times.
// Key c of the block at vec4 column i: kb[c * d/4 + i] (likewise vb).
var<workgroup> kb: array<vec4<f32>, RB * (HEAD_DIM / 4u)>;
var<workgroup> vb: array<vec4<f32>, RB * (HEAD_DIM / 4u)>;

// One row's 16 block scores (s[g][j]: key 4g + j) += its query chunk against the keys' chunk.
fn qk16(s: mat4x4<f32>, qv: vec4<f32>, k0: mat4x4<f32>, k1: mat4x4<f32>, k2: mat4x4<f32>, k3: mat4x4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(s[0] + qv * k0, s[1] + qv * k1, s[2] + qv * k2, s[3] + qv * k3);
}

// A row's block after the online-softmax update: p = exp(s - m) (0 where masked), the new
// running max m and sum l, and alpha = exp(m_old - m), the factor for the output so far.
struct RowBlock {
    p: mat4x4<f32>,
    m: f32,
    l: f32,
    alpha: f32,
}

// Masks keys j0 + c >= vis and folds the block into the running max m_old and sum l_old.
fn online(s: mat4x4<f32>, j0: u32, vis: u32, m_old: f32, l_old: f32) -> RowBlock {
    let c = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    let vis4 = vec4<u32>(vis);
    let k0 = c < vis4;
    let k1 = c + vec4<u32>(4u) < vis4;
    let k2 = c + vec4<u32>(8u) < vis4;
    let k3 = c + vec4<u32>(12u) < vis4;
    let neg = vec4<f32>(NEG);
    let s0 = select(neg, s[0], k0);
    let s1 = select(neg, s[1], k1);
    let s2 = select(neg, s[2], k2);
    let s3 = select(neg, s[3], k3);
    let mx4 = max(max(s0, s1), max(s2, s3));
    let m = max(m_old, max(max(mx4.x, mx4.y), max(mx4.z, mx4.w)));
    let zero = vec4<f32>(0.0);
    let mm = vec4<f32>(m);
    let pm = mat4x4<f32>(
        select(zero, exp(s0 - mm), k0),
        select(zero, exp(s1 - mm), k1),
        select(zero, exp(s2 - mm), k2),
        select(zero, exp(s3 - mm), k3),
    );
    let alpha = exp(m_old - m);
    let ps = pm[0] + pm[1] + pm[2] + pm[3];
    return RowBlock(pm, m, l_old * alpha + (ps.x + ps.y + ps.z + ps.w), alpha);
}

// acc * alpha + sum over the block's 16 keys c of p[c] V[c] (vec4 column i).
fn pv16(acc: vec4<f32>, b: RowBlock, v0: mat4x4<f32>, v1: mat4x4<f32>, v2: mat4x4<f32>, v3: mat4x4<f32>) -> vec4<f32> {
    return acc * b.alpha + v0 * b.p[0] + v1 * b.p[1] + v2 * b.p[2] + v3 * b.p[3];
}

// Row r of head group hk: query r / g of head hk g + r % g.
fn row_q(r: u32, g: u32, hk: u32) -> u32 {
    return q_at(r / g, hk * g + r % g);
}
fn row_o(r: u32, g: u32, hk: u32) -> u32 {
    return o_at(r / g, hk * g + r % g);
}

// One of an invocation's 4 rows in the rows entry: its pre-scaled query, or its output so far.
alias Rows4 = array<vec4<f32>, MAX_D4>;

// The K or V vec4 column i of keys c0 .. c0 + 3 of the block at j0, one per matrix column: from
// the workgroup block (KS = 1) or straight from the buffer (KS > 1, keys clamped to n_kv - 1:
// those past it are masked).
fn kv4(which: u32, c0: u32, i: u32, j0: u32, hk: u32) -> mat4x4<f32> {
    let d4 = HEAD_DIM / 4u;
    if (KS == 1u) {
        let b = c0 * d4 + i;
        if (which == 0u) {
            return mat4x4<f32>(kb[b], kb[b + d4], kb[b + 2u * d4], kb[b + 3u * d4]);
        }
        return mat4x4<f32>(vb[b], vb[b + d4], vb[b + 2u * d4], vb[b + 3u * d4]);
    }
    let last = p.n_kv - 1u;
    let j = j0 + c0;
    if (which == 0u) {
        return mat4x4<f32>(k[kv_at(p.k_offset, min(j, last), hk) + i], k[kv_at(p.k_offset, min(j + 1u, last), hk) + i],
                           k[kv_at(p.k_offset, min(j + 2u, last), hk) + i], k[kv_at(p.k_offset, min(j + 3u, last), hk) + i]);
    }
    return mat4x4<f32>(v[kv_at(p.v_offset, min(j, last), hk) + i], v[kv_at(p.v_offset, min(j + 1u, last), hk) + i],
                       v[kv_at(p.v_offset, min(j + 2u, last), hk) + i], v[kv_at(p.v_offset, min(j + 3u, last), hk) + i]);
}

// Folds keys j0 .. j0 + 15 into the 4 rows' state: outputs acc*, running max *m4 and sum *l4.
fn rows_block(
    j0: u32,
    hk: u32,
    vis4: vec4<u32>,
    q0: ptr<function, Rows4>,
    q1: ptr<function, Rows4>,
    q2: ptr<function, Rows4>,
    q3: ptr<function, Rows4>,
    acc0: ptr<function, Rows4>,
    acc1: ptr<function, Rows4>,
    acc2: ptr<function, Rows4>,
    acc3: ptr<function, Rows4>,
    m4: ptr<function, vec4<f32>>,
    l4: ptr<function, vec4<f32>>,
) {
    let d4 = HEAD_DIM / 4u;
    // Scores: each K vec4 read serves 4 rows.
    var s0 = mat4x4<f32>();
    var s1 = mat4x4<f32>();
    var s2 = mat4x4<f32>();
    var s3 = mat4x4<f32>();
    for (var i = 0u; i < d4; i++) {
        let k0 = kv4(0u, 0u, i, j0, hk);
        let k1 = kv4(0u, 4u, i, j0, hk);
        let k2 = kv4(0u, 8u, i, j0, hk);
        let k3 = kv4(0u, 12u, i, j0, hk);
        s0 = qk16(s0, (*q0)[i], k0, k1, k2, k3);
        s1 = qk16(s1, (*q1)[i], k0, k1, k2, k3);
        s2 = qk16(s2, (*q2)[i], k0, k1, k2, k3);
        s3 = qk16(s3, (*q3)[i], k0, k1, k2, k3);
    }
    let m = *m4;
    let l = *l4;
    let b0 = online(s0, j0, vis4.x, m.x, l.x);
    let b1 = online(s1, j0, vis4.y, m.y, l.y);
    let b2 = online(s2, j0, vis4.z, m.z, l.z);
    let b3 = online(s3, j0, vis4.w, m.w, l.w);
    *m4 = vec4<f32>(b0.m, b1.m, b2.m, b3.m);
    *l4 = vec4<f32>(b0.l, b1.l, b2.l, b3.l);
    // P V: each V vec4 read serves 4 rows.
    for (var i = 0u; i < d4; i++) {
        let v0 = kv4(1u, 0u, i, j0, hk);
        let v1 = kv4(1u, 4u, i, j0, hk);
        let v2 = kv4(1u, 8u, i, j0, hk);
        let v3 = kv4(1u, 12u, i, j0, hk);
        (*acc0)[i] = pv16((*acc0)[i], b0, v0, v1, v2, v3);
        (*acc1)[i] = pv16((*acc1)[i], b1, v0, v1, v2, v3);
        (*acc2)[i] = pv16((*acc2)[i], b2, v0, v1, v2, v3);
        (*acc3)[i] = pv16((*acc3)[i], b3, v0, v1, v2, v3);
    }
}

var<workgroup> mred: array<vec4<f32>, WG>; // [invocation]: running max of its 4 rows (KS > 1)
var<workgroup> ored: array<vec4<f32>, WG * 4u>; // [invocation][row]: one output column (KS > 1)

@compute @workgroup_size(WG)
fn attention_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let d4 = HEAD_DIM / 4u;
    let g = p.n_head / p.n_head_kv;
    let hk = wg.y;
    let n_rows = p.n_q * g;
    let quads = WG / KS;
    let row0 = wg.x * (quads * 4u);
    let split = t % KS;
    // Rows r0 .. r0 + 3; rows past the last repeat it and are not written.
    let r0 = row0 + 4u * (t / KS);
    let ra = min(r0, n_rows - 1u);
    let rb = min(r0 + 1u, n_rows - 1u);
    let rc = min(r0 + 2u, n_rows - 1u);
    let rd = min(r0 + 3u, n_rows - 1u);
    let qa = row_q(ra, g, hk);
    let qb = row_q(rb, g, hk);
    let qc = row_q(rc, g, hk);
    let qd = row_q(rd, g, hk);
    var q0: Rows4;
    var q1: Rows4;
    var q2: Rows4;
    var q3: Rows4;
    var acc0: Rows4;
    var acc1: Rows4;
    var acc2: Rows4;
    var acc3: Rows4;
    for (var i = 0u; i < d4; i++) {
        q0[i] = q[qa + i] * p.scale;
        q1[i] = q[qb + i] * p.scale;
        q2[i] = q[qc + i] * p.scale;
        q3[i] = q[qd + i] * p.scale;
    }
    let vis4 = vec4<u32>(visible(ra / g), visible(rb / g), visible(rc / g), visible(rd / g));
    var m4 = vec4<f32>(NEG);
    var l4 = vec4<f32>(0.0);
    let kv_end = visible((min(row0 + quads * 4u, n_rows) - 1u) / g);

    if (KS == 1u) {
        // Keys through workgroup memory, RB at a time, shared by all 4 WG rows.
        for (var j0 = 0u; j0 < kv_end; j0 += RB) {
            for (var e = t; e < RB * d4; e += WG) {
                let j = j0 + e / d4;
                let i = e % d4;
                var kv = vec4<f32>(0.0);
                var vv = vec4<f32>(0.0);
                if (j < p.n_kv) {
                    kv = k[kv_at(p.k_offset, j, hk) + i];
                    vv = v[kv_at(p.v_offset, j, hk) + i];
                }
                kb[e] = kv;
                vb[e] = vv;
            }
            workgroupBarrier();
            rows_block(j0, hk, vis4, &q0, &q1, &q2, &q3, &acc0, &acc1, &acc2, &acc3, &m4, &l4);
            workgroupBarrier(); // before the next block overwrites kb, vb
        }
    } else if (r0 < n_rows) {
        // Split s takes blocks s, s + KS, ...; the KS partial states are merged below. Invocations
        // past the last row (few rows: decode) skip the keys instead of repeating the last row.
        for (var j0 = split * RB; j0 < kv_end; j0 += KS * RB) {
            rows_block(j0, hk, vis4, &q0, &q1, &q2, &q3, &acc0, &acc1, &acc2, &acc3, &m4, &l4);
        }
    }

    // No visible key (n_kv = 0): the reference's empty sum, 0.
    var scale = vec4<f32>(1.0);
    var l = l4;
    if (KS > 1u) {
        // Merge the splits of each row: m = max m_s, l = sum l_s exp(m_s - m), likewise acc.
        mred[t] = m4;
        workgroupBarrier();
        let first = t - split;
        var m = vec4<f32>(NEG);
        for (var s = 0u; s < KS; s++) {
            m = max(m, mred[first + s]);
        }
        scale = exp(m4 - m);
        ored[t] = l4 * scale;
        workgroupBarrier();
        // Only split 0 writes the rows, so only it sums the splits.
        l = ored[t];
        if (split == 0u) {
            for (var s = 1u; s < KS; s++) {
                l += ored[first + s];
            }
        }
        workgroupBarrier();
    }
    let inv = select(vec4<f32>(0.0), 1.0 / l, l > vec4<f32>(0.0));
    let oa = row_o(ra, g, hk);
    let ob = row_o(rb, g, hk);
    let oc = row_o(rc, g, hk);
    let od = row_o(rd, g, hk);
    for (var i = 0u; i < d4; i++) {
        var c0 = acc0[i] * scale.x;
        var c1 = acc1[i] * scale.y;
        var c2 = acc2[i] * scale.z;
        var c3 = acc3[i] * scale.w;
        if (KS > 1u) {
            ored[4u * t] = c0;
            ored[4u * t + 1u] = c1;
            ored[4u * t + 2u] = c2;
            ored[4u * t + 3u] = c3;
            workgroupBarrier();
            let first = 4u * (t - split);
            if (split == 0u) {
                for (var s = 1u; s < KS; s++) {
                    c0 += ored[first + 4u * s];
                    c1 += ored[first + 4u * s + 1u];
                    c2 += ored[first + 4u * s + 2u];
                    c3 += ored[first + 4u * s + 3u];
                }
            }
            workgroupBarrier();
        }
        if (split == 0u) {
            if (r0 < n_rows) {
                o[oa + i] = c0 * inv.x;
            }
            if (r0 + 1u < n_rows) {
                o[ob + i] = c1 * inv.y;
            }
            if (r0 + 2u < n_rows) {
                o[oc + i] = c2 * inv.z;
            }
            if (r0 + 3u < n_rows) {
                o[od + i] = c3 * inv.w;
            }
        }
    }
}
