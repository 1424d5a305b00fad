//! Kaldi-compatible log-mel filterbank features (`compute-fbank-feats`,
//! `torchaudio.compliance.kaldi.fbank`), as WeSpeaker and 3D-Speaker models expect them.
//!
//! Per frame: remove the DC offset, pre-emphasis, window (Povey or Hamming, see [`WindowType`]),
//! zero-pad to the next power of two, power spectrum, triangular mel banks on Kaldi's mel scale
//! (the Nyquist bin ignored), `ln(max(energy, f32::EPSILON))`. Arithmetic is f64 inside, output
//! f32. The output ([`Features`]) is a flat row-major `num_frames × num_bins` matrix and is not
//! mean-normalised; embedding models want [`mean_normalize`] applied on top.
//!
//! Input scale: [`Fbank::compute`] takes f32 PCM in `[-1, 1]` and multiplies it by 32768 first,
//! as WeSpeaker does before calling Kaldi's fbank (Kaldi works on int16-scaled samples). Log
//! values therefore match Kaldi/WeSpeaker, not a fbank of the unscaled waveform (which differs by
//! `ln(32768²) ≈ 20.79` in every bin).

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::mel::{MelBin, mel_banks};

/// Samples are scaled from `[-1, 1]` to int16 range before the fbank, as WeSpeaker does.
const INT16_SCALE: f64 = 32768.0;

/// The analysis window, as Kaldi's `--window-type`. `N` is the frame length, `a = 2π / (N − 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowType {
    /// `(0.5 − 0.5·cos(a·i))^0.85`: Kaldi's and torchaudio's default; 3D-Speaker CAM++.
    #[default]
    Povey,
    /// `0.54 − 0.46·cos(a·i)`: what WeSpeaker's recipes pass (`window_type='hamming'`) and what
    /// onnx-asr's `wespeaker.onnx` preprocessor uses.
    Hamming,
    /// `0.5 − 0.5·cos(a·i)`.
    Hanning,
    /// All ones.
    Rectangular,
}

impl WindowType {
    fn coefficients(self, len: usize) -> Vec<f64> {
        let a = 2.0 * PI / (len as f64 - 1.0);
        (0..len)
            .map(|i| {
                let c = (a * i as f64).cos();
                match self {
                    Self::Povey => (0.5 - 0.5 * c).powf(0.85),
                    Self::Hamming => 0.54 - 0.46 * c,
                    Self::Hanning => 0.5 - 0.5 * c,
                    Self::Rectangular => 1.0,
                }
            })
            .collect()
    }
}

/// Options of [`Fbank`]. Field names and meanings follow Kaldi's `FbankOptions`.
///
/// [`Default`] (= [`FbankOptions::campplus`]) is the 3D-Speaker CAM++ front end: 16 kHz,
/// 25/10 ms, 80 bins from 20 Hz to Nyquist, Povey window. [`FbankOptions::wespeaker`] is the same
/// with the Hamming window that WeSpeaker's own models (ResNet34 etc.) were trained with.
#[derive(Debug, Clone, PartialEq)]
pub struct FbankOptions {
    /// Sample rate of the input in Hz. Default 16000.
    pub sample_rate: u32,
    /// Frame length in milliseconds. Default 25 (400 samples at 16 kHz).
    pub frame_length_ms: f32,
    /// Frame shift in milliseconds. Default 10 (160 samples at 16 kHz).
    pub frame_shift_ms: f32,
    /// Number of triangular mel bins. Default 80.
    pub num_mel_bins: usize,
    /// Pre-emphasis coefficient. Default 0.97.
    pub preemphasis: f32,
    /// Lower edge of the mel banks in Hz. Default 20.
    pub low_freq: f32,
    /// Upper edge of the mel banks in Hz; 0 means Nyquist, a negative value means Nyquist plus it
    /// (Kaldi's convention). Default 0.
    pub high_freq: f32,
    /// Subtract each frame's mean before pre-emphasis. Default true.
    pub remove_dc_offset: bool,
    /// true: only frames that fit entirely in the signal (`1 + (n − len) / shift`, 0 if `n < len`).
    /// false: Kaldi's centred frames (`(n + shift / 2) / shift`) with mirrored edges. Default true.
    pub snip_edges: bool,
    /// Prepend the log energy of each frame (after DC removal, before pre-emphasis and window,
    /// Kaldi's `raw_energy`) as column 0, giving `num_mel_bins + 1` columns. Default false.
    pub use_energy: bool,
    /// Analysis window. Default [`WindowType::Povey`].
    pub window_type: WindowType,
    /// Dither amount. Only 0 is supported (deterministic features, as WeSpeaker uses at inference);
    /// [`Fbank::try_new`] rejects anything else. Default 0.
    pub dither: f32,
}

