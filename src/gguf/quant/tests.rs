//! Unit tests: hand-made blocks with known values, round-trip error bounds on random data, the
//! 6-bit scale packing, BF16 rounding and length errors. `tests/it/quant.rs` checks the
//! dequantisers against gguf-py on every bit pattern.

use super::kquants::{get_scale_min_k4, put_scale_min_k4};
use super::*;
use GgmlType::*;

/// Round-trip error bounds: the largest |x − dequantize(quantize(x))| in a block, as a fraction of
/// the largest |x| in that block (the 256-value super-block for K-quants, 32 values for floats). Each is the analytic
/// worst case (in brackets) plus room for the f16 rounding of the scales, and is above what
/// `round_trip_error_is_bounded` measures on its data (printed with `--nocapture`).
const MAX_ERR_F16: f32 = 1.0 / 2048.0; // [2^-11, f16 has an 11-bit significand]
const MAX_ERR_BF16: f32 = 1.0 / 256.0; // [2^-8, bf16 has 8]
const MAX_ERR_Q8_0: f32 = 0.0045; // [1/254: half a step of amax/127]
const MAX_ERR_Q4_0: f32 = 0.126; // [1/8: a full step, for the value clamped at the top code]
const MAX_ERR_Q5_0: f32 = 0.063; // [1/16: likewise]
const MAX_ERR_Q4_1: f32 = 0.068; // [2/30: half a step of (max − min)/15, max − min ≤ 2·amax]
const MAX_ERR_Q5_1: f32 = 0.034; // [2/62]
const MAX_ERR_Q4_K: f32 = 0.072; // [2/30 + half a 6-bit scale step]
const MAX_ERR_Q5_K: f32 = 0.037; // [2/62 + half a 6-bit scale step]
const MAX_ERR_Q6_K: f32 = 0.033; // [1/32: a step, for the value clamped at code 31, + 1/127 of it]

fn max_err(ty: GgmlType) -> f32 {
    match ty {
        F32 => 0.0,
        F16 => MAX_ERR_F16,
        BF16 => MAX_ERR_BF16,
        Q8_0 => MAX_ERR_Q8_0,
        Q4_0 => MAX_ERR_Q4_0,
        Q5_0 => MAX_ERR_Q5_0,
        Q4_1 => MAX_ERR_Q4_1,
        Q5_1 => MAX_ERR_Q5_1,
        Q4K => MAX_ERR_Q4_K,
        Q5K => MAX_ERR_Q5_K,
        Q6K => MAX_ERR_Q6_K,
    }
}

/// SplitMix64: a tiny deterministic generator, so the tests need no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Test data, 32 values at a time, each run with its own magnitude and shape: symmetric noise,
/// all positive, all negative, one outlier, a constant, zeros. Magnitudes span 0.03..100, so
/// K-quant super-blocks mix small and large sub-blocks, while every legacy scale d stays a normal
/// f16 (≥ 2^-14): a subnormal d has few significant bits, and since ggml's quantisers (and these)
/// compute the codes with the unrounded d, the round trip then loses the bounds below.
fn test_data(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n);
    for run in 0..n / 32 {
        let scale = 10f32.powf(rng.uniform(-1.5, 2.0));
        let c = rng.uniform(0.5, 1.0).copysign(rng.uniform(-1.0, 1.0)) * scale;
        for i in 0..32 {
            let u = rng.uniform(-1.0, 1.0) * scale;
            x.push(match run % 7 {
                0 | 1 => u,
                2 => u.abs() + scale,
                3 => -u.abs(),
                4 if i == 5 => 20.0 * scale,
                4 => u * 0.1,
                5 => c,
                _ if run % 21 == 6 => 0.0,
                _ => u,
            });
        }
    }
    x
}

