//! Procedural scenes: a few coloured shapes on a plain, gradient, noise-textured, striped,
//! chequered or cluttered background, generated deterministically from a seed, rasterised with
//! 2x2 supersampling, plus the ground truth of which ViT patches each object covers.
//!
//! Coordinates: an object's `centre` is normalised to the image (`x` in `0..1` left to right, `y`
//! in `0..1` top to bottom). Lengths (object radii, texture periods) are fractions of the image's
//! shorter side, so shapes stay undistorted at any aspect ratio and objects that do not overlap
//! in the unit square do not overlap in any rendering.

use image::{Rgb, RgbImage};

use crate::rng::{SplitMix64, mix};

/// The most objects a generated scene holds (larger `SceneConfig` values are clamped to it).
pub const MAX_OBJECTS: usize = 8;

/// The largest width or height `render` and `object_patches` work at (larger values are clamped).
pub const MAX_RENDER_SIDE: u32 = 4096;

/// Sub-pixel sample offsets of the 2x2 supersampling grid (shared by `render` and `object_patches`
/// so the patch ground truth matches the pixels exactly).
const SUBSAMPLES: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];

/// Salt mixed into a scene seed so scene draws and question draws use unrelated streams.
const SCENE_SALT: u64 = 0x5CE4_E5EE_D000_0001;

/// Placement tries per object before it is dropped (only crowded configurations ever need many).
const PLACEMENT_ATTEMPTS: usize = 200;

/// Minimum empty space between two objects' bounding circles (fraction of the shorter side).
const OBJECT_GAP: f32 = 0.03;

/// Minimum space between an object's bounding circle and the image border.
const BORDER_MARGIN: f32 = 0.02;

/// Largest rotation (radians) of shapes whose look depends on orientation; stars turn freely.
const MAX_TILT: f32 = 0.35;

/// The shape of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Diamond,
    Cross,
}

impl Shape {
    /// Every shape, in a fixed order.
    pub const ALL: [Shape; 6] =
        [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star, Shape::Diamond, Shape::Cross];

    /// The lowercase English name ("circle").
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Diamond => "diamond",
            Shape::Cross => "cross",
        }
    }

    /// The lowercase English plural ("crosses").
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Star => "stars",
            Shape::Diamond => "diamonds",
            Shape::Cross => "crosses",
        }
    }

    /// Whether the point `(x, y)` lies in the shape drawn in its own frame: centred on the origin,
    /// upright (`y` down), inside the unit bounding circle.
    fn contains(self, x: f32, y: f32) -> bool {
        match self {
            Shape::Circle => x * x + y * y <= 0.8 * 0.8,
            Shape::Square => x.abs() <= 0.68 && y.abs() <= 0.68,
            Shape::Triangle => {
                // Apex (0, -0.92), base corners (+-0.8, 0.6): inside all three edges.
                let base = y <= 0.6;
                let slope = 1.52 / 0.8;
                base && y >= -0.92 + slope * x.abs()
            }
            Shape::Star => star_contains(x, y),
            Shape::Diamond => x.abs() / 0.62 + y.abs() <= 1.0,
            Shape::Cross => (x.abs() <= 0.25 && y.abs() <= 0.8) || (y.abs() <= 0.25 && x.abs() <= 0.8),
        }
    }

    /// Whether the shape's look changes when it turns (a circle's does not, a star is symmetric
    /// enough to turn freely).
    fn tilt_limit(self) -> f32 {
        match self {
            Shape::Circle => 0.0,
            Shape::Star => std::f32::consts::PI,
            _ => MAX_TILT,
        }
    }
}

/// Whether `(x, y)` lies in a five-pointed star (outer radius 1, inner 0.42, one point up).
fn star_contains(x: f32, y: f32) -> bool {
    use std::f32::consts::{FRAC_PI_2, PI};
    const OUTER: f32 = 1.0;
    const INNER: f32 = 0.42;
    // cos and sin of pi/5, the angle from a point to the next inner vertex.
    const COS: f32 = 0.809_017;
    const SIN: f32 = 0.587_785;
    let rho = (x * x + y * y).sqrt();
    if rho > OUTER {
        return false;
    }
    if rho <= INNER * COS {
        return true;
    }
    // Fold the angle into the half-sector between a point (angle 0) and an inner vertex (pi/5).
    let sector = 2.0 * PI / 5.0;
    let mut phi = (y.atan2(x) + FRAC_PI_2).rem_euclid(sector);
    if phi > sector / 2.0 {
        phi = sector - phi;
    }
    let (px, py) = (rho * phi.cos(), rho * phi.sin());
    // Inside when on the origin's side of the edge from (OUTER, 0) to the inner vertex.
    let (ex, ey) = (INNER * COS - OUTER, INNER * SIN);
    let side = |qx: f32, qy: f32| ex * qy - ey * (qx - OUTER);
    side(px, py) * side(0.0, 0.0) >= 0.0
}

