//! Training examples from glimpse's generated scenes, encoded exactly as the engine encodes a
//! question at inference: the pair's chat template, mtmd's prompt layout, the GGUF tokenizer and
//! the mmproj's preprocessing, all from the glimpse library. The target is the answer as the
//! model should continue after the generation prompt: `" " + answer` and the end-of-generation
//! token. Several questions share one scene, so a batch encodes each image once.

use candle_core::{Device, Tensor};
use glimpse::dataset::{self, Colour, Question, QuestionKind, Scene, SceneConfig, Shape, Split};
use glimpse::gguf::Gguf;
use glimpse::model::chat::{ChatTemplate, ImageMarkup, Message, Part, TemplateFamily};
use glimpse::model::config::{TextConfig, VisionConfig};
use glimpse::model::preprocess::{self, PreprocessParams};
use glimpse::model::prompt::{self, PromptPiece};
use glimpse::model::tokenizer::Tokenizer;
use glimpse::rng::SplitMix64;

use crate::model::Batch;

/// One rendered scene.
#[derive(Clone)]
pub struct Image {
    /// Planar `[3, size, size]`.
    pub pixels: Vec<f32>,
    /// Per patch (raster order): 0 for background, else 1 + the colour-and-shape class of the
    /// object drawn over it (the auxiliary target; see `model::Aux`).
    pub patch_labels: Vec<u32>,
    /// Per object of the scene, the patches it covers.
    pub objects: Vec<Vec<u32>>,
}

/// One question about an image.
#[derive(Clone)]
pub struct Asked {
    /// Ids before and after the image slots.
    pub before: Vec<u32>,
    pub after: Vec<u32>,
    /// The answer's ids, end-of-generation last.
    pub answer: Vec<u32>,
    /// The question alone, tokenised as the engine does for the learned trimmer.
    pub question: Vec<u32>,
    /// The visual tokens the question sees, ascending patch indices: all of them, or a
    /// training-time drop (see [`TokenDrop`]), laid out in consecutive slots at their unpruned
    /// positions, as a pruned frame is.
    pub keep: Vec<u32>,
    /// Where the first and the second half of the last decoder layer's heads should look from
    /// the answer position: the patches of the object the answer is read from (both halves), of
    /// a relation's first and second object, or none (counts, absences). See `Question::about`.
    pub look: [Vec<u32>; 2],
    pub kind: QuestionKind,
    /// A relation's index in `dataset::Relation::ALL` (left of, right of, above, below).
    pub relation: Option<u32>,
}

/// A scene and the questions asked about it.
#[derive(Clone)]
pub struct Group {
    pub image: Image,
    pub asked: Vec<Asked>,
}

/// The centre of patch `p` of a `grid` x `grid` raster, x and y in -1..1.
pub fn patch_centre(p: usize, grid: usize) -> [f32; 2] {
    let centre = |i: usize| (2 * i + 1) as f32 / grid as f32 - 1.0;
    [centre(p % grid), centre(p / grid)]
}

/// Patch classes: background plus every colour-and-shape pair.
pub const N_PATCH_CLASSES: usize = 1 + Colour::ALL.len() * Shape::ALL.len();

/// Training-time visual-token dropping, so the decoder learns to answer from the shorter,
/// object-heavy sequences that pruning sends: a `share` of the questions see each object patch
/// with probability 0.9 and each background patch with a probability drawn from `keep`.
#[derive(Clone, Copy, Debug)]
pub struct TokenDrop {
    pub share: f32,
    pub keep: (f32, f32),
}

