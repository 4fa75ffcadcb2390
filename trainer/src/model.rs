//! The LLaVA-family model of a glimpse GGUF pair (CLIP-style ViT with CLS, `mlp` projector,
//! `llama` decoder) as a differentiable candle graph over a batch. Every parameter is a candle
//! `Var` named after its GGUF tensor and shaped like it (ggml dims reversed: a Linear is
//! `[n_out, n_in]`), and the graph reads the tensor names from glimpse's own layout descriptors, so
//! what is trained is exactly what `glimpse::reference` and the GPU engine run. The test at the
//! bottom holds the two forward passes to each other.

use std::collections::HashMap;

use anyhow::Context;
use candle_core::{D, DType, Device, Result, Tensor, Var};
use glimpse::gguf::Gguf;
use glimpse::model::config::{ProjectorKind, RopeMode, TextConfig, VisionAct, VisionConfig};
use glimpse::model::layout::{LinearDesc, NormDesc, ProjectorDesc, TextDesc, VisionDesc};
use glimpse::model::names::{TRIM_FC1, TRIM_FC1_BIAS, TRIM_FC2, TRIM_TOKEN_EMBD};

use crate::softmax::softmax;

/// The auxiliary heads' file beside a checkpoint (see [`Aux::save`]).
pub const AUX_FILE: &str = "aux.safetensors";

/// Every parameter of the pair, by GGUF tensor name.
pub struct Weights {
    vars: Vec<(String, Var)>,
    index: HashMap<String, usize>,
}

impl Weights {
    /// The tensors of `files`, dequantised to f32.
    pub fn load(files: &[&Gguf], dev: &Device) -> anyhow::Result<Weights> {
        let mut w = Weights { vars: Vec::new(), index: HashMap::new() };
        w.add_missing(files, dev)?;
        Ok(w)
    }

    /// Adds every tensor of `files` not yet in the set (a resumed checkpoint's new parts, from
    /// the initial model); returns their names.
    pub fn add_missing(&mut self, files: &[&Gguf], dev: &Device) -> anyhow::Result<Vec<String>> {
        let mut added = Vec::new();
        for g in files {
            for t in g.tensors() {
                if self.index.contains_key(&t.name) {
                    continue;
                }
                let values = glimpse::reference::weights::tensor(g, &t.name)?;
                // `[ne_last, rest]`: a Linear's `[n_out, n_in]`; a conv kernel as a Linear over
                // its flattened (channel, ky, kx) input.
                let last = *t.dims.last().context("a tensor without dims")? as usize;
                let shape: Vec<usize> = if t.dims.len() == 1 { vec![last] } else { vec![last, values.len() / last] };
                let var = Var::from_slice(&values, shape, dev).with_context(|| t.name.clone())?;
                self.index.insert(t.name.clone(), self.vars.len());
                self.vars.push((t.name.clone(), var));
                added.push(t.name.clone());
            }
        }
        Ok(added)
    }

    /// Sets tensor `name` to zeros.
    pub fn zero(&self, name: &str) -> anyhow::Result<()> {
        let v = &self.vars[*self.index.get(name).with_context(|| format!("no tensor {name}"))?].1;
        Ok(v.set(&v.as_tensor().zeros_like()?)?)
    }

    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// The variables whose GGUF names start with `prefix`.
    pub fn vars_named(&self, prefix: &str) -> Vec<Var> {
        self.vars.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, v)| v.clone()).collect()
    }

    pub fn n_params(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    fn get(&self, name: &str) -> &Tensor {
        // Names come from layout descriptors resolved against the same files.
        self.vars[self.index[name]].1.as_tensor()
    }

    /// Every tensor's values in ggml order, by name: what the exporter writes.
    pub fn values(&self) -> anyhow::Result<HashMap<String, Vec<f32>>> {
        self.vars.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?))).collect()
    }

    /// `x [.., n_in] -> [.., n_out]`.
    fn linear(&self, d: &LinearDesc, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows = x.elem_count() / d.n_in;
        let y = x.reshape((rows, d.n_in))?.matmul(&self.get(&d.weight).t()?)?;
        let y = match &d.bias {
            Some(b) => y.broadcast_add(self.get(b))?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().expect("a linear input has a last dim") = d.n_out;
        y.reshape(out)
    }

    fn layer_norm(&self, d: &NormDesc, x: &Tensor, eps: f32) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + eps as f64)?.sqrt()?)?.broadcast_mul(self.get(&d.weight))?;
        match &d.bias {
            Some(b) => y.broadcast_add(self.get(b)),
            None => Ok(y),
        }
    }

    fn rms_norm(&self, d: &NormDesc, x: &Tensor, eps: f32) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps as f64)?.sqrt()?)?.broadcast_mul(self.get(&d.weight))
    }
}

/// The model's structure: configs and tensor names, read from the pair.
pub struct Model {
    pub vision_cfg: VisionConfig,
    pub text_cfg: TextConfig,
    vision: VisionDesc,
    projector: ProjectorDesc,
    text: TextDesc,
}

