//! Token pruning of one tile on the GPU, between the vision tower and the projector. The tower
//! leaves its feature layer's fused Q, K, V rows and the connector's candidate rows (one per
//! visual token); a selection picks and merges rows into `PruneScratch::out`, which the
//! projector reads instead. VisionZip selects on the GPU (scores, top-k, contextual merge), the
//! learned trimmer by its scores (`prune::trimmer`); the baselines (random, grid) pick on the
//! CPU and only the gather runs here. Nothing is read back mid-frame: the index lists are copied
//! into per-frame report buffers and read with the first token.

use crate::gpu::kernels::{
    self, GatherArgs, GroupMean, PositionArgs, ReceivedArgs, assign_targets, attention_received, gather_merge,
    gather_rows, group_mean, select_top_k, token_positions,
};
use crate::gpu::{Error, Finished, Gpu, ReadHandle, Recorder, Tensor};
use crate::prune::report::{PatchFate, PatchGrid};
use crate::prune::windows::Stage1;

/// One tile's vision output as the pruning sees it.
pub struct TileTokens<'a> {
    /// The feature layer's fused Q, K, V rows, `[n_pos, 3 * n_embd]`.
    pub qkv: &'a Tensor,
    pub n_pos: usize,
    pub n_embd: usize,
    pub n_head: usize,
    /// Row 0 of `qkv` and of `rows` is a CLS token (CLIP): it scores the patches and is always
    /// kept by VisionZip.
    pub has_cls: bool,
    /// Patches per side and the pixel-shuffle factor (idefics3): candidates are the shuffled
    /// s x s groups, scored and keyed by pooling their patches.
    pub shuffle: Option<(usize, usize)>,
    /// The connector's candidate rows `[n_rows, width]` (CLS first when `has_cls`).
    pub rows: &'a Tensor,
    pub n_rows: usize,
    pub width: usize,
    /// MustDrop stage 1 merged the tower's tokens (`n_pos` of them in `qkv`): pixel-shuffle
    /// scores are spread back to the patches before pooling.
    pub merged: Option<&'a Stage1>,
    /// The learned trimmer's scores of the visual tokens (CLS excluded), for
    /// [`TileChoice::Learned`].
    pub learned: Option<&'a Tensor>,
}

impl TileTokens<'_> {
    /// Visual tokens the tile sends unpruned (CLS is dropped by the dense projector).
    pub fn n_visual(&self) -> usize {
        self.n_rows - self.has_cls as usize
    }

    /// Rows and columns of the visual-token grid (the merged grid for pixel shuffle).
    pub fn grid(&self) -> (usize, usize) {
        let side = (self.n_visual() as f64).sqrt().round() as usize;
        (side, side)
    }
}

/// What to keep of one tile.
#[derive(Clone, Debug, PartialEq)]
pub enum TileChoice {
    /// VisionZip: `dominant` rows by attention (CLS included when present), `contextual` merged.
    VisionZip { dominant: usize, contextual: usize },
    /// These visual tokens (0-based, CLS excluded), ascending: a baseline's pick.
    Keep(Vec<usize>),
    /// The `keep` visual tokens the learned trimmer scores highest (CLS dropped).
    Learned { keep: usize },
}

impl TileChoice {
    /// Rows this choice sends to the projector.
    pub fn n_out(&self) -> usize {
        match self {
            TileChoice::VisionZip { dominant, contextual } => dominant + contextual,
            TileChoice::Keep(k) => k.len(),
            TileChoice::Learned { keep } => *keep,
        }
    }
}

/// GPU buffers of the pruning, sized for one model's tiles and reused across frames.
pub struct PruneScratch {
    stats: Tensor,
    keys: Tensor,
    keys_shuffled: Tensor,
    keys_pooled: Tensor,
    scores_shuffled: Tensor,
    scores_pooled: Tensor,
    order: Tensor,
    assign: Tensor,
    /// The selected (and merged) rows, `[n_out, width]`: the projector's input.
    pub out: Tensor,
    max_tiles: usize,
    max_rows: usize,
    report_order: Tensor,
    report_assign: Tensor,
}

