//! Kaldi's mel scale and triangular mel filter banks (`MelBanks` in Kaldi's `mel-computations.cc`,
//! `get_mel_banks` in `torchaudio.compliance.kaldi`).

/// Kaldi's mel scale: `1127 · ln(1 + f / 700)`.
pub(crate) fn mel_scale(freq_hz: f64) -> f64 {
    1127.0 * (1.0 + freq_hz / 700.0).ln()
}

/// One triangular filter: its weights over FFT bins `first_bin..first_bin + weights.len()`.
#[derive(Debug, Clone)]
pub(crate) struct MelBin {
    pub(crate) first_bin: usize,
    pub(crate) weights: Vec<f32>,
}

/// Builds `num_bins` triangles evenly spaced in mel between `low_freq` and `high_freq` (Hz, both
/// already resolved to absolute values), over the `padded_window / 2` non-Nyquist FFT bins: like
/// Kaldi, the Nyquist bin never contributes.
pub(crate) fn mel_banks(
    num_bins: usize,
    padded_window: usize,
    sample_rate: f64,
    low_freq: f64,
    high_freq: f64,
) -> Vec<MelBin> {
    let num_fft_bins = padded_window / 2;
    let fft_bin_width = sample_rate / padded_window as f64;
    let mel_low = mel_scale(low_freq);
    let mel_high = mel_scale(high_freq);
    let mel_delta = (mel_high - mel_low) / (num_bins as f64 + 1.0);

    (0..num_bins)
        .map(|bin| {
            let left = mel_low + bin as f64 * mel_delta;
            let center = left + mel_delta;
            let right = center + mel_delta;
            let mut first_bin = None;
            let mut weights = Vec::new();
            for i in 0..num_fft_bins {
                let mel = mel_scale(fft_bin_width * i as f64);
                if mel > left && mel < right {
                    let w = if mel <= center {
                        (mel - left) / (center - left)
                    } else {
                        (right - mel) / (right - center)
                    };
                    first_bin.get_or_insert(i);
                    weights.push(w as f32);
                }
            }
            MelBin {
                first_bin: first_bin.unwrap_or(0),
                weights,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_matches_kaldi_formula() {
        assert_eq!(mel_scale(0.0), 0.0);
        assert!((mel_scale(700.0) - 1127.0 * 2f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn banks_cover_the_band_and_skip_nyquist() {
        let banks = mel_banks(80, 512, 16000.0, 20.0, 8000.0);
        assert_eq!(banks.len(), 80);
        for b in &banks {
            assert!(!b.weights.is_empty());
            assert!(b.first_bin + b.weights.len() <= 256);
            assert!(b.weights.iter().all(|&w| (0.0..=1.0).contains(&w)));
        }
        // 20 Hz is above bin 0 (0 Hz) and below bin 1 (31.25 Hz).
        assert_eq!(banks[0].first_bin, 1);
    }
}