impl Default for FbankOptions {
    fn default() -> Self {
        Self {
            sample_rate: 16000,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            num_mel_bins: 80,
            preemphasis: 0.97,
            low_freq: 20.0,
            high_freq: 0.0,
            remove_dc_offset: true,
            snip_edges: true,
            use_energy: false,
            window_type: WindowType::Povey,
            dither: 0.0,
        }
    }
}

impl FbankOptions {
    /// 3D-Speaker CAM++ front end (Povey window); the same as [`Default`].
    pub fn campplus() -> Self {
        Self::default()
    }

    /// WeSpeaker front end: as [`FbankOptions::campplus`] but with a Hamming window.
    pub fn wespeaker() -> Self {
        Self {
            window_type: WindowType::Hamming,
            ..Self::default()
        }
    }
}

/// Options that [`Fbank::try_new`] rejects.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FbankError {
    #[error("dither {0} is not supported: only 0 (no dither) is implemented")]
    DitherUnsupported(f32),
    #[error("frame length {length} and shift {shift} (samples) must both be at least 1")]
    BadFrame { length: usize, shift: usize },
    #[error("num_mel_bins must be at least 1")]
    NoMelBins,
    #[error("mel band {low} Hz .. {high} Hz is empty or above Nyquist {nyquist} Hz")]
    BadBand { low: f32, high: f32, nyquist: f32 },
}

/// Features of one utterance: a row-major `num_frames × num_bins` matrix of log energies.
///
/// `num_bins` is `num_mel_bins`, plus one leading energy column when `use_energy` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    data: Vec<f32>,
    num_frames: usize,
    num_bins: usize,
}

impl Features {
    pub fn num_frames(&self) -> usize {
        self.num_frames
    }

    pub fn num_bins(&self) -> usize {
        self.num_bins
    }

    /// Row `index` (one frame). Panics if `index >= num_frames()`.
    pub fn frame(&self, index: usize) -> &[f32] {
        &self.data[index * self.num_bins..(index + 1) * self.num_bins]
    }

    /// Iterates over frames.
    pub fn frames(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.num_bins.max(1))
    }

    /// The whole matrix, row-major (frame after frame): the layout of a `[1, T, num_bins]` tensor.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Subtracts each bin's mean over the utterance; see [`mean_normalize`].
    pub fn mean_normalize(&mut self) {
        mean_normalize(&mut self.data, self.num_bins);
    }
}

/// Per-utterance cepstral mean normalisation in place: subtracts from each bin (column) of the
/// row-major `feats` its mean over all frames. No variance normalisation. WeSpeaker and CAM++
/// models expect this after [`Fbank::compute`]. Does nothing when `feats` is empty or
/// `num_bins` is 0; a trailing partial row (length not a multiple of `num_bins`) is ignored.
pub fn mean_normalize(feats: &mut [f32], num_bins: usize) {
    if num_bins == 0 {
        return;
    }
    let num_frames = feats.len() / num_bins;
    if num_frames == 0 {
        return;
    }
    let mut sums = vec![0f64; num_bins];
    for row in feats.chunks_exact(num_bins) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let means: Vec<f32> = sums
        .iter()
        .map(|s| (s / num_frames as f64) as f32)
        .collect();
    for row in feats.chunks_exact_mut(num_bins) {
        for (v, m) in row.iter_mut().zip(&means) {
            *v -= m;
        }
    }
}

/// A Kaldi-compatible fbank extractor: window, mel banks and FFT plan are built once in
/// [`Fbank::new`]; [`Fbank::compute`] is `&self` and can run from several threads.
pub struct Fbank {
    opts: FbankOptions,
    window_size: usize,
    window_shift: usize,
    window: Vec<f64>,
    banks: Vec<MelBin>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank")
            .field("opts", &self.opts)
            .field("window_size", &self.window_size)
            .field("window_shift", &self.window_shift)
            .field("padded_window", &self.fft.len())
            .finish_non_exhaustive()
    }
}

impl Fbank {
    /// Builds the extractor.
    ///
    /// # Panics
    /// If the options are invalid (see [`FbankError`]); use [`Fbank::try_new`] to get an error.
    pub fn new(opts: FbankOptions) -> Self {
        match Self::try_new(opts) {
            Ok(fbank) => fbank,
            Err(e) => panic!("invalid fbank options: {e}"),
        }
    }

