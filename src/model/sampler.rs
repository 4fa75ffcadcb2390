//! Choosing the next token from the top-k logits the GPU read back: greedy, or temperature +
//! top-k + top-p with a seeded generator (llama.cpp's order: top-k, temperature, top-p).

use crate::rng::SplitMix64;

/// How to pick tokens.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Sampling {
    /// 0: greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely (1..=64, the GPU's top-k width).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        // llama.cpp's defaults, with greedy decoding as glimpse's default (temperature 0).
        Sampling { temperature: 0.0, top_k: 40, top_p: 0.95, seed: 0 }
    }
}

impl Sampling {
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// A seeded sampler (SplitMix64).
pub struct Sampler {
    params: Sampling,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(params: Sampling) -> Sampler {
        Sampler { params, rng: SplitMix64::new(params.seed ^ 0x5DEE_CE66_D1CE_4E5B) }
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks one of `candidates` (`(logit, id)`, sorted by logit descending, at least one).
    pub fn pick(&mut self, candidates: &[(f32, u32)]) -> u32 {
        let p = self.params;
        if p.is_greedy() || candidates.len() == 1 {
            return candidates[0].1;
        }
        let k = p.top_k.clamp(1, candidates.len());
        let top = &candidates[..k];
        let max = top[0].0;
        let weights: Vec<f64> = top.iter().map(|(l, _)| (((l - max) / p.temperature) as f64).exp()).collect();
        let total: f64 = weights.iter().sum();
        // top-p: the shortest prefix whose mass reaches p.
        let mut kept = 0;
        let mut mass = 0.0;
        for w in &weights {
            kept += 1;
            mass += w / total;
            if mass >= p.top_p as f64 {
                break;
            }
        }
        let kept_total: f64 = weights[..kept].iter().sum();
        let mut r = self.uniform() * kept_total;
        for (w, (_, id)) in weights[..kept].iter().zip(top) {
            if r < *w {
                return *id;
            }
            r -= w;
        }
        top[kept - 1].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first() {
        let mut s = Sampler::new(Sampling::default());
        assert_eq!(s.pick(&[(3.0, 7), (2.0, 1)]), 7);
    }

    #[test]
    fn seeded_sampling_repeats_and_respects_top_p() {
        let c = [(1.0, 10), (0.9, 11), (-20.0, 12)];
        let params = Sampling { temperature: 1.0, top_k: 3, top_p: 0.9, seed: 42 };
        let a: Vec<u32> = (0..50).scan(Sampler::new(params), |s, _| Some(s.pick(&c))).collect();
        let b: Vec<u32> = (0..50).scan(Sampler::new(params), |s, _| Some(s.pick(&c))).collect();
        assert_eq!(a, b);
        assert!(a.contains(&10) && a.contains(&11), "{a:?}");
        // Token 12 holds ~e-21 of the mass: top-p 0.9 cuts it.
        assert!(!a.contains(&12));
    }
}
