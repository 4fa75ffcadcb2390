//! Image -> normalised f32 tiles, planar `[3, size, size]` each, as llama.cpp's mtmd prepares
//! them (`tools/mtmd/mtmd-image.cpp`, hparams from `clip.cpp` `load_hparams`, ggml-org/llama.cpp
//! master of 2026):
//!
//! - decode (PNG / JPEG) to RGB8 like `stbi_load(..., 3)`: alpha dropped, grey replicated,
//!   16-bit samples cut to their high byte. (JPEG decoders may differ from stb_image by a level
//!   or so per pixel; PNG is exact.)
//! - `mlp` (LLaVA-1.5, `mtmd_image_preprocessor_fixed_size`): fit inside image_size x image_size
//!   keeping the aspect ratio (sides rounded up), bicubic, centred on the pad colour
//!   (122, 116, 104) — mtmd's `image_pad_color` for MLP, i.e. CLIP's mean as bytes.
//! - `idefics3` (`mtmd_image_preprocessor_idefics3`): the refined size keeps the aspect ratio
//!   with the longest edge = `clip.vision.preproc_image_size`, both sides rounded up to
//!   multiples of image_size; the image is fitted into it (bicubic, black padding, centred) and
//!   cut into tiles row-major. The overview is the image stretched to image_size x image_size
//!   (bicubic, no padding). Without `preproc_image_size` mtmd makes no tiles, only the overview.
//! - "bicubic" is mtmd's `resize_bicubic` (ViT.cpp's, point-sampled cubic, clamped and rounded
//!   to u8), reproduced here step by step.
//! - normalise: `(v / 255 - mean[c]) / std[c]` in f32.

use image::{DynamicImage, Rgb, RgbImage};

use crate::model::Error;
use crate::model::config::{ProjectorKind, VisionConfig};
use crate::model::prompt::ImageLayout;

/// mtmd's pad colour for the `mlp` projector (`hparams.image_pad_color = {122, 116, 104}`).
const MLP_PAD: [u8; 3] = [122, 116, 104];
/// More grid tiles than this is surely bad metadata (SmolVLM has tokens up to 6 x 6).
const MAX_GRID_TILES: usize = 256;

/// What preprocessing needs from the mmproj.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessParams {
    pub projector: ProjectorKind,
    /// Tile side in pixels (`clip.vision.image_size`).
    pub image_size: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// idefics3: `clip.vision.preproc_image_size`; `None` = overview only (mtmd).
    pub longest_edge: Option<usize>,
}

impl PreprocessParams {
    pub fn from_config(v: &VisionConfig) -> PreprocessParams {
        PreprocessParams {
            projector: v.projector,
            image_size: v.image_size,
            image_mean: v.image_mean,
            image_std: v.image_std,
            longest_edge: v.preproc_image_size,
        }
    }
}

/// The tiles of one image, ready for upload.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocessed {
    /// Tile side in pixels.
    pub size: usize,
    /// Grid (rows, cols); (0, 0) when there is only the overview.
    pub grid: (usize, usize),
    /// Grid tiles row-major, each planar `[3, size, size]`.
    pub tiles: Vec<Vec<f32>>,
    /// The whole image at tile size, planar `[3, size, size]`.
    pub overview: Vec<f32>,
    /// The decoded image's (width, height).
    pub source: (u32, u32),
}

impl Preprocessed {
    /// Tiles the vision tower runs on: grid tiles + the overview.
    pub fn n_images(&self) -> usize {
        self.tiles.len() + 1
    }

    /// The prompt layout when every tile sends `n_tokens` embeddings.
    pub fn layout(&self, projector: ProjectorKind, n_tokens: usize) -> ImageLayout {
        ImageLayout::uniform(projector, self.grid, n_tokens)
    }
}