    /// Builds the extractor, or says why the options are invalid.
    pub fn try_new(opts: FbankOptions) -> Result<Self, FbankError> {
        if opts.dither != 0.0 {
            return Err(FbankError::DitherUnsupported(opts.dither));
        }
        let sr = f64::from(opts.sample_rate);
        // Kaldi truncates: WindowSize() = (int)(samp_freq * 0.001 * frame_length_ms).
        let window_size = (sr * 0.001 * f64::from(opts.frame_length_ms)) as usize;
        let window_shift = (sr * 0.001 * f64::from(opts.frame_shift_ms)) as usize;
        if window_size < 2 || window_shift == 0 {
            return Err(FbankError::BadFrame {
                length: window_size,
                shift: window_shift,
            });
        }
        if opts.num_mel_bins == 0 {
            return Err(FbankError::NoMelBins);
        }
        let nyquist = sr / 2.0;
        let low = f64::from(opts.low_freq);
        let high = if opts.high_freq > 0.0 {
            f64::from(opts.high_freq)
        } else {
            nyquist + f64::from(opts.high_freq)
        };
        if !(low >= 0.0 && low < high && high <= nyquist) {
            return Err(FbankError::BadBand {
                low: opts.low_freq,
                high: high as f32,
                nyquist: nyquist as f32,
            });
        }

        let padded = window_size.next_power_of_two();
        let window = opts.window_type.coefficients(window_size);
        let banks = mel_banks(opts.num_mel_bins, padded, sr, low, high);
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(padded);
        Ok(Self {
            opts,
            window_size,
            window_shift,
            window,
            banks,
            fft,
        })
    }

    pub fn options(&self) -> &FbankOptions {
        &self.opts
    }

    /// Columns of the output: `num_mel_bins`, plus 1 with `use_energy`.
    pub fn num_bins(&self) -> usize {
        self.opts.num_mel_bins + usize::from(self.opts.use_energy)
    }

    /// Frame length in samples (400 by default).
    pub fn window_size(&self) -> usize {
        self.window_size
    }

    /// Frame shift in samples (160 by default).
    pub fn window_shift(&self) -> usize {
        self.window_shift
    }

    /// Number of frames [`Fbank::compute`] returns for `num_samples` samples.
    pub fn num_frames(&self, num_samples: usize) -> usize {
        if self.opts.snip_edges {
            if num_samples < self.window_size {
                0
            } else {
                1 + (num_samples - self.window_size) / self.window_shift
            }
        } else {
            (num_samples + self.window_shift / 2) / self.window_shift
        }
    }

    /// Log-mel filterbank of `pcm` (mono, `sample_rate`, f32 in `[-1, 1]`; scaled by 32768
    /// internally). Not mean-normalised: call [`Features::mean_normalize`] for embedding models.
    pub fn compute(&self, pcm: &[f32]) -> Features {
        let num_frames = self.num_frames(pcm.len());
        let num_bins = self.num_bins();
        let mut data = Vec::with_capacity(num_frames * num_bins);
        let mut frame = vec![0f64; self.window_size];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f64; spectrum.len()];

        for f in 0..num_frames {
            self.extract_frame(pcm, f, &mut frame);
            if self.opts.remove_dc_offset {
                let mean = frame.iter().sum::<f64>() / frame.len() as f64;
                frame.iter_mut().for_each(|x| *x -= mean);
            }
            if self.opts.use_energy {
                let energy: f64 = frame.iter().map(|x| x * x).sum();
                data.push(log_floor(energy));
            }
            let p = f64::from(self.opts.preemphasis);
            if p != 0.0 {
                for i in (1..frame.len()).rev() {
                    frame[i] -= p * frame[i - 1];
                }
                frame[0] -= p * frame[0];
            }
            input.fill(0.0);
            for ((dst, x), w) in input.iter_mut().zip(&frame).zip(&self.window) {
                *dst = x * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("FFT buffers are sized by the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for bank in &self.banks {
                let energy: f64 = power[bank.first_bin..]
                    .iter()
                    .zip(&bank.weights)
                    .map(|(p, &w)| p * f64::from(w))
                    .sum();
                data.push(log_floor(energy));
            }
        }
        Features {
            data,
            num_frames,
            num_bins,
        }
    }

    /// Copies frame `index` (int16-scaled) into `out`; with `snip_edges = false`, samples outside
    /// the signal are mirrored as in Kaldi's `ExtractWindow`.
    fn extract_frame(&self, pcm: &[f32], index: usize, out: &mut [f64]) {
        let n = pcm.len() as i64;
        let start = if self.opts.snip_edges {
            (index * self.window_shift) as i64
        } else {
            (index * self.window_shift + self.window_shift / 2) as i64
                - (self.window_size / 2) as i64
        };
        for (s, dst) in out.iter_mut().enumerate() {
            let mut pos = start + s as i64;
            // n >= 1 whenever a frame exists, so this terminates.
            while pos < 0 || pos >= n {
                pos = if pos < 0 { -pos - 1 } else { 2 * n - 1 - pos };
            }
            *dst = f64::from(pcm[pos as usize]) * INT16_SCALE;
        }
    }
}

