//! The kept-patch overlay: a frame (or tile) with every patch drawn by its pruning fate, plus an
//! optional legend strip drawn with a built-in 5x7 bitmap font (plus descenders), so the picture needs no font files.
//!
//! Colours come from the Okabe–Ito palette, which stays distinguishable under the common
//! colour-vision deficiencies: orange for dominant tokens, sky blue for contextual targets and the
//! markers of the tokens merged into them; dropped patches are dark grey, not a hue.

use image::{Rgb, RgbImage};

use super::report::{PatchFate, PatchGrid};

/// Outline of Dominant cells (Okabe–Ito orange #E69F00).
pub const DOMINANT: Rgb<u8> = Rgb([0xE6, 0x9F, 0x00]);
/// Outline and tint of Contextual cells, and the marker of Merged cells (Okabe–Ito sky blue #56B4E9).
pub const CONTEXTUAL: Rgb<u8> = Rgb([0x56, 0xB4, 0xE9]);

/// Brightness left in Dropped cells (after desaturation).
const DROPPED_BRIGHTNESS: f32 = 0.25;
/// Brightness left in Merged cells.
const MERGED_BRIGHTNESS: f32 = 0.6;
/// Share of the contextual colour blended into Contextual cells.
const CONTEXTUAL_TINT: f32 = 0.3;

/// Legend background, text colour, swatch base and swatch frame.
const LEGEND_BG: Rgb<u8> = Rgb([28, 28, 28]);
const LEGEND_TEXT: Rgb<u8> = Rgb([235, 235, 235]);
const SWATCH_BASE: Rgb<u8> = Rgb([190, 190, 190]);
const SWATCH_FRAME: Rgb<u8> = Rgb([110, 110, 110]);

/// Font scale of the legend text, glyph cell size and advance in output pixels.
const SCALE: u32 = 2;
const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 9;
const ADVANCE: u32 = (GLYPH_W + 1) * SCALE;
const TEXT_H: u32 = GLYPH_H * SCALE;
/// Height of capitals and digits (the glyph rows above the descenders).
const CAP_H: u32 = (GLYPH_H - 2) * SCALE;
/// Legend spacing: outer margin, gap between lines, swatch side, swatch-to-label and entry gaps.
const MARGIN: u32 = 8;
const LINE_GAP: u32 = 6;
const SWATCH: u32 = 20;
const SWATCH_GAP: u32 = 6;
const ENTRY_GAP: u32 = 18;
/// Narrowest legend strip (room for a title line of 20 characters).
const MIN_LEGEND_WIDTH: u32 = 2 * MARGIN + 20 * ADVANCE;

/// Draws `grid` over `image` (the image the grid covers, e.g. a tile or the whole frame resized).
/// Cells are `image.width() / cols` by `image.height() / rows` pixels, the last column and row
/// taking the remainder; when the grid has more columns (rows) than the image has pixels, the last
/// column (row) covers the whole image and the others are empty. Dropped cells are desaturated to
/// 25% brightness; Dominant cells are untouched with a thin orange outline; Contextual cells get a
/// sky-blue tint and outline; Merged cells are dimmed to 60% with a sky-blue dot and a short line
/// toward the cell they merged into; Kept cells are untouched. Missing fates count as Kept. The
/// output has the size of `image`.
pub fn draw(image: &RgbImage, grid: &PatchGrid) -> RgbImage {
    let mut out = image.clone();
    let cols = spans(image.width(), grid.cols);
    let rows = spans(image.height(), grid.rows);
    // Cell size in pixels, used only to aim the merge markers.
    let cell_w = (image.width() as usize / grid.cols.max(1)).max(1) as f32;
    let cell_h = (image.height() as usize / grid.rows.max(1)).max(1) as f32;
    for &(r, y0, y1) in &rows {
        for &(c, x0, x1) in &cols {
            let Some(i) = r.checked_mul(grid.cols).and_then(|i| i.checked_add(c)) else { continue };
            let toward = grid.target(i).filter(|&t| t != i).map(|t| {
                let dx = (t % grid.cols) as f32 - c as f32;
                let dy = (t / grid.cols) as f32 - r as f32;
                (dx * cell_w, dy * cell_h)
            });
            paint_cell(&mut out, Rect { x0, y0, x1, y1 }, grid.fate(i), toward);
        }
    }
    out
}

