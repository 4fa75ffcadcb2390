//! What pruning did to one frame: the fate of every patch per stage, the tokens each stage and
//! each LLM layer saw, and the FLOPs dense vs executed. Serialised into the per-frame JSON report
//! and drawn by [`super::overlay`].

use serde::Serialize;

/// What happened to one patch (grid cell) of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchFate {
    /// No pruning touched it, or a baseline selection kept it.
    Kept,
    /// Kept by VisionZip as a dominant token (high attention).
    Dominant,
    /// A contextual target: kept, carrying the tokens merged into it.
    Contextual,
    /// Folded into another token (contextual assignment or a MustDrop window).
    Merged,
    /// Removed without being merged anywhere.
    Dropped,
}

/// One image (tile) grid of patches as the pruning saw them: `rows x cols` cells in raster order.
/// Cells missing from `fates` (shorter than `rows * cols`) count as [`PatchFate::Kept`]; extra
/// entries past `rows * cols` are ignored.
#[derive(Clone, Debug, Serialize)]
pub struct PatchGrid {
    /// Index of the tile this grid covers (0 for a single-image frame).
    pub tile: usize,
    /// Patch rows.
    pub rows: usize,
    /// Patch columns.
    pub cols: usize,
    /// The fate of each cell, raster order.
    pub fates: Vec<PatchFate>,
    /// For Merged cells, the raster index of the cell they merged into (same tile).
    pub merged_into: Vec<Option<usize>>,
}

impl PatchGrid {
    /// A `rows x cols` grid of tile `tile` with every cell Kept and no merges.
    pub fn new(tile: usize, rows: usize, cols: usize) -> Self {
        let n = rows.saturating_mul(cols);
        PatchGrid { tile, rows, cols, fates: vec![PatchFate::Kept; n], merged_into: vec![None; n] }
    }

    /// Number of cells, `rows * cols` (saturating).
    pub fn cells(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }

    /// The fate of cell `i` (raster order): Kept when `fates` has no entry for it.
    pub fn fate(&self, i: usize) -> PatchFate {
        self.fates.get(i).copied().unwrap_or(PatchFate::Kept)
    }

    /// The raster index cell `i` merged into, when it has one inside the grid.
    pub fn target(&self, i: usize) -> Option<usize> {
        self.merged_into.get(i).copied().flatten().filter(|&t| t < self.cells())
    }

    /// Number of cells with fate `fate` (missing entries count as Kept).
    pub fn count(&self, fate: PatchFate) -> usize {
        let n = self.cells();
        let listed = self.fates.len().min(n);
        let found = self.fates[..listed].iter().filter(|&&f| f == fate).count();
        if fate == PatchFate::Kept { found + (n - listed) } else { found }
    }

    /// Cells whose token reaches the LLM: Kept + Dominant + Contextual.
    pub fn kept(&self) -> usize {
        self.count(PatchFate::Kept) + self.count(PatchFate::Dominant) + self.count(PatchFate::Contextual)
    }
}

/// One pruning stage of a frame.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    /// Stage name, e.g. "visionzip", "mustdrop.stage1".
    pub name: String,
    /// The patch grids (one per tile) after this stage.
    pub grids: Vec<PatchGrid>,
    /// Visual tokens entering the stage.
    pub tokens_in: usize,
    /// Visual tokens leaving the stage.
    pub tokens_out: usize,
}

/// The pruning part of a frame report.
#[derive(Clone, Debug, Serialize)]
pub struct FrameReport {
    /// Pruning method as requested, e.g. "visionzip" or "none".
    pub method: String,
    /// Visual-token budget, when the method has one.
    pub budget: Option<usize>,
    /// Visual tokens the frame would send to the LLM without pruning.
    pub visual_tokens_dense: usize,
    /// Visual tokens actually sent to the LLM.
    pub visual_tokens: usize,
    /// Pruning stages in the order they ran.
    pub stages: Vec<StageReport>,
    /// Image tokens entering each LLM layer (one entry per layer).
    pub llm_tokens_per_layer: Vec<usize>,
    /// Vision attention heads kept per ViT block, summed over the frame's tiles (a one-tile
    /// frame: that tile's heads), when head trimming ran.
    pub vision_heads_kept: Option<Vec<usize>>,
    /// Query heads each LLM layer ran in the prefill (one entry per layer), when head trimming
    /// ran; decode steps run every head.
    pub llm_heads_kept: Option<Vec<usize>>,
    /// FLOPs of the frame without pruning.
    pub flops_dense: f64,
    /// FLOPs the frame executed.
    pub flops_executed: f64,
    /// (stage name, FLOPs dense, FLOPs executed): vision, projector, prefill, decode.
    pub flops_by_stage: Vec<(String, f64, f64)>,
}

impl FrameReport {
    /// One line for titles and logs: the method, the visual tokens that made it through the
    /// last stage out of the dense count, and the FLOPs ratio.
    pub fn summary(&self) -> String {
        let kept = self.stages.last().map_or(self.visual_tokens, |s| s.tokens_out);
        format!("{}: {} of {} tokens, {:.1}x fewer FLOPs", self.method, kept, self.visual_tokens_dense, self.speedup())
    }

    /// How many times fewer FLOPs than dense the frame ran: `flops_dense / flops_executed`, 1.0 when
    /// nothing (or a non-positive amount) was executed.
    pub fn speedup(&self) -> f64 {
        if self.flops_executed > 0.0 { self.flops_dense / self.flops_executed } else { 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_treat_missing_cells_as_kept() {
        let mut g = PatchGrid::new(0, 2, 3);
        g.fates = vec![PatchFate::Dominant, PatchFate::Dropped, PatchFate::Merged, PatchFate::Contextual];
        assert_eq!(g.count(PatchFate::Kept), 2);
        assert_eq!(g.count(PatchFate::Dominant), 1);
        assert_eq!(g.count(PatchFate::Dropped), 1);
        assert_eq!(g.kept(), 4);
        assert_eq!(g.fate(5), PatchFate::Kept);
        // Entries past rows * cols are ignored.
        g.fates = vec![PatchFate::Dropped; 10];
        assert_eq!(g.count(PatchFate::Dropped), 6);
        assert_eq!(g.kept(), 0);
    }

    #[test]
    fn target_ignores_out_of_range_indices() {
        let mut g = PatchGrid::new(0, 2, 2);
        g.merged_into = vec![Some(3), Some(4), None];
        assert_eq!(g.target(0), Some(3));
        assert_eq!(g.target(1), None);
        assert_eq!(g.target(7), None);
    }

    #[test]
    fn speedup_and_serialised_names() {
        let r = FrameReport {
            method: "visionzip".into(),
            budget: Some(64),
            visual_tokens_dense: 576,
            visual_tokens: 64,
            stages: vec![StageReport { name: "visionzip".into(), grids: vec![], tokens_in: 576, tokens_out: 64 }],
            llm_tokens_per_layer: vec![64; 2],
            vision_heads_kept: None,
            llm_heads_kept: None,
            flops_dense: 9.0,
            flops_executed: 1.0,
            flops_by_stage: vec![],
        };
        assert_eq!(r.speedup(), 9.0);
        assert_eq!(FrameReport { flops_executed: 0.0, ..r }.speedup(), 1.0);
        assert_eq!(serde_json::to_string(&PatchFate::Contextual).unwrap(), "\"contextual\"");
    }
}