#[test]
fn round_trip_error_is_bounded() {
    let mut rng = Rng(1);
    let x = test_data(&mut rng, 64 * 256);
    for ty in GgmlType::ALL {
        let y = dequantize_to_vec(ty, &quantize(ty, &x).unwrap()).unwrap();
        // Measured per ggml block (the super-block for K-quants), per 32 values for the float
        // types (whose bound holds per value too).
        let group = ty.block_size().max(32);
        let (mut worst, mut sum_sq, mut sum_sq_x) = (0.0f32, 0.0f64, 0.0f64);
        for (x, y) in x.chunks(group).zip(y.chunks(group)) {
            let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let err = x.iter().zip(y).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
            if amax > 0.0 {
                worst = worst.max(err / amax);
            } else {
                assert_eq!(err, 0.0, "{ty}: zeros must decode to zeros");
            }
            sum_sq += x.iter().zip(y).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>();
            sum_sq_x += x.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        }
        let nrmse = (sum_sq / sum_sq_x).sqrt();
        println!("{ty:>5}: max error / block amax {worst:.5} (bound {:.5}), relative rms {nrmse:.2e}", max_err(ty));
        assert!(worst <= max_err(ty), "{ty}: max error / block amax {worst} exceeds {}", max_err(ty));
    }
}

#[test]
fn values_on_the_grid_round_trip_exactly() {
    let grid = |ty: GgmlType, f: fn(usize) -> f32| {
        let x: Vec<f32> = (0..ty.block_size()).map(f).collect();
        assert_eq!(dequantize_to_vec(ty, &quantize(ty, &x).unwrap()).unwrap(), x, "{ty}");
    };
    // −8 first sets d = 1 for Q4_0 and 1/2 for Q5_0; min 0.5, max 15.5 give Q4_1 d = 1.
    grid(Q4_0, |i| (i % 16) as f32 - 8.0);
    grid(Q5_0, |i| (i % 16) as f32 - 8.0);
    grid(Q4_1, |i| (i % 16) as f32 + 0.5);
    grid(Q5_1, |i| i as f32 - 3.0);
    grid(Q8_0, |i| if i == 0 { -127.0 } else { i as f32 * 3.0 });
    grid(F16, |i| i as f32 * 0.25);
    grid(BF16, |i| i as f32 - 0.5);
}

