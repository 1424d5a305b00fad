//! Whisper's log-mel spectrogram: 25 ms Hann windows (400 samples) every 10 ms (160), centred
//! with reflection padding as `torch.stft(center=True)` does, power spectrum, the model's mel
//! filterbank, log10 clamped to 8 below the maximum, scaled to (x + 4) / 4.
//!
//! This replaces `candle_transformers::models::whisper::audio::pcm_to_mel`, which computes a
//! recursive complex FFT per frame (allocating as it goes) and does not centre its frames: on
//! this project's 2-core machines it took ~16 ms per second of audio, a fifth of tiny.en's whole
//! decoding time; a planned real FFT takes well under 1 ms per second.

use realfft::RealFftPlanner;

pub(crate) const N_FFT: usize = 400;
pub(crate) const HOP: usize = 160;
const N_BINS: usize = N_FFT / 2 + 1;

/// Log-mel of `pcm` (16 kHz) followed by `zeros` silent samples, as `[n_mels, frames]`
/// row-major with `frames = (pcm.len() + zeros) / 160`. `filters` is `n_mels × 201`.
pub(crate) fn log_mel(
    pcm: &[f32],
    zeros: usize,
    filters: &[f32],
    n_mels: usize,
) -> (Vec<f32>, usize) {
    let len = pcm.len() + zeros;
    let frames = len / HOP;
    let half = N_FFT / 2;
    // One buffer: reflection of the start, the samples, the silence, reflection of the end
    // (without repeating the edge sample); zeros where the input is too short to reflect.
    let mut padded = vec![0f32; len + N_FFT];
    padded[half..half + pcm.len()].copy_from_slice(pcm);
    if len > half {
        for i in 0..half {
            padded[half - 1 - i] = padded[half + i + 1];
            padded[half + len + i] = padded[half + len - 2 - i];
        }
    }
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos() as f32)
        .collect();
    // Each filter is zero outside a few bins: keep only its non-zero span.
    let spans: Vec<(usize, usize)> = (0..n_mels)
        .map(|m| {
            let row = &filters[m * N_BINS..(m + 1) * N_BINS];
            let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w != 0.0).map_or(0, |p| p + 1);
            (first, last.max(first))
        })
        .collect();

    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0f32; N_BINS];
    let mut mel = vec![0f32; n_mels * frames];
    for f in 0..frames {
        let frame = &padded[f * HOP..f * HOP + N_FFT];
        for ((x, &s), &w) in input.iter_mut().zip(frame).zip(&window) {
            *x = s * w;
        }
        if fft
            .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .is_err()
        {
            continue; // only on length mismatch, which the buffers above rule out
        }
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        for (m, &(a, b)) in spans.iter().enumerate() {
            let row = &filters[m * N_BINS + a..m * N_BINS + b];
            let e: f32 = row.iter().zip(&power[a..b]).map(|(w, p)| w * p).sum();
            mel[m * frames + f] = e;
        }
    }
    let mut max = f32::NEG_INFINITY;
    for v in mel.iter_mut() {
        *v = v.max(1e-10).log10();
        max = max.max(*v);
    }
    let floor = max - 8.0;
    for v in mel.iter_mut() {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
    (mel, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, computed the slow way (direct DFT) for a few frames.
    fn reference_power(pcm: &[f32], frame: usize) -> Vec<f64> {
        let half = N_FFT as isize / 2;
        let n = pcm.len() as isize;
        let sample = |i: isize| {
            let j = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            pcm[j as usize] as f64
        };
        (0..N_BINS)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for t in 0..N_FFT {
                    let w =
                        0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / N_FFT as f64).cos();
                    let x = w * sample((frame * HOP) as isize - half + t as isize);
                    let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / N_FFT as f64;
                    re += x * a.cos();
                    im += x * a.sin();
                }
                re * re + im * im
            })
            .collect()
    }

    #[test]
    fn matches_a_direct_dft() {
        let pcm: Vec<f32> = (0..4000)
            .map(|i| {
                if i >= 3000 {
                    0.0
                } else {
                    let t = i as f32 / 16000.0;
                    (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 0.5
                        + (2.0 * std::f32::consts::PI * 1234.0 * t).sin() * 0.1
                }
            })
            .collect();
        // Two one-bin "filters" read bins 11 (≈440 Hz) and 31 (≈1234 Hz) directly.
        let mut filters = vec![0f32; 2 * N_BINS];
        filters[11] = 1.0;
        filters[N_BINS + 31] = 1.0;
        let (mel, frames) = log_mel(&pcm[..3000], 1000, &filters, 2);
        assert_eq!(frames, 25);
        let all: Vec<Vec<f64>> = (0..frames).map(|f| reference_power(&pcm, f)).collect();
        let max = all
            .iter()
            .flat_map(|p| [p[11], p[31]])
            .map(|p| p.max(1e-10).log10())
            .fold(f64::NEG_INFINITY, f64::max);
        for f in [0, 1, 12, 24] {
            for (m, bin) in [(0, 11), (1, 31)] {
                let want = (all[f][bin].max(1e-10).log10().max(max - 8.0) + 4.0) / 4.0;
                let got = mel[m * frames + f] as f64;
                assert!(
                    (got - want).abs() < 1e-3,
                    "frame {f} bin {bin}: {got} vs {want}"
                );
            }
        }
    }
}