/// [`draw`] plus a legend strip under the image: a title line (`title`, word-wrapped; non-ASCII
/// dashes drawn as '-', other non-ASCII characters as '?'), then a swatch and a label with its
/// count for each fate present in the grid, in the order kept, dominant, contextual, merged,
/// dropped. The output is `max(image width, 256, widest legend entry + margins)` wide (the image
/// sits at the top left, any extra width filled with the legend background) and the image height
/// plus the strip height tall.
pub fn draw_with_legend(image: &RgbImage, grid: &PatchGrid, title: &str) -> RgbImage {
    let entries: Vec<(PatchFate, String)> = FATES
        .into_iter()
        .map(|f| (f, grid.count(f)))
        .filter(|&(_, n)| n > 0)
        .map(|(f, n)| (f, format!("{} {n}", fate_name(f))))
        .collect();
    let entry_width = |label: &str| SWATCH + SWATCH_GAP + text_width(label);
    let widest = entries.iter().map(|(_, l)| entry_width(l)).max().unwrap_or(0);
    let width = image.width().max(MIN_LEGEND_WIDTH).max(widest.saturating_add(2 * MARGIN));
    let inner = width - 2 * MARGIN;

    let title_lines = wrap(title, (inner / ADVANCE).max(1) as usize);
    // Lay the entries out left to right, wrapping to a new row when one does not fit.
    let mut placed = Vec::with_capacity(entries.len());
    let (mut x, mut row) = (0u32, 0u32);
    for (fate, label) in &entries {
        let w = entry_width(label);
        if x > 0 && x + w > inner {
            (x, row) = (0, row + 1);
        }
        placed.push((*fate, label.as_str(), x, row));
        x += w + ENTRY_GAP;
    }
    let entry_rows = if entries.is_empty() { 0 } else { row + 1 };
    let n_title = title_lines.len() as u32;
    let strip = 2 * MARGIN + n_title * (TEXT_H + LINE_GAP) + entry_rows * (SWATCH + LINE_GAP)
        - if n_title + entry_rows > 0 { LINE_GAP } else { 0 };

    let mut out = RgbImage::from_pixel(width, image.height().saturating_add(strip), LEGEND_BG);
    image::imageops::replace(&mut out, &draw(image, grid), 0, 0);
    let mut y = image.height() + MARGIN;
    for line in &title_lines {
        draw_text(&mut out, MARGIN, y, line, LEGEND_TEXT);
        y += TEXT_H + LINE_GAP;
    }
    for (fate, label, x, row) in placed {
        let (sx, sy) = (MARGIN + x, y + row * (SWATCH + LINE_GAP));
        image::imageops::replace(&mut out, &swatch(fate, SWATCH), sx as i64, sy as i64);
        draw_text(&mut out, sx + SWATCH + SWATCH_GAP, sy + (SWATCH - CAP_H) / 2, label, LEGEND_TEXT);
    }
    out
}

/// A `side` x `side` legend swatch: a mid-grey cell drawn like a patch of `fate` (a Merged
/// cell's marker pointing right), framed so dark swatches stand out. Empty when `side` is 0.
pub fn swatch(fate: PatchFate, side: u32) -> RgbImage {
    let mut out = RgbImage::from_pixel(side, side, SWATCH_FRAME);
    let cell = Rect { x0: 1.min(side), y0: 1.min(side), x1: side.saturating_sub(1), y1: side.saturating_sub(1) };
    if cell.x0 < cell.x1 {
        fill(&mut out, cell, SWATCH_BASE);
        paint_cell(&mut out, cell, fate, Some((1.0, 0.0)));
    }
    out
}

