//! Row softmax over the last dim, optionally causal, as one fused candle op with its gradient.
//! Attention scores are the biggest tensors of a training step (`[b, heads, n, n]`); composing
//! the softmax and the causal mask from elementwise ops made about ten passes over them forward
//! and as many backward, most of a step's time. This is one pass each way.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `softmax(x)` over the last dim; with `causal`, row r of every trailing `[n, n]` block sees
/// only columns `<= r` (the others come out 0).
pub fn softmax(x: &Tensor, causal: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax { causal })
}

struct Softmax {
    causal: bool,
}

/// The f32 slice of a contiguous tensor.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { bail!("{op}: f32 only") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{op}: the input must be contiguous"),
    }
}

/// Columns row `r` of a `[.., rows, n]` tensor may see.
fn visible(causal: bool, r: usize, rows: usize, n: usize) -> usize {
    if causal { (r % rows + 1).min(n) } else { n }
}

fn row_shape(l: &Layout) -> Result<(usize, usize)> {
    let dims = l.dims();
    if dims.len() < 2 {
        bail!("softmax: at least 2 dims");
    }
    Ok((dims[dims.len() - 2], dims[dims.len() - 1]))
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "glimpse-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax")?;
        let (rows, n) = row_shape(l)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n).zip(x.par_chunks(n)).enumerate().for_each(|(r, (y, x))| {
            let k = visible(self.causal, r, rows, n);
            let max = x[..k].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0;
            for (y, &x) in y[..k].iter_mut().zip(&x[..k]) {
                *y = (x - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            y[..k].iter_mut().for_each(|y| *y *= inv);
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2(&grad_y.contiguous()?, SoftmaxGrad)?))
    }
}

/// `dx = y * (dy - sum(dy * y))` per row (masked entries have y = 0, so dx = 0 there).
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "glimpse-softmax-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1, "softmax grad")?, slice(s2, l2, "softmax grad")?);
        if y.len() != dy.len() {
            bail!("softmax grad: shapes differ");
        }
        let (_, n) = row_shape(l1)?;
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(n).zip(y.par_chunks(n).zip(dy.par_chunks(n))).for_each(|(dx, (y, dy))| {
            let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
            for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = y * (dy - dot);
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Var};

    /// Forward and gradient against softmax composed from candle's differentiable ops (with an
    /// additive -inf mask for the causal case), on an awkward shape.
    #[test]
    fn matches_composed_softmax() {
        let dev = Device::Cpu;
        let (rows, n) = (7, 7);
        let x = Var::randn(0f32, 2.0, (2, 3, rows, n), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (2, 3, rows, n), &dev).unwrap();
        for causal in [false, true] {
            let mask: Vec<f32> =
                (0..rows * n).map(|i| if causal && i % n > i / n { f32::NEG_INFINITY } else { 0.0 }).collect();
            let mask = Tensor::from_vec(mask, (rows, n), &dev).unwrap();
            let want = candle_nn::ops::softmax(&x.as_tensor().broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
            let got = softmax(x.as_tensor(), causal).unwrap();
            let grads = |y: &Tensor| {
                let g = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            };
            let close = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5);
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(close(flat(&got), flat(&want)), "forward, causal {causal}");
            assert!(close(grads(&got), grads(&want)), "gradient, causal {causal}");
        }
    }
}
