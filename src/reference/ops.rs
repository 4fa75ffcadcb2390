//! Plain f32 tensor operations: the oracle every WGSL kernel is tested against. Written for
//! clarity, llama2.c style — one loop nest per op, no tricks. Matrices are row-major `[rows, cols]`
//! slices; a weight `w` in ggml order `[n_in, n_out]` is `n_out` rows of `n_in` values.

/// `y[r, o] = sum_i x[r, i] * w[o, i] (+ b[o])`: x `[n_rows, n_in]`, w `[n_out, n_in]` -> y `[n_rows, n_out]`.
pub fn matmul(x: &[f32], w: &[f32], b: Option<&[f32]>, n_in: usize, n_out: usize) -> Vec<f32> {
    let n_rows = x.len() / n_in;
    let mut y = vec![0.0f32; n_rows * n_out];
    for r in 0..n_rows {
        let xr = &x[r * n_in..(r + 1) * n_in];
        for o in 0..n_out {
            let wo = &w[o * n_in..(o + 1) * n_in];
            let mut acc = 0.0f32;
            for i in 0..n_in {
                acc += xr[i] * wo[i];
            }
            y[r * n_out + o] = acc + b.map_or(0.0, |b| b[o]);
        }
    }
    y
}

/// `x[i] += y[i]` (residual connections, position embeddings).
pub fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// LayerNorm over each row of `[n_rows, n]`: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], n: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for (xr, yr) in x.chunks(n).zip(y.chunks_mut(n)) {
        let mean = xr.iter().sum::<f32>() / n as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for i in 0..n {
            yr[i] = (xr[i] - mean) * inv * w[i] + b[i];
        }
    }
    y
}

/// RMSNorm over each row of `[n_rows, n]`: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rms_norm(x: &[f32], w: &[f32], n: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for (xr, yr) in x.chunks(n).zip(y.chunks_mut(n)) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / n as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for i in 0..n {
            yr[i] = xr[i] * inv * w[i];
        }
    }
    y
}

/// The rotation angle of pair `j` (of `rope_dim / 2`) at position `pos`: `pos * base^(-2j / rope_dim)`.
fn rope_angle(pos: usize, j: usize, rope_dim: usize, base: f32) -> f32 {
    pos as f32 * base.powf(-2.0 * j as f32 / rope_dim as f32)
}

/// RoPE on adjacent pairs (2j, 2j+1) of each head — llama.cpp's "normal" mode, used by llama-arch
/// GGUFs (their q/k weights were permuted at conversion). `x` is `[n_tokens, n_head, head_dim]`,
/// token t at position `positions[t]`; only the first `rope_dim` dims of each head rotate.
pub fn rope_pairs(x: &mut [f32], positions: &[usize], n_head: usize, head_dim: usize, rope_dim: usize, base: f32) {
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..n_head {
            let v = &mut x[(t * n_head + h) * head_dim..][..head_dim];
            for j in 0..rope_dim / 2 {
                let (sin, cos) = rope_angle(pos, j, rope_dim, base).sin_cos();
                let (a, b) = (v[2 * j], v[2 * j + 1]);
                v[2 * j] = a * cos - b * sin;
                v[2 * j + 1] = a * sin + b * cos;
            }
        }
    }
}

/// RoPE on half-split pairs (j, j + rope_dim/2) — llama.cpp's NEOX mode, used by qwen2.
pub fn rope_halves(x: &mut [f32], positions: &[usize], n_head: usize, head_dim: usize, rope_dim: usize, base: f32) {
    let half = rope_dim / 2;
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..n_head {
            let v = &mut x[(t * n_head + h) * head_dim..][..head_dim];
            for j in 0..half {
                let (sin, cos) = rope_angle(pos, j, rope_dim, base).sin_cos();
                let (a, b) = (v[j], v[j + half]);
                v[j] = a * cos - b * sin;
                v[j + half] = a * sin + b * cos;
            }
        }
    }
}

/// In-place softmax of one row.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Multi-head attention with grouped-query heads.
/// q `[n_q, n_head, d]`, k and v `[n_kv, n_head_kv, d]`; query i sits at key position
/// `q_offset + i`, and with `causal` it sees keys `0..=q_offset + i`. Returns `[n_q, n_head, d]`.
/// Scale `1/sqrt(d)`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_head: usize,
    n_head_kv: usize,
    d: usize,
    causal: bool,
    q_offset: usize,
) -> Vec<f32> {
    let n_q = q.len() / (n_head * d);
    let n_kv = k.len() / (n_head_kv * d);
    let group = n_head / n_head_kv;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0.0f32; q.len()];
    let mut scores = vec![0.0f32; n_kv];
    for i in 0..n_q {
        let visible = if causal { (q_offset + i + 1).min(n_kv) } else { n_kv };
        for h in 0..n_head {
            let hk = h / group;
            let qi = &q[(i * n_head + h) * d..][..d];
            for j in 0..visible {
                let kj = &k[(j * n_head_kv + hk) * d..][..d];
                scores[j] = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            softmax(&mut scores[..visible]);
            let o = &mut out[(i * n_head + h) * d..][..d];
            for j in 0..visible {
                let vj = &v[(j * n_head_kv + hk) * d..][..d];
                for c in 0..d {
                    o[c] += scores[j] * vj[c];
                }
            }
        }
    }
    out
}

/// GELU, tanh approximation (ggml's `ggml_gelu`).
pub fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}

