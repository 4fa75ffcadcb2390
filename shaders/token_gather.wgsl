// token_gather.wgsl — the rows a pruned frame sends on: kept rows gathered in order, then one
// row per contextual target = the target's row + the mean of the rows assigned to it (VisionZip,
// `target + mean(assigned)`; the target's row alone when none joined it).
//   y[r] = x[order[r]]                                                    r < n_kept
//   y[n_kept + t] = x[T] + (sum_{q != target, assign[q] = t} x[order[n_kept + q]]) / count
//                   with T = order[n_kept + t * step]                      t < n_targets
// @binding(0) x: array<f32> read        row i at x[x_offset + i * x_stride ..][..width]
// @binding(1) order: array<u32> read    [n] (token_select: kept, then remaining)
// @binding(2) assign: array<u32> read   [n_rest] (token_assign; unread when n_targets = 0)
// @binding(3) y: array<f32> read_write  [n_kept + n_targets, width]
// @binding(4) p: Params uniform {width, n_kept, n_targets, step, n_rest, x_offset, x_stride, _}
// dispatch (ceil(width / WG), n_kept + n_targets, 1), @workgroup_size(WG): workgroup y = output
// row, invocation = column (contiguous reads and writes); the assignment scan is uniform.
// matches: reference::prune::visionzip (rows)

struct Params {
    width: u32,
    n_kept: u32,
    n_targets: u32,
    step: u32,
    n_rest: u32,
    x_offset: u32,
    x_stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read> assign: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG: u32 = 256u;

fn row(i: u32, c: u32) -> f32 {
    return x[p.x_offset + i * p.x_stride + c];
}

@compute @workgroup_size(WG)
fn gather_merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let c = wg.x * WG + l;
    let r = wg.y;
    let cc = min(c, p.width - 1u);
    var v: f32;
    if (r < p.n_kept) {
        v = row(order[r], cc);
    } else {
        let t = r - p.n_kept;
        let tq = t * p.step;
        var sum = 0.0;
        var count = 0u;
        for (var q = 0u; q < p.n_rest; q++) {
            if (q != tq && assign[q] == t) {
                sum += row(order[p.n_kept + q], cc);
                count++;
            }
        }
        v = row(order[p.n_kept + tq], cc);
        if (count > 0u) {
            v += sum / f32(count);
        }
    }
    if (c < p.width) {
        y[r * p.width + c] = v;
    }
}
