//! The forge's deterministic random numbers: xoshiro256** (Blackman & Vigna, prng.di.unimi.it)
//! seeded through SplitMix64 from (seed, tensor name), so every tensor's values depend only on
//! the seed and its own name — never on which tensors come before it.

use crate::rng::SplitMix64;

/// A small, fast, reproducible generator. Not for cryptography.
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The generator for one named stream (a tensor name) under a forge seed.
    pub fn for_name(seed: u64, name: &str) -> Rng {
        // FNV-1a over the name, mixed with the seed, then expanded by SplitMix64.
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut sm = SplitMix64::new(h);
        Rng { s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `out` with normal(mean, std) samples (Box-Muller, two per pair of uniforms).
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f32, std: f32) {
        for pair in out.chunks_mut(2) {
            // 1 - u is in (0, 1], so the log is finite.
            let r = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
            let theta = std::f64::consts::TAU * self.uniform();
            let (s, c) = theta.sin_cos();
            pair[0] = mean + std * (r * c) as f32;
            if let Some(second) = pair.get_mut(1) {
                *second = mean + std * (r * s) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_seed_and_name_only() {
        let a = Rng::for_name(1, "blk.0.attn_q.weight").next_u64();
        assert_eq!(a, Rng::for_name(1, "blk.0.attn_q.weight").next_u64());
        assert_ne!(a, Rng::for_name(2, "blk.0.attn_q.weight").next_u64());
        assert_ne!(a, Rng::for_name(1, "blk.0.attn_k.weight").next_u64());
    }

    #[test]
    fn normal_samples_have_the_asked_moments() {
        let mut v = vec![0f32; 100_001];
        Rng::for_name(7, "x").fill_normal(&mut v, 1.0, 0.5);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "std {}", var.sqrt());
    }
}