/// Where one tile's index lists sit in the report buffers (decoded after the frame's submit).
#[derive(Clone)]
pub struct TileRecord {
    choice: TileChoice,
    n_rows: usize,
    has_cls: bool,
    grid: (usize, usize),
    step: usize,
}

impl TileRecord {
    /// Visual tokens the tile would send unpruned (CLS excluded): the positions it spans.
    pub fn n_visual(&self) -> usize {
        self.n_rows - self.has_cls as usize
    }
}

/// The report reads of a frame.
pub struct ReportReads {
    order: ReadHandle,
    assign: ReadHandle,
}

impl PruneScratch {
    /// Buffers for tiles of up to `n_pos` positions, `n_head` heads of `head_dim`, candidate
    /// rows up to `max_rows` x `max_width`, and up to `max_tiles` tiles per frame.
    pub fn new(
        gpu: &Gpu,
        n_pos: usize,
        n_head: usize,
        head_dim: usize,
        max_rows: usize,
        max_width: usize,
        max_tiles: usize,
    ) -> Result<PruneScratch, Error> {
        let stats = ReceivedArgs { n_q: n_pos, n_head, n_cols: n_pos, ..Default::default() };
        Ok(PruneScratch {
            stats: gpu.tensor(kernels::received_stats_len(&stats), "prune.stats")?,
            scores_shuffled: gpu.tensor(n_pos, "prune.scores_shuffled")?,
            keys: gpu.tensor(n_pos * head_dim, "prune.keys")?,
            keys_shuffled: gpu.tensor(n_pos * head_dim, "prune.keys_shuffled")?,
            keys_pooled: gpu.tensor(max_rows * head_dim, "prune.keys_pooled")?,
            scores_pooled: gpu.tensor(max_rows, "prune.scores_pooled")?,
            order: gpu.tensor(max_rows, "prune.order")?,
            assign: gpu.tensor(max_rows, "prune.assign")?,
            out: gpu.tensor(max_rows * max_width, "prune.out")?,
            max_tiles,
            max_rows,
            report_order: gpu.tensor(max_tiles * max_rows, "prune.report_order")?,
            report_assign: gpu.tensor(max_tiles * max_rows, "prune.report_assign")?,
        })
    }

    /// Tiles per frame the report buffers hold.
    pub fn max_tiles(&self) -> usize {
        self.max_tiles
    }

    /// Records the selection of tile number `tile` (of this frame) into `self.out`. Returns what
    /// the report needs to decode it.
    pub fn select(
        &self,
        rec: &mut Recorder,
        t: &TileTokens,
        choice: &TileChoice,
        tile: usize,
    ) -> Result<TileRecord, Error> {
        let bad = |what: String| Error::Invalid { kernel: "prune", what };
        if tile >= self.max_tiles || t.n_rows > self.max_rows {
            return Err(bad(format!("tile {tile} of {} rows exceeds the scratch", t.n_rows)));
        }
        let n = t.n_rows;
        let mut step = 1;
        // Rows the order list counts from: a learned pick ranks the visual tokens only.
        let mut x_offset = 0;
        let gather = match choice {
            TileChoice::VisionZip { dominant, contextual } => {
                let (dominant, contextual) = (*dominant, *contextual);
                if dominant == 0 || dominant + contextual > t.n_visual() {
                    return Err(bad(format!("visionzip {dominant} + {contextual} of {n} tokens")));
                }
                let (scores, keys, kd) = self.scores_and_keys(rec, t)?;
                select_top_k(rec, scores, 0, n, dominant, t.has_cls.then_some(0), &self.order)?;
                let n_rest = n - dominant;
                step = (n_rest / contextual.max(1)).max(1);
                if contextual > 0 {
                    assign_targets(rec, keys, &self.order, &self.assign, n, dominant, contextual, step, kd)?;
                }
                GatherArgs { n_kept: dominant, n_targets: contextual, step, n_rest, ..Default::default() }
            }
            TileChoice::Keep(keep) => {
                let first = t.has_cls as usize;
                if keep.is_empty() || keep.iter().any(|&i| i + first >= n) {
                    return Err(bad(format!("a kept token outside the tile's {} visual tokens", t.n_visual())));
                }
                let ids: Vec<u32> = keep.iter().map(|&i| (i + first) as u32).collect();
                // Through a copy, so several tiles' lists can share one submit.
                let list = rec.gpu().upload_u32(&ids, "prune.keep")?;
                rec.copy(&list, 0, &self.order, 0, ids.len());
                GatherArgs { n_kept: ids.len(), ..Default::default() }
            }
            TileChoice::Learned { keep } => {
                let scores = t.learned.ok_or_else(|| bad("a learned pick without trimmer scores".into()))?;
                if *keep == 0 || *keep > t.n_visual() {
                    return Err(bad(format!("the trimmer keeps {keep} of {} tokens", t.n_visual())));
                }
                select_top_k(rec, scores, 0, t.n_visual(), *keep, None, &self.order)?;
                x_offset = t.has_cls as usize * t.width;
                GatherArgs { n_kept: *keep, ..Default::default() }
            }
        };
        let args = GatherArgs { width: t.width, x_offset, x_stride: t.width, ..gather };
        gather_merge(rec, t.rows, &self.order, &self.assign, &self.out, args)?;
        let at = tile * self.max_rows;
        rec.copy(&self.order, 0, &self.report_order, at, n - x_offset / t.width);
        if matches!(choice, TileChoice::VisionZip { contextual, .. } if *contextual > 0) {
            rec.copy(&self.assign, 0, &self.report_assign, at, gather.n_rest);
        }
        Ok(TileRecord { choice: choice.clone(), n_rows: n, has_cls: t.has_cls, grid: t.grid(), step })
    }