/// A batch of prompts about a few images, right-padded to `len` positions.
pub struct Batch {
    /// `[n_images, 3, size, size]` normalised planar pixels.
    pub pixels: Tensor,
    /// `[b * len]` token ids (0 in image slots and padding).
    pub ids: Tensor,
    /// `[b * len]` rows of `[token embeddings (b * len); image embeddings (n_images * n_image)]`
    /// that make the input sequence.
    pub gather: Tensor,
    pub b: usize,
    pub len: usize,
    /// `[m]` flat positions (`i * len + t`) whose next token is a target.
    pub predict: Tensor,
    /// `[m]` the targets.
    pub targets: Tensor,
    /// `[n_images * n_patches]` the auxiliary per-patch classes.
    pub patch_labels: Tensor,
    /// `[b * len]` per input row: 0 for text, else `1 + i * n_patches + patch` for image slot
    /// `patch` of prompt i (where a trimmer gate applies).
    pub slots: Tensor,
    /// `[b]` each prompt's image.
    pub image_of: Tensor,
    /// `[b, n_vocab]` each prompt's question as token shares (rows sum to 1): the trimmer's
    /// question mean is `questions . table`.
    pub questions: Tensor,
    /// `[b, 2, len]` 1.0 on the input rows where the first and the second half of the last
    /// layer's heads should look from the answer position (see `data::Asked::look`).
    pub look: Tensor,
    /// `[b, len]` 1.0 on each prompt's last row, the one that predicts the answer's first token.
    pub answer_row: Tensor,
    /// `[b, len]` each input row's rope position: kept patches keep their unpruned positions.
    pub positions: Tensor,
    /// `[b]` 1.0 for prompts whose halves both have some `look` row.
    pub looks: Tensor,
    /// `[b, 2, 2]` the centre (x, y in -1..1) of the object each half of the heads looks at
    /// (0 where `looks` is 0).
    pub look_place: Tensor,
    /// `[b]` each relation's direction (0 left of, 1 right of, 2 above, 3 below; 0 otherwise).
    pub relation: Tensor,
    /// `[b]` 1.0 for relation prompts.
    pub relations: Tensor,
}

/// Training-only linear heads on the image rows the decoder receives (the projector's output):
/// one names the object (or background) under each patch, one places the patch in the image.
/// Dense supervision that keeps what the questions ask about (colour, shape, place) linearly
/// readable where the decoder reads it; on the tower's features alone the projector was free to
/// drop the shapes (shape questions stayed at chance with the decoder's attention on the right
/// object). Not part of the exported model.
pub struct Aux {
    w: Var,
    b: Var,
    place_w: Var,
    place_b: Var,
    /// `[2 halves, 2, n_embd / 2]` and `[2, 2]`: the place each half of the last decoder layer's
    /// heads reads at the answer row.
    heads_w: Var,
    heads_b: Var,
    /// `[4, n_embd]`, `[4]`, `[2, n_embd]`, `[2]`: a relation's direction and the difference of
    /// its two objects' centres, read off the last layer's feed-forward input at the answer row.
    rel_w: Var,
    rel_b: Var,
    diff_w: Var,
    diff_b: Var,
    /// `[n_patches, 2]` each patch's centre, x and y in -1..1.
    places: Tensor,
}

/// The auxiliary losses of a batch.
pub struct AuxLosses {
    /// Cross-entropy of the patch classes.
    pub classes: Tensor,
    /// Mean squared error of the patch places.
    pub place: Tensor,
}

