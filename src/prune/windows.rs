//! MustDrop stage 1 on plain numbers: which patch windows merge after ViT block 0 and where
//! every patch's token goes (research/pruning.md 2.1). Window `i` is the i-th whole `w x w`
//! window of the patch grid in raster order; windows whose mean pairwise cosine reaches the
//! threshold merge into one token (their mean), placed first in descending score order, then
//! the untouched patches in raster order.

/// The merge of one tile.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage1 {
    pub side: usize,
    pub w: usize,
    /// Merged windows, best score first (ties: lower index).
    pub merged: Vec<usize>,
}

impl Stage1 {
    /// The windows of `scores` at or above `threshold`, best first.
    pub fn decide(scores: &[f32], threshold: f32, side: usize, w: usize) -> Stage1 {
        let mut merged: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] >= threshold).collect();
        merged.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        Stage1 { side, w, merged }
    }

    /// Patches of window `i`, raster order (the last one is MustDrop's merge destination).
    pub fn window_cells(&self, i: usize) -> Vec<usize> {
        let per_side = self.side / self.w;
        let (wy, wx) = (i / per_side, i % per_side);
        (0..self.w * self.w).map(|k| (wy * self.w + k / self.w) * self.side + wx * self.w + k % self.w).collect()
    }

    /// For each token after the merge, the patches it averages: merged windows, then the
    /// other patches one by one in raster order.
    pub fn sources(&self) -> Vec<Vec<usize>> {
        let mut taken = vec![false; self.side * self.side];
        let mut out: Vec<Vec<usize>> = self.merged.iter().map(|&i| self.window_cells(i)).collect();
        out.iter().flatten().for_each(|&p| taken[p] = true);
        out.extend((0..taken.len()).filter(|&p| !taken[p]).map(|p| vec![p]));
        out
    }

    /// For each patch, the token (index after the merge) that holds it.
    pub fn owner(&self) -> Vec<usize> {
        let mut owner = vec![0; self.side * self.side];
        for (t, cells) in self.sources().iter().enumerate() {
            cells.iter().for_each(|&p| owner[p] = t);
        }
        owner
    }

    /// Tokens after the merge (patches only).
    pub fn n_tokens(&self) -> usize {
        self.side * self.side - self.merged.len() * (self.w * self.w - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6 x 6 grid of 3 x 3 windows: windows 3 (0.9) and 1 (0.85) merge, 0 and 2 do not.
    #[test]
    fn decide_sources_and_owners_by_hand() {
        let s = Stage1::decide(&[0.5, 0.85, 0.79, 0.9], 0.8, 6, 3);
        assert_eq!(s.merged, vec![3, 1]);
        assert_eq!(s.window_cells(1), vec![3, 4, 5, 9, 10, 11, 15, 16, 17]);
        assert_eq!(s.window_cells(3), vec![21, 22, 23, 27, 28, 29, 33, 34, 35]);
        let src = s.sources();
        assert_eq!(src.len(), 36 - 16);
        assert_eq!(s.n_tokens(), 20);
        assert_eq!(src[0], s.window_cells(3));
        assert_eq!(src[1], s.window_cells(1));
        assert_eq!(src[2], vec![0]);
        assert_eq!(src[4], vec![2]);
        assert_eq!(src[5], vec![6]);
        let owner = s.owner();
        assert_eq!((owner[35], owner[4], owner[0], owner[6]), (0, 1, 2, 5));
        // A 32 x 32 grid has 10 x 10 whole windows; the last two rows and columns stay apart.
        let s = Stage1::decide(&[1.0; 100], 0.8, 32, 3);
        assert_eq!(s.n_tokens(), 1024 - 800);
        assert_eq!(s.owner()[1023], s.n_tokens() - 1);
    }
}
