// token_positions.wgsl — the RoPE positions of the rows a pruned tile sends on (token_gather's
// rows, in its order): each row keeps the position its token has in the unpruned prompt, so
// pruning leaves gaps in the positions instead of moving the kept tokens together.
//   pos[dst + r]          = base + cell(order[src + r])                        r < n_kept
//   pos[dst + n_kept + t] = base + cell(order[src + n_kept + t * step])        t < n_targets
//   cell(i) = i - first, or 0 for i < first (a CLS row takes the tile's first position)
// @binding(0) order: array<u32> read        token indices (token_select's order, kept then remaining)
// @binding(1) pos: array<u32> read_write    positions
// @binding(2) p: Params uniform {n_kept, n_targets, step, first, src, dst, base, _}
// dispatch (ceil((n_kept + n_targets) / WG), 1, 1), @workgroup_size(WG): one invocation per row.
// matches: reference::prune::row_cells

struct Params {
    n_kept: u32,
    n_targets: u32,
    step: u32,
    first: u32,
    src: u32,
    dst: u32,
    base: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> order: array<u32>;
@group(0) @binding(1) var<storage, read_write> pos: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn token_positions(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.n_kept + p.n_targets) {
        return;
    }
    var q = r;
    if (r >= p.n_kept) {
        q = p.n_kept + (r - p.n_kept) * p.step;
    }
    let i = order[p.src + q];
    pos[p.dst + r] = p.base + select(i - p.first, 0u, i < p.first);
}
