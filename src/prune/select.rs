//! Baseline token selections (random, uniform grid) and top-k: pure index arithmetic the engine
//! uses on the host. Every selection returns distinct indices in ascending (raster) order.

use crate::rng::SplitMix64;

/// A number in `0..m` (m > 0) by the multiply-shift map (bias below 2^-32 for m < 2^32).
fn below(rng: &mut SplitMix64, m: usize) -> usize {
    ((rng.next_u64() as u128 * m as u128) >> 64) as usize
}

/// `k` of `n` indices (all of them if `k >= n`) chosen uniformly at random, deterministic from
/// `seed` (a partial Fisher-Yates shuffle driven by splitmix64), sorted ascending (raster order).
pub fn random(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let k = k.min(n);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in 0..k {
        let j = i + below(&mut rng, n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

/// `k` evenly spread positions of `0..n` (k <= n): the centres of `k` equal strides,
/// floor((2i + 1) n / 2k). Distinct, since the stride n / k is at least 1.
fn centred(n: usize, k: usize) -> impl Iterator<Item = usize> {
    (0..k).map(move |i| (2 * i + 1) * n / (2 * k))
}

/// `k` of the `rows x cols` grid's indices (all of them if `k >= rows * cols`) spread as a
/// uniform spatial grid, ascending. The lattice is the largest `r x c <= k` (r <= rows,
/// c <= cols) whose cells (rows / r by cols / c patches) are within 2 : 1 of square, ties to the
/// squarer cells (if no lattice is that square — a very elongated grid with small k — the
/// squarest, then the largest); its rows and columns sit at the centres of equal strides. The
/// remaining `k - r * c` indices are spread the same way (centres of equal strides) over the
/// grid's other indices in raster order. E.g. 24 x 24 with k = 64 gives the 8 x 8 lattice at
/// rows and columns 1, 4, 7, ..., 22.
pub fn grid(rows: usize, cols: usize, k: usize) -> Vec<usize> {
    let n = rows * cols;
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    // (r, c, r * c, distortion >= 1): how far the cells are from square.
    let candidates = (1..=rows.min(k)).map(|r| {
        let c = cols.min(k / r);
        let aspect = (rows * c) as f64 / (cols * r) as f64;
        (r, c, r * c, aspect.max(1.0 / aspect))
    });
    let better = |a: &(usize, usize, usize, f64), b: &(usize, usize, usize, f64)| {
        let (a_ok, b_ok) = (a.3 <= 2.0, b.3 <= 2.0);
        if a_ok != b_ok {
            return a_ok;
        }
        if a_ok { (a.2, -a.3) > (b.2, -b.3) } else { (-a.3, a.2) > (-b.3, b.2) }
    };
    let mut best = (1, cols.min(k), cols.min(k), f64::INFINITY);
    for cand in candidates {
        if better(&cand, &best) {
            best = cand;
        }
    }
    let (r, c) = (best.0, best.1);
    let mut chosen = vec![false; n];
    for y in centred(rows, r) {
        for x in centred(cols, c) {
            chosen[y * cols + x] = true;
        }
    }
    let rest: Vec<usize> = (0..n).filter(|&i| !chosen[i]).collect();
    for j in centred(rest.len(), k - r * c) {
        chosen[rest[j]] = true;
    }
    (0..n).filter(|&i| chosen[i]).collect()
}

/// The indices of the `k` largest scores (all if `k >= scores.len()`), ties to the lower index,
/// NaN ranking below everything; returned ascending (raster order).
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // Stable sort, NaN last, then descending: equal scores keep ascending index order.
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        x.is_nan().cmp(&y.is_nan()).then(y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal))
    });
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

