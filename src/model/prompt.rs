//! The LLM input for a templated prompt with images: text stretches as token ids and image tiles
//! as runs of embedding slots, laid out as llama.cpp's mtmd lays them out (`mtmd.cpp`,
//! `mtmd_tokenizer::tokenize` / `add_media`, pinned at ggml-org/llama.cpp master of 2026).
//!
//! - The rendered prompt is split at [`MEDIA_MARKER`]; each text stretch is tokenized on its own
//!   with special tokens parsed; BOS goes first when the vocabulary says `add_bos`.
//! - `mlp` (LLaVA): the image is its embeddings, nothing around them (mtmd sets no
//!   `img_beg`/`img_end` for PROJECTOR_TYPE_MLP).
//! - `idefics3` (SmolVLM), rows x cols tiles then the overview (`ov_img_first = false`):
//!   ```text
//!   <fake_token_around_image><row_1_col_1> [tile 1,1] <fake_token_around_image><row_1_col_2> [tile 1,2] \n
//!   <fake_token_around_image><row_2_col_1> [tile 2,1] ...                                   (no \n after the last row)
//!   \n\n <fake_token_around_image> <global-img> [overview] <fake_token_around_image>
//!   ```
//!   Without tiles (no `preproc_image_size`, or the caller capped tiles to 1) only the last line.
//!   `\n`, `\n\n`, `<fake_token_around_image>` and `<global-img>` are single ids found by decoded
//!   text (mtmd's `lookup_token`); the `<row_R_col_C>` prefix is tokenized as text.

use crate::model::Error;
use crate::model::chat::MEDIA_MARKER;
use crate::model::config::ProjectorKind;
use crate::model::tokenizer::Tokenizer;

/// Which tile of an image a run of embedding slots comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileId {
    /// Grid tile, 0-based row and column.
    Grid { row: usize, col: usize },
    /// The whole image at tile size (the only tile for mlp).
    Overview,
}

/// A stretch of the LLM input, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptPiece {
    /// Ids to embed with `token_embd`.
    Tokens(Vec<u32>),
    /// `n_tokens` slots filled, in order, with the projector output of `tile` of image `image`.
    Image { image: usize, tile: TileId, n_tokens: usize },
}

/// How one image was tiled and how many embeddings each tile sends (after any pruning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    pub projector: ProjectorKind,
    /// Grid rows and columns; (0, 0) when there is only the overview.
    pub grid: (usize, usize),
    /// Embeddings per grid tile, row-major (`grid.0 * grid.1` entries).
    pub n_tokens_grid: Vec<usize>,
    pub n_tokens_overview: usize,
}

impl ImageLayout {
    /// Every tile sends `n_tokens` embeddings.
    pub fn uniform(projector: ProjectorKind, grid: (usize, usize), n_tokens: usize) -> ImageLayout {
        ImageLayout { projector, grid, n_tokens_grid: vec![n_tokens; grid.0 * grid.1], n_tokens_overview: n_tokens }
    }
}

/// The pieces for `prompt` (chat-templated text with one [`MEDIA_MARKER`] per image).
pub fn build(tok: &Tokenizer, prompt: &str, images: &[ImageLayout]) -> Result<Vec<PromptPiece>, Error> {
    let segments: Vec<&str> = prompt.split(MEDIA_MARKER).collect();
    if segments.len() - 1 != images.len() {
        return Err(Error::Unsupported(format!(
            "the prompt has {} image markers for {} images",
            segments.len() - 1,
            images.len()
        )));
    }
    let mut out = Pieces(Vec::new());
    if tok.add_bos() {
        // from_gguf refuses add_bos without a bos id.
        out.tokens(tok.bos().into_iter().collect());
    }
    for (i, seg) in segments.iter().enumerate() {
        if !seg.is_empty() {
            out.tokens(tok.encode(seg)?);
        }
        if let Some(layout) = images.get(i) {
            image(tok, &mut out, i, layout)?;
        }
    }
    Ok(out.0)
}

/// Total positions the pieces take.
pub fn n_positions(pieces: &[PromptPiece]) -> usize {
    pieces
        .iter()
        .map(|p| match p {
            PromptPiece::Tokens(t) => t.len(),
            PromptPiece::Image { n_tokens, .. } => *n_tokens,
        })
        .sum()
}

/// Pieces with adjacent token runs joined (mtmd's `add_text` appends to the last text chunk).
struct Pieces(Vec<PromptPiece>);

impl Pieces {
    fn tokens(&mut self, ids: Vec<u32>) {
        if ids.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(PromptPiece::Tokens(t)) => t.extend(ids),
            _ => self.0.push(PromptPiece::Tokens(ids)),
        }
    }
    fn image(&mut self, image: usize, tile: TileId, n_tokens: usize) {
        self.0.push(PromptPiece::Image { image, tile, n_tokens });
    }
}

fn image(tok: &Tokenizer, out: &mut Pieces, i: usize, layout: &ImageLayout) -> Result<(), Error> {
    let (rows, cols) = layout.grid;
    if layout.n_tokens_grid.len() != rows * cols {
        return Err(Error::Unsupported(format!(
            "image {i}: {} tile token counts for a {rows}x{cols} grid",
            layout.n_tokens_grid.len()
        )));
    }
    match layout.projector {
        ProjectorKind::Mlp => {
            if rows * cols != 0 {
                return Err(Error::Unsupported(format!("image {i}: mlp images are not tiled")));
            }
            out.image(i, TileId::Overview, layout.n_tokens_overview);
        }
        ProjectorKind::Idefics3 => {
            let fake = lookup(tok, "<fake_token_around_image>")?;
            for row in 0..rows {
                for col in 0..cols {
                    let prefix = format!("<fake_token_around_image><row_{}_col_{}>", row + 1, col + 1);
                    out.tokens(tok.encode(&prefix)?);
                    out.image(i, TileId::Grid { row, col }, layout.n_tokens_grid[row * cols + col]);
                }
                if row + 1 != rows {
                    out.tokens(lookup(tok, "\n")?);
                }
            }
            let mut start = lookup(tok, "\n\n")?;
            start.extend(&fake);
            start.extend(lookup(tok, "<global-img>")?);
            out.tokens(start);
            out.image(i, TileId::Overview, layout.n_tokens_overview);
            out.tokens(fake);
        }
    }
    Ok(())
}

/// mtmd's `lookup_token`: the first id whose decoded text is `piece`. When the vocabulary has no
/// such token (mtmd would insert LLAMA_TOKEN_NULL) the text is tokenized instead.
fn lookup(tok: &Tokenizer, piece: &str) -> Result<Vec<u32>, Error> {
    match tok.piece_id(piece) {
        Some(id) => Ok(vec![id]),
        None => tok.encode(piece),
    }
}
