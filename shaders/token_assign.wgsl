// token_assign.wgsl — VisionZip's contextual assignment: every remaining token that is not a
// target joins the target whose key it is most cosine-similar to (ties: the earlier target).
// The remaining tokens are order[n_kept .. n) (raster order, from token_select); target t is the
// remaining token at position t * step, for t < n_targets.
// @binding(0) keys: array<f32> read        [n, kd] (head-mean keys, not normalised)
// @binding(1) order: array<u32> read       [n]
// @binding(2) assign: array<u32> read_write [n - n_kept]: for remaining position q, its target t
//                                          (a target's own index for the targets themselves)
// @binding(3) p: Params uniform {n, n_kept, n_targets, step, kd, _, _, _}
// dispatch (ceil((n - n_kept) / WG), 1, 1), @workgroup_size(WG): one invocation per remaining
// token, its key in registers; the targets' keys are read by every invocation at the same
// address. kd <= 128. Cost (n - n_kept) * n_targets * kd multiply-adds.
// matches: reference::prune::visionzip (assigned)

struct Params {
    n: u32,
    n_kept: u32,
    n_targets: u32,
    step: u32,
    kd: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> keys: array<f32>;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read_write> assign: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 64u;

const MAX_KD: u32 = 128u;

@compute @workgroup_size(WG)
fn assign_targets(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let n_rest = p.n - p.n_kept;
    let qpos = wg.x * WG + l;
    let q = min(qpos, n_rest - 1u);
    var own: array<f32, MAX_KD>;
    var own_sq = 0.0;
    let base = order[p.n_kept + q] * p.kd;
    for (var e = 0u; e < p.kd; e++) {
        own[e] = keys[base + e];
        own_sq += own[e] * own[e];
    }
    var best = 0u;
    var best_cos = -3.0e38;
    for (var t = 0u; t < p.n_targets; t++) {
        let tb = order[p.n_kept + t * p.step] * p.kd;
        var dot_ = 0.0;
        var sq = 0.0;
        for (var e = 0u; e < p.kd; e++) {
            let v = keys[tb + e];
            dot_ += own[e] * v;
            sq += v * v;
        }
        let c = dot_ / max(sqrt(own_sq) * sqrt(sq), 1e-30);
        if (c > best_cos) {
            best_cos = c;
            best = t;
        }
    }
    if (q % p.step == 0u && q / p.step < p.n_targets) {
        best = q / p.step;
    }
    if (qpos < n_rest) {
        assign[qpos] = best;
    }
}
