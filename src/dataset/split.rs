//! Train / validation / test splits as disjoint seed ranges, and the (image, question, scene)
//! samples drawn from them deterministically by index.

use std::ops::Range;

use image::RgbImage;

use super::qa::{Question, QuestionKind, object_count_question, questions};
use super::scene::{Scene, SceneConfig};
use crate::rng::{SplitMix64, mix};

/// Salt mixed into a scene seed to pick which of its questions a sample asks.
const SAMPLE_SALT: u64 = 0x5A3B_1E00_0000_0003;

/// A dataset split: each owns a disjoint range of scene seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Seeds `0..1_000_000`.
    Train,
    /// Seeds `1_000_000..1_010_000`.
    Validation,
    /// Seeds `2_000_000..2_010_000` (held out).
    Test,
}

impl Split {
    /// Every split.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// The scene seeds this split owns.
    pub fn seeds(self) -> Range<u64> {
        match self {
            Split::Train => 0..1_000_000,
            Split::Validation => 1_000_000..1_010_000,
            Split::Test => 2_000_000..2_010_000,
        }
    }

    /// The scene seed of the split's `i`-th sample; `i` wraps around the split's size, so every
    /// index maps into the split's own range.
    pub fn seed(self, i: u64) -> u64 {
        let seeds = self.seeds();
        seeds.start + i % (seeds.end - seeds.start)
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    /// `train`, `validation` or `test`.
    fn from_str(s: &str) -> Result<Split, String> {
        match s {
            "train" => Ok(Split::Train),
            "validation" => Ok(Split::Validation),
            "test" => Ok(Split::Test),
            other => Err(format!("`{other}`: expected test, validation or train")),
        }
    }
}

/// One training or evaluation example: a rendered scene, a question about it, and the scene itself
/// (the ground truth: object list, patch coverage).
#[derive(Clone, Debug)]
pub struct Sample {
    pub image: RgbImage,
    pub question: Question,
    pub scene: Scene,
}

/// The `index`-th sample of `split`: the scene of seed `split.seed(index)`, rendered at
/// `size` x `size`, and one of its questions chosen deterministically, first a kind uniformly among
/// the kinds the scene has questions for, then a question of that kind uniformly.
pub fn sample(split: Split, index: u64, cfg: &SceneConfig, size: u32) -> Sample {
    let seed = split.seed(index);
    let scene = Scene::generate(seed, cfg);
    let mut asked = questions(&scene, seed);
    let mut rng = SplitMix64::new(mix(seed ^ SAMPLE_SALT));
    let kinds: Vec<QuestionKind> =
        QuestionKind::ALL.into_iter().filter(|&kind| asked.iter().any(|q| q.kind == kind)).collect();
    let kind = rng.pick(&kinds).copied();
    asked.retain(|q| Some(q.kind) == kind);
    let i = rng.below(asked.len());
    // Generated scenes always have a count question, so `asked` is never empty.
    let question = if i < asked.len() { asked.swap_remove(i) } else { object_count_question(&scene) };
    Sample { image: scene.render(size, size), question, scene }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_are_disjoint_and_wrap() {
        for (i, a) in Split::ALL.iter().enumerate() {
            for b in &Split::ALL[i + 1..] {
                let (ra, rb) = (a.seeds(), b.seeds());
                assert!(ra.end <= rb.start || rb.end <= ra.start, "{a:?} and {b:?} overlap");
            }
            for index in [0, 1, 9_999, 10_000, 999_999, u64::MAX] {
                assert!(a.seeds().contains(&a.seed(index)), "{a:?} {index}");
            }
        }
        assert_eq!(Split::Validation.seed(0), 1_000_000);
        assert_eq!(Split::Test.seed(10_000), Split::Test.seed(0));
    }

    #[test]
    fn samples_are_deterministic_and_consistent() {
        let cfg = SceneConfig::default();
        let a = sample(Split::Validation, 17, &cfg, 64);
        let b = sample(Split::Validation, 17, &cfg, 64);
        assert_eq!(a.image.as_raw(), b.image.as_raw());
        assert_eq!(a.question, b.question);
        assert_eq!(a.scene, b.scene);
        assert_eq!(a.image.dimensions(), (64, 64));
        assert_eq!(a.scene.seed, Split::Validation.seed(17));
        assert!(questions(&a.scene, a.scene.seed).contains(&a.question));
        let c = sample(Split::Test, 17, &cfg, 64);
        assert_ne!(a.scene, c.scene);
        let empty = sample(Split::Train, 3, &SceneConfig { min_objects: 0, max_objects: 0 }, 0);
        assert_eq!(empty.image.dimensions(), (0, 0));
        assert!(!empty.question.answer.is_empty());
    }

    #[test]
    fn sample_kinds_are_spread() {
        let cfg = SceneConfig::default();
        let n = 3000u64;
        let mut counts = [0usize; 6];
        let mut yes_no = [0usize; 2];
        for index in 0..n {
            let s = sample(Split::Train, index, &cfg, 0);
            if let Some(k) = QuestionKind::ALL.iter().position(|&k| k == s.question.kind) {
                counts[k] += 1;
            }
            match s.question.answer.as_str() {
                "yes" => yes_no[0] += 1,
                "no" => yes_no[1] += 1,
                _ => {}
            }
        }
        let shares: Vec<String> = QuestionKind::ALL
            .iter()
            .zip(counts)
            .map(|(k, c)| format!("{} {:.1}%", k.name(), 100.0 * c as f64 / n as f64))
            .collect();
        eprintln!("sample kinds over {n}: {}; yes {} no {}", shares.join(", "), yes_no[0], yes_no[1]);
        assert!(counts.iter().all(|&c| c as u64 > n / 20), "{counts:?}");
        let imbalance = (yes_no[0] as f64 - yes_no[1] as f64).abs() / (yes_no[0] + yes_no[1]) as f64;
        assert!(imbalance <= 0.2, "{yes_no:?}");
    }
}
