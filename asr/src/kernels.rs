//! Two CPU kernels that showed up in profiles of tiny.en on 2 cores (f32, contiguous input; other
//! devices and dtypes use candle's own ops):
//!
//! - exact (erf) GELU: candle's `gelu_erf` maps element by element on one thread; in the encoder
//!   (9.2 M activations per window) that was ~9% of all CPU time. erf here is Abramowitz &
//!   Stegun 7.1.26 (|error| < 1.5e-7), run over rayon's pool (sized by `RAYON_NUM_THREADS`).
//! - softmax over the last axis: candle's calls libm `expf` per element (~10% of the time, the
//!   encoder's 54 M attention scores per window); here exp is a polynomial the compiler can
//!   vectorise (relative error < 3e-6, from the f32 range reduction).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The f32 values a kernel reads (both kernels take contiguous f32 only).
fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous input only");
    };
    Ok(&data[start..end])
}

fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_72,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    s * (1.0 - poly * (-x * x).exp())
}

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "voxfleet-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "gelu")?;
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(16 * 1024)
            .zip(src.par_chunks(16 * 1024))
            .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &x)| *o = gelu(x)));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// e^x for x ≤ 0 (softmax inputs after subtracting the row maximum): 2^n · 2^f with a degree-6
/// polynomial for 2^f on [−0.5, 0.5].
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    let raw = x * std::f32::consts::LOG2_E;
    let t = raw.max(-126.0);
    let n = t.round();
    let f = t - n;
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129 + f * (0.001_333_355 + f * 0.000_154_035_3)))));
    let r = p * f32::from_bits(((n as i32 + 127) as u32) << 23);
    // Below 2^-126 (and for −∞: masked positions) the result is 0.
    if raw < -126.0 { 0.0 } else { r }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "voxfleet-softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "softmax")?;
        let n = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(n)
            .zip(src.par_chunks(n))
            .for_each(|(o, s)| {
                let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if max == f32::NEG_INFINITY {
                    o.fill(1.0 / n as f32);
                    return;
                }
                let mut sum = 0.0;
                for (o, &x) in o.iter_mut().zip(s) {
                    *o = exp_neg(x - max);
                    sum += *o;
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|v| *v *= inv);
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Softmax over the last axis.
pub(crate) fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous() {
        x.apply_op1_no_bwd(&Softmax)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// GELU(x) = x·Φ(x), exact form.
pub(crate) fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous() {
        x.apply_op1_no_bwd(&Gelu)
    } else {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn softmax_matches_candle() {
        let xs: Vec<f32> = (0..3 * 1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        let mut xs = xs;
        xs[5] = f32::NEG_INFINITY;
        let t = Tensor::from_vec(xs, (3, 1000), &Device::Cpu).unwrap();
        let ours = softmax_last_dim(&t).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&t).unwrap();
        let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 * y.abs().max(1e-3), "{x} vs {y}");
        }
        assert_eq!(a[5], 0.0);
        for x in [-0.0f32, -1e-3, -0.5, -1.0, -10.0, -50.0, -87.0] {
            let rel = (exp_neg(x) - x.exp()).abs() / x.exp();
            assert!(rel < 3e-6, "exp({x}): {rel}");
        }
    }

    #[test]
    fn matches_candles_exact_gelu() {
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 / 500.0).collect();
        let t = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let ours = gelu_erf(&t).unwrap().to_vec1::<f32>().unwrap();
        let theirs = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        let d = ours
            .iter()
            .zip(&theirs)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 2e-6, "max difference {d}");
    }
}