impl TokenDrop {
    fn keep(&self, labels: &[u32], rng: &mut SplitMix64) -> Vec<u32> {
        let all = || (0..labels.len() as u32).collect();
        if rng.unit() >= self.share {
            return all();
        }
        let background = rng.range(self.keep.0, self.keep.1);
        let kept: Vec<u32> = (0..labels.len() as u32)
            .filter(|&i| rng.unit() < if labels[i as usize] == 0 { background } else { 0.9 })
            .collect();
        if kept.is_empty() { all() } else { kept }
    }
}

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

    /// Sample `index` of `split` (the scene and the one question the evaluation asks), whole.
    pub fn example(&self, split: Split, index: u64) -> anyhow::Result<Group> {
        let s = dataset::sample(split, index, &self.scenes, self.size);
        let image = self.image(&s.scene)?;
        let keep = (0..self.n_image as u32).collect();
        let asked = vec![self.ask(&s.question, &image, keep)?];
        Ok(Group { image, asked })
    }

    /// Up to `n` of the questions of the `kinds` about scene `index` of `split`, drawn with
    /// `rng`, each seeing the visual tokens `drop` leaves.
    pub fn scene(
        &self,
        split: Split,
        index: u64,
        n: usize,
        kinds: &[QuestionKind],
        drop: TokenDrop,
        rng: &mut SplitMix64,
    ) -> anyhow::Result<Group> {
        let seed = split.seed(index);
        let scene = Scene::generate(seed, &self.scenes);
        let mut questions = dataset::questions(&scene, seed);
        questions.retain(|q| kinds.contains(&q.kind));
        rng.shuffle(&mut questions);
        let image = self.image(&scene)?;
        let asked = questions
            .iter()
            .take(n)
            .map(|q| self.ask(q, &image, drop.keep(&image.patch_labels, rng)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Group { image, asked })
    }

    fn image(&self, scene: &Scene) -> anyhow::Result<Image> {
        let pre = preprocess::preprocess(&scene.render(self.size, self.size), &self.params, None)?;
        let objects: Vec<Vec<u32>> = scene
            .object_patches(self.size, self.size, self.patch)
            .into_iter()
            .map(|patches| patches.into_iter().map(|p| p as u32).collect())
            .collect();
        let mut patch_labels = vec![0u32; self.n_image];
        for (o, patches) in scene.objects.iter().zip(&objects) {
            let colour = Colour::ALL.iter().position(|&c| c == o.colour).unwrap_or(0);
            let shape = Shape::ALL.iter().position(|&c| c == o.shape).unwrap_or(0);
            for &p in patches {
                patch_labels[p as usize] = 1 + (colour * Shape::ALL.len() + shape) as u32;
            }
        }
        Ok(Image { pixels: pre.overview, patch_labels, objects })
    }

    fn ask(&self, q: &Question, image: &Image, keep: Vec<u32>) -> anyhow::Result<Asked> {
        let (before, after) = self.prompt(&q.text)?;
        let mut answer = self.tokenizer.encode(&format!(" {}", q.answer))?;
        answer.push(self.eos);
        // Not for counts: attention is normalised, so all of it on the counted objects would hide
        // how many there are. A relation's halves look at one object each, in the asked order,
        // to compare them. (Giving the first half the object the question places left of or
        // above the other would spare the answer an XOR with the relation's direction, but puts
        // it in the heads' queries, which are linear in the question: "if left then A else B"
        // is beyond them.)
        let patches = |i: usize| image.objects[q.about[i]].clone();
        let look = match q.about.len() {
            _ if q.kind == QuestionKind::Count => [Vec::new(), Vec::new()],
            1 => [patches(0), patches(0)],
            2 => [patches(0), patches(1)],
            _ => [Vec::new(), Vec::new()],
        };
        Ok(Asked {
            before,
            after,
            answer,
            question: self.tokenizer.encode(&q.text)?,
            keep,
            look,
            kind: q.kind,
            relation: q.relation.map(|r| r as u32),
        })
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

    /// The batch of every question in `groups`, right-padded; each image is encoded once and
    /// targets are every answer id (teacher forcing).
    pub fn batch(&self, groups: &[Group], dev: &Device) -> anyhow::Result<Batch> {
        let p = self.n_image;
        let asked = || groups.iter().enumerate().flat_map(|(g, group)| group.asked.iter().map(move |a| (g, a)));
        let b = asked().count();
        let len =
            asked().map(|(_, a)| a.before.len() + a.keep.len() + a.after.len() + a.answer.len() - 1).max().unwrap_or(0);
        let mut pixels = Vec::with_capacity(groups.len() * groups.first().map_or(0, |g| g.image.pixels.len()));
        let mut patch_labels = Vec::with_capacity(groups.len() * p);
        for g in groups {
            pixels.extend_from_slice(&g.image.pixels);
            patch_labels.extend_from_slice(&g.image.patch_labels);
        }
        let (mut ids, mut gather) = (vec![0u32; b * len], Vec::with_capacity(b * len));
        let (mut predict, mut targets) = (Vec::new(), Vec::new());
        let (mut slots, mut image_of) = (vec![0u32; b * len], Vec::with_capacity(b));
        let n_vocab = self.tokenizer.n_vocab();
        let mut questions = vec![0f32; b * n_vocab];
        let (mut look, mut answer_row) = (vec![0f32; b * 2 * len], vec![0f32; b * len]);
        let mut positions = vec![0f32; b * len];
        let mut look_place = vec![0f32; b * 4];
        let (mut relation, mut relations) = (vec![0u32; b], vec![0f32; b]);
        let grid = (self.size / self.patch) as usize;
        for (i, (g, a)) in asked().enumerate() {
            for (half, patches) in a.look.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                for &q in patches {
                    let [x, y] = patch_centre(q as usize, grid);
                    look_place[i * 4 + half * 2] += x / patches.len() as f32;
                    look_place[i * 4 + half * 2 + 1] += y / patches.len() as f32;
                }
            }
            if let Some(r) = a.relation {
                (relation[i], relations[i]) = (r, 1.0);
            }
            image_of.push(g as u32);
            for &id in &a.question {
                questions[i * n_vocab + id as usize] += 1.0 / a.question.len() as f32;
            }
            let (image_at, k) = (a.before.len(), a.keep.len());
            let prompt_len = image_at + k + a.after.len();
            // The answer is fed back except its last id (end of generation).
            let text: Vec<u32> =
                a.before.iter().chain(&a.after).chain(&a.answer[..a.answer.len() - 1]).copied().collect();
            let mut next_text = text.iter();
            for t in 0..len {
                let row = i * len + t;
                // Kept patches keep their positions in the unpruned prompt, as the engine sends them.
                positions[row] = match t.checked_sub(image_at) {
                    None => t,
                    Some(j) if j < k => image_at + a.keep[j] as usize,
                    Some(j) => image_at + p + j - k,
                } as f32;
                if (image_at..image_at + k).contains(&t) {
                    let patch = a.keep[t - image_at];
                    gather.push((b * len + g * p) as u32 + patch);
                    slots[row] = (1 + i * p) as u32 + patch;
                    for (half, patches) in a.look.iter().enumerate() {
                        if patches.contains(&patch) {
                            look[(i * 2 + half) * len + t] = 1.0;
                        }
                    }
                } else {
                    ids[row] = next_text.next().copied().unwrap_or(0);
                    gather.push(row as u32);
                }
            }
            answer_row[i * len + prompt_len - 1] = 1.0;
            for (j, &target) in a.answer.iter().enumerate() {
                predict.push((i * len + prompt_len - 1 + j) as u32);
                targets.push(target);
            }
        }
        let (size, m, n_images) = (self.size as usize, predict.len(), groups.len());
        Ok(Batch {
            pixels: Tensor::from_vec(pixels, (n_images, 3, size, size), dev)?,
            ids: Tensor::from_vec(ids, b * len, dev)?,
            gather: Tensor::from_vec(gather, b * len, dev)?,
            b,
            len,
            predict: Tensor::from_vec(predict, m, dev)?,
            targets: Tensor::from_vec(targets, m, dev)?,
            patch_labels: Tensor::from_vec(patch_labels, n_images * p, dev)?,
            slots: Tensor::from_vec(slots, b * len, dev)?,
            image_of: Tensor::from_vec(image_of, b, dev)?,
            questions: Tensor::from_vec(questions, (b, n_vocab), dev)?,
            looks: Tensor::from_vec(looks(&look, len), b, dev)?,
            look: Tensor::from_vec(look, (b, 2, len), dev)?,
            answer_row: Tensor::from_vec(answer_row, (b, len), dev)?,
            positions: Tensor::from_vec(positions, (b, len), dev)?,
            look_place: Tensor::from_vec(look_place, (b, 2, 2), dev)?,
            relation: Tensor::from_vec(relation, b, dev)?,
            relations: Tensor::from_vec(relations, b, dev)?,
        })
    }
}

/// 1.0 for each prompt whose two `look` rows (`[b, 2, len]`) both mark some input row.
fn looks(look: &[f32], len: usize) -> Vec<f32> {
    look.chunks(2 * len).map(|rows| rows.chunks(len).all(|half| half.contains(&1.0)) as u8 as f32).collect()
}

/// Test examples from the first 60 validation questions, by where the last layer's heads look:
/// questions about one object, a relation, and questions about no object in particular.
#[cfg(test)]
pub struct LookExamples {
    pub single: Vec<Group>,
    pub relation: Group,
    pub nothing: Vec<Group>,
}

#[cfg(test)]
pub fn look_examples(enc: &Encoder) -> LookExamples {
    let all: Vec<Group> = (0..60).map(|i| enc.example(Split::Validation, i).unwrap()).collect();
    let look = |g: &Group| g.asked[0].look.clone();
    let relation = all.iter().find(|g| look(g)[0] != look(g)[1]).expect("a relation").clone();
    let single = all.iter().filter(|g| !look(g)[0].is_empty() && look(g)[0] == look(g)[1]).cloned().collect();
    let nothing = all.iter().filter(|g| look(g)[0].is_empty()).cloned().collect();
    LookExamples { single, relation, nothing }
}