impl Aux {
    /// Heads over `n_embd`-wide rows of a `grid` x `grid` patch image.
    pub fn new(n_embd: usize, n_classes: usize, grid: usize, dev: &Device) -> Result<Aux> {
        let std = (1.0 / (n_embd as f64).sqrt()) as f32;
        let places: Vec<f32> = (0..grid * grid).flat_map(|p| crate::data::patch_centre(p, grid)).collect();
        Ok(Aux {
            w: Var::randn(0f32, std, (n_classes, n_embd), dev)?,
            b: Var::zeros(n_classes, DType::F32, dev)?,
            place_w: Var::randn(0f32, std, (2, n_embd), dev)?,
            place_b: Var::zeros(2, DType::F32, dev)?,
            heads_w: Var::randn(0f32, std, (2, 2, n_embd / 2), dev)?,
            heads_b: Var::zeros((2, 2), DType::F32, dev)?,
            rel_w: Var::randn(0f32, std, (4, n_embd), dev)?,
            rel_b: Var::zeros(4, DType::F32, dev)?,
            diff_w: Var::randn(0f32, std, (2, n_embd), dev)?,
            diff_b: Var::zeros(2, DType::F32, dev)?,
            places: Tensor::from_vec(places, (grid * grid, 2), dev)?,
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        self.named().into_iter().map(|(_, v)| v.clone()).collect()
    }

    fn named(&self) -> [(&'static str, &Var); 10] {
        [
            ("class.weight", &self.w),
            ("class.bias", &self.b),
            ("place.weight", &self.place_w),
            ("place.bias", &self.place_b),
            ("heads.weight", &self.heads_w),
            ("heads.bias", &self.heads_b),
            ("relation.weight", &self.rel_w),
            ("relation.bias", &self.rel_b),
            ("difference.weight", &self.diff_w),
            ("difference.bias", &self.diff_b),
        ]
    }

    /// Writes the heads beside a checkpoint, `dir/aux.safetensors` (atomically), so that a phase
    /// resuming it does not start them afresh (fresh heads cost a resumed phase a few hundred
    /// steps of accuracy).
    pub fn save(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        let heads: HashMap<String, Tensor> =
            self.named().into_iter().map(|(n, v)| (n.to_string(), v.as_tensor().clone())).collect();
        let path = dir.join(AUX_FILE);
        let tmp = path.with_extension("safetensors.part");
        candle_core::safetensors::save(&heads, &tmp).with_context(|| tmp.display().to_string())?;
        std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())
    }

    /// Takes the heads [`Aux::save`] wrote in `dir`, when it holds all of them with these
    /// shapes; says whether it did (older checkpoints have none).
    pub fn load(&self, dir: &std::path::Path, dev: &Device) -> anyhow::Result<bool> {
        let path = dir.join(AUX_FILE);
        if !path.exists() {
            return Ok(false);
        }
        let saved = candle_core::safetensors::load(&path, dev).with_context(|| path.display().to_string())?;
        let found: Vec<(&Var, &Tensor)> = self
            .named()
            .into_iter()
            .filter_map(|(n, v)| saved.get(n).filter(|t| t.shape() == v.shape()).map(|t| (v, t)))
            .collect();
        if found.len() < self.named().len() {
            return Ok(false);
        }
        for (var, t) in found {
            var.set(t)?;
        }
        Ok(true)
    }

    /// How far from its object's centre the place is that each half of the last decoder layer's
    /// heads reads at the answer row (`last_heads` `[b, len, n_embd]`, see
    /// [`Decoded::last_heads`]): the squared error of a linear read-out, averaged over the
    /// halves and the prompts with look targets. Attention supervision brings the objects' rows
    /// to the heads; this makes their values carry the place. Without it a relation ("is A left
    /// of B?", one sign of the difference of two heads' places) stayed at chance: the value and
    /// output projections each wait on the other to carry a place (a saddle), and 300
    /// relation-only steps did not leave it.
    pub fn attended_place(&self, last_heads: &Tensor, batch: &Batch) -> Result<Tensor> {
        let (b, _, width) = last_heads.dims3()?;
        let halves = answer_rows(last_heads, batch)?.reshape((b, 2, width / 2))?.transpose(0, 1)?.contiguous()?;
        let read = halves.matmul(&self.heads_w.as_tensor().transpose(1, 2)?)?;
        let read = read.broadcast_add(&self.heads_b.as_tensor().unsqueeze(1)?)?.transpose(0, 1)?;
        let err = (read - &batch.look_place)?.sqr()?.sum(2)?.mean(1)?;
        mean_over(&err, &batch.looks)
    }

    /// How poorly the last layer's feed-forward input at the answer row (`ffn_input`
    /// `[b, len, n_embd]`) holds a relation's two factors: the cross-entropy of its direction and
    /// the squared error of the difference of its objects' centres, linear read-outs, over the
    /// relation prompts. Their product is the answer; the feed-forward's gate times up can form it
    /// only once both are there.
    pub fn relation_factors(&self, ffn_input: &Tensor, batch: &Batch) -> Result<Tensor> {
        let h = answer_rows(ffn_input, batch)?;
        let logits = h.matmul(&self.rel_w.as_tensor().t()?)?.broadcast_add(self.rel_b.as_tensor())?;
        let nll = candle_nn::ops::log_softmax(&logits, D::Minus1)?
            .gather(&batch.relation.unsqueeze(1)?, 1)?
            .neg()?
            .squeeze(1)?;
        let diff = (batch.look_place.narrow(1, 0, 1)? - batch.look_place.narrow(1, 1, 1)?)?.reshape((batch.b, 2))?;
        let read = h.matmul(&self.diff_w.as_tensor().t()?)?.broadcast_add(self.diff_b.as_tensor())?;
        let err = (read - diff)?.sqr()?.sum(1)?;
        mean_over(&(nll + err)?, &batch.relations)
    }

    /// The losses on image rows `[b, n_patches, n_embd]`: the patch classes' cross-entropy
    /// averaged with background patches weighted by `background` (objects cover few patches, and
    /// an unweighted mean is mostly the easy background), and the places' squared error.
    pub fn losses(&self, rows: &Tensor, labels: &Tensor, background: f64) -> Result<AuxLosses> {
        let logits = self.logits(rows)?;
        let nll =
            candle_nn::ops::log_softmax(&logits, D::Minus1)?.gather(&labels.unsqueeze(1)?, 1)?.neg()?.squeeze(1)?;
        let weights = ((object_mask(labels)? * (1.0 - background))? + background)?;
        let classes = ((nll * &weights)?.sum_all()? / weights.sum_all()?)?;
        let (b, p, d) = rows.dims3()?;
        let place = rows.reshape((b * p, d))?.matmul(&self.place_w.as_tensor().t()?)?;
        let place = place.broadcast_add(self.place_b.as_tensor())?.reshape((b, p, 2))?;
        let place = place.broadcast_sub(&self.places.unsqueeze(0)?)?.sqr()?.mean_all()?;
        Ok(AuxLosses { classes, place })
    }

    /// The most likely class of each patch, `[b * n_patches]`.
    pub fn predict(&self, rows: &Tensor) -> Result<Vec<u32>> {
        self.logits(rows)?.argmax(D::Minus1)?.to_vec1()
    }

    fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        let d = rows.dim(2)?;
        rows.reshape(((), d))?.matmul(&self.w.as_tensor().t()?)?.broadcast_add(self.b.as_tensor())
    }
}

/// 1.0 where a patch label names an object, else 0.0.
fn object_mask(labels: &Tensor) -> Result<Tensor> {
    labels.ne(0u32)?.to_dtype(DType::F32)
}

/// How much of the feature layer's CLS attention lands off the objects: the mean over images of
/// `-ln(mass on object patches)`, from `cls_attention` `[b, n_patches]` (see
/// [`VisionOut::cls_attention`]). VisionZip keeps the patches CLS attends to most, but an mlp
/// projector drops CLS, so nothing else trains that query: this loss makes the pruning score see
/// the objects.
pub fn cls_loss(cls_attention: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let mask = object_mask(labels)?.reshape(cls_attention.shape())?;
    ((cls_attention * mask)?.sum(1)? + 1e-4)?.log()?.neg()?.mean_all()
}

/// The decoder's output.
pub struct Decoded {
    /// `[b * len, n_embd]` the final hidden states, before the output norm.
    pub hidden: Tensor,
    /// `[b, n_head, len, len]` the last layer's attention probabilities.
    pub last_attention: Tensor,
    /// `[b, len, n_embd]` the last layer's heads' outputs, before the output projection.
    pub last_heads: Tensor,
    /// `[b, len, n_embd]` the last layer's feed-forward input (after its norm).
    pub last_ffn_input: Tensor,
}

/// How little of the last decoder layer's attention, at the row that predicts the answer, lands
/// where it should: the mean over the prompts that have targets (`Batch::looks`) and over heads
/// of `-ln(the head's mass on its half's Batch::look rows)`. Attention supervision: it teaches
/// the two-hop lookup (question word -> object -> its colour, shape or place) that the answer
/// loss alone leaves on a long plateau, and gives a relation's two objects to different heads.
pub fn look_loss(last_attention: &Tensor, batch: &Batch) -> Result<Tensor> {
    let (b, h, n, _) = last_attention.dims4()?;
    let at_answer = batch.answer_row.reshape((b, 1, 1, n))?.broadcast_as((b, h, 1, n))?.contiguous()?;
    let rows = at_answer.matmul(last_attention)?.reshape((b, h, n))?;
    let half: Vec<u32> = (0..h).map(|i| (2 * i / h) as u32).collect();
    let targets = batch.look.index_select(&Tensor::new(half, rows.device())?, 1)?;
    let nll = ((rows * targets)?.sum(2)? + 1e-4)?.log()?.neg()?.mean(1)?;
    mean_over(&nll, &batch.looks)
}

/// `[b, d]`: each prompt's row of `rows` (`[b, len, d]`) that predicts the answer.
fn answer_rows(rows: &Tensor, batch: &Batch) -> Result<Tensor> {
    let (b, n, d) = rows.dims3()?;
    batch.answer_row.reshape((b, 1, n))?.matmul(rows)?.reshape((b, d))
}

/// The mean of the per-prompt values `per` (`[b]`) over the prompts `mask` (`[b]`, 0 or 1)
/// marks; 0 when it marks none.
fn mean_over(per: &Tensor, mask: &Tensor) -> Result<Tensor> {
    (per * mask)?.sum_all()? / (mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64)
}

/// The vision tower's output.
pub struct VisionOut {
    /// `[b, n_patches, n_embd]` the feature layer's patch rows (CLS dropped).
    pub features: Tensor,
    /// `[b, n_patches, n_text]` the projector's output: the decoder's image rows.
    pub embeddings: Tensor,
    /// `[b, n_patches]` the feature layer's CLS attention over the patches, averaged over heads
    /// (VisionZip's score up to a factor), when the tower has a CLS token.
    pub cls_attention: Option<Tensor>,
}

impl Model {
    pub fn new(text: &Gguf, mmproj: &Gguf) -> anyhow::Result<Model> {
        let vision_cfg = VisionConfig::from_gguf(mmproj)?;
        let text_cfg = TextConfig::from_gguf(text)?;
        anyhow::ensure!(vision_cfg.projector == ProjectorKind::Mlp, "the trainer builds mlp-projector models");
        anyhow::ensure!(
            text_cfg.rope_mode == RopeMode::Pairs && !text_cfg.qkv_bias && text_cfg.rope_dim == text_cfg.head_dim,
            "the trainer builds llama decoders with full-width rope"
        );
        Ok(Model {
            vision: VisionDesc::resolve(mmproj, &vision_cfg)?,
            projector: ProjectorDesc::resolve(mmproj, &vision_cfg)?,
            text: TextDesc::resolve(text, &text_cfg)?,
            vision_cfg,
            text_cfg,
        })
    }