    /// VisionZip's score per candidate and the keys it merges by: the CLS row's attention, or
    /// the attention each token receives (no CLS); head-mean keys; both pooled over each s x s
    /// group for pixel-shuffle connectors. Returns (scores, keys, key width).
    fn scores_and_keys<'s>(
        &'s self,
        rec: &mut Recorder,
        t: &TileTokens,
    ) -> Result<(&'s Tensor, &'s Tensor, usize), Error> {
        let hd = t.n_embd / t.n_head;
        let d = t.n_embd;
        let args = ReceivedArgs {
            n_q: if t.has_cls { 1 } else { t.n_pos },
            n_kv: t.n_pos,
            n_head: t.n_head,
            n_head_kv: t.n_head,
            head_dim: hd,
            q_stride: 3 * d,
            k_offset: d,
            k_stride: 3 * d,
            n_cols: t.n_pos,
            ..Default::default()
        };
        attention_received(rec, t.qkv, t.qkv, &self.stats, args)?;
        let heads = GroupMean { n: t.n_pos, w: hd, groups: t.n_head, x_offset: d, x_stride: 3 * d, y_offset: 0 };
        group_mean(rec, t.qkv, &self.keys, heads)?;
        let Some((side, s)) = t.shuffle else {
            return Ok((&self.stats, &self.keys, hd));
        };
        let m = t.n_rows;
        if let Some(merged) = t.merged {
            // Every patch takes its merged token's score (no CLS with a pixel shuffle).
            let owner: Vec<u32> = merged.owner().iter().map(|&o| o as u32).collect();
            gather_rows(rec, &self.stats, 1, &owner, &self.scores_shuffled)?;
            rec.copy(&self.scores_shuffled, 0, &self.stats, 0, owner.len());
        }
        // Scores: shuffle the [n_pos, 1] column into [m, s s], then average each row; keys
        // likewise at width hd.
        kernels::pixel_shuffle(rec, &self.stats, &self.scores_shuffled, side, 1, s)?;
        let pool = |w: usize| GroupMean { n: m, w, groups: s * s, x_offset: 0, x_stride: s * s * w, y_offset: 0 };
        group_mean(rec, &self.scores_shuffled, &self.scores_pooled, pool(1))?;
        kernels::pixel_shuffle(rec, &self.keys, &self.keys_shuffled, side, hd, s)?;
        group_mean(rec, &self.keys_shuffled, &self.keys_pooled, pool(hd))?;
        Ok((&self.scores_pooled, &self.keys_pooled, hd))
    }

    /// Records MustDrop's key set S of tile number `tile`: its `k` visual tokens with the most
    /// attention (CLS row, or attention received; pooled per shuffle group), kept in the report
    /// buffer for [`PruneScratch::read_key_sets`].
    pub fn key_set(&self, rec: &mut Recorder, t: &TileTokens, k: usize, tile: usize) -> Result<(), Error> {
        if tile >= self.max_tiles || t.n_rows > self.max_rows || k == 0 {
            return Err(Error::Invalid { kernel: "prune", what: format!("key set of tile {tile}, {k} tokens") });
        }
        let (scores, _, _) = self.scores_and_keys(rec, t)?;
        // CLS ranks first when present; the set is the k tokens after it.
        let first = t.has_cls as usize;
        let k = (k + first).min(t.n_rows);
        select_top_k(rec, scores, 0, t.n_rows, k, t.has_cls.then_some(0), &self.order)?;
        rec.copy(&self.order, 0, &self.report_order, tile * self.max_rows, k);
        Ok(())
    }

    /// Reads the key sets of `tiles` tiles back (`k` tokens each, before the CLS offset).
    pub fn read_key_sets(&self, rec: &mut Recorder, tiles: usize) -> ReadHandle {
        rec.read(&self.report_order, 0, tiles.min(self.max_tiles) * self.max_rows)
    }

    /// Tile `tile`'s key set (visual-token indices, CLS excluded, ascending) from the read-back
    /// buffer.
    pub fn decode_key_set(&self, data: &[u32], tile: usize, k: usize, has_cls: bool) -> Vec<usize> {
        let first = has_cls as usize;
        let at = tile * self.max_rows;
        let mut set: Vec<usize> = data
            .get(at..at + k + first)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&r| (r as usize).checked_sub(first))
            .collect();
        set.sort_unstable();
        set
    }

    /// Records the attention score of each of the tile's visual tokens (VisionZip's: CLS row or
    /// attention received, pooled per shuffle group; CLS itself excluded) and returns their read
    /// handle.
    pub fn scores(&self, rec: &mut Recorder, t: &TileTokens) -> Result<ReadHandle, Error> {
        let (scores, _, _) = self.scores_and_keys(rec, t)?;
        Ok(rec.read(scores, t.has_cls as usize, t.n_visual()))
    }

    /// MustDrop stage 1: records the window scores of the `side x side` patch rows of `x`
    /// (`[_, d]`, patches from row `first`) and returns their read handle.
    pub fn window_scores(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        side: usize,
        w: usize,
        d: usize,
        first: usize,
    ) -> Result<ReadHandle, Error> {
        kernels::window_similarity(rec, x, &self.stats, side, w, d, first)?;
        Ok(rec.read(&self.stats, 0, (side / w).pow(2)))
    }

    /// MustDrop stage 1: replaces the patch rows of `x` (`[_, d]`, patches from row `first`; a
    /// CLS row before them stays) by the tokens of `m`: each merged window's mean, then the
    /// other patches in raster order.
    pub fn merge(&self, rec: &mut Recorder, x: &Tensor, d: usize, first: usize, m: &Stage1) -> Result<(), Error> {
        let list: Vec<u32> = m.sources().iter().flatten().map(|&p| (first + p) as u32).collect();
        gather_rows(rec, x, d, &list, &self.out)?;
        let (r, ww) = (m.merged.len(), m.w * m.w);
        let means = GroupMean { n: r, w: d, groups: ww, x_offset: 0, x_stride: ww * d, y_offset: first * d };
        if r > 0 {
            group_mean(rec, &self.out, x, means)?;
        }
        let rest = list.len() - r * ww;
        rec.copy(&self.out, r * ww * d, x, (first + r) * d, rest * d);
        Ok(())
    }

    /// MustDrop stage 1 undone before a pixel shuffle: every patch row of `x` gets the merged
    /// token that holds it back.
    pub fn unmerge(&self, rec: &mut Recorder, x: &Tensor, d: usize, first: usize, m: &Stage1) -> Result<(), Error> {
        let list: Vec<u32> = m.owner().iter().map(|&t| (first + t) as u32).collect();
        gather_rows(rec, x, d, &list, &self.out)?;
        rec.copy(&self.out, 0, x, first * d, list.len() * d);
        Ok(())
    }

    /// Records the positions of the rows tile `tile` sent (`r`, its record) into `pos[dst..]`:
    /// each row at `base` (the position of the tile's first visual token in the unpruned
    /// prompt) plus its token's cell, from the tile's index list in the report buffer.
    pub fn positions(
        &self,
        rec: &mut Recorder,
        r: &TileRecord,
        tile: usize,
        pos: &Tensor,
        (dst, base): (usize, usize),
    ) -> Result<(), Error> {
        let first = r.has_cls as usize;
        let (n_kept, n_targets, first) = match &r.choice {
            TileChoice::VisionZip { dominant, contextual } => (*dominant, *contextual, first),
            TileChoice::Keep(keep) => (keep.len(), 0, first),
            // The trimmer ranks the visual tokens alone.
            TileChoice::Learned { keep } => (*keep, 0, 0),
        };
        let src = tile * self.max_rows;
        token_positions(
            rec,
            &self.report_order,
            pos,
            PositionArgs { n_kept, n_targets, step: r.step, first, src, dst, base },
        )
    }

    /// Reads the frame's index lists back with the frame's last submit.
    pub fn read_report(&self, rec: &mut Recorder, tiles: usize) -> ReportReads {
        let len = tiles.min(self.max_tiles) * self.max_rows;
        ReportReads { order: rec.read(&self.report_order, 0, len), assign: rec.read(&self.report_assign, 0, len) }
    }

    /// Each tile's patch grid from the read-back index lists.
    pub fn decode_report(&self, done: &Finished, reads: &ReportReads, records: &[TileRecord]) -> Vec<PatchGrid> {
        let order = done.u32(reads.order);
        let assign = done.u32(reads.assign);
        records
            .iter()
            .enumerate()
            .map(|(tile, r)| {
                let at = tile * self.max_rows;
                let order = order.get(at..at + r.n_rows).unwrap_or(&[]);
                let assign = assign.get(at..at + r.n_rows).unwrap_or(&[]);
                tile_grid(tile, r, order, assign)
            })
            .collect()
    }
}