/// `ln(max(energy, f32::EPSILON))`, Kaldi's floor on mel energies.
fn log_floor(energy: f64) -> f32 {
    energy.max(f64::from(f32::EPSILON)).ln() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fbank() -> Fbank {
        Fbank::new(FbankOptions::default())
    }

    #[test]
    fn frame_count_follows_snip_edges_rule() {
        let fb = fbank();
        assert_eq!((fb.window_size(), fb.window_shift()), (400, 160));
        for (n, frames) in [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98)] {
            assert_eq!(fb.num_frames(n), frames, "n = {n}");
            let feats = fb.compute(&vec![0.1; n]);
            assert_eq!(feats.num_frames(), frames, "n = {n}");
            assert_eq!(feats.as_slice().len(), frames * 80);
        }
    }

    #[test]
    fn frame_count_without_snip_edges_is_centred() {
        let fb = Fbank::new(FbankOptions {
            snip_edges: false,
            ..FbankOptions::default()
        });
        for (n, frames) in [(0, 0), (1, 0), (80, 1), (400, 3), (16000, 100)] {
            let pcm: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin() * 0.2).collect();
            let feats = fb.compute(&pcm);
            assert_eq!(feats.num_frames(), frames, "n = {n}");
            assert!(feats.as_slice().iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn silence_gives_log_epsilon_without_nan() {
        let feats = fbank().compute(&[0.0; 1600]);
        assert_eq!(feats.num_frames(), 8);
        let floor = f32::EPSILON.ln();
        assert!(
            feats.as_slice().iter().all(|&v| v == floor),
            "{:?}",
            feats.frame(0)
        );
    }

    #[test]
    fn energy_column_is_prepended() {
        let fb = Fbank::new(FbankOptions {
            use_energy: true,
            ..FbankOptions::default()
        });
        assert_eq!(fb.num_bins(), 81);
        let pcm: Vec<f32> = (0..800)
            .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
            .collect();
        let feats = fb.compute(&pcm);
        // DC-free ±16384 square wave: energy = 400 · 16384².
        let expected = (400.0f64 * 16384.0 * 16384.0).ln() as f32;
        assert!((feats.frame(0)[0] - expected).abs() < 1e-4);
        let plain = fbank().compute(&pcm);
        assert_eq!(&feats.frame(1)[1..], plain.frame(1));
    }

    #[test]
    fn mean_normalize_zeroes_each_bin_mean() {
        let pcm: Vec<f32> = (0..4000)
            .map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.1 * (i as f32 * 0.31).cos())
            .collect();
        let mut feats = fbank().compute(&pcm);
        let before = feats.clone();
        feats.mean_normalize();
        let n = feats.num_frames() as f64;
        for b in 0..feats.num_bins() {
            let mean: f64 = feats.frames().map(|f| f64::from(f[b])).sum::<f64>() / n;
            assert!(mean.abs() < 1e-5, "bin {b}: mean {mean}");
        }
        // Differences between frames are kept.
        let d0 = before.frame(3)[10] - before.frame(7)[10];
        let d1 = feats.frame(3)[10] - feats.frame(7)[10];
        assert!((d0 - d1).abs() < 1e-4);

        let mut empty: [f32; 0] = [];
        mean_normalize(&mut empty, 80);
        mean_normalize(&mut [1.0, 2.0], 0);
    }

    #[test]
    fn invalid_options_are_rejected() {
        let err = |o: FbankOptions| Fbank::try_new(o).unwrap_err();
        assert_eq!(
            err(FbankOptions {
                dither: 1.0,
                ..FbankOptions::default()
            }),
            FbankError::DitherUnsupported(1.0)
        );
        assert!(matches!(
            err(FbankOptions {
                high_freq: 9000.0,
                ..FbankOptions::default()
            }),
            FbankError::BadBand { .. }
        ));
        assert!(matches!(
            err(FbankOptions {
                num_mel_bins: 0,
                ..FbankOptions::default()
            }),
            FbankError::NoMelBins
        ));
        // Negative high_freq is relative to Nyquist.
        assert!(
            Fbank::try_new(FbankOptions {
                high_freq: -400.0,
                ..FbankOptions::default()
            })
            .is_ok()
        );
    }
}