/// Decodes a PNG or JPEG file's bytes to RGB8 (see the module docs for the conversions).
pub fn decode(bytes: &[u8]) -> Result<RgbImage, Error> {
    let img = image::load_from_memory(bytes).map_err(|e| Error::Unsupported(format!("cannot decode image: {e}")))?;
    let rgb = match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => {
            // stb_image's 16 -> 8 bit conversion keeps the high byte.
            let wide = img.to_rgb16();
            let (w, h) = wide.dimensions();
            RgbImage::from_raw(w, h, wide.into_raw().into_iter().map(|v| (v >> 8) as u8).collect())
                .expect("same dimensions, 3 samples per pixel")
        }
        other => other.to_rgb8(),
    };
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(Error::Unsupported(format!("image is empty ({}x{})", rgb.width(), rgb.height())));
    }
    Ok(rgb)
}

/// Decodes and preprocesses.
pub fn preprocess_bytes(bytes: &[u8], p: &PreprocessParams, max_tiles: Option<usize>) -> Result<Preprocessed, Error> {
    preprocess(&decode(bytes)?, p, max_tiles)
}

/// Tiles and normalises `img`. `max_tiles` caps the idefics3 grid: `None` = what the metadata
/// says (reference mode); `Some(n)` with n <= 1 = the overview only (one tile per frame); larger
/// `n` lowers the longest edge in steps of image_size until the grid has at most n tiles.
pub fn preprocess(img: &RgbImage, p: &PreprocessParams, max_tiles: Option<usize>) -> Result<Preprocessed, Error> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Unsupported(format!("image is empty ({w}x{h})")));
    }
    let size = p.image_size;
    if size == 0 || size > u32::MAX as usize {
        return Err(Error::Unsupported(format!("image_size {size}")));
    }
    let s = size as u32;
    let norm = |im: &RgbImage| planar(im, &p.image_mean, &p.image_std);
    match p.projector {
        ProjectorKind::Mlp => {
            let fitted = resize(img, s, s, Some(MLP_PAD));
            Ok(Preprocessed { size, grid: (0, 0), tiles: Vec::new(), overview: norm(&fitted), source: (w, h) })
        }
        ProjectorKind::Idefics3 => {
            let overview = norm(&resize(img, s, s, None));
            let Some(edge) = longest_edge(w, h, size, p.longest_edge, max_tiles) else {
                return Ok(Preprocessed { size, grid: (0, 0), tiles: Vec::new(), overview, source: (w, h) });
            };
            let (rw, rh) = refined_size(w, h, size, edge);
            let (rows, cols) = (rh as usize / size, rw as usize / size);
            if rows * cols > MAX_GRID_TILES {
                return Err(Error::Unsupported(format!(
                    "a {rows}x{cols} tile grid (longest edge {edge}) is more than {MAX_GRID_TILES} tiles"
                )));
            }
            // mtmd pads the refined image (PAD_CEIL, black); the refined size already keeps the
            // aspect ratio, so the padding is at most a few rows or columns.
            let refined = resize(img, rw, rh, Some([0, 0, 0]));
            let mut tiles = Vec::with_capacity(rows * cols);
            for r in 0..rows {
                for c in 0..cols {
                    let tile = image::imageops::crop_imm(&refined, c as u32 * s, r as u32 * s, s, s).to_image();
                    tiles.push(norm(&tile));
                }
            }
            Ok(Preprocessed { size, grid: (rows, cols), tiles, overview, source: (w, h) })
        }
    }
}

/// The longest edge to tile at, or `None` for the overview only.
fn longest_edge(w: u32, h: u32, size: usize, meta: Option<usize>, max_tiles: Option<usize>) -> Option<usize> {
    let edge = meta.filter(|&e| e > 0)?;
    match max_tiles {
        None => Some(edge),
        Some(n) if n <= 1 => None,
        Some(n) => {
            // Largest k * size <= edge whose grid fits; k = 1 gives one tile.
            let mut e = (edge / size).max(1) * size;
            loop {
                let (rw, rh) = refined_size(w, h, size, e);
                if (rw as usize / size) * (rh as usize / size) <= n || e == size {
                    return Some(e);
                }
                e -= size;
            }
        }
    }
}

