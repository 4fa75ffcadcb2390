//! A whole question-about-an-image on the CPU, greedy: the oracle for the engine's end-to-end
//! tests. It shares the chat template, prompt layout, tokenizer and preprocessing with the
//! engine (pure code) and computes everything else with the reference forward passes.

use crate::gguf::Gguf;
use crate::model::Error;
use crate::model::chat::{ChatTemplate, ImageMarkup, Message, Part, TemplateFamily};
use crate::model::preprocess::{self, PreprocessParams};
use crate::model::prompt::{self, PromptPiece, TileId};
use crate::model::tokenizer::Tokenizer;
use crate::reference::ops;
use crate::reference::projector::Projector;
use crate::reference::text::{KvCache, Text};
use crate::reference::vision::Vision;

/// The greedy answer tokens (end-of-generation token excluded) for `question` about `image`.
pub fn greedy_answer(
    text: &Gguf,
    mmproj: &Gguf,
    image: &image::RgbImage,
    question: &str,
    max_tokens: usize,
    max_tiles: Option<usize>,
) -> Result<Vec<u32>, Error> {
    greedy_answer_kept(text, mmproj, image, question, max_tokens, max_tiles, None)
}

/// As [`greedy_answer`], sending only the visual tokens `keep[i]` (ascending indices, CLS
/// excluded) of tile `i` (grid tiles in raster order, then the overview) to the LLM, each at
/// its position in the unpruned prompt: the oracle for token selections that keep rows
/// unchanged (baselines).
pub fn greedy_answer_kept(
    text: &Gguf,
    mmproj: &Gguf,
    image: &image::RgbImage,
    question: &str,
    max_tokens: usize,
    max_tiles: Option<usize>,
    keep: Option<&[Vec<usize>]>,
) -> Result<Vec<u32>, Error> {
    let vision = Vision::load(mmproj)?;
    let projector = Projector::load(mmproj, &vision.cfg)?;
    let model = Text::load(text)?;
    let tok = Tokenizer::from_gguf(text)?;
    let name = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
    let family = TemplateFamily::for_model(model.cfg.arch, vision.cfg.projector);
    let template = ChatTemplate::from_gguf(text, family, &name(tok.bos()), &name(tok.eos()))?;

    let pre = preprocess::preprocess(image, &PreprocessParams::from_config(&vision.cfg), max_tiles)?;
    let messages = [Message::new("user", vec![Part::Text(question.to_string()), Part::Image])];
    let rendered = template.render(&messages, ImageMarkup::Mtmd)?;
    let mut layout = pre.layout(vision.cfg.projector, vision.cfg.tokens_per_tile());
    if let Some(keep) = keep {
        let n_grid = layout.n_tokens_grid.len();
        layout.n_tokens_grid = keep[..n_grid].iter().map(Vec::len).collect();
        layout.n_tokens_overview = keep[n_grid].len();
    }
    let pieces = prompt::build(&tok, &rendered, &[layout])?;

    // The input embeddings and their positions, piece by piece: a kept visual token keeps the
    // position it has in the unpruned prompt.
    let mut x = Vec::new();
    let (mut offsets, mut span) = (Vec::new(), 0);
    for p in &pieces {
        match p {
            PromptPiece::Tokens(ids) => {
                ids.iter().for_each(|&id| x.extend_from_slice(model.embed(id)));
                offsets.extend(span..span + ids.len());
                span += ids.len();
            }
            PromptPiece::Image { tile, .. } => {
                let index = match tile {
                    TileId::Grid { row, col } => row * pre.grid.1 + col,
                    TileId::Overview => pre.tiles.len(),
                };
                let pixels = pre.tiles.get(index).unwrap_or(&pre.overview);
                let rows = projector.forward(&vision.cfg, &vision.forward(pixels));
                let w = model.cfg.n_embd;
                let n_visual = rows.len() / w;
                match keep {
                    None => {
                        x.extend(rows);
                        offsets.extend(span..span + n_visual);
                    }
                    Some(keep) => {
                        keep[index].iter().for_each(|&i| x.extend_from_slice(&rows[i * w..(i + 1) * w]));
                        offsets.extend(keep[index].iter().map(|&i| span + i));
                    }
                }
                span += n_visual;
            }
        }
    }
    let mut cache = KvCache::default();
    let mut logits = model.forward_at(&x, &offsets, span, &mut cache, true);
    let mut out = Vec::new();
    while out.len() < max_tokens {
        let next = ops::argmax(&logits) as u32;
        if tok.is_eog(next) {
            break;
        }
        out.push(next);
        logits = model.forward(model.embed(next), &mut cache, true);
    }
    Ok(out)
}