    /// Vision tower and projector: `[b, 3, s, s]` -> patch features (CLS dropped), their LLM
    /// embeddings and the feature layer's CLS attention.
    pub fn vision(&self, w: &Weights, pixels: &Tensor) -> Result<VisionOut> {
        let c = &self.vision_cfg;
        let (b, p, g) = (pixels.dim(0)?, c.patch_size, c.patches_per_side());
        // The conv as a GEMM over (channel, ky, kx) rows, raster order over the grid.
        let patches = pixels.reshape((b, 3, g, p, g, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((
            b,
            g * g,
            3 * p * p,
        ))?;
        let mut x = w.linear(&self.vision.patch, &patches)?;
        if let Some(cls) = &self.vision.class_embd {
            let cls = w.get(cls).reshape((1, 1, c.n_embd))?.broadcast_as((b, 1, c.n_embd))?.contiguous()?;
            x = Tensor::cat(&[&cls, &x], 1)?;
        }
        x = x.broadcast_add(w.get(&self.vision.position))?;
        if let Some(ln) = &self.vision.pre_ln {
            x = w.layer_norm(ln, &x, c.eps)?;
        }
        let mut cls_attention = None;
        for (i, blk) in self.vision.blocks.iter().enumerate() {
            let h = w.layer_norm(&blk.ln1, &x, c.eps)?;
            let (q, k, v) = (w.linear(&blk.q, &h)?, w.linear(&blk.k, &h)?, w.linear(&blk.v, &h)?);
            if c.has_cls && i + 1 == self.vision.blocks.len() {
                cls_attention = Some(cls_scores(&q, &k, c.n_head)?.narrow(1, 1, c.n_patches())?);
            }
            let (a, _) = attention(&q, &k, &v, c.n_head, c.n_head, false)?;
            x = (x + w.linear(&blk.out, &a)?)?;
            let h = w.layer_norm(&blk.ln2, &x, c.eps)?;
            let f = w.linear(&blk.up, &h)?;
            let f = match c.act {
                VisionAct::Gelu => f.gelu()?,
                VisionAct::QuickGelu => (&f * candle_nn::ops::sigmoid(&(&f * 1.702)?)?)?,
                VisionAct::Silu => f.silu()?,
            };
            x = (x + w.linear(&blk.down, &f)?)?;
        }
        if let Some(ln) = &self.vision.post_ln {
            x = w.layer_norm(ln, &x, c.eps)?;
        }
        let features = if c.has_cls { x.narrow(1, 1, c.n_patches())? } else { x };
        let embeddings = self.project(w, &features)?;
        Ok(VisionOut { features, embeddings, cls_attention })
    }

    /// The projector: patch features -> `[b, n_patches, n_text]` LLM embeddings.
    fn project(&self, w: &Weights, features: &Tensor) -> Result<Tensor> {
        match &self.projector {
            ProjectorDesc::Mlp { fc1, fc2 } => w.linear(fc2, &w.linear(fc1, features)?.gelu()?),
            ProjectorDesc::Idefics3 { .. } => unreachable!("checked in Model::new"),
        }
    }

    /// The decoder on the batch's prompts with the images' projected patch `embeddings`. With `gate`
    /// (`[1 + b * n_patches]`, indexed by [`Batch::slots`]) each input row is scaled by its
    /// entry: the trimmer's straight-through gate on the image slots, 1 elsewhere.
    pub fn decoder(&self, w: &Weights, batch: &Batch, embeddings: &Tensor, gate: Option<&Tensor>) -> Result<Decoded> {
        let c = &self.text_cfg;
        let (b, t, d) = (batch.b, batch.len, c.n_embd);
        let tokens = w.get(&self.text.token_embd.weight).index_select(&batch.ids, 0)?;
        let rows = Tensor::cat(&[&tokens, &embeddings.reshape(((), d))?], 0)?;
        let mut x = rows.index_select(&batch.gather, 0)?;
        if let Some(gate) = gate {
            x = x.broadcast_mul(&gate.index_select(&batch.slots, 0)?.unsqueeze(1)?)?;
        }
        let mut x = x.reshape((b, t, d))?;
        let (cos, sin) = rope_tables(&batch.positions, c)?;
        let mut last = None;
        let mut last_ffn_input = None;
        for l in &self.text.layers {
            let h = w.rms_norm(&l.attn_norm, &x, c.eps)?;
            let q = rope(&w.linear(&l.q, &h)?, c.n_head, &cos, &sin)?;
            let k = rope(&w.linear(&l.k, &h)?, c.n_head_kv, &cos, &sin)?;
            let v = w.linear(&l.v, &h)?;
            let (a, p) = attention(&q, &k, &v, c.n_head, c.n_head_kv, true)?;
            x = (x + w.linear(&l.out, &a)?)?;
            last = Some((p, a));
            let h = w.rms_norm(&l.ffn_norm, &x, c.eps)?;
            let g = (w.linear(&l.gate, &h)?.silu()? * w.linear(&l.up, &h)?)?;
            x = (x + w.linear(&l.down, &g)?)?;
            last_ffn_input = Some(h);
        }
        let (last_attention, last_heads) =
            last.ok_or_else(|| candle_core::Error::Msg("a decoder without layers".into()))?;
        let last_ffn_input = last_ffn_input.unwrap_or_else(|| x.clone());
        Ok(Decoded { hidden: x.reshape((b * t, d))?, last_attention, last_heads, last_ffn_input })
    }

    /// Logits `[m, n_vocab]` at the batch's predicted positions of decoded `hidden` rows.
    pub fn predicted_logits(&self, w: &Weights, batch: &Batch, hidden: &Tensor) -> Result<Tensor> {
        self.logits(w, &hidden.index_select(&batch.predict, 0)?)
    }

    /// Logits `[rows, n_vocab]` of hidden-state rows.
    pub fn logits(&self, w: &Weights, hidden: &Tensor) -> Result<Tensor> {
        let h = w.rms_norm(&self.text.output_norm, hidden, self.text_cfg.eps)?;
        w.linear(self.text.output.as_ref().unwrap_or(&self.text.token_embd), &h)
    }

    /// Logits `[m, n_vocab]` at the batch's predicted positions, and the patch features.
    pub fn target_logits(&self, w: &Weights, batch: &Batch) -> Result<(Tensor, VisionOut)> {
        let vision = self.vision(w, &batch.pixels)?;
        Ok((self.answer_logits(w, batch, &vision.embeddings, None)?, vision))
    }

    /// Logits `[m, n_vocab]` at the batch's predicted positions, from given patch embeddings and
    /// an optional gate (see [`Model::decoder`]).
    pub fn answer_logits(
        &self,
        w: &Weights,
        batch: &Batch,
        embeddings: &Tensor,
        gate: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.predicted_logits(w, batch, &self.decoder(w, batch, embeddings, gate)?.hidden)
    }

    /// The learned trimmer's scores `[b, n_patches]` of each prompt's visual tokens, as glimpse's
    /// `prune::trimmer` computes them: `fc2 . gelu(fc1 x + fc1.bias + q)`, `q` the mean of the
    /// question's rows of the trimmer's table.
    pub fn trim_scores(&self, w: &Weights, batch: &Batch, features: &Tensor) -> Result<Tensor> {
        let q = batch.questions.matmul(w.get(TRIM_TOKEN_EMBD))?;
        let hidden = q.dim(1)?;
        let bias = q.broadcast_add(w.get(TRIM_FC1_BIAS))?.unsqueeze(1)?;
        let f = features.contiguous()?.index_select(&batch.image_of, 0)?;
        let (b, p, d) = f.dims3()?;
        let h = f.reshape((b * p, d))?.matmul(&w.get(TRIM_FC1).t()?)?.reshape((b, p, hidden))?;
        let h = h.broadcast_add(&bias)?.gelu()?;
        h.reshape((b * p, hidden))?.matmul(&w.get(TRIM_FC2).t()?)?.reshape((b, p))
    }
}

/// Row 0's (CLS) attention over all `n` keys, averaged over heads: `[b, n]`.
fn cls_scores(q: &Tensor, k: &Tensor, n_head: usize) -> Result<Tensor> {
    let (b, n, width) = k.dims3()?;
    let hd = width / n_head;
    let q = (q.narrow(1, 0, 1)?.reshape((b, n_head, 1, hd))? * (1.0 / (hd as f64).sqrt()))?;
    let k = k.reshape((b, n, n_head, hd))?.transpose(1, 2)?.contiguous()?;
    let p = candle_nn::ops::softmax(&q.matmul(&k.t()?)?, D::Minus1)?;
    p.mean(1)?.reshape((b, n))
}

/// Multi-head attention over `[b, n, heads * hd]` rows (grouped-query when `n_head_kv` is
/// smaller), scaled by 1/sqrt(hd), optionally causal: the output rows and the probabilities
/// `[b, n_head, n, n]`.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_head: usize,
    n_head_kv: usize,
    causal: bool,
) -> Result<(Tensor, Tensor)> {
    let (b, n, width) = q.dims3()?;
    let hd = width / n_head;
    let heads = |x: &Tensor, h: usize| -> Result<Tensor> {
        let x = x.reshape((b, n, h, hd))?.transpose(1, 2)?;
        if h == n_head {
            return x.contiguous();
        }
        // Head i reads kv head i / group: repeat each kv head `group` times, adjacently.
        let group = n_head / h;
        x.unsqueeze(2)?.broadcast_as((b, h, group, n, hd))?.contiguous()?.reshape((b, n_head, n, hd))
    };
    let q = (q * (1.0 / (hd as f64).sqrt()))?;
    let (q, k, v) = (heads(&q, n_head)?, heads(k, n_head_kv)?, heads(v, n_head_kv)?);
    let p = softmax(&q.matmul(&k.t()?)?, causal)?;
    Ok((p.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, n, width))?, p))
}