/// The colour of an object: saturated, well separated hues (backgrounds are muted greys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

impl Colour {
    /// Every colour, in a fixed order.
    pub const ALL: [Colour; 6] =
        [Colour::Red, Colour::Green, Colour::Blue, Colour::Yellow, Colour::Purple, Colour::Orange];

    /// The lowercase English name ("red").
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
        }
    }

    /// The sRGB value objects of this colour are painted with.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 35],
            Colour::Green => [30, 170, 60],
            Colour::Blue => [35, 75, 225],
            Colour::Yellow => [245, 215, 30],
            Colour::Purple => [150, 50, 200],
            Colour::Orange => [250, 135, 20],
        }
    }
}

/// The size class of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    /// Every size, smallest first.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// The radius of the bounding circle, as a fraction of the image's shorter side.
    pub fn radius(self) -> f32 {
        match self {
            Size::Small => 0.065,
            Size::Medium => 0.09,
            Size::Large => 0.12,
        }
    }
}

/// One shape in a scene.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    /// Centre, normalised: `x` in `0..1` left to right, `y` in `0..1` top to bottom.
    pub centre: (f32, f32),
    /// Clockwise rotation in radians.
    pub rotation: f32,
}

impl Object {
    /// The radius of the object's bounding circle, as a fraction of the image's shorter side.
    pub fn radius(&self) -> f32 {
        self.size.radius()
    }

    /// "red circle": the colour and shape that name the object in questions.
    pub fn label(&self) -> String {
        format!("{} {}", self.colour.name(), self.shape.name())
    }

    /// Whether the pixel-space point `(x, y)` of a `w` x `h` image lies inside the object.
    fn covers(&self, x: f32, y: f32, w: f32, h: f32) -> bool {
        let r = self.radius() * w.min(h);
        if r.is_nan() || r <= 0.0 {
            return false;
        }
        let dx = (x - self.centre.0 * w) / r;
        let dy = (y - self.centre.1 * h) / r;
        if dx * dx + dy * dy > 1.0 {
            return false;
        }
        let (s, c) = self.rotation.sin_cos();
        self.shape.contains(c * dx + s * dy, c * dy - s * dx)
    }
}

/// A small low-contrast background mark that is not a question-worthy object.
#[derive(Clone, Debug, PartialEq)]
pub enum ClutterItem {
    /// A filled disc: normalised centre, radius as a fraction of the shorter side.
    Blob { centre: (f32, f32), radius: f32, colour: [u8; 3] },
    /// A thin straight line: normalised end points, half width as a fraction of the shorter side.
    Stroke { from: (f32, f32), to: (f32, f32), half_width: f32, colour: [u8; 3] },
}