/// The fewest tokens whose scores hold at least `mass` (0..=1) of the total, highest first
/// (ties to the lower index), returned ascending; at least one. Negative or NaN scores count 0.
pub fn by_mass(scores: &[f32], mass: f32) -> Vec<usize> {
    let clean: Vec<f32> = scores.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();
    let total: f64 = clean.iter().map(|&v| f64::from(v)).sum();
    let mut idx: Vec<usize> = (0..clean.len()).collect();
    idx.sort_by(|&a, &b| clean[b].total_cmp(&clean[a]).then(a.cmp(&b)));
    let goal = f64::from(mass.clamp(0.0, 1.0)) * total;
    let mut held = 0.0;
    let mut k = 0;
    while k < idx.len() && (k == 0 || held < goal) {
        held += f64::from(clean[idx[k]]);
        k += 1;
    }
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct_ascending(v: &[usize]) -> bool {
        v.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn random_counts_distinct_deterministic() {
        for (n, k) in [(576, 64), (576, 576), (10, 3), (5, 9), (0, 4), (7, 0)] {
            let a = random(n, k, 7);
            assert_eq!(a.len(), k.min(n));
            assert!(distinct_ascending(&a));
            assert!(a.iter().all(|&i| i < n));
            assert_eq!(a, random(n, k, 7));
        }
        assert_ne!(random(576, 64, 0), random(576, 64, 1));
        assert_eq!(random(576, 576, 3), (0..576).collect::<Vec<_>>());
    }

    #[test]
    fn random_is_roughly_uniform() {
        // 2000 draws of 8 of 16: each index is picked about 1000 times.
        let mut hits = [0usize; 16];
        for seed in 0..2000 {
            for i in random(16, 8, seed) {
                hits[i] += 1;
            }
        }
        assert!(hits.iter().all(|&h| (880..1120).contains(&h)), "{hits:?}");
    }

    #[test]
    fn grid_lattice_24x24() {
        let g = grid(24, 24, 64);
        let lattice: Vec<usize> = (0..8).map(|i| 1 + 3 * i).collect();
        let want: Vec<usize> = lattice.iter().flat_map(|&y| lattice.iter().map(move |&x| y * 24 + x)).collect();
        assert_eq!(g, want);
    }

    #[test]
    fn grid_counts_and_spread() {
        for (rows, cols, k) in
            [(24, 24, 58), (24, 24, 7), (24, 24, 575), (27, 27, 72), (3, 40, 10), (1, 9, 4), (24, 2, 30)]
        {
            let g = grid(rows, cols, k);
            assert_eq!(g.len(), k, "{rows}x{cols} k={k}");
            assert!(distinct_ascending(&g));
            assert!(g.iter().all(|&i| i < rows * cols));
        }
        assert_eq!(grid(4, 4, 16), (0..16).collect::<Vec<_>>());
        assert_eq!(grid(4, 4, 99).len(), 16);
        assert!(grid(4, 4, 0).is_empty());
        assert!(grid(0, 4, 3).is_empty());
        // 7 of 24 x 24: a 2 x 3 lattice (not a 1 x 7 row) plus one index between.
        let g = grid(24, 24, 7);
        let lattice = [6 * 24 + 4, 6 * 24 + 12, 6 * 24 + 20, 18 * 24 + 4, 18 * 24 + 12, 18 * 24 + 20];
        assert!(lattice.iter().all(|i| g.contains(i)), "{g:?}");
        // 30 of 24 x 2: 15 rows x 2 columns.
        let g = grid(24, 2, 30);
        assert!(g.chunks(2).all(|p| p[0] + 1 == p[1] && p[0] % 2 == 0), "{g:?}");
        // 1 x 9, k = 4: columns at the centres of strides of 9 / 4.
        assert_eq!(grid(1, 9, 4), vec![1, 3, 5, 7]);
    }

    #[test]
    fn top_k_order_and_ties() {
        let s = [0.5, 0.9, 0.5, 0.1, 0.9, 0.5];
        assert_eq!(top_k(&s, 1), vec![1]);
        assert_eq!(top_k(&s, 2), vec![1, 4]);
        assert_eq!(top_k(&s, 3), vec![0, 1, 4]);
        assert_eq!(top_k(&s, 4), vec![0, 1, 2, 4]);
        assert_eq!(top_k(&s, 10), vec![0, 1, 2, 3, 4, 5]);
        assert!(top_k(&s, 0).is_empty());
        assert_eq!(top_k(&[f32::NAN, -1.0, f32::NEG_INFINITY], 2), vec![1, 2]);
        assert_eq!(top_k(&[0.0, -0.0, 1.0], 2), vec![0, 2]);
        assert_eq!(top_k(&[-0.0, 0.0, 1.0], 2), vec![0, 2]);
    }

    /// Scores 0.5, 0.25, 0.125, 0.125 (total 1, exact in binary): 50% is held by the first
    /// token, 60% needs two, 80% three (ties to the lower index), 100% all four.
    #[test]
    fn by_mass_by_hand() {
        let s = [0.25, 0.5, 0.125, 0.125];
        assert_eq!(by_mass(&s, 0.5), vec![1]);
        assert_eq!(by_mass(&s, 0.6), vec![0, 1]);
        assert_eq!(by_mass(&s, 0.8), vec![0, 1, 2]);
        assert_eq!(by_mass(&s, 1.0), vec![0, 1, 2, 3]);
        assert_eq!(by_mass(&[0.0, 0.0], 0.9), vec![0]);
        assert_eq!(by_mass(&[], 0.9), Vec::<usize>::new());
    }
}
