//! Whisper's mel filterbank, computed in code (no `mel_filters.npz` download).
//!
//! The same construction as `librosa.filters.mel(sr, n_fft, n_mels)` with its defaults
//! (`htk=False`: the Slaney mel scale, linear below 1 kHz and logarithmic above; `norm="slaney"`:
//! each triangle divided by its width in Hz so it has constant area; fmin 0, fmax sr/2). Whisper
//! was trained with exactly that bank: 80 mels (128 for large-v3), n_fft 400 at 16 kHz.

/// Whisper's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper's FFT size; the bank has `N_FFT / 2 + 1` = 201 columns.
pub const N_FFT: usize = 400;

const F_SP: f64 = 200.0 / 3.0; // Hz per mel in the linear part
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP; // 15
fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz → mel on the Slaney scale.
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Mel → Hz on the Slaney scale.
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// The filterbank as an `n_mels × (n_fft / 2 + 1)` row-major matrix (the layout candle's
/// `whisper::audio::pcm_to_mel` takes).
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let bin_hz = |k: usize| k as f64 * nyquist / (n_bins - 1).max(1) as f64;
    // n_mels + 2 points equally spaced in mel from 0 to Nyquist: filter i rises from point i
    // to its peak at i + 1 and falls to i + 2.
    let top = hz_to_mel(nyquist);
    let points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * n_bins];
    for (i, row) in out.chunks_exact_mut(n_bins).enumerate() {
        let (lo, mid, hi) = (points[i], points[i + 1], points[i + 2]);
        let area_norm = 2.0 / (hi - lo);
        for (k, w) in row.iter_mut().enumerate() {
            let f = bin_hz(k);
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            *w = (rising.min(falling).max(0.0) * area_norm) as f32;
        }
    }
    out
}

/// The bank Whisper uses for `n_mels` (80 or 128).
pub fn whisper_mel_filters(n_mels: usize) -> Vec<f32> {
    mel_filters(SAMPLE_RATE, N_FFT, n_mels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINS: usize = 201;

    fn row(f: &[f32], i: usize) -> &[f32] {
        &f[i * BINS..(i + 1) * BINS]
    }

    #[test]
    fn scale_is_linear_then_logarithmic() {
        assert_eq!(hz_to_mel(0.0), 0.0);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        // 6.4 kHz is 27 log-steps above 1 kHz by construction.
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for hz in [0.0, 50.0, 999.0, 1000.0, 1234.5, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    #[test]
    fn shape_and_triangles() {
        for n_mels in [80, 128] {
            let f = whisper_mel_filters(n_mels);
            assert_eq!(f.len(), n_mels * BINS);
            let mut last_peak = 0;
            for i in 0..n_mels {
                let r = row(&f, i);
                assert!(r.iter().all(|&w| w >= 0.0 && w.is_finite()));
                // One contiguous run of non-zero weights, rising then falling.
                let nz: Vec<usize> = (0..BINS).filter(|&k| r[k] > 0.0).collect();
                assert!(!nz.is_empty(), "filter {i} of {n_mels} is empty");
                assert_eq!(
                    nz.len(),
                    nz[nz.len() - 1] - nz[0] + 1,
                    "filter {i} has a gap"
                );
                let peak = (0..BINS).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
                assert!(r[nz[0]..=peak].windows(2).all(|w| w[0] <= w[1]));
                assert!(r[peak..=nz[nz.len() - 1]].windows(2).all(|w| w[0] >= w[1]));
                // Peaks move up in frequency.
                assert!(peak >= last_peak, "filter {i}: peak {peak} < {last_peak}");
                last_peak = peak;
            }
            // The last filter reaches the top bins, the first starts at bin 1 (DC is 0).
            assert_eq!(row(&f, 0)[0], 0.0);
            assert!(row(&f, n_mels - 1)[BINS - 2] > 0.0);
        }
    }

    #[test]
    fn slaney_norm_makes_equal_areas() {
        // Each continuous triangle has area 1 (height 2/width × width/2); sampled every 40 Hz,
        // sum × 40 Hz approximates it well once filters are several bins wide.
        let f = whisper_mel_filters(80);
        for i in 55..80 {
            let area: f32 = row(&f, i).iter().sum::<f32>() * 40.0;
            assert!((area - 1.0).abs() < 0.02, "filter {i}: area {area}");
        }
        // Narrow low filters have larger peaks than wide high ones.
        let peak = |i| row(&f, i).iter().cloned().fold(0f32, f32::max);
        assert!(peak(0) > peak(40) && peak(40) > peak(79));
    }

    #[test]
    fn matches_librosa_reference_values() {
        // Computed with librosa 0.11 (numpy float32) in a one-off python session:
        //   m = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)   (and n_mels=128)
        //   print(m[i, k]) for the (i, k) below, and m.sum(axis=1)[i].
        // (n_mels, row, column, value): random non-zero entries (numpy default_rng(0)), the
        // first and last filters, and peaks.
        const REF: &[(usize, usize, usize, f32)] = &[
            (80, 0, 1, 0.024_862_595),
            (80, 0, 2, 0.0),
            (80, 1, 2, 0.022_871_772),
            (80, 40, 43, 0.014_735_566),
            (80, 79, 198, 0.000_897_518),
            (80, 79, 199, 0.000_448_759),
            (80, 79, 200, 0.0),
            (80, 8, 9, 0.008_936_019),
            (80, 45, 53, 0.007_301_823),
            (80, 49, 61, 0.009_859_242),
            (80, 62, 99, 0.004_451_782),
            (80, 67, 126, 0.000_168_990_15),
            (80, 75, 164, 0.003_272_040_7),
            (128, 0, 1, 0.012_373_987),
            (128, 1, 2, 0.0),
            (128, 64, 43, 0.018_091_518),
            (128, 127, 199, 0.001_114_280_2),
            (128, 14, 9, 0.025_832_774),
            (128, 73, 53, 0.018_091_932),
            (128, 79, 60, 0.001_199_893_8),
            (128, 99, 101, 0.003_489_238_7),
            (128, 108, 126, 0.001_360_232_4),
            (128, 120, 167, 0.003_023_217_7),
        ];
        for &(n, i, k, want) in REF {
            let got = whisper_mel_filters(n)[i * BINS + k];
            assert!(
                (got - want).abs() <= 1e-6 * want.max(1e-3),
                "n_mels {n} [{i}, {k}]: {got} vs librosa {want}"
            );
        }
        // Row sums: (n_mels, row, sum, argmax).
        for (n, i, sum, peak) in [
            (80, 0, 0.024_862_595f32, 1usize),
            (80, 40, 0.026_664_86, 43),
            (80, 79, 0.024_925_34, 192),
            (128, 0, 0.012_373_987, 1),
            (128, 64, 0.024_841_2, 43),
            (128, 127, 0.024_936_043, 195),
        ] {
            let f = whisper_mel_filters(n);
            let r = row(&f, i);
            let s: f32 = r.iter().sum();
            assert!(
                (s - sum).abs() < 1e-6,
                "n_mels {n} row {i}: sum {s} vs {sum}"
            );
            let p = (0..BINS).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
            assert_eq!(p, peak, "n_mels {n} row {i}");
        }
    }
}
