//! The text decoder's prefill with image tokens dropped between layers (FastV, MustDrop stages 2
//! and 3; the decisions are `prune::llm`'s). Layers run in segments; after each pruning layer
//! the head-mean attention of the chosen query rows onto the image rows is computed on the GPU
//! (`attention_received_max`, no score matrix), one score and one maximum per image row are
//! read back, and the surviving rows (activations and positions) are gathered before the next
//! segment. After the last segment MustDrop trims the KV caches of the layers that still hold
//! dropped tokens.

use crate::gpu::kernels::{self, ReceivedArgs, attention_received_max, gather_rows};
use crate::gpu::{Finished, Gpu, Recorder, Tensor};
use crate::model::Error;
use crate::model::text::{KvCache, StepPositions, TextModel, TextScratch};
use crate::prune::llm::{LlmPlan, Rows, Rule, survivors, trim_list};

/// The pieces the dropping prefill works on.
pub struct LlmText<'a> {
    pub gpu: &'a Gpu,
    pub model: &'a TextModel,
    pub s: &'a TextScratch,
}

/// What the dropping prefill did.
pub struct Dropped {
    /// Rows each layer ran on.
    pub layer_rows: Vec<usize>,
    /// Image tokens each layer ran on.
    pub layer_images: Vec<usize>,
    /// Original prompt rows still present after the last stage, ascending.
    pub survivors: Vec<usize>,
    /// GPU milliseconds per stage of the submits made at the pruning layers.
    pub stage_ms: Vec<(String, f64)>,
}

impl<'a> LlmText<'a> {
    /// Runs the `n` prompt rows of `s.x` (image tokens at the original rows `image_rows`)
    /// through every layer, dropping image rows as `plan` says, and leaves the last row's
    /// logits in `s.logits`. `rec` holds the frame's work so far; it is submitted at each
    /// stage and a recorder holding the rest is returned.
    /// `key_set` gives, from the first stage's submit, original rows never dropped.
    pub fn prefill_dropping(
        &self,
        mut rec: Recorder<'a>,
        cache: &mut KvCache,
        plan: &LlmPlan,
        n: usize,
        image_rows: Vec<usize>,
        key_set: &mut dyn FnMut(&Finished) -> Vec<usize>,
    ) -> Result<(Recorder<'a>, Dropped), Error> {
        let c = &self.model.cfg;
        let (d, kv_dim, q_dim) = (c.n_embd, c.n_head_kv * c.head_dim, c.n_head * c.head_dim);
        self.model.begin(&mut rec, self.s, cache, &StepPositions::consecutive(n))?;
        let mut rows = Rows::new(n, image_rows);
        let mut held: Vec<Vec<usize>> = vec![Vec::new(); c.n_layer];
        let mut layer_rows = vec![0; c.n_layer];
        let mut layer_images = vec![0; c.n_layer];
        let mut keep_always: Option<Vec<usize>> = None;
        let mut stage_ms = Vec::new();
        let mut next = 0;
        let mut run = |rec: &mut Recorder<'a>, cache: &mut KvCache, rows: &Rows, to: usize| -> Result<(), Error> {
            let n_cur = rows.original.len();
            self.model.layers(rec, self.s, cache, next..to, n_cur)?;
            for il in next..to {
                held[il] = rows.original.clone();
                layer_rows[il] = n_cur;
                layer_images[il] = rows.image_rows().len();
            }
            next = to;
            Ok(())
        };
        for &after in &plan.after_layers {
            run(&mut rec, cache, &rows, after + 1)?;
            let image = rows.image_rows();
            let queries = match plan.rule {
                Rule::FastV { .. } => rows.original.len() - 1..rows.original.len(),
                Rule::MustDrop { .. } => rows.text_after_image(),
            };
            let (Some(&k0), Some(&k_last)) = (image.first(), image.last()) else { continue };
            if queries.is_empty() {
                continue;
            }
            let args = ReceivedArgs {
                n_q: queries.len(),
                n_kv: cache.rows[after],
                n_head: c.n_head,
                n_head_kv: c.n_head_kv,
                head_dim: c.head_dim,
                causal: true,
                // This prompt's rows start the cache (ask always begins a conversation).
                pos0: queries.start,
                q_offset: queries.start * q_dim,
                q_stride: q_dim,
                k_offset: 0,
                k_stride: kv_dim,
                k0,
                n_cols: k_last + 1 - k0,
            };
            let stats = self.gpu.tensor(kernels::received_stats_len(&args), "llm.prune.stats")?;
            attention_received_max(&mut rec, &self.s.q, &cache.k[after], &stats, args)?;
            let hs = rec.read(&stats, 0, args.n_cols);
            let hm = rec.read(&stats, kernels::received_max_offset(&args), args.n_cols);
            let done = rec.finish()?;
            stage_ms.extend(done.stage_ms.iter().cloned());
            let key = keep_always.get_or_insert_with(|| key_set(&done));
            let (sums, maxima) = (done.f32(hs), done.f32(hm));
            let scores: Vec<f32> = image.iter().map(|&r| sums[r - k0]).collect();
            let most: Vec<f32> = image.iter().map(|&r| maxima[r - k0]).collect();
            let protected: Vec<usize> =
                (0..image.len()).filter(|&i| key.binary_search(&rows.original[image[i]]).is_ok()).collect();
            let keep = survivors(&plan.rule, &scores, &most, &protected);
            let before = rows.original.len();
            let gather = rows.retain_images(&keep);
            rec = Recorder::new(self.gpu);
            rec.stage("prefill");
            if gather.len() < before {
                self.gather_rows(&mut rec, &self.s.x, d, &gather)?;
                let positions: Vec<u32> = if plan.keeps_positions() {
                    rows.original.iter().map(|&r| (cache.len + r) as u32).collect()
                } else {
                    (cache.len as u32..(cache.len + gather.len()) as u32).collect()
                };
                self.gpu.write_u32(&self.s.positions, 0, &positions);
            }
        }
        run(&mut rec, cache, &rows, c.n_layer)?;
        if plan.trim_kv {
            let (first, last) = (plan.after_layers[0], *plan.after_layers.last().unwrap_or(&0));
            let span = first..=last.min(c.n_layer - 1);
            for (il, held) in held.iter().enumerate().filter(|(il, _)| span.contains(il)) {
                let list = trim_list(held, &rows.original);
                if list.len() < held.len() {
                    self.gather_rows(&mut rec, &cache.k[il], kv_dim, &list)?;
                    self.gather_rows(&mut rec, &cache.v[il], kv_dim, &list)?;
                    cache.rows[il] = list.len();
                }
            }
        }
        let n_cur = rows.original.len();
        self.model.finish(&mut rec, self.s, cache, n_cur, n)?;
        Ok((rec, Dropped { layer_rows, layer_images, survivors: rows.original, stage_ms }))
    }

    /// Keeps rows `list` (ascending) of the `[_, width]` rows at the start of `x`, packed.
    fn gather_rows(&self, rec: &mut Recorder, x: &Tensor, width: usize, list: &[usize]) -> Result<(), Error> {
        let ids: Vec<u32> = list.iter().map(|&i| i as u32).collect();
        let tmp = self.gpu.tensor(list.len() * width, "llm.prune.tmp")?;
        gather_rows(rec, x, width, &ids, &tmp)?;
        rec.copy(&tmp, 0, x, 0, list.len() * width);
        Ok(())
    }
}