/// cos and sin of llama's rope angles at `positions` (`[b, n]`), `[b, n, rope_dim / 2]`.
fn rope_tables(positions: &Tensor, c: &TextConfig) -> Result<(Tensor, Tensor)> {
    let half = c.rope_dim / 2;
    let freq: Vec<f32> = (0..half).map(|i| c.rope_base.powf(-2.0 * i as f32 / c.rope_dim as f32)).collect();
    let freq = Tensor::from_vec(freq, (1, 1, half), positions.device())?;
    let a = positions.unsqueeze(2)?.broadcast_mul(&freq)?;
    Ok((a.cos()?, a.sin()?))
}

/// RoPE on adjacent pairs (llama.cpp's normal mode) of `[b, n, heads * hd]` rows, all of each
/// head's dims rotated (rope_dim = head_dim, checked by the caller's config).
fn rope(x: &Tensor, n_head: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, n, width) = x.dims3()?;
    let half = cos.dim(2)?;
    let x = x.reshape((b, n, n_head, half, 2))?;
    let (a, c) = (x.narrow(4, 0, 1)?.squeeze(4)?, x.narrow(4, 1, 1)?.squeeze(4)?);
    let cos = cos.reshape((b, n, 1, half))?;
    let sin = sin.reshape((b, n, 1, half))?;
    let ra = (a.broadcast_mul(&cos)? - c.broadcast_mul(&sin)?)?;
    let rc = (a.broadcast_mul(&sin)? + c.broadcast_mul(&cos)?)?;
    Tensor::stack(&[&ra, &rc], 4)?.reshape((b, n, width))
}

