//! Resemblyzer's GE2E front end (`resemblyzer/audio.py` `wav_to_mel_spectrogram` and
//! `voice_encoder.py` `compute_partial_slices`), for the `mels` [B, T, 40] → `embs` [B, 256]
//! ONNX model made by `scripts/convert/resemblyzer_ge2e.py`.
//!
//! [`Ge2eMel::compute`] is `librosa.feature.melspectrogram(y, sr=16000, n_fft=400,
//! hop_length=160, n_mels=40)` with librosa's defaults: periodic Hann window of 400 samples,
//! centred frames with 200 zeros of padding on each side (`pad_mode='constant'`, librosa ≥
//! 0.10), power spectrum (201 bins), Slaney-scale area-normalised mel filters from 0 to 8 kHz
//! (`voxfleet_models::mel::mel_filters`). Not log-compressed, not mean-normalised. Output
//! `frames × 40` row-major with `frames = 1 + len / 160`.
//!
//! [`partial_slices`] gives Resemblyzer's 160-frame (1.6 s) partials every 77 frames; the last
//! one is kept only if the audio covers at least 75 % of it (unless it is the only one), and the
//! audio is zero-padded to the end of the last partial.
//!
//! Not replicated: Resemblyzer's `preprocess_wav` (volume normalisation up to −30 dBFS and
//! webrtcvad silence trimming). Callers pass speech regions already, and the mel power spectrum
//! of a quiet clip only scales, which the network's final L2 normalisation partly absorbs.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// FFT size and window length in samples (25 ms).
pub const N_FFT: usize = 400;
/// Hop in samples (10 ms).
pub const HOP: usize = 160;
/// Mel bins.
pub const N_MELS: usize = 40;
/// Frames per partial (1.6 s).
pub const PARTIAL_FRAMES: usize = 160;
/// Frames between partial starts: `round(16000 / 1.3 / 160)`.
pub const PARTIAL_STEP: usize = 77;
/// Fraction of the last partial that real audio must cover for it to be kept.
pub const MIN_COVERAGE: f64 = 0.75;

/// The GE2E mel spectrogram: window, filters and FFT plan, built once.
pub struct Ge2eMel {
    window: Vec<f32>,
    /// `N_MELS × (N_FFT / 2 + 1)` row-major.
    filters: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl Default for Ge2eMel {
    fn default() -> Self {
        Self::new()
    }
}

impl Ge2eMel {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|i| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        Self {
            window,
            filters: voxfleet_models::mel::mel_filters(16_000, N_FFT, N_MELS),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// Number of frames [`Ge2eMel::compute`] returns for `num_samples` samples.
    pub fn num_frames(num_samples: usize) -> usize {
        1 + num_samples / HOP
    }

    /// Mel power spectrogram of 16 kHz `pcm`: `frames × 40`, row-major.
    pub fn compute(&self, pcm: &[f32]) -> Vec<f32> {
        let frames = Self::num_frames(pcm.len());
        let bins = N_FFT / 2 + 1;
        let pad = N_FFT / 2;
        let mut out = Vec::with_capacity(frames * N_MELS);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; bins];
        for t in 0..frames {
            // Sample `i` of frame `t` is padded[t * HOP + i] = pcm[t * HOP + i - pad].
            for (i, (dst, w)) in input.iter_mut().zip(&self.window).enumerate() {
                let pos = (t * HOP + i).checked_sub(pad);
                *dst = pos.and_then(|p| pcm.get(p)).map_or(0.0, |x| x * w);
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("FFT buffers are sized by the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for row in self.filters.chunks_exact(bins) {
                out.push(row.iter().zip(&power).map(|(w, p)| w * p).sum());
            }
        }
        out
    }
}

/// Resemblyzer's partials for `num_samples` samples: frame ranges `start..start + 160` (at
/// least one), and the number of samples the audio must be zero-padded to so that every partial
/// lies inside its mel spectrogram.
pub fn partial_slices(num_samples: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    let n_frames = (num_samples + 1).div_ceil(HOP);
    let steps = (n_frames + PARTIAL_STEP + 1)
        .saturating_sub(PARTIAL_FRAMES)
        .max(1);
    let mut slices: Vec<std::ops::Range<usize>> = (0..steps)
        .step_by(PARTIAL_STEP)
        .map(|i| i..i + PARTIAL_FRAMES)
        .collect();
    if slices.len() > 1 {
        let last = &slices[slices.len() - 1];
        let coverage =
            (num_samples as f64 - (last.start * HOP) as f64) / (PARTIAL_FRAMES * HOP) as f64;
        if coverage < MIN_COVERAGE {
            slices.pop();
        }
    }
    let padded = slices.last().map_or(0, |s| s.end * HOP).max(num_samples);
    (slices, padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_and_tone_energy() {
        let mel = Ge2eMel::new();
        // 1 kHz tone, 0.5 s: the most energetic bin is the one whose filter covers 1 kHz.
        let pcm: Vec<f32> = (0..8000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin() * 0.5)
            .collect();
        let m = mel.compute(&pcm);
        assert_eq!(m.len(), (1 + 8000 / 160) * N_MELS);
        let row = &m[20 * N_MELS..21 * N_MELS];
        let best = (0..N_MELS)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        let centre = |k: usize| {
            voxfleet_models::mel::mel_to_hz(
                voxfleet_models::mel::hz_to_mel(8000.0) * (k + 1) as f64 / (N_MELS + 1) as f64,
            )
        };
        assert!(
            (centre(best) - 1000.0).abs() < 150.0,
            "{best} {}",
            centre(best)
        );
        // Zeros give zeros; empty input gives one frame.
        assert!(mel.compute(&[0.0; 1000]).iter().all(|&x| x == 0.0));
        assert_eq!(mel.compute(&[]).len(), N_MELS);
    }

    #[test]
    fn partials_follow_resemblyzer() {
        // Short audio: one partial, padded to 1.6 s.
        let (s, padded) = partial_slices(8000);
        assert_eq!(s, vec![0..160]);
        assert_eq!(padded, 160 * 160);
        // 3 s = 300 frames (+1): partials at 0, 77, 154 (154 + 160 = 314 > 301, coverage
        // (48000 - 24640) / 25600 = 0.91 ≥ 0.75: kept).
        let (s, padded) = partial_slices(48_000);
        assert_eq!(
            s.iter().map(|r| r.start).collect::<Vec<_>>(),
            vec![0, 77, 154]
        );
        assert_eq!(padded, 314 * 160);
        // 2 s: partials at 0, 77; coverage of the second (32000 - 12320) / 25600 = 0.77: kept.
        let (s, _) = partial_slices(32_000);
        assert_eq!(s.len(), 2);
        // 1.9 s: second partial's coverage (30400 - 12320) / 25600 = 0.71: dropped.
        let (s, padded) = partial_slices(30_400);
        assert_eq!(s, vec![0..160]);
        assert_eq!(padded, 30_400);
    }
}