/// mtmd `calc_size_preserved_ratio(size, align = image_size, longest_edge)`: scale so the longer
/// side is `edge`, then round both sides up to multiples of `align` (f32 arithmetic as in C++).
fn refined_size(w: u32, h: u32, align: usize, edge: usize) -> (u32, u32) {
    let scale = (edge as f32 / w as f32).min(edge as f32 / h as f32);
    let up = |x: f32| ((x / align as f32).ceil() as u32).max(1) * align as u32;
    (up(w as f32 * scale), up(h as f32 * scale))
}

/// mtmd `img_tool::resize`: same size -> copy; `pad = None` stretches (PAD_NONE); `Some(colour)`
/// fits inside keeping the aspect ratio, sides rounded up (PAD_CEIL), centred on `colour`.
fn resize(src: &RgbImage, tw: u32, th: u32, pad: Option<[u8; 3]>) -> RgbImage {
    if src.dimensions() == (tw, th) {
        return src.clone();
    }
    let Some(colour) = pad else { return resize_bicubic(src, tw, th) };
    let (nx, ny) = src.dimensions();
    let scale = (tw as f32 / nx as f32).min(th as f32 / ny as f32);
    let new_w = ((nx as f32 * scale).ceil() as u32).clamp(1, tw);
    let new_h = ((ny as f32 * scale).ceil() as u32).clamp(1, th);
    let resized = resize_bicubic(src, new_w, new_h);
    let mut dst = RgbImage::from_pixel(tw, th, Rgb(colour));
    image::imageops::replace(&mut dst, &resized, ((tw - new_w) / 2) as i64, ((th - new_h) / 2) as i64);
    dst
}

