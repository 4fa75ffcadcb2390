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
// BK (prefill keys per block, a multiple of 4, <= 64).
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

// Invocations per query in the prefill kernel.
const TPQ: u32 = 4u;
// Register arrays are sized for the largest head_dim (128) and BK (64); loops run to the
// overrides, so a driver that unrolls them keeps only what is used.
const MAX_COLS_PER_LANE: u32 = 8u; // vec4 columns: 128 / 4 / TPQ
const MAX_KEYS_PER_LANE: u32 = 16u; // 64 / TPQ
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
