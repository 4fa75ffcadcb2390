//! The CPU dequantisers against gguf-py (`tests/py/dequant.py`), llama.cpp's numpy port of ggml's
//! `dequantize_row_*`. For every type, the file holds:
//! - `<type>.quant`: random data encoded by our `quantize` (gguf-py must also read it back close
//!   to the input, so our encoding is one llama.cpp understands);
//! - `<type>.raw`: random bytes, with the f16 scale fields made finite, so every code, scale and
//!   high-bit pattern occurs.
//!
//! Both implementations do the same f32 operations in the same order, so the values must be
//! identical, bit for bit (any NaN matches any NaN: the float types' random bytes hold NaNs, whose
//! payloads f16 → f32 conversions need not keep).

use std::process::Command;

use glimpse::gguf::quant::{dequantize_to_vec, quantize};
use glimpse::gguf::{GgmlType, Gguf, GgufWriter};

use crate::util::{repo_path, required, temp_dir};

/// Dims of the `.quant` tensors (ggml order; 512 is two K-quant super-blocks per row).
const QUANT_DIMS: [u64; 2] = [512, 3];
/// Dims of the `.raw` tensors: 16 super-blocks or 128 legacy blocks.
const RAW_DIMS: [u64; 2] = [1024, 4];
/// How far gguf-py's reading of our `.quant` tensors may be from the input, as a fraction of the
/// largest |x| in the row: Q4_0's worst case (a full step of amax/8) with room for f16 rounding.
const MAX_QUANT_ERR: f32 = 0.13;

/// SplitMix64, so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn signed_unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Byte offsets of the f16 scale fields (`d`, `m`, `dmin`) in a block of `ty`.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        F32 | F16 | BF16 => &[],
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4K | Q5K => &[0, 2],
        Q6K => &[208],
    }
}

/// Random bytes for `n` values of `ty`, every scale field a finite f16 (any sign, subnormals too).
fn random_blocks(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..n / ty.block_size() * ty.block_bytes()).map(|_| rng.next_u64() as u8).collect();
    for block in bytes.chunks_exact_mut(ty.block_bytes()) {
        for &at in f16_fields(ty) {
            let bits = u16::from_le_bytes([block[at], block[at + 1]]);
            // An all-ones exponent is inf or NaN: clear its top bit.
            let bits = if bits & 0x7c00 == 0x7c00 { bits & !0x4000 } else { bits };
            block[at..at + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
    bytes
}

/// Random rows, row r with magnitude 0.03·10^r.
fn random_rows(rng: &mut Rng, row_len: usize, n_rows: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(row_len * n_rows);
    for row in 0..n_rows {
        let scale = 0.03 * 10f32.powi(row as i32);
        x.extend((0..row_len).map(|_| rng.signed_unit() * scale));
    }
    x
}

fn python_has_gguf() -> bool {
    let ok = Command::new("python3").args(["-c", "import gguf"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!required("PYTHON"), "GLIMPSE_REQUIRE_PYTHON=1 but `python3 -c 'import gguf'` fails");
        eprintln!("skipping: `python3 -c 'import gguf'` fails (pip install gguf; GLIMPSE_REQUIRE_PYTHON=1 to fail)");
    }
    ok
}

/// Equal bits, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn dequantize_matches_gguf_py() {
    if !python_has_gguf() {
        return;
    }
    let dir = temp_dir("dequantize_matches_gguf_py");
    let mut rng = Rng(0x5eed);
    let n = |dims: [u64; 2]| (dims[0] * dims[1]) as usize;

    let mut writer = GgufWriter::new();
    let mut inputs = Vec::new(); // (tensor name, the f32 data quantised, or None for raw bytes)
    for ty in GgmlType::ALL {
        let x = random_rows(&mut rng, QUANT_DIMS[0] as usize, QUANT_DIMS[1] as usize);
        let name = format!("{}.quant", ty.name());
        writer.add_tensor(&name, &QUANT_DIMS, ty, quantize(ty, &x).expect("quantize")).expect("add_tensor");
        inputs.push((name, Some(x)));
        let name = format!("{}.raw", ty.name());
        writer.add_tensor(&name, &RAW_DIMS, ty, random_blocks(&mut rng, ty, n(RAW_DIMS))).expect("add_tensor");
        inputs.push((name, None));
    }
    let path = dir.join("quant.gguf");
    writer.write_file(&path).expect("write_file");

    let out = Command::new("python3")
        .arg(repo_path("tests/py/dequant.py"))
        .arg(&path)
        .arg(&dir)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "dequant.py failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let gguf = Gguf::open(&path).expect("open");
    let mut failures = Vec::new();
    for (name, input) in &inputs {
        let info = gguf.tensor(name).expect("tensor");
        let ours = dequantize_to_vec(info.ty, gguf.tensor_data(info)).expect("dequantize");
        let theirs_path = dir.join(format!("{name}.f32"));
        let bytes = std::fs::read(&theirs_path).unwrap_or_else(|e| panic!("{}: {e}", theirs_path.display()));
        let theirs: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if theirs.len() != ours.len() {
            failures.push(format!("{name}: gguf-py gives {} values, we give {}", theirs.len(), ours.len()));
            continue;
        }
        let mismatches: Vec<usize> = (0..ours.len()).filter(|&i| !same(ours[i], theirs[i])).collect();
        if let Some(&first) = mismatches.first() {
            let max_diff = mismatches.iter().map(|&i| (ours[i] - theirs[i]).abs()).fold(0.0f32, f32::max);
            failures.push(format!(
                "{name}: {} of {} values differ, max |difference| {max_diff:e}; first at {first}: ours {} ({:#010x}), gguf-py {} ({:#010x})",
                mismatches.len(),
                ours.len(),
                ours[first],
                ours[first].to_bits(),
                theirs[first],
                theirs[first].to_bits(),
            ));
        }
        if let Some(x) = input {
            // gguf-py reads our encoding back close to what we encoded.
            let row = QUANT_DIMS[0] as usize;
            for (r, (x, y)) in x.chunks(row).zip(theirs.chunks(row)).enumerate() {
                let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let err = x.iter().zip(y).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
                if err > MAX_QUANT_ERR * amax {
                    failures.push(format!("{name} row {r}: gguf-py reads it back {err:e} off (row amax {amax:e})"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "our dequantize differs from gguf-py:\n{}", failures.join("\n"));
}