/// Mean cross-entropy of `logits [m, v]` against `targets [m]`.
pub fn loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(&logits.to_dtype(DType::F32)?, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Encoder, Group, look_examples};
    use glimpse::dataset::Split;
    use glimpse::reference::projector::Projector;
    use glimpse::reference::text::{KvCache, Text};
    use glimpse::reference::vision::Vision;

    /// The bundled model's spec (with a trimmer when asked), forge-initialised: its files, the
    /// candle model and weights, and the encoder.
    fn initial(trimmer: bool) -> (Gguf, Gguf, Model, Weights, Encoder) {
        let (text, mmproj) = crate::spec::initial(&crate::spec::spec(trimmer).unwrap()).unwrap();
        let model = Model::new(&text, &mmproj).unwrap();
        let w = Weights::load(&[&text, &mmproj], &Device::Cpu).unwrap();
        let enc = Encoder::new(&text, &mmproj).unwrap();
        (text, mmproj, model, w, enc)
    }

    /// Panics unless `got` is within 1e-4 of `want`, relative to the largest |want|.
    fn assert_close(want: &[f32], got: &[f32], what: &str) {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = want.iter().zip(got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-4 * scale, "{what}: max |error| {err} against max |value| {scale}");
    }

    /// The candle graph and glimpse's f32 CPU reference agree on every logit of a randomly
    /// initialised model, for two right-padded prompts of different lengths in one batch: the
    /// trained weights mean the same thing to the engine.
    #[test]
    fn forward_matches_the_reference() {
        let (text, mmproj, model, w, enc) = initial(false);
        let dev = Device::Cpu;
        let mut groups: Vec<_> = [3, 8].iter().map(|&i| enc.example(Split::Validation, i).unwrap()).collect();
        // The second question sees a third of the visual tokens, as a training-time drop sends them.
        groups[1].asked[0].keep.retain(|p| p % 3 == 1);
        let asked: Vec<_> = groups.iter().map(|g| &g.asked[0]).collect();
        assert_ne!(asked[0].before.len() + asked[0].after.len(), asked[1].before.len() + asked[1].after.len());
        let batch = enc.batch(&groups, &dev).unwrap();
        let embeddings = model.vision(&w, &batch.pixels).unwrap().embeddings;
        let logits = model.logits(&w, &model.decoder(&w, &batch, &embeddings, None).unwrap().hidden).unwrap();
        let n_vocab = model.text_cfg.n_vocab;
        let logits: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();

        let vision = Vision::load(&mmproj).unwrap();
        let projector = Projector::load(&mmproj, &vision.cfg).unwrap();
        let reference = Text::load(&text).unwrap();
        for (i, (g, e)) in groups.iter().zip(&asked).enumerate() {
            let image = projector.forward(&vision.cfg, &vision.forward(&g.image.pixels));
            let mut x = Vec::new();
            e.before.iter().for_each(|&id| x.extend_from_slice(reference.embed(id)));
            let d = model.text_cfg.n_embd;
            e.keep.iter().for_each(|&p| x.extend_from_slice(&image[p as usize * d..][..d]));
            for &id in e.after.iter().chain(&e.answer[..e.answer.len() - 1]) {
                x.extend_from_slice(reference.embed(id));
            }
            let offsets: Vec<usize> = (0..e.before.len())
                .chain(e.keep.iter().map(|&p| e.before.len() + p as usize))
                .chain((0..e.after.len() + e.answer.len() - 1).map(|j| e.before.len() + image.len() / d + j))
                .collect();
            let span = offsets.last().map_or(0, |&o| o + 1);
            let want = reference.forward_at(&x, &offsets, span, &mut KvCache::default(), false);
            assert_close(&want, &logits[i * batch.len * n_vocab..][..want.len()], &format!("example {i} logits"));
        }
    }

    /// Under attention spread evenly over each answer row's prompt, the look loss is the mean of
    /// `-ln(share of the prompt's rows that hold a kept patch of the half's object)` over heads,
    /// counted from the examples themselves, and over the prompts that ask about some object; a
    /// relation's halves look at its two objects.
    #[test]
    fn look_loss_is_the_attention_mass_on_the_asked_objects() {
        let (_, _, _, _, enc) = initial(false);
        let dev = Device::Cpu;
        let look = |g: &Group| g.asked[0].look.clone();
        let ex = look_examples(&enc);
        let mut groups: Vec<Group> = ex.single[..2].iter().chain([&ex.relation, &ex.nothing[0]]).cloned().collect();
        // A dropped-token prompt: the look rows follow the kept patches.
        groups[1].asked[0].keep.retain(|p| p % 2 == 0);
        for g in &groups {
            let on_objects = |half: &Vec<u32>| half.iter().all(|&p| g.image.patch_labels[p as usize] > 0);
            assert!(look(g).iter().all(on_objects), "look at object patches");
        }
        let batch = enc.batch(&groups, &dev).unwrap();
        let (b, len, h) = (batch.b, batch.len, 4);
        let mut p = vec![0f32; b * h * len * len];
        let mut want = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let a = &g.asked[0];
            let n = a.before.len() + a.keep.len() + a.after.len();
            for head in 0..h {
                p[((i * h + head) * len + n - 1) * len..][..n].fill(1.0 / n as f32);
            }
            let seen = |half: &Vec<u32>| a.keep.iter().filter(|k| half.contains(k)).count() as f64;
            let [first, second] = [seen(&a.look[0]), seen(&a.look[1])];
            if first > 0.0 && second > 0.0 {
                want.push(-((first / n as f64 + 1e-4).ln() + (second / n as f64 + 1e-4).ln()) / 2.0);
            }
        }
        assert_eq!(want.len(), 3);
        let p = Tensor::from_vec(p, (b, h, len, len), &dev).unwrap();
        let got = look_loss(&p, &batch).unwrap().to_scalar::<f32>().unwrap() as f64;
        let want = want.iter().sum::<f64>() / want.len() as f64;
        assert!((got - want).abs() < 1e-5 * want, "{got} against {want}");
    }

    /// With a read-out that takes the first two values of each half, the attended-place loss is
    /// the mean over halves and over the prompts that ask about objects of the squared distance
    /// between those values at the answer row and the centre of the half's object's patches;
    /// values elsewhere and prompts about nothing do not count.
    #[test]
    fn attended_place_is_the_error_of_each_halfs_object_centre() {
        let (_, _, model, _, enc) = initial(false);
        let dev = Device::Cpu;
        let ex = look_examples(&enc);
        let groups = vec![ex.relation, ex.single[0].clone(), ex.nothing[0].clone()];
        let batch = enc.batch(&groups, &dev).unwrap();
        let (b, len, d) = (batch.b, batch.len, model.text_cfg.n_embd);
        let aux = Aux::new(d, 2, 16, &dev).unwrap();
        let mut read = vec![0f32; 2 * 2 * d / 2];
        for half in 0..2 {
            read[half * d] = 1.0; // x <- the half's first value
            read[half * d + d / 2 + 1] = 1.0; // y <- its second
        }
        aux.heads_w.set(&Tensor::from_vec(read, (2, 2, d / 2), &dev).unwrap()).unwrap();
        let mut heads = vec![0.5f32; b * len * d];
        let mut want = 0.0;
        for (i, g) in groups.iter().enumerate() {
            let a = &g.asked[0];
            let row = (i * len + a.before.len() + a.keep.len() + a.after.len() - 1) * d;
            for (half, patches) in a.look.iter().enumerate() {
                let mean = |f: fn(u32) -> u32| {
                    patches.iter().map(|&p| (2 * f(p) + 1) as f32 / 16.0 - 1.0).sum::<f32>() / patches.len() as f32
                };
                let centre = if patches.is_empty() { [0.0, 0.0] } else { [mean(|p| p % 16), mean(|p| p / 16)] };
                let off = [0.1 * (i + 1) as f32, -0.05 * (half + 2) as f32];
                heads[row + half * d / 2] = centre[0] + off[0];
                heads[row + half * d / 2 + 1] = centre[1] + off[1];
                if i < 2 {
                    want += (off[0] * off[0] + off[1] * off[1]) as f64 / 4.0;
                }
            }
        }
        let heads = Tensor::from_vec(heads, (b, len, d), &dev).unwrap();
        let got = aux.attended_place(&heads, &batch).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} against {want}");
    }

    /// With read-outs that take the first four values as the direction's logits and the next two
    /// as the difference, the relation-factor loss is, over the relation prompts only, the
    /// direction's cross-entropy plus the squared error of the difference of the two objects'
    /// centres at the answer row.
    #[test]
    fn relation_factors_are_the_direction_and_the_place_difference() {
        let (_, _, model, _, enc) = initial(false);
        let dev = Device::Cpu;
        let ex = look_examples(&enc);
        let groups = vec![ex.single[0].clone(), ex.relation, ex.nothing[0].clone()];
        let batch = enc.batch(&groups, &dev).unwrap();
        let (b, len, d) = (batch.b, batch.len, model.text_cfg.n_embd);
        let aux = Aux::new(d, 2, 16, &dev).unwrap();
        let pick = |rows: usize, from: usize| {
            let mut w = vec![0f32; rows * d];
            (0..rows).for_each(|r| w[r * d + from + r] = 1.0);
            Tensor::from_vec(w, (rows, d), &dev).unwrap()
        };
        aux.rel_w.set(&pick(4, 0)).unwrap();
        aux.diff_w.set(&pick(2, 4)).unwrap();
        let mut h = vec![0.3f32; b * len * d];
        let mut want = 0.0;
        for (i, g) in groups.iter().enumerate() {
            let a = &g.asked[0];
            let row = (i * len + a.before.len() + a.keep.len() + a.after.len() - 1) * d;
            let logits = [0.5, -1.0, 2.0, 0.25];
            h[row..row + 4].copy_from_slice(&logits);
            let centre = |patches: &Vec<u32>| {
                let n = patches.len().max(1) as f32;
                let mean =
                    |f: fn(u32) -> u32| patches.iter().map(|&p| (2 * f(p) + 1) as f32 / 16.0 - 1.0).sum::<f32>() / n;
                [mean(|p| p % 16), mean(|p| p / 16)]
            };
            let (c0, c1) = (centre(&a.look[0]), centre(&a.look[1]));
            let off = [0.2, -0.1];
            h[row + 4] = c0[0] - c1[0] + off[0];
            h[row + 5] = c0[1] - c1[1] + off[1];
            if let Some(r) = a.relation {
                let lse = logits.iter().map(|&l| (l as f64).exp()).sum::<f64>().ln();
                want += lse - logits[r as usize] as f64 + (off[0] * off[0] + off[1] * off[1]) as f64;
            }
        }
        let h = Tensor::from_vec(h, (b, len, d), &dev).unwrap();
        let got = aux.relation_factors(&h, &batch).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!(want > 0.0 && (got - want).abs() < 1e-5, "{got} against {want}");
    }

    /// Saved heads come back as they were; heads of another shape, or none, are not taken.
    #[test]
    fn aux_heads_survive_a_checkpoint() {
        let dev = Device::Cpu;
        let dir = std::env::temp_dir().join(format!("glimpse-aux-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (saved, fresh) = (Aux::new(64, 37, 16, &dev).unwrap(), Aux::new(64, 37, 16, &dev).unwrap());
        assert!(!fresh.load(&dir, &dev).unwrap(), "nothing saved yet");
        saved.save(&dir).unwrap();
        let values = |a: &Aux| -> Vec<Vec<f32>> {
            a.vars().iter().map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect()
        };
        assert_ne!(values(&saved), values(&fresh));
        assert!(fresh.load(&dir, &dev).unwrap());
        assert_eq!(values(&saved), values(&fresh));
        let other = Aux::new(32, 37, 16, &dev).unwrap();
        let before = values(&other);
        assert!(!other.load(&dir, &dev).unwrap(), "another width");
        assert_eq!(values(&other), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The trimmer's scores are glimpse's reference trimmer's, question by question.
    #[test]
    fn trim_scores_match_the_reference() {
        let (_, mmproj, model, w, enc) = initial(true);
        let dev = Device::Cpu;
        let groups: Vec<_> = [2, 5].iter().map(|&i| enc.example(Split::Validation, i).unwrap()).collect();
        let batch = enc.batch(&groups, &dev).unwrap();
        let features = model.vision(&w, &batch.pixels).unwrap().features;
        let got: Vec<Vec<f32>> = model.trim_scores(&w, &batch, &features).unwrap().to_vec2().unwrap();
        let vision = Vision::load(&mmproj).unwrap();
        for (g, row) in groups.iter().zip(&got) {
            let x = vision.forward(&g.image.pixels);
            let d = vision.cfg.n_embd;
            let want = glimpse::reference::prune::trimmer_scores(&mmproj, &x[d..], &g.asked[0].question).unwrap();
            assert_close(&want, row, "trimmer scores");
        }
    }

    /// The CLS attention that the trainer supervises is VisionZip's score (head mean instead of
    /// sum) on random rows of an awkward size.
    #[test]
    fn cls_scores_match_visionzip() {
        let (b, n, n_head, hd) = (2, 11, 3, 5);
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (b, n, n_head * hd), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (b, n, n_head * hd), &dev).unwrap();
        let got: Vec<Vec<f32>> = cls_scores(&q, &k, n_head).unwrap().to_vec2().unwrap();
        for (i, row) in got.iter().enumerate() {
            let rows = |t: &Tensor| t.get(i).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want = glimpse::reference::prune::cls_attention(&rows(&q), &rows(&k), n, n_head, hd, 0);
            for (g, w) in row.iter().zip(&want) {
                assert!((g - w / n_head as f32).abs() < 1e-5, "image {i}: {g} against {}", w / n_head as f32);
            }
        }
    }
}
