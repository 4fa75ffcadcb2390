//! Frames as egui textures: downscaled for display (so a huge frame never reaches the GPU's
//! texture limit), empty images refused, and uploaded again only when the content changes.

use std::borrow::Cow;

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};
use image::RgbImage;

/// Longest side of a displayed frame, in pixels.
pub const DISPLAY_SIDE: u32 = 1024;

/// `img` scaled down (never up) to at most `max_side` a side; `None` for an image without
/// pixels.
pub fn fit(img: &RgbImage, max_side: u32) -> Option<Cow<'_, RgbImage>> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || max_side == 0 {
        return None;
    }
    if w.max(h) <= max_side {
        return Some(Cow::Borrowed(img));
    }
    let s = f64::from(max_side) / f64::from(w.max(h));
    let (nw, nh) = (((f64::from(w) * s) as u32).max(1), ((f64::from(h) * s) as u32).max(1));
    Some(Cow::Owned(image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)))
}

/// [`fit`] as an egui image.
pub fn color_image(img: &RgbImage, max_side: u32) -> Option<ColorImage> {
    let img = fit(img, max_side)?;
    Some(ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw()))
}

/// One texture, tagged with the key of what it shows.
#[derive(Default)]
pub struct Cached {
    key: Option<u64>,
    handle: Option<TextureHandle>,
}

impl Cached {
    /// The texture for `key`, made from `make()` (at most [`DISPLAY_SIDE`] a side, and within
    /// the renderer's limit) when the key changed; `None` when there is nothing to show.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        name: &str,
        key: u64,
        make: impl FnOnce() -> Option<RgbImage>,
    ) -> Option<&TextureHandle> {
        if self.key != Some(key) {
            self.key = Some(key);
            let limit = (ctx.input(|i| i.max_texture_side) as u32).min(DISPLAY_SIDE);
            self.handle = make()
                .and_then(|img| color_image(&img, limit))
                .map(|c| ctx.load_texture(name, c, TextureOptions::NEAREST));
        }
        self.handle.as_ref()
    }
}

/// Shows `tex` as large as fits in `max` points, keeping its aspect ratio.
pub fn show(ui: &mut egui::Ui, tex: &TextureHandle, max: egui::Vec2) -> egui::Response {
    let size = tex.size_vec2();
    let scale = (max.x / size.x).min(max.y / size.y).max(0.01);
    ui.image((tex.id(), size * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_image_scales_down_and_refuses_empty() {
        assert!(color_image(&RgbImage::new(0, 4), 64).is_none());
        let c = color_image(&RgbImage::new(400, 100), 64).unwrap();
        assert_eq!(c.size, [64, 16]);
        let c = color_image(&RgbImage::new(10000, 1), 64).unwrap();
        assert_eq!(c.size, [64, 1]);
        assert_eq!(color_image(&RgbImage::new(3, 2), 64).unwrap().size, [3, 2]);
    }
}