impl ClutterItem {
    /// The item's colour if it covers the pixel-space point `(x, y)` of a `w` x `h` image.
    fn colour_at(&self, x: f32, y: f32, w: f32, h: f32) -> Option<[u8; 3]> {
        let m = w.min(h);
        match *self {
            ClutterItem::Blob { centre, radius, colour } => {
                let (dx, dy) = (x - centre.0 * w, y - centre.1 * h);
                let r = radius * m;
                (dx * dx + dy * dy <= r * r).then_some(colour)
            }
            ClutterItem::Stroke { from, to, half_width, colour } => {
                let (ax, ay) = (from.0 * w, from.1 * h);
                let (bx, by) = (to.0 * w, to.1 * h);
                let (vx, vy) = (bx - ax, by - ay);
                let len2 = vx * vx + vy * vy;
                let t = if len2 > 0.0 { (((x - ax) * vx + (y - ay) * vy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (dx, dy) = (x - ax - t * vx, y - ay - t * vy);
                let hw = half_width * m;
                (dx * dx + dy * dy <= hw * hw).then_some(colour)
            }
        }
    }
}

/// What lies behind the objects. Colours are muted so the saturated objects stay distinct;
/// lengths are fractions of the image's shorter side.
#[derive(Clone, Debug, PartialEq)]
pub enum Background {
    /// One flat colour.
    Plain { colour: [u8; 3] },
    /// A linear blend across the image along the direction `angle` (radians).
    Gradient { from: [u8; 3], to: [u8; 3], angle: f32 },
    /// Two-octave value noise of lattice spacing `cell` added to `base` (+-`amplitude` levels).
    Noise { base: [u8; 3], amplitude: f32, cell: f32, seed: u64 },
    /// Alternating bands of width `period` along the direction `angle` (radians).
    Stripes { a: [u8; 3], b: [u8; 3], period: f32, angle: f32 },
    /// A chequerboard of square cells of side `cell`.
    Checker { a: [u8; 3], b: [u8; 3], cell: f32 },
    /// Many tiny low-contrast blobs and lines on a flat `base` (later items are drawn on top).
    Clutter { base: [u8; 3], items: Vec<ClutterItem> },
}

impl Background {
    /// A random background: clutter 30%, noise 20%, gradient 20%, stripes, checker and plain 10%
    /// each.
    fn generate(rng: &mut SplitMix64) -> Background {
        let base = muted(rng);
        match rng.below(10) {
            0 => Background::Plain { colour: base },
            1 | 2 => Background::Gradient { from: base, to: muted(rng), angle: rng.range(0.0, std::f32::consts::TAU) },
            3 | 4 => Background::Noise {
                base,
                amplitude: rng.range(18.0, 40.0),
                cell: rng.range(0.03, 0.1),
                seed: rng.next_u64(),
            },
            5 => Background::Stripes {
                a: base,
                b: shade(rng, base, 25.0, 50.0),
                period: rng.range(0.02, 0.06),
                angle: rng.range(0.0, std::f32::consts::PI),
            },
            6 => Background::Checker { a: base, b: shade(rng, base, 20.0, 40.0), cell: rng.range(0.03, 0.08) },
            _ => {
                let n = 60 + rng.below(100);
                let items = (0..n)
                    .map(|_| {
                        let colour = shade(rng, base, 15.0, 45.0);
                        let centre = (rng.unit(), rng.unit());
                        if rng.below(2) == 0 {
                            ClutterItem::Blob { centre, radius: rng.range(0.004, 0.018), colour }
                        } else {
                            let len = rng.range(0.03, 0.12);
                            let angle = rng.range(0.0, std::f32::consts::TAU);
                            let to = (centre.0 + len * angle.cos(), centre.1 + len * angle.sin());
                            ClutterItem::Stroke { from: centre, to, half_width: rng.range(0.002, 0.005), colour }
                        }
                    })
                    .collect();
                Background::Clutter { base, items }
            }
        }
    }

    /// The background colour at the pixel-space point `(x, y)` of a `w` x `h` image.
    fn colour_at(&self, x: f32, y: f32, w: f32, h: f32) -> [f32; 3] {
        let m = w.min(h);
        let (su, sv) = (x / m, y / m);
        match self {
            Background::Plain { colour } => colour.map(f32::from),
            Background::Gradient { from, to, angle } => {
                let (s, c) = angle.sin_cos();
                let t =
                    (((x / w - 0.5) * c + (y / h - 0.5) * s) * std::f32::consts::FRAC_1_SQRT_2 + 0.5).clamp(0.0, 1.0);
                [0, 1, 2].map(|i| f32::from(from[i]) * (1.0 - t) + f32::from(to[i]) * t)
            }
            Background::Noise { base, amplitude, cell, seed } => {
                let (u, v) = (su / cell, sv / cell);
                let n = 0.65 * value_noise(u, v, *seed) + 0.35 * value_noise(3.0 * u, 3.0 * v, seed ^ 0x0C7A);
                base.map(|b| f32::from(b) + amplitude * n)
            }
            Background::Stripes { a, b, period, angle } => {
                let (s, c) = angle.sin_cos();
                let band = ((su * c + sv * s) / period).floor().rem_euclid(2.0);
                if band < 1.0 { a } else { b }.map(f32::from)
            }
            Background::Checker { a, b, cell } => {
                let parity = ((su / cell).floor() + (sv / cell).floor()).rem_euclid(2.0);
                if parity < 1.0 { a } else { b }.map(f32::from)
            }
            Background::Clutter { base, items } => {
                items.iter().rev().find_map(|item| item.colour_at(x, y, w, h)).unwrap_or(*base).map(f32::from)
            }
        }
    }
}

/// A muted, slightly tinted grey: the base colour of every background.
fn muted(rng: &mut SplitMix64) -> [u8; 3] {
    let grey = rng.range(75.0, 185.0);
    [0; 3].map(|_: u8| (grey + rng.range(-12.0, 12.0)).clamp(0.0, 255.0) as u8)
}

/// `base` moved by `lo..hi` levels, lighter or darker (whichever has room), with a little tint.
fn shade(rng: &mut SplitMix64, base: [u8; 3], lo: f32, hi: f32) -> [u8; 3] {
    let mean = base.iter().map(|&c| f32::from(c)).sum::<f32>() / 3.0;
    let sign = if mean > 128.0 { -1.0 } else { 1.0 };
    let delta = sign * rng.range(lo, hi);
    base.map(|c| (f32::from(c) + delta + rng.range(-6.0, 6.0)).clamp(0.0, 255.0) as u8)
}

/// Smoothly interpolated lattice noise in `[-1, 1]`.
fn value_noise(x: f32, y: f32, seed: u64) -> f32 {
    let (fx, fy) = (x.floor(), y.floor());
    let (ix, iy) = (fx as i64, fy as i64);
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(x - fx), smooth(y - fy));
    let corner = |dx: i64, dy: i64| {
        let h = mix(seed
            ^ (ix.wrapping_add(dx) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iy.wrapping_add(dy) as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let top = corner(0, 0) * (1.0 - tx) + corner(1, 0) * tx;
    let bottom = corner(0, 1) * (1.0 - tx) + corner(1, 1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// How many objects a generated scene holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SceneConfig {
    /// Fewest objects (clamped to `max_objects`; a crowded scene may place fewer).
    pub min_objects: usize,
    /// Most objects (clamped to `MAX_OBJECTS`).
    pub max_objects: usize,
}

impl Default for SceneConfig {
    /// One to four objects.
    fn default() -> Self {
        Self { min_objects: 1, max_objects: 4 }
    }
}

/// A scene: non-overlapping objects over a background, reproducible from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// The objects, drawn in order (generated scenes never overlap, so the order does not show).
    pub objects: Vec<Object>,
    pub background: Background,
    /// The seed the scene was generated from.
    pub seed: u64,
}

impl Scene {
    /// The scene for `seed`: a random background and `cfg.min_objects..=cfg.max_objects` objects
    /// placed without overlap, no two sharing both colour and shape. Deterministic.
    pub fn generate(seed: u64, cfg: &SceneConfig) -> Scene {
        let mut rng = SplitMix64::new(seed ^ SCENE_SALT);
        let background = Background::generate(&mut rng);
        let max = cfg.max_objects.min(MAX_OBJECTS);
        let min = cfg.min_objects.min(max);
        let count = min + rng.below(max - min + 1);
        let mut objects: Vec<Object> = Vec::with_capacity(count);
        for _ in 0..count {
            if let Some(object) = place(&mut rng, &objects) {
                objects.push(object);
            }
        }
        Scene { objects, background, seed }
    }

    /// The scene rasterised at `width` x `height` (each clamped to `MAX_RENDER_SIDE`), every
    /// pixel the mean of a 2x2 grid of samples. Deterministic; an empty image for a zero side.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let (w, h) = (width.min(MAX_RENDER_SIDE), height.min(MAX_RENDER_SIDE));
        let (wf, hf) = (w as f32, h as f32);
        RgbImage::from_fn(w, h, |x, y| {
            let mut sum = [0.0f32; 3];
            for (ox, oy) in SUBSAMPLES {
                let colour = self.colour_at(x as f32 + ox, y as f32 + oy, wf, hf);
                for (s, c) in sum.iter_mut().zip(colour) {
                    *s += c;
                }
            }
            Rgb(sum.map(|s| (s / SUBSAMPLES.len() as f32).round().clamp(0.0, 255.0) as u8))
        })
    }

    /// For each object (in order), the sorted indices of the `patch` x `patch` pixel patches of a
    /// `width` x `height` rendering that it touches, numbered in raster order over the
    /// `(width / patch) x (height / patch)` grid (pixels past the last whole patch are ignored,
    /// sides are clamped as in `render`). A patch is listed when any of its supersamples falls
    /// inside the object, exactly the pixels `render` paints; occlusion is ignored. Every list is
    /// empty when `patch` is 0.
    pub fn object_patches(&self, width: u32, height: u32, patch: u32) -> Vec<Vec<usize>> {
        let (w, h) = (width.min(MAX_RENDER_SIDE), height.min(MAX_RENDER_SIDE));
        if patch == 0 {
            return vec![Vec::new(); self.objects.len()];
        }
        let (cols, rows) = (w / patch, h / patch);
        let (wf, hf) = (w as f32, h as f32);
        // The whole-patch area, in pixels.
        let (span_x, span_y) = (cols * patch, rows * patch);
        self.objects
            .iter()
            .map(|object| {
                let mut hit = vec![false; (cols * rows) as usize];
                let r = object.radius() * wf.min(hf);
                let (cx, cy) = (object.centre.0 * wf, object.centre.1 * hf);
                // The object's pixel box (end exclusive) within the patch area; NaN clamps to 0.
                let bound = |v: f32, span: u32| v.clamp(0.0, span as f32) as u32;
                let (x0, x1) = (bound((cx - r).floor(), span_x), bound((cx + r).ceil() + 1.0, span_x));
                let (y0, y1) = (bound((cy - r).floor(), span_y), bound((cy + r).ceil() + 1.0, span_y));
                for y in y0..y1 {
                    for x in x0..x1 {
                        let covered =
                            SUBSAMPLES.iter().any(|&(ox, oy)| object.covers(x as f32 + ox, y as f32 + oy, wf, hf));
                        if covered {
                            hit[((y / patch) * cols + x / patch) as usize] = true;
                        }
                    }
                }
                hit.iter().enumerate().filter(|&(_, &covered)| covered).map(|(i, _)| i).collect()
            })
            .collect()
    }

    /// The colour at the pixel-space point `(x, y)` of a `w` x `h` image: the last object covering
    /// it, else the background.
    fn colour_at(&self, x: f32, y: f32, w: f32, h: f32) -> [f32; 3] {
        match self.objects.iter().rev().find(|o| o.covers(x, y, w, h)) {
            Some(object) => object.colour.rgb().map(f32::from),
            None => self.background.colour_at(x, y, w, h),
        }
    }
}

/// A new object with a colour-and-shape pair not yet in `placed`, at a spot clear of every placed
/// object; `None` when no such spot turns up within `PLACEMENT_ATTEMPTS` tries.
fn place(rng: &mut SplitMix64, placed: &[Object]) -> Option<Object> {
    for _ in 0..PLACEMENT_ATTEMPTS {
        let shape = *rng.pick(&Shape::ALL)?;
        let colour = *rng.pick(&Colour::ALL)?;
        let size = *rng.pick(&Size::ALL)?;
        if placed.iter().any(|o| o.shape == shape && o.colour == colour) {
            continue;
        }
        let r = size.radius();
        let edge = r + BORDER_MARGIN;
        let centre = (rng.range(edge, 1.0 - edge), rng.range(edge, 1.0 - edge));
        let clear = placed.iter().all(|o| {
            let (dx, dy) = (o.centre.0 - centre.0, o.centre.1 - centre.1);
            let min = o.radius() + r + OBJECT_GAP;
            dx * dx + dy * dy >= min * min
        });
        if !clear {
            continue;
        }
        let tilt = shape.tilt_limit();
        let rotation = rng.range(-tilt, tilt);
        return Some(Object { shape, colour, size, centre, rotation });
    }
    None
}

#[cfg(test)]
mod tests {
    use std::mem::discriminant;

    use super::*;

    fn scenes(n: u64) -> impl Iterator<Item = Scene> {
        (0..n).map(|seed| Scene::generate(seed, &SceneConfig::default()))
    }

    #[test]
    fn deterministic_from_seed() {
        let cfg = SceneConfig::default();
        let (a, b) = (Scene::generate(7, &cfg), Scene::generate(7, &cfg));
        assert_eq!(a, b);
        assert_eq!(a.render(96, 64).as_raw(), b.render(96, 64).as_raw());
        let c = Scene::generate(8, &cfg);
        assert_ne!(a, c);
        assert_ne!(a.render(96, 64).as_raw(), c.render(96, 64).as_raw());
    }

    #[test]
    fn objects_are_distinct_in_bounds_and_never_overlap() {
        for scene in scenes(500) {
            assert!((1..=4).contains(&scene.objects.len()), "seed {}: {} objects", scene.seed, scene.objects.len());
            for (i, a) in scene.objects.iter().enumerate() {
                let r = a.radius();
                assert!(a.centre.0 - r >= 0.0 && a.centre.0 + r <= 1.0, "seed {}: x out of frame", scene.seed);
                assert!(a.centre.1 - r >= 0.0 && a.centre.1 + r <= 1.0, "seed {}: y out of frame", scene.seed);
                for b in &scene.objects[i + 1..] {
                    let d = ((a.centre.0 - b.centre.0).powi(2) + (a.centre.1 - b.centre.1).powi(2)).sqrt();
                    assert!(d >= a.radius() + b.radius(), "seed {}: overlap", scene.seed);
                    assert!(a.colour != b.colour || a.shape != b.shape, "seed {}: duplicate", scene.seed);
                }
            }
        }
    }

    #[test]
    fn every_background_kind_and_shape_occurs() {
        let all: Vec<Scene> = scenes(200).collect();
        let kinds = [
            Background::Plain { colour: [0; 3] },
            Background::Gradient { from: [0; 3], to: [0; 3], angle: 0.0 },
            Background::Noise { base: [0; 3], amplitude: 0.0, cell: 0.0, seed: 0 },
            Background::Stripes { a: [0; 3], b: [0; 3], period: 0.0, angle: 0.0 },
            Background::Checker { a: [0; 3], b: [0; 3], cell: 0.0 },
            Background::Clutter { base: [0; 3], items: Vec::new() },
        ];
        for kind in &kinds {
            assert!(all.iter().any(|s| discriminant(&s.background) == discriminant(kind)), "{kind:?} never drawn");
        }
        for shape in Shape::ALL {
            assert!(all.iter().any(|s| s.objects.iter().any(|o| o.shape == shape)), "{shape:?} never drawn");
        }
    }

    #[test]
    fn objects_cover_a_minority_of_patches() {
        for (side, patch) in [(224u32, 14u32), (336, 14)] {
            let grid = ((side / patch) * (side / patch)) as f64;
            let fractions: Vec<f64> = scenes(500)
                .map(|scene| {
                    let lists = scene.object_patches(side, side, patch);
                    assert!(lists.iter().all(|l| !l.is_empty()), "seed {}: an object touches no patch", scene.seed);
                    let mut all: Vec<usize> = lists.concat();
                    all.sort_unstable();
                    all.dedup();
                    all.len() as f64 / grid
                })
                .collect();
            let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
            let max = fractions.iter().copied().fold(0.0, f64::max);
            eprintln!("object patch coverage at {side} px / {patch} px patches: mean {mean:.3}, max {max:.3}");
            assert!(mean < 0.35, "mean coverage {mean:.3} at {side} px");
        }
    }

    #[test]
    fn object_patches_match_rendered_pixels() {
        for (w, h, patch) in [(224u32, 224u32, 14u32), (230, 180, 16)] {
            for scene in scenes(24) {
                let image = scene.render(w, h);
                let plain = Scene { objects: Vec::new(), ..scene.clone() }.render(w, h);
                let mut listed: Vec<usize> = scene.object_patches(w, h, patch).concat();
                listed.sort_unstable();
                let cols = w / patch;
                for row in 0..h / patch {
                    for col in 0..cols {
                        let index = (row * cols + col) as usize;
                        let differs = (0..patch).any(|dy| {
                            (0..patch).any(|dx| {
                                let (x, y) = (col * patch + dx, row * patch + dy);
                                image.get_pixel(x, y) != plain.get_pixel(x, y)
                            })
                        });
                        let is_listed = listed.binary_search(&index).is_ok();
                        assert_eq!(differs, is_listed, "seed {} patch {index} at {w}x{h}/{patch}", scene.seed);
                    }
                }
            }
        }
    }

    #[test]
    fn degenerate_parameters_do_not_panic() {
        let scene = Scene::generate(3, &SceneConfig::default());
        assert_eq!(scene.render(0, 0).dimensions(), (0, 0));
        assert_eq!(scene.render(1, 1).dimensions(), (1, 1));
        assert_eq!(scene.render(0, 9).dimensions(), (0, 9));
        assert_eq!(scene.render(u32::MAX, 1).dimensions(), (MAX_RENDER_SIDE, 1));
        assert!(scene.object_patches(224, 224, 0).iter().all(Vec::is_empty));
        assert!(scene.object_patches(10, 10, 14).iter().all(Vec::is_empty));
        assert!(scene.object_patches(0, 0, 1).iter().all(Vec::is_empty));
        assert_eq!(scene.object_patches(u32::MAX, 3, u32::MAX).len(), scene.objects.len());

        let empty = Scene::generate(3, &SceneConfig { min_objects: 0, max_objects: 0 });
        assert!(empty.objects.is_empty());
        assert_eq!(empty.render(8, 8).dimensions(), (8, 8));
        assert!(empty.object_patches(8, 8, 2).is_empty());
        let clamped = Scene::generate(3, &SceneConfig { min_objects: usize::MAX, max_objects: usize::MAX });
        assert!(clamped.objects.len() <= MAX_OBJECTS);
        let reversed = Scene::generate(3, &SceneConfig { min_objects: 5, max_objects: 2 });
        assert!(reversed.objects.len() <= 2);

        let mut odd = scene.clone();
        odd.objects.push(Object {
            shape: Shape::Star,
            colour: Colour::Red,
            size: Size::Large,
            centre: (f32::NAN, f32::INFINITY),
            rotation: f32::NAN,
        });
        odd.objects.push(Object { centre: (-3.0, 1e30), ..odd.objects[odd.objects.len() - 1] });
        odd.background = Background::Noise { base: [9; 3], amplitude: f32::NAN, cell: 0.0, seed: 1 };
        assert_eq!(odd.render(16, 16).dimensions(), (16, 16));
        assert_eq!(odd.object_patches(16, 16, 4).len(), odd.objects.len());
        odd.background = Background::Checker { a: [1; 3], b: [2; 3], cell: -0.0 };
        assert_eq!(odd.render(4, 4).dimensions(), (4, 4));
    }

    /// Writes a few scenes, a montage of them, and the montage with each object's patches outlined,
    /// to `target/dataset-samples/` for a human to look at.
    #[test]
    fn writes_sample_pngs() -> image::ImageResult<()> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dataset-samples");
        std::fs::create_dir_all(&dir)?;
        let (side, patch, cols) = (224u32, 14u32, 4u32);
        // One scene of each background kind, then two more.
        let mut seeds: Vec<u64> = Vec::new();
        let mut kinds = Vec::new();
        for seed in 100..1000u64 {
            let kind = discriminant(&Scene::generate(seed, &SceneConfig::default()).background);
            if !kinds.contains(&kind) || seeds.len() >= 6 {
                kinds.push(kind);
                seeds.push(seed);
            }
            if seeds.len() == 8 {
                break;
            }
        }
        let rows = (seeds.len() as u32).div_ceil(cols);
        let mut montage = RgbImage::new(cols * side, rows * side);
        let mut outlined = RgbImage::new(cols * side, rows * side);
        for (i, &seed) in seeds.iter().enumerate() {
            let scene = Scene::generate(seed, &SceneConfig::default());
            scene.render(336, 336).save(dir.join(format!("scene-{seed}.png")))?;
            let image = scene.render(side, side);
            let (ox, oy) = ((i as u32 % cols) * side, (i as u32 / cols) * side);
            for (x, y, p) in image.enumerate_pixels() {
                montage.put_pixel(ox + x, oy + y, *p);
                outlined.put_pixel(ox + x, oy + y, *p);
            }
            let grid = side / patch;
            for index in scene.object_patches(side, side, patch).concat() {
                let (px, py) = ((index as u32 % grid) * patch, (index as u32 / grid) * patch);
                for t in 0..patch {
                    for (x, y) in [(px + t, py), (px + t, py + patch - 1), (px, py + t), (px + patch - 1, py + t)] {
                        outlined.put_pixel(ox + x, oy + y, Rgb([255, 255, 255]));
                    }
                }
            }
        }
        montage.save(dir.join("montage.png"))?;
        outlined.save(dir.join("montage-patches.png"))
    }
}