/// The patch grid of one tile: token index i (CLS excluded) is cell i.
fn tile_grid(tile: usize, r: &TileRecord, order: &[u32], assign: &[u32]) -> PatchGrid {
    let mut g = PatchGrid::new(tile, r.grid.0, r.grid.1);
    let first = r.has_cls as usize;
    let cell = |row: u32| (row as usize).checked_sub(first);
    g.fates.iter_mut().for_each(|f| *f = PatchFate::Dropped);
    let mut set = |row: u32, fate: PatchFate, into: Option<usize>| {
        if let Some(c) = cell(row).filter(|&c| c < g.fates.len()) {
            g.fates[c] = fate;
            g.merged_into[c] = into;
        }
    };
    match &r.choice {
        TileChoice::Keep(keep) => {
            for &i in keep {
                set((i + first) as u32, PatchFate::Kept, None);
            }
        }
        TileChoice::Learned { keep } => {
            for &i in order.iter().take(*keep) {
                set(i + first as u32, PatchFate::Kept, None);
            }
        }
        TileChoice::VisionZip { dominant, contextual } => {
            let (dominant, contextual) = (*dominant, *contextual);
            for &row in order.iter().take(dominant) {
                set(row, PatchFate::Dominant, None);
            }
            let rest = order.get(dominant..).unwrap_or(&[]);
            let is_target = |q: usize| q.is_multiple_of(r.step) && q / r.step < contextual;
            for (q, &row) in rest.iter().enumerate() {
                if is_target(q) {
                    set(row, PatchFate::Contextual, None);
                } else if let Some(&t) = assign.get(q).filter(|_| contextual > 0) {
                    let target = rest.get(t as usize * r.step).and_then(|&tr| cell(tr));
                    set(row, PatchFate::Merged, target);
                }
            }
        }
    }
    g
}