/// f16 bytes of `x` (exact for the values used here).
fn h(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

fn decode(ty: GgmlType, parts: &[&[u8]]) -> Vec<f32> {
    let block = parts.concat();
    assert_eq!(block.len(), ty.block_bytes(), "{ty}: hand-made block has the wrong size");
    dequantize_to_vec(ty, &block).unwrap()
}

#[test]
fn float_types_decode_to_known_values() {
    let f32s = [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat();
    assert_eq!(dequantize_to_vec(F32, &f32s).unwrap(), [1.5, -2.0]);
    // 0x3c00 = 1, 0xc000 = −2, 0x7bff = 65504 (largest f16), 0x0001 = 2^-24 (smallest subnormal).
    let f16s = [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00];
    assert_eq!(dequantize_to_vec(F16, &f16s).unwrap(), [1.0, -2.0, 65504.0, 2f32.powi(-24)]);
    // 0x3f80 = 1, 0xc040 = −3, 0x7f80 = +inf.
    let bf16s = [0x80, 0x3f, 0x40, 0xc0, 0x80, 0x7f];
    assert_eq!(dequantize_to_vec(BF16, &bf16s).unwrap(), [1.0, -3.0, f32::INFINITY]);
}

/// The nibble bytes used by the legacy blocks below: byte j = j | (15 − j) << 4, so value j < 16
/// is j and value j + 16 is 15 − j.
fn legacy_qs() -> Vec<u8> {
    (0..16u8).map(|j| j | (15 - j) << 4).collect()
}

/// The 4-bit code of value i in a legacy block made from `legacy_qs`.
fn legacy_nibble(i: usize) -> f32 {
    if i < 16 { i as f32 } else { (31 - i) as f32 }
}

#[test]
fn legacy_blocks_decode_to_known_values() {
    let qs = legacy_qs();
    // qh = 0xaaaaaaaa: bit 4 is set on the odd values.
    let qh = 0xaaaa_aaaau32.to_le_bytes();
    let hb = |i: usize| if i % 2 == 1 { 16.0 } else { 0.0 };

    let y = decode(Q4_0, &[&h(0.5), &qs]);
    assert_eq!(y[0..3], [-4.0, -3.5, -3.0]); // (0 − 8)·0.5, ...
    assert_eq!(y[16..18], [3.5, 3.0]); // (15 − 8)·0.5, (14 − 8)·0.5
    assert!((0..32).all(|i| y[i] == (legacy_nibble(i) - 8.0) * 0.5));

    let y = decode(Q4_1, &[&h(0.25), &h(-1.0), &qs]);
    assert_eq!([y[0], y[15], y[16]], [-1.0, 2.75, 2.75]);
    assert!((0..32).all(|i| y[i] == legacy_nibble(i) * 0.25 - 1.0));

    let y = decode(Q5_0, &[&h(1.0), &qh, &qs]);
    assert_eq!(y[0..4], [-16.0, 1.0, -14.0, 3.0]); // 0−16, (1|16)−16, 2−16, (3|16)−16
    assert_eq!(y[31], 0.0); // value 31: nibble 15 − 15 = 0, odd, so (0|16) − 16
    assert!((0..32).all(|i| y[i] == legacy_nibble(i) + hb(i) - 16.0));

    let y = decode(Q5_1, &[&h(0.5), &h(2.0), &qh, &qs]);
    assert_eq!(y[0..2], [2.0, 10.5]); // 0·0.5 + 2, 17·0.5 + 2
    assert!((0..32).all(|i| y[i] == (legacy_nibble(i) + hb(i)) * 0.5 + 2.0));

    let qs8: Vec<u8> = (0..32).map(|i| [-128i8, 127, -1][i % 3] as u8).collect();
    let y = decode(Q8_0, &[&h(0.25), &qs8]);
    assert_eq!(y[0..3], [-32.0, 31.75, -0.25]);
}

/// Q4_K/Q5_K scales packed by hand from sc = [1, 2, 3, 4, 33, 34, 48, 63] and
/// m = [5, 6, 7, 8, 17, 40, 50, 62] (see `get_scale_min_k4`): bytes 0..4 are sc[0..4] with bits
/// 4..6 of sc[4..8] on top (33 → 2, 34 → 2, 48 → 3, 63 → 3); bytes 4..8 likewise for m
/// (17 → 1, 40 → 2, 50 → 3, 62 → 3); bytes 8..12 the low nibbles of sc[4..8] and m[4..8].
const K_SCALES: [u8; 12] = [0x81, 0x82, 0xc3, 0xc4, 0x45, 0x86, 0xc7, 0xc8, 0x11, 0x82, 0x20, 0xef];
const K_SC: [u8; 8] = [1, 2, 3, 4, 33, 34, 48, 63];
const K_M: [u8; 8] = [5, 6, 7, 8, 17, 40, 50, 62];

/// 128 nibble bytes: byte b = (b % 16) | (15 − b % 16) << 4.
fn k_qs() -> Vec<u8> {
    (0..128u8).map(|b| (b % 16) | (15 - b % 16) << 4).collect()
}

#[test]
fn k_quant_blocks_decode_to_known_values() {
    // Q4_K with d = 1, dmin = 0.5: y = sc_j·q − 0.5·m_j.
    // Value 0: byte 0 low = 0, j 0 → −2.5. Value 33: byte 1 high = 14, j 1 → 28 − 3.
    // Value 130: byte 66 low = 2, j 4 → 66 − 8.5. Value 170: byte 74 high = 5, j 5 → 170 − 20.
    // Value 200: byte 104 low = 8, j 6 → 384 − 25. Value 255: byte 127 high = 0, j 7 → −31.
    let y = decode(Q4K, &[&h(1.0), &h(0.5), &K_SCALES, &k_qs()]);
    let spots = [(0, -2.5), (33, 25.0), (130, 57.5), (170, 150.0), (200, 359.0), (255, -31.0)];
    for (i, want) in spots {
        assert_eq!(y[i], want, "q4_k value {i}");
    }
    // Q5_K, same fields plus qh[l] = 0b1010_0101: sub-blocks 0, 2, 5 and 7 get +16.
    let y = decode(Q5K, &[&h(1.0), &h(0.5), &K_SCALES, &[0xa5; 32], &k_qs()]);
    let spots = [(0, 13.5), (33, 25.0), (130, 57.5), (170, 694.0), (200, 359.0), (255, 977.0)];
    for (i, want) in spots {
        assert_eq!(y[i], want, "q5_k value {i}");
    }
    // Q6_K with d = 0.5, sc_j = j − 8, ql as k_qs, qh bytes 0xe4 (top bits of the k-th 32 of
    // each half = k). Value 0: ql[0] low 0, k 0 → q 0, j 0 → 0.5·−8·−32. Value 40: ql[40] low 8,
    // k 1 → q 24, j 2 → 0.5·−6·−8. Value 77: ql[13] high 2, k 2 → q 34, j 4 → 0.5·−4·2.
    // Value 150: ql[86] low 6, k 0 → q 6, j 9 → 0.5·1·−26. Value 255: ql[127] high 0, k 3 → q 48.
    let sc: Vec<u8> = (0..16).map(|j| (j as i8 - 8) as u8).collect();
    let y = decode(Q6K, &[&k_qs(), &[0xe4; 64], &sc, &h(0.5)]);
    let spots = [(0, 128.0), (40, 24.0), (77, -4.0), (150, -13.0), (255, 56.0)];
    for (i, want) in spots {
        assert_eq!(y[i], want, "q6_k value {i}");
    }
}

#[test]
fn scale_min_k4_packing_matches_ggml_and_round_trips() {
    assert_eq!(put_scale_min_k4(&K_SC, &K_M), K_SCALES);
    for j in 0..8 {
        assert_eq!(get_scale_min_k4(j, &K_SCALES), (K_SC[j], K_M[j]), "sub-block {j}");
    }
    let mut rng = Rng(7);
    for _ in 0..1000 {
        let sc: [u8; 8] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        let m: [u8; 8] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        let packed = put_scale_min_k4(&sc, &m);
        assert!((0..8).all(|j| get_scale_min_k4(j, &packed) == (sc[j], m[j])), "{sc:?} {m:?}");
    }
}

#[test]
fn bf16_rounds_to_nearest_even_and_keeps_nan() {
    let bits = |x: f32| u16::from_le_bytes(quantize(BF16, &[x]).unwrap().try_into().unwrap());
    assert_eq!(bits(1.0), 0x3f80);
    assert_eq!(bits(1.0 + 2f32.powi(-8)), 0x3f80); // tie between 0x3f80 and 0x3f81: even
    assert_eq!(bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82); // tie between 0x3f81 and 0x3f82: even
    assert_eq!(bits(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81); // above the tie
    assert_eq!(bits(f32::MAX), 0x7f80); // rounds up to infinity, as in ggml
    assert_eq!(bits(f32::from_bits(0x7f80_0001)), 0x7fc0); // signalling NaN comes back quiet
}

#[test]
fn bad_lengths_are_errors() {
    let mut out = vec![0.0; 64];
    let e = dequantize(Q4_0, &[0; 19], &mut out).unwrap_err();
    assert_eq!(e, QuantError::PartialBlock { ty: Q4_0, bytes: 19, block_bytes: 18 });
    assert_eq!(e.to_string(), "Q4_0: 19 bytes is not a whole number of 18-byte blocks");
    let e = dequantize(Q4_0, &[0; 36], &mut out[..63]).unwrap_err();
    assert_eq!(e.to_string(), "Q4_0: 36 bytes hold 64 values, but the output has room for 63");
    assert!(dequantize(Q6K, &[0; 210], &mut out).is_err());
    assert!(dequantize(F16, &[0; 3], &mut out[..1]).is_err());
    assert!(dequantize_to_vec(Q8_0, &[0; 35]).is_err());
    let e = quantize(Q4K, &[0.0; 255]).unwrap_err();
    assert_eq!(e.to_string(), "Q4_K: 255 values is not a whole number of 256-value blocks");
    let e = quantize(Q8_0, &[1.0, f32::NAN].repeat(16)).unwrap_err();
    assert!(matches!(e, QuantError::NonFinite { ty: Q8_0, index: 1, .. }), "{e}");
    // The float types keep non-finite values.
    assert!(quantize(F16, &[f32::INFINITY]).is_ok());
    // Empty input is zero blocks.
    assert!(dequantize_to_vec(Q5K, &[]).unwrap().is_empty());
    assert!(quantize(Q5K, &[]).unwrap().is_empty());
}