/// Upscales `image` by the smallest integer factor (nearest neighbour, so patch edges stay sharp)
/// that makes its longer side at least `min_side`, so the 24x24-patch overlay of a 384 px tile is
/// readable. Images already that large, and empty images, are returned unchanged; the factor is
/// capped so the result stays within `u32` pixels a side.
pub fn upscale(image: &RgbImage, min_side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let long = w.max(h);
    if long == 0 || long >= min_side {
        return image.clone();
    }
    let k = min_side.div_ceil(long).min(u32::MAX / long);
    RgbImage::from_fn(w * k, h * k, |x, y| *image.get_pixel(x / k, y / k))
}

/// A half-open pixel rectangle `[x0, x1) x [y0, y1)`.
#[derive(Clone, Copy)]
struct Rect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

/// The non-empty pixel spans `(cell index, start, end)` of `n` cells over `len` pixels: `len / n`
/// each, the last taking the remainder (and everything when `n > len`).
fn spans(len: u32, n: usize) -> Vec<(usize, u32, u32)> {
    if n == 0 || len == 0 {
        return Vec::new();
    }
    if n > len as usize {
        return vec![(n - 1, 0, len)];
    }
    let size = len / n as u32;
    (0..n).map(|i| (i, i as u32 * size, if i == n - 1 { len } else { (i as u32 + 1) * size })).collect()
}

/// Draws one cell of fate `fate` inside `cell`; `toward` (pixels, any length) aims a Merged cell's
/// marker at the cell it merged into.
fn paint_cell(img: &mut RgbImage, cell: Rect, fate: PatchFate, toward: Option<(f32, f32)>) {
    let side = (cell.x1 - cell.x0).min(cell.y1 - cell.y0);
    if side == 0 {
        return;
    }
    let thick = (side / 12).max(1);
    match fate {
        PatchFate::Kept => {}
        PatchFate::Dropped => map_pixels(img, cell, |p| {
            let v = luma(p) * DROPPED_BRIGHTNESS;
            [v; 3]
        }),
        PatchFate::Dominant => outline(img, cell, thick, DOMINANT),
        PatchFate::Contextual => {
            map_pixels(img, cell, |p| std::array::from_fn(|k| mix(p[k], CONTEXTUAL.0[k], CONTEXTUAL_TINT)));
            outline(img, cell, thick, CONTEXTUAL);
        }
        PatchFate::Merged => {
            map_pixels(img, cell, |p| p.map(|c| c as f32 * MERGED_BRIGHTNESS));
            merge_marker(img, cell, thick, toward);
        }
    }
}

/// A dot at the cell centre and, when `toward` has a direction, a short line from it toward the
/// merge target, clipped to the cell.
fn merge_marker(img: &mut RgbImage, cell: Rect, thick: u32, toward: Option<(f32, f32)>) {
    let side = (cell.x1 - cell.x0).min(cell.y1 - cell.y0) as f32;
    let cx = (cell.x0 + cell.x1) as f32 / 2.0;
    let cy = (cell.y0 + cell.y1) as f32 / 2.0;
    if let Some((dx, dy)) = toward {
        let norm = (dx * dx + dy * dy).sqrt();
        if norm > 0.0 && norm.is_finite() {
            let len = side * 0.45;
            let steps = (len * 2.0).ceil() as u32;
            for s in 0..=steps {
                let t = len * s as f32 / steps.max(1) as f32;
                stamp(img, cell, cx + dx / norm * t, cy + dy / norm * t, thick as f32 / 2.0, CONTEXTUAL);
            }
        }
    }
    stamp(img, cell, cx, cy, (side / 9.0).max(1.0), CONTEXTUAL);
}

