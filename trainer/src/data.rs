//! Training examples from glimpse's generated scenes, encoded exactly as the engine encodes a
//! question at inference: the pair's chat template, mtmd's prompt layout, the GGUF tokenizer and
//! the mmproj's preprocessing, all from the glimpse library. The target is the answer as the
//! model should continue after the generation prompt: `" " + answer` and the end-of-generation
//! token.

use candle_core::{Device, Tensor};
use glimpse::dataset::{self, Colour, Scene, SceneConfig, Shape, Split};
use glimpse::gguf::Gguf;
use glimpse::model::chat::{ChatTemplate, ImageMarkup, Message, Part, TemplateFamily};
use glimpse::model::config::{TextConfig, VisionConfig};
use glimpse::model::preprocess::{self, PreprocessParams};
use glimpse::model::prompt::{self, PromptPiece};
use glimpse::model::tokenizer::Tokenizer;

use crate::model::Batch;

/// One question about one scene, ready to batch.
pub struct Example {
    /// Planar `[3, size, size]`.
    pub pixels: Vec<f32>,
    /// Ids before and after the image slots.
    pub before: Vec<u32>,
    pub after: Vec<u32>,
    /// The answer's ids, end-of-generation last.
    pub answer: Vec<u32>,
    /// Per patch (raster order): 0 for background, else 1 + the colour-and-shape class of the
    /// object drawn over it (the auxiliary target; see `model::Aux`).
    pub patch_labels: Vec<u32>,
}

/// Patch classes: background plus every colour-and-shape pair.
pub const N_PATCH_CLASSES: usize = 1 + Colour::ALL.len() * Shape::ALL.len();

/// Turns dataset samples into examples.
pub struct Encoder {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    params: PreprocessParams,
    n_image: usize,
    eos: u32,
    /// The rendered scene side (the mmproj's image size: preprocessing is then the identity).
    pub size: u32,
    /// The vision tower's patch side in pixels.
    patch: u32,
    scenes: SceneConfig,
}

impl Encoder {
    pub fn new(text: &Gguf, mmproj: &Gguf) -> anyhow::Result<Encoder> {
        let vision = VisionConfig::from_gguf(mmproj)?;
        let text_cfg = TextConfig::from_gguf(text)?;
        let tokenizer = Tokenizer::from_gguf(text)?;
        let name = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or("").to_string();
        let family = TemplateFamily::for_model(text_cfg.arch, vision.projector);
        let template = ChatTemplate::from_gguf(text, family, &name(tokenizer.bos()), &name(tokenizer.eos()))?;
        let eos = tokenizer.eos().ok_or_else(|| anyhow::anyhow!("the vocabulary has no end-of-sequence token"))?;
        Ok(Encoder {
            params: PreprocessParams::from_config(&vision),
            n_image: vision.tokens_per_tile(),
            size: vision.image_size as u32,
            patch: vision.patch_size as u32,
            tokenizer,
            template,
            eos,
            scenes: SceneConfig::default(),
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Sample `index` of `split`.
    pub fn example(&self, split: Split, index: u64) -> anyhow::Result<Example> {
        let s = dataset::sample(split, index, &self.scenes, self.size);
        let pre = preprocess::preprocess(&s.image, &self.params, None)?;
        let (before, after) = self.prompt(&s.question.text)?;
        let mut answer = self.tokenizer.encode(&format!(" {}", s.question.answer))?;
        answer.push(self.eos);
        Ok(Example { pixels: pre.overview, before, after, answer, patch_labels: self.patch_labels(&s.scene) })
    }

    fn patch_labels(&self, scene: &Scene) -> Vec<u32> {
        let mut labels = vec![0u32; self.n_image];
        for (o, patches) in scene.objects.iter().zip(scene.object_patches(self.size, self.size, self.patch)) {
            let colour = Colour::ALL.iter().position(|&c| c == o.colour).unwrap_or(0);
            let shape = Shape::ALL.iter().position(|&c| c == o.shape).unwrap_or(0);
            for p in patches {
                labels[p] = 1 + (colour * Shape::ALL.len() + shape) as u32;
            }
        }
        labels
    }

    /// The prompt's ids before and after the image, as the engine lays out the question.
    pub fn prompt(&self, question: &str) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
        let messages = [Message::new("user", vec![Part::Text(question.to_string()), Part::Image])];
        let rendered = self.template.render(&messages, ImageMarkup::Mtmd)?;
        let layout = prompt::ImageLayout::uniform(self.params.projector, (0, 0), self.n_image);
        let pieces = prompt::build(&self.tokenizer, &rendered, &[layout])?;
        let (mut before, mut after, mut seen_image) = (Vec::new(), Vec::new(), false);
        for p in pieces {
            match p {
                PromptPiece::Tokens(ids) if seen_image => after.extend(ids),
                PromptPiece::Tokens(ids) => before.extend(ids),
                PromptPiece::Image { n_tokens, .. } => {
                    anyhow::ensure!(!seen_image && n_tokens == self.n_image, "one whole image per prompt");
                    seen_image = true;
                }
            }
        }
        anyhow::ensure!(seen_image, "the rendered prompt has no image");
        Ok((before, after))
    }

    /// The batch of `examples`, right-padded; targets are every answer id (teacher forcing).
    pub fn batch(&self, examples: &[Example], dev: &Device) -> anyhow::Result<Batch> {
        let b = examples.len();
        let p = self.n_image;
        let len = examples.iter().map(|e| e.before.len() + p + e.after.len() + e.answer.len() - 1).max().unwrap_or(0);
        let mut pixels = Vec::with_capacity(b * examples.first().map_or(0, |e| e.pixels.len()));
        let (mut ids, mut gather) = (vec![0u32; b * len], Vec::with_capacity(b * len));
        let (mut predict, mut targets, mut patch_labels) = (Vec::new(), Vec::new(), Vec::with_capacity(b * p));
        for (i, e) in examples.iter().enumerate() {
            pixels.extend_from_slice(&e.pixels);
            patch_labels.extend_from_slice(&e.patch_labels);
            let image_at = e.before.len();
            let prompt_len = image_at + p + e.after.len();
            // The answer is fed back except its last id (end of generation).
            let text: Vec<u32> =
                e.before.iter().chain(&e.after).chain(&e.answer[..e.answer.len() - 1]).copied().collect();
            let mut next_text = text.iter();
            for t in 0..len {
                let row = i * len + t;
                if (image_at..image_at + p).contains(&t) {
                    gather.push((b * len + i * p + t - image_at) as u32);
                } else {
                    ids[row] = next_text.next().copied().unwrap_or(0);
                    gather.push(row as u32);
                }
            }
            for (j, &target) in e.answer.iter().enumerate() {
                predict.push((i * len + prompt_len - 1 + j) as u32);
                targets.push(target);
            }
        }
        let (size, m) = (self.size as usize, predict.len());
        Ok(Batch {
            pixels: Tensor::from_vec(pixels, (b, 3, size, size), dev)?,
            ids: Tensor::from_vec(ids, b * len, dev)?,
            gather: Tensor::from_vec(gather, b * len, dev)?,
            b,
            len,
            predict: Tensor::from_vec(predict, m, dev)?,
            targets: Tensor::from_vec(targets, m, dev)?,
            patch_labels: Tensor::from_vec(patch_labels, b * p, dev)?,
        })
    }
}