/// mtmd `resize_bicubic` (from ViT.cpp): for output pixel (i, j) the source point is
/// (tx * j, ty * i) with tx = nx / tw; a cubic through columns x-1..x+2 on each of rows y-1..y+2
/// (clamped to the border), then a cubic through those four values; rounded and clamped. Mixed
/// f64 / f32 steps as the C++ does them.
fn resize_bicubic(img: &RgbImage, tw: u32, th: u32) -> RgbImage {
    let (nx, ny) = (img.width() as i64, img.height() as i64);
    let tx = nx as f32 / tw as f32;
    let ty = ny as f32 / th as f32;
    let raw = img.as_raw();
    let px = |x: i64, y: i64, k: usize| raw[((y.clamp(0, ny - 1) * nx + x.clamp(0, nx - 1)) * 3) as usize + k] as i32;
    // a1, a2, a3 of the C++ (double arithmetic, stored as float).
    let coeffs = |d0: f32, d2: f32, d3: f32| {
        let (d0, d2, d3) = (d0 as f64, d2 as f64, d3 as f64);
        (
            (-1.0 / 3.0 * d0 + d2 - 1.0 / 6.0 * d3) as f32,
            (1.0 / 2.0 * d0 + 1.0 / 2.0 * d2) as f32,
            (-1.0 / 6.0 * d0 - 1.0 / 2.0 * d2 + 1.0 / 6.0 * d3) as f32,
        )
    };
    let mut out = RgbImage::new(tw, th);
    for i in 0..th {
        for j in 0..tw {
            let x = (tx * j as f32) as i64;
            let y = (ty * i as f32) as i64;
            let dx = tx * j as f32 - x as f32;
            let dy = ty * i as f32 - y as f32;
            let mut pixel = [0u8; 3];
            for (k, v) in pixel.iter_mut().enumerate() {
                let mut c = [0f32; 4];
                for (jj, cj) in c.iter_mut().enumerate() {
                    let row = y - 1 + jj as i64;
                    let a0 = px(x, row, k);
                    let (d0, d2, d3) = (
                        (px(x - 1, row, k) - a0) as f32,
                        (px(x + 1, row, k) - a0) as f32,
                        (px(x + 2, row, k) - a0) as f32,
                    );
                    let (a1, a2, a3) = coeffs(d0, d2, d3);
                    let a0 = a0 as f32;
                    *cj = a0 + a1 * dx + a2 * dx * dx + a3 * dx * dx * dx;
                }
                let (a1, a2, a3) = coeffs(c[0] - c[1], c[2] - c[1], c[3] - c[1]);
                let cc = c[1] + a1 * dy + a2 * dy * dy + a3 * dy * dy * dy;
                *v = cc.round().clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(j, i, Rgb(pixel));
        }
    }
    out
}

/// HWC u8 -> planar `[3, h, w]` f32, `(v / 255 - mean[c]) / std[c]`.
fn planar(img: &RgbImage, mean: &[f32; 3], std: &[f32; 3]) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let mut out = vec![0f32; 3 * w * h];
    for (c, plane) in out.chunks_exact_mut(w * h).enumerate() {
        for (i, v) in plane.iter_mut().enumerate() {
            *v = (raw[i * 3 + c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// calc_size_preserved_ratio examples: 640x480 at 2048 -> 2048x1536 (4x3 tiles of 512);
    /// 1000x700 -> 2048 x 1433.6 -> 2048x1536; a tall 100x1000 -> 204.8 x 2048 -> 512x2048.
    #[test]
    fn refined_sizes() {
        assert_eq!(refined_size(640, 480, 512, 2048), (2048, 1536));
        assert_eq!(refined_size(1000, 700, 512, 2048), (2048, 1536));
        assert_eq!(refined_size(100, 1000, 512, 2048), (512, 2048));
    }

    /// Tile caps lower the longest edge: 640x480 at 2048 is 4x3 = 12 tiles; <= 4 tiles gives
    /// 1024 (2x2... 1024x768 -> 1024x1024, 4 tiles); <= 1 means the overview only.
    #[test]
    fn max_tiles_lowers_the_edge() {
        assert_eq!(longest_edge(640, 480, 512, Some(2048), None), Some(2048));
        assert_eq!(longest_edge(640, 480, 512, Some(2048), Some(4)), Some(1024));
        assert_eq!(longest_edge(640, 480, 512, Some(2048), Some(2)), Some(512));
        assert_eq!(longest_edge(640, 480, 512, Some(2048), Some(1)), None);
        assert_eq!(longest_edge(640, 480, 512, None, None), None);
    }

    /// A constant image stays constant through bicubic resizing, up and down.
    #[test]
    fn bicubic_keeps_constants() {
        let img = RgbImage::from_pixel(7, 5, Rgb([10, 200, 255]));
        for (w, h) in [(16, 16), (3, 2), (1, 1)] {
            let out = resize_bicubic(&img, w, h);
            assert!(out.pixels().all(|p| p.0 == [10, 200, 255]), "{w}x{h}");
        }
    }

    /// Upscaling by 2 samples the source at (j/2, i/2): even pixels are exact copies.
    #[test]
    fn bicubic_upscale_hits_source_pixels() {
        let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 60) as u8, (y * 60) as u8, ((x + y) * 30) as u8]));
        let out = resize_bicubic(&img, 8, 8);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(out.get_pixel(2 * x, 2 * y), img.get_pixel(x, y));
            }
        }
    }

    #[test]
    fn mlp_pads_with_mean_colour() {
        let img = RgbImage::from_pixel(8, 4, Rgb([255, 0, 0]));
        let p = PreprocessParams {
            projector: ProjectorKind::Mlp,
            image_size: 8,
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
            longest_edge: None,
        };
        let out = preprocess(&img, &p, None).unwrap();
        // 8x4 fits as 8x4 at offset y = 2: rows 0-1 and 6-7 are pad.
        let at = |c: usize, y: usize, x: usize| out.overview[c * 64 + y * 8 + x];
        assert_eq!(at(0, 0, 0), 122.0 / 255.0);
        assert_eq!(at(1, 7, 3), 116.0 / 255.0);
        assert_eq!(at(0, 3, 3), 1.0);
        assert_eq!(at(1, 3, 3), 0.0);
    }
}