/// Fills the pixels whose centres lie within `radius` of `(x, y)`, clipped to `clip`.
fn stamp(img: &mut RgbImage, clip: Rect, x: f32, y: f32, radius: f32, color: Rgb<u8>) {
    let lo = |v: f32, min: u32| ((v - radius).floor().max(0.0) as u32).max(min);
    let hi = |v: f32, max: u32| ((v + radius).ceil().max(0.0) as u32).min(max);
    for py in lo(y, clip.y0)..hi(y, clip.y1) {
        for px in lo(x, clip.x0)..hi(x, clip.x1) {
            let (ex, ey) = (px as f32 + 0.5 - x, py as f32 + 0.5 - y);
            if ex * ex + ey * ey <= radius * radius + 0.25 {
                put(img, px, py, color);
            }
        }
    }
}

/// A `thick`-pixel frame just inside `cell`.
fn outline(img: &mut RgbImage, cell: Rect, thick: u32, color: Rgb<u8>) {
    let Rect { x0, y0, x1, y1 } = cell;
    let t = thick.min(x1 - x0).min(y1 - y0);
    fill(img, Rect { x0, y0, x1, y1: y0 + t }, color);
    fill(img, Rect { x0, y0: y1 - t, x1, y1 }, color);
    fill(img, Rect { x0, y0, x1: x0 + t, y1 }, color);
    fill(img, Rect { x0: x1 - t, y0, x1, y1 }, color);
}

/// Fills `rect` (clipped to the image) with `color`.
fn fill(img: &mut RgbImage, rect: Rect, color: Rgb<u8>) {
    map_pixels(img, rect, |_| color.0.map(f32::from));
}

/// Replaces every pixel of `rect` (clipped to the image) by `f(pixel)`, rounded and clamped.
fn map_pixels(img: &mut RgbImage, rect: Rect, f: impl Fn([u8; 3]) -> [f32; 3]) {
    for y in rect.y0..rect.y1.min(img.height()) {
        for x in rect.x0..rect.x1.min(img.width()) {
            let p = img.get_pixel_mut(x, y);
            p.0 = f(p.0).map(|v| v.round().clamp(0.0, 255.0) as u8);
        }
    }
}

/// Sets one pixel if it is inside the image.
fn put(img: &mut RgbImage, x: u32, y: u32, color: Rgb<u8>) {
    if x < img.width() && y < img.height() {
        img.put_pixel(x, y, color);
    }
}

/// Rec. 601 luma of a pixel, 0..255.
fn luma(p: [u8; 3]) -> f32 {
    0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
}

/// `a` moved a share `t` of the way to `b`.
fn mix(a: u8, b: u8, t: f32) -> f32 {
    a as f32 * (1.0 - t) + b as f32 * t
}

/// Every fate, in legend order.
pub const FATES: [PatchFate; 5] =
    [PatchFate::Kept, PatchFate::Dominant, PatchFate::Contextual, PatchFate::Merged, PatchFate::Dropped];

/// The legend label of a fate.
pub fn fate_name(fate: PatchFate) -> &'static str {
    match fate {
        PatchFate::Kept => "kept",
        PatchFate::Dominant => "dominant",
        PatchFate::Contextual => "contextual",
        PatchFate::Merged => "merged",
        PatchFate::Dropped => "dropped",
    }
}

/// Width in pixels of `text` drawn by [`draw_text`].
pub(crate) fn text_width(text: &str) -> u32 {
    (text.chars().count() as u32).saturating_mul(ADVANCE)
}

/// Splits `text` into lines of at most `max_chars` characters at spaces, breaking words longer
/// than a line.
fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let word: Vec<char> = word.chars().collect();
        for chunk in word.chunks(max_chars) {
            let needed = if line_len == 0 { chunk.len() } else { line_len + 1 + chunk.len() };
            if needed > max_chars {
                lines.push(std::mem::take(&mut line));
                line_len = 0;
            }
            if line_len > 0 {
                line.push(' ');
                line_len += 1;
            }
            line.extend(chunk);
            line_len += chunk.len();
        }
    }
    if line_len > 0 {
        lines.push(line);
    }
    lines
}

