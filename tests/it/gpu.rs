//! Shared GPU test helpers: one device per test binary, and the skip-or-fail rule.

use std::sync::OnceLock;

use glimpse::gpu::{Gpu, GpuOptions};

/// The shared device, or `None` (with a message) when there is no adapter. With
/// `GLIMPSE_REQUIRE_GPU=1` (as in CI, on lavapipe) a missing device fails the test instead.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    match GPU.get_or_init(|| Gpu::new(&GpuOptions::default()).map_err(|e| e.to_string())) {
        Ok(g) => Some(g),
        Err(e) if crate::util::required("GPU") => panic!("GLIMPSE_REQUIRE_GPU=1 but no GPU: {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// A device whose weight parts are capped at `bytes`, to force weights to be split.
pub fn gpu_with_binding_limit(bytes: u64) -> Option<Gpu> {
    gpu()?;
    Some(Gpu::new(&GpuOptions { max_weight_part_bytes: Some(bytes), ..GpuOptions::default() }).expect("second device"))
}

/// A small deterministic generator for test data (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
}

/// Value written into output buffers before a kernel runs, to show elements it did not write.
pub const POISON: f32 = -7.777e30;

/// What a matmul's Y holds before the product and how the product lands in it: poison (the
/// product is stored), random values the product adds to (`accumulate`), or random gates the
/// product multiplies by silu (`gated`). `true` / `false` mean accumulate / poison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YIn {
    Poison,
    Accumulate,
    Gate,
}

impl From<bool> for YIn {
    fn from(accumulate: bool) -> YIn {
        if accumulate { YIn::Accumulate } else { YIn::Poison }
    }
}

impl YIn {
    /// Y before the product: `len` values, random unless poison.
    pub fn initial(self, rng: &mut Rng, len: usize) -> Vec<f32> {
        if self == YIn::Poison { vec![POISON; len] } else { rng.vec(len, 1.0) }
    }

    /// The expected Y from the reference product and Y's initial values.
    pub fn expect(self, product: Vec<f32>, y0: &[f32]) -> Vec<f32> {
        match self {
            YIn::Poison => product,
            YIn::Accumulate => product.iter().zip(y0).map(|(p, y)| p + y).collect(),
            YIn::Gate => {
                let mut g = y0.to_vec();
                glimpse::reference::ops::swiglu(&mut g, &product);
                g
            }
        }
    }
}

/// Compares `got` with `want`: the largest absolute error over the largest |want| must stay
/// under `rel_tol`. The message names the op, the worst index and both values.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel_tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let (mut worst, mut worst_i) = (0f32, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // NaN (an unwritten or poisoned element) counts as the worst possible error.
        let e = if (g - w).is_nan() { f32::INFINITY } else { (g - w).abs() };
        if e > worst {
            worst = e;
            worst_i = i;
        }
    }
    assert!(
        worst / scale <= rel_tol,
        "{what}: relative error {} > {rel_tol} at index {worst_i}: got {} want {} (scale {scale})",
        worst / scale,
        got[worst_i],
        want[worst_i]
    );
}