/// Quick GELU (CLIP): `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: f32) -> f32 {
    x / (1.0 + (-1.702 * x).exp())
}

/// SiLU: `x * sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Patch embedding as a stride-`p` convolution. `pixels` is `[3, h, w]` (planar RGB), `weight` in
/// ggml order `[p, p, 3, n_embd]` (i.e. n_embd kernels of `[3, p, p]`, x fastest). Output
/// `[n_patches, n_embd]` in raster order (row-major over the patch grid, x fastest).
pub fn patch_embed(
    pixels: &[f32],
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    p: usize,
    n_embd: usize,
) -> Vec<f32> {
    let (ph, pw) = (h / p, w / p);
    let mut out = vec![0.0f32; ph * pw * n_embd];
    for py in 0..ph {
        for px in 0..pw {
            let o = &mut out[(py * pw + px) * n_embd..][..n_embd];
            for (e, oe) in o.iter_mut().enumerate() {
                let k = &weight[e * 3 * p * p..][..3 * p * p];
                let mut acc = 0.0f32;
                for c in 0..3 {
                    for ky in 0..p {
                        for kx in 0..p {
                            let pix = pixels[(c * h + py * p + ky) * w + px * p + kx];
                            acc += pix * k[(c * p + ky) * p + kx];
                        }
                    }
                }
                *oe = acc + bias.map_or(0.0, |b| b[e]);
            }
        }
    }
    out
}

/// Pixel shuffle (idefics3 connector) of a `[side * side, n]` patch grid by factor `s`: output
/// token (R, C) — raster order over the `side/s` grid — is the concatenation over dy (outer) then
/// dx (inner) of patch (R*s + dy, C*s + dx). Output `[(side/s)^2, n * s * s]`.
pub fn pixel_shuffle(x: &[f32], side: usize, n: usize, s: usize) -> Vec<f32> {
    let out_side = side / s;
    let mut out = Vec::with_capacity(x.len());
    for r in 0..out_side {
        for c in 0..out_side {
            for dy in 0..s {
                for dx in 0..s {
                    let patch = (r * s + dy) * side + c * s + dx;
                    out.extend_from_slice(&x[patch * n..(patch + 1) * n]);
                }
            }
        }
    }
    out
}

/// SwiGLU in place: `g[i] = silu(g[i]) * u[i]` (g the gate projection, u the up projection).
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    g.iter_mut().zip(u).for_each(|(a, b)| *a = silu(*a) * b);
}

/// The patches of a stride-`p` convolution, so that `matmul(im2col(..), weight)` is
/// `patch_embed`: pixels `[3, h, w]` (planar) -> `[n_patches, 3 * p * p]`, patches in raster order
/// (x fastest), each row in the weight's `[3, p, p]` order (c, ky, kx; kx fastest).
pub fn im2col(pixels: &[f32], h: usize, w: usize, p: usize) -> Vec<f32> {
    let (ph, pw) = (h / p, w / p);
    let mut out = Vec::with_capacity(ph * pw * 3 * p * p);
    for py in 0..ph {
        for px in 0..pw {
            for c in 0..3 {
                for ky in 0..p {
                    for kx in 0..p {
                        out.push(pixels[(c * h + py * p + ky) * w + px * p + kx]);
                    }
                }
            }
        }
    }
    out
}

/// The index of the largest value; the first one among equal maxima (greedy sampling).
/// 0 for an empty slice.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// The `k` largest values with their indices, sorted by value descending and, among equal
/// values, by index ascending. Fewer than `k` when `x` is shorter.
pub fn topk(x: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut all: Vec<(usize, f32)> = x.iter().copied().enumerate().collect();
    // A stable sort keeps equal values in index order (and -0.0 equal to 0.0, as on a GPU).
    all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    all.truncate(k);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x4 grid of 1-wide patches numbered 0..16 in raster order, shuffled by 2:
    /// ```text
    ///  0  1 |  2  3        token (0,0) = [0, 1, 4, 5]   token (0,1) = [2, 3, 6, 7]
    ///  4  5 |  6  7   ->   token (1,0) = [8, 9, 12, 13] token (1,1) = [10, 11, 14, 15]
    ///  8  9 | 10 11
    /// 12 13 | 14 15
    /// ```
    #[test]
    fn pixel_shuffle_hand_example() {
        let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let y = pixel_shuffle(&x, 4, 1, 2);
        assert_eq!(y, [0., 1., 4., 5., 2., 3., 6., 7., 8., 9., 12., 13., 10., 11., 14., 15.]);
    }

    #[test]
    fn rope_modes_rotate_different_pairs() {
        // One head of 4 dims at position 1 with base 1: pair angles 1 and base^(-1/2) = 1.
        let mut a = vec![1.0, 0.0, 0.0, 0.0];
        rope_pairs(&mut a, &[1], 1, 4, 4, 1.0);
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6 && a[2] == 0.0);
        let mut b = vec![1.0, 0.0, 0.0, 0.0];
        rope_halves(&mut b, &[1], 1, 4, 4, 1.0);
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && b[1] == 0.0 && (b[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn causal_attention_first_query_sees_only_first_key() {
        // 2 tokens, 1 head, d = 1: query 0 can only attend to key 0, so it returns v[0].
        let out = attention(&[1.0, 1.0], &[1.0, 5.0], &[3.0, 7.0], 1, 1, 1, true, 0);
        assert_eq!(out[0], 3.0);
        assert!(out[1] > 3.0 && out[1] < 7.0);
    }
}