/// Draws `text` with its top-left corner at `(x, y)` in the built-in font at [`SCALE`], clipped to
/// the image.
pub(crate) fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: Rgb<u8>) {
    for (n, ch) in text.chars().enumerate() {
        let gx = x.saturating_add((n as u32).saturating_mul(ADVANCE));
        if gx >= img.width() {
            break;
        }
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                    let (px, py) = (gx + col * SCALE, y.saturating_add(row as u32 * SCALE));
                    for (dx, dy) in (0..SCALE).flat_map(|dx| (0..SCALE).map(move |dy| (dx, dy))) {
                        put(img, px.saturating_add(dx), py.saturating_add(dy), color);
                    }
                }
            }
        }
    }
}

/// The glyph of `ch`: ASCII 32..=126 as is, dashes as '-', anything else as '?'.
fn glyph(ch: char) -> &'static [u8; 9] {
    let ch = match ch {
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{d7}' => 'x',
        c => c,
    };
    let i = ch as usize;
    FONT.get(i.wrapping_sub(32)).unwrap_or(&FONT[(b'?' - 32) as usize])
}

/// 5x7 pixel font for ASCII 32..=126 with two rows below the baseline for descenders (g, j, p, q, y,
/// comma, semicolon): nine rows per glyph, top to bottom, bit 4 the leftmost column.
#[rustfmt::skip]
const FONT: [[u8; 9]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00], // !
    [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // "
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00, 0x00], // #
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00, 0x00], // $
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00], // %
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00, 0x00], // &
    [0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // '
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00], // (
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00], // )
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00, 0x00], // *
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00], // +
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x04, 0x08], // ,
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00], // -
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00], // .
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00], // /
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00], // 0
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // 1
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00], // 2
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00], // 3
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00], // 4
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00], // 5
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00], // 6
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00], // 7
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00], // 8
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00], // 9
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00], // :
    [0x00, 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x04, 0x08], // ;
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00], // <
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00], // =
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00], // >
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00], // ?
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00, 0x00], // @
    [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x00, 0x00], // A
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00, 0x00], // B
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00], // C
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00, 0x00], // D
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00, 0x00], // E
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00], // F
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00, 0x00], // G
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00], // H
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // I
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00, 0x00], // J
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00], // K
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00, 0x00], // L
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00], // M
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00], // N
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00], // O
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00], // P
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00, 0x00], // Q
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00, 0x00], // R
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00, 0x00], // S
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00], // T
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00], // U
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00], // V
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00, 0x00], // W
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00, 0x00], // X
    [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00, 0x00], // Y
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00, 0x00], // Z
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00, 0x00], // [
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00], // \
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00, 0x00], // ]
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ^
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00], // _
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // `
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00], // a
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00], // b
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00], // c
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00], // d
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00], // e
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00], // f
    [0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // g
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00], // h
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // i
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // j
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00], // k
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // l
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00], // m
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00], // n
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00], // o
    [0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10], // p
    [0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01], // q
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00], // r
    [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00], // s
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00], // t
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00], // u
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00], // v
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00], // w
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00], // x
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // y
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00], // z
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00], // {
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00], // |
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00], // }
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00], // ~
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A 384x384 diagonal gradient with a bright disc, like a simple object on a background.
    fn gradient() -> RgbImage {
        RgbImage::from_fn(384, 384, |x, y| {
            let (dx, dy) = (x as f32 - 230.0, y as f32 - 150.0);
            if dx * dx + dy * dy < 70.0 * 70.0 {
                Rgb([240, 200, 60])
            } else {
                Rgb([(x * 200 / 384) as u8 + 30, (y * 180 / 384) as u8 + 40, 160])
            }
        })
    }

    /// A 24x24 grid shaped like VisionZip at 64 tokens: 54 dominant cells around the disc, 10
    /// contextual targets spread over the rest, most cells near a target (and a few far ones) merged
    /// into their nearest target, the rest dropped.
    fn visionzip_grid() -> PatchGrid {
        let mut g = PatchGrid::new(0, 24, 24);
        let pos = |i: usize| ((i / 24) as f32, (i % 24) as f32);
        let mut by_dist: Vec<usize> = (0..576).collect();
        let d2 = |i: usize| {
            let (r, c) = pos(i);
            (r - 9.4).powi(2) + (c - 14.4).powi(2)
        };
        by_dist.sort_by(|&a, &b| d2(a).total_cmp(&d2(b)));
        let dominant: Vec<usize> = by_dist[..54].to_vec();
        let targets = [26, 40, 100, 190, 297, 330, 410, 460, 500, 560];
        for i in 0..576 {
            let (r, c) = pos(i);
            let near = |t: &&usize| (pos(**t).0 - r).powi(2) + (pos(**t).1 - c).powi(2);
            let nearest = targets.iter().min_by(|a, b| near(a).total_cmp(&near(b))).copied();
            let d = nearest.map_or(f32::MAX, |t| near(&&t).sqrt());
            let mut h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
            g.fates[i] = if dominant.contains(&i) {
                PatchFate::Dominant
            } else if targets.contains(&i) {
                PatchFate::Contextual
            } else if (d <= 2.9 && h % 100 < 80) || h % 100 < 6 {
                g.merged_into[i] = nearest;
                PatchFate::Merged
            } else {
                PatchFate::Dropped
            };
        }
        g
    }

    fn mean_luma(img: &RgbImage, x0: u32, y0: u32, side: u32) -> f32 {
        let mut sum = 0.0;
        for y in y0..y0 + side {
            for x in x0..x0 + side {
                sum += luma(img.get_pixel(x, y).0);
            }
        }
        sum / (side * side) as f32
    }

    #[test]
    fn fates_are_drawn_as_documented() {
        let src = gradient();
        let g = visionzip_grid();
        assert_eq!(g.count(PatchFate::Dominant), 54);
        assert_eq!(g.count(PatchFate::Contextual), 10);
        assert_eq!(g.kept(), 64);
        assert_eq!(g.count(PatchFate::Merged) + g.count(PatchFate::Dropped), 512);
        let out = draw(&src, &g);
        assert_eq!(out.dimensions(), src.dimensions());
        let cell_origin = |i: usize| ((i % 24) as u32 * 16, (i / 24) as u32 * 16);

        let dropped = g.fates.iter().position(|&f| f == PatchFate::Dropped).unwrap();
        let (x, y) = cell_origin(dropped);
        assert!(mean_luma(&out, x, y, 16) < 0.3 * mean_luma(&src, x, y, 16) + 1.0);

        let dominant = g.fates.iter().position(|&f| f == PatchFate::Dominant).unwrap();
        let (x, y) = cell_origin(dominant);
        for (px, py) in [(x, y), (x + 15, y), (x, y + 15), (x + 8, y), (x + 15, y + 8)] {
            assert_eq!(*out.get_pixel(px, py), DOMINANT);
        }
        // The inside of a dominant cell is untouched.
        assert_eq!(out.get_pixel(x + 8, y + 8), src.get_pixel(x + 8, y + 8));

        let (x, y) = cell_origin(26);
        assert_eq!(*out.get_pixel(x, y), CONTEXTUAL);
        // A merged cell is dimmed but not as far as a dropped one, with a marker at its centre.
        let merged = g.fates.iter().position(|&f| f == PatchFate::Merged).unwrap();
        let (x, y) = cell_origin(merged);
        assert_eq!(*out.get_pixel(x + 8, y + 8), CONTEXTUAL);
        let corner = luma(out.get_pixel(x + 1, y + 1).0) / luma(src.get_pixel(x + 1, y + 1).0);
        assert!((0.5..0.7).contains(&corner), "{corner}");
    }

    #[test]
    fn legend_adds_a_strip_under_the_image() {
        let src = gradient();
        let g = visionzip_grid();
        let out = draw_with_legend(&src, &g, "visionzip:64 — 64 of 576 tokens, 9.1x fewer FLOPs");
        assert_eq!(out.width(), 384);
        assert!(out.height() > 384 + 2 * TEXT_H);
        let drawn = draw(&src, &g);
        assert!((0..384).all(|y| (0..384).all(|x| out.get_pixel(x, y) == drawn.get_pixel(x, y))));
        // Some text pixels in the strip.
        assert!(out.rows().skip(384).flatten().any(|p| *p == LEGEND_TEXT));

        // A narrow image gets a strip wider than itself.
        let small = RgbImage::new(8, 8);
        let out = draw_with_legend(&small, &PatchGrid::new(0, 2, 2), "");
        assert!(out.width() >= MIN_LEGEND_WIDTH && out.height() > 8);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let mut g = PatchGrid::new(0, 24, 24);
        g.fates[575] = PatchFate::Dropped;
        g.fates[0] = PatchFate::Merged;
        g.merged_into[0] = Some(575);
        for img in [RgbImage::new(0, 0), RgbImage::new(1, 1), RgbImage::new(5, 0), RgbImage::new(30, 7)] {
            assert_eq!(draw(&img, &g).dimensions(), img.dimensions());
            assert!(draw_with_legend(&img, &g, "x").height() > img.height());
            upscale(&img, 768);
        }
        for side in [0, 1, 2, 3] {
            assert_eq!(swatch(PatchFate::Merged, side).dimensions(), (side, side));
        }
        // 1x1 image: the last cell (dropped) covers the pixel.
        let one = RgbImage::from_pixel(1, 1, Rgb([200, 200, 200]));
        assert!(draw(&one, &g).get_pixel(0, 0).0[0] < 100);

        let src = gradient();
        let mut short = PatchGrid::new(0, 4, 4);
        short.fates = vec![PatchFate::Dropped];
        short.merged_into = vec![Some(99); 40];
        let out = draw(&src, &short);
        assert_eq!(out.get_pixel(200, 200), src.get_pixel(200, 200));
        let mut long = PatchGrid::new(0, 2, 2);
        long.fates = vec![PatchFate::Merged; 9];
        draw_with_legend(&src, &long, &"word ".repeat(500));
        draw_with_legend(&src, &PatchGrid::new(0, 0, 7), "");
        let huge = PatchGrid { tile: 0, rows: usize::MAX, cols: usize::MAX, fates: vec![], merged_into: vec![] };
        assert_eq!(huge.count(PatchFate::Dropped), 0);
        draw_with_legend(&src, &huge, "");
    }

    #[test]
    fn upscale_uses_integer_factors() {
        let img = RgbImage::from_fn(3, 2, |x, y| Rgb([x as u8, y as u8, 0]));
        let up = upscale(&img, 7);
        assert_eq!(up.dimensions(), (9, 6));
        assert_eq!(up.get_pixel(8, 5).0, [2, 1, 0]);
        assert_eq!(upscale(&img, 3).dimensions(), (3, 2));
    }

    #[test]
    fn font_covers_printable_ascii() {
        assert_eq!(glyph('A'), &FONT[33]);
        assert_eq!(glyph('—'), glyph('-'));
        assert_eq!(glyph('é'), glyph('?'));
        assert!(FONT.iter().skip(1).all(|g| g.iter().any(|&r| r != 0)));
    }

    /// Writes `target/overlay-sample.png` (upscaled 2x, with legend) to look at by eye.
    #[test]
    fn writes_sample_png() {
        let img = upscale(&gradient(), 768);
        let out = draw_with_legend(&img, &visionzip_grid(), "visionzip:64 — 64 of 576 tokens, 9.1x fewer FLOPs");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).unwrap();
        out.save(dir.join("overlay-sample.png")).unwrap();
    }
}
