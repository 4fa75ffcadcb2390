//! Frame sources: where the images a session answers about come from — image files and folders
//! (a slideshow), and generated scenes (so anyone can try glimpse with no camera). A source
//! hands out frames at its own pace; a frame that cannot be read is an error for that frame,
//! never the end of the session.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::dataset::{SceneConfig, Split};

#[cfg(feature = "camera")]
pub mod camera;

/// Frames larger than this on either side are scaled down on arrival (a 50-megapixel photo
/// would otherwise cost seconds of resizing per question).
pub const MAX_SIDE: u32 = 4096;

/// One frame.
pub struct Frame {
    /// Position in the source's sequence, from 0.
    pub index: u64,
    /// Where it came from: a file name, or a scene's seed.
    pub label: String,
    pub image: RgbImage,
    /// A question about this frame and its answer, when the source knows one (generated scenes).
    pub question: Option<(String, String)>,
}

/// Why one frame could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{label}: {message}")]
    Unreadable { label: String, message: String },
    #[error("no frames: {0}")]
    Empty(String),
}

/// A sequence of frames.
pub trait FrameSource: Send {
    /// What the source is, for logs and the UI.
    fn describe(&self) -> String;
    /// The next frame, `Ok(None)` at the end, or an error for this frame only (the next call
    /// moves on).
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError>;
}

/// Decoded image bytes as a frame image: RGB8, non-empty, at most [`MAX_SIDE`] a side.
pub fn frame_image(bytes: &[u8], label: &str) -> Result<RgbImage, FrameError> {
    let img = crate::model::preprocess::decode(bytes)
        .map_err(|e| FrameError::Unreadable { label: label.to_string(), message: e.to_string() })?;
    fit_frame(img, label)
}

/// `img` as a frame image: an error when it has no pixels, scaled down to at most [`MAX_SIDE`]
/// a side when larger.
pub fn fit_frame(img: RgbImage, label: &str) -> Result<RgbImage, FrameError> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(FrameError::Unreadable { label: label.to_string(), message: format!("empty frame ({w}x{h})") });
    }
    if w.max(h) <= MAX_SIDE {
        return Ok(img);
    }
    let scale = f64::from(MAX_SIDE) / f64::from(w.max(h));
    let (nw, nh) = (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1));
    Ok(image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle))
}

/// Image files, in the order given (a folder's PNG and JPEG files sorted by name), once or in a
/// loop.
pub struct Files {
    paths: Vec<PathBuf>,
    next: usize,
    index: u64,
    looped: bool,
}

impl Files {
    /// The given files, or each folder's `.png` / `.jpg` / `.jpeg` files sorted by name.
    pub fn new(inputs: &[PathBuf], looped: bool) -> Result<Files, FrameError> {
        let mut paths = Vec::new();
        for input in inputs {
            if input.is_dir() {
                let entries = std::fs::read_dir(input)
                    .map_err(|e| FrameError::Empty(format!("cannot list {}: {e}", input.display())))?;
                let mut found: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image(p)).collect();
                found.sort();
                paths.extend(found);
            } else if input.is_file() {
                paths.push(input.clone());
            } else {
                return Err(FrameError::Empty(format!("{} is neither an image file nor a folder", input.display())));
            }
        }
        if paths.is_empty() {
            let list: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
            return Err(FrameError::Empty(format!("no PNG or JPEG files in {}", list.join(", "))));
        }
        Ok(Files { paths, next: 0, index: 0, looped })
    }
}

fn is_image(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

impl FrameSource for Files {
    fn describe(&self) -> String {
        format!("{} image file(s){}", self.paths.len(), if self.looped { ", looped" } else { "" })
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.next == self.paths.len() {
            if !self.looped {
                return Ok(None);
            }
            self.next = 0;
        }
        let path = &self.paths[self.next];
        self.next += 1;
        let index = self.index;
        self.index += 1;
        let label = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| FrameError::Unreadable { label: label.clone(), message: e.to_string() })?;
        Ok(Some(Frame { index, image: frame_image(&bytes, &label)?, label, question: None }))
    }
}

/// Generated scenes (`crate::dataset`) of one split, each with one of its questions and the
/// answer: frames anyone can run with no camera, and a ground truth to score against.
pub struct Scenes {
    split: Split,
    size: u32,
    cfg: SceneConfig,
    next: u64,
}

impl Scenes {
    /// Scenes of `split` from index 0, rendered `size` x `size`.
    pub fn new(split: Split, size: u32) -> Scenes {
        Scenes { split, size: size.clamp(1, MAX_SIDE), cfg: SceneConfig::default(), next: 0 }
    }
}

impl FrameSource for Scenes {
    fn describe(&self) -> String {
        format!("generated scenes ({:?} split, {} px)", self.split, self.size)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let index = self.next;
        self.next += 1;
        let s = crate::dataset::sample(self.split, index, &self.cfg, self.size);
        let label = format!("scene {}", self.split.seed(index));
        Ok(Some(Frame { index, label, image: s.image, question: Some((s.question.text, s.question.answer)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([90])))
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn frame_image_accepts_grayscale_scales_huge_and_rejects_corrupt() {
        let img = frame_image(&png(3, 2), "gray").unwrap();
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.get_pixel(0, 0).0, [90, 90, 90]);
        let big = frame_image(&png(MAX_SIDE * 2, 3), "wide").unwrap();
        assert_eq!(big.dimensions(), (MAX_SIDE, 2));
        let e = frame_image(b"not an image", "junk.png").unwrap_err().to_string();
        assert!(e.starts_with("junk.png:"), "{e}");
        let e = fit_frame(RgbImage::new(0, 5), "cam").unwrap_err().to_string();
        assert_eq!(e, "cam: empty frame (0x5)");
    }

    #[test]
    fn files_skip_bad_frames_and_loop() {
        let dir = std::env::temp_dir().join(format!("glimpse-frames-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.png"), png(4, 4)).unwrap();
        std::fs::write(dir.join("b.png"), b"corrupt").unwrap();
        std::fs::write(dir.join("c.txt"), b"not listed").unwrap();
        let mut f = Files::new(std::slice::from_ref(&dir), false).unwrap();
        assert!(f.next_frame().unwrap().is_some());
        assert!(f.next_frame().is_err(), "the corrupt file is an error for its frame");
        assert!(f.next_frame().unwrap().is_none(), "then the end");
        let mut f = Files::new(std::slice::from_ref(&dir), true).unwrap();
        let labels: Vec<u64> = (0..4).filter_map(|_| f.next_frame().ok().flatten().map(|fr| fr.index)).collect();
        assert_eq!(labels, vec![0, 2], "looping goes round; frame 1 and 3 are the corrupt file");
        assert!(Files::new(&[dir.join("none")], false).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scenes_are_deterministic_and_carry_their_question() {
        let mut a = Scenes::new(Split::Test, 64);
        let mut b = Scenes::new(Split::Test, 64);
        for _ in 0..3 {
            let (fa, fb) = (a.next_frame().unwrap().unwrap(), b.next_frame().unwrap().unwrap());
            assert_eq!(fa.image, fb.image);
            assert_eq!(fa.question, fb.question);
            let (q, answer) = fa.question.unwrap();
            assert!(q.ends_with('?') && !answer.is_empty());
        }
    }
}
