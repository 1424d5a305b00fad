//! Streaming conversion of mono f32 at any rate to [`TARGET_RATE`], fed packet by packet.
//!
//! Resampler choice: rubato's synchronous `Fft` resampler for every ratio whose input block
//! (`rate / gcd(rate, 16000)`) is small, which covers all rates met in practice (8, 11.025,
//! 22.05, 32, 44.1, 48, 88.2, 96 kHz…). The ratio of a file is fixed, so a synchronous
//! resampler fits; rubato documents `Fft` as both its fastest resampler and of the same quality
//! as its best sinc setting (BlackmanHarris² anti-aliasing filter, cutoff near Nyquist for the
//! ~4096-frame blocks used here). For odd rates (e.g. 44 101 Hz) the FFT block would be the
//! whole second of audio, so those fall back to `Async` with a 256-tap cubic sinc, which handles
//! any ratio at a higher CPU cost.
//!
//! Output framing: the resampler's start-up delay is dropped and the tail is flushed with
//! silence, so `n` input frames give exactly `ceil(n · 16000 / rate)` output frames.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::TARGET_RATE;

/// Chunk size hint for the resamplers, in input frames.
const CHUNK_HINT: usize = 4096;
/// Largest input block (`rate / gcd`) for which the FFT resampler is used.
const MAX_FFT_BLOCK: usize = 4096;

/// Resamples a mono stream to [`TARGET_RATE`], appending to a caller's output vector.
pub(crate) struct ToTarget {
    rate_in: u32,
    /// `None` when the input is already at the target rate.
    inner: Option<Box<dyn Resampler<f32>>>,
    /// Input frames not yet given to the resampler (less than one chunk after each `push`).
    pending: Vec<f32>,
    frames_in: u64,
    /// Frames appended to the output, after the start-up delay was dropped.
    frames_out: u64,
    /// Start-up delay frames still to drop.
    to_trim: usize,
    scratch: Vec<f32>,
}

impl ToTarget {
    /// A resampler from `rate_in` Hz. The caller checks that the rate is plausible.
    pub(crate) fn new(rate_in: u32) -> Result<Self, String> {
        let inner: Option<Box<dyn Resampler<f32>>> = if rate_in == TARGET_RATE {
            None
        } else {
            let (rin, rout) = (rate_in as usize, TARGET_RATE as usize);
            let block_in = rin / gcd(rin, rout);
            let built: Box<dyn Resampler<f32>> = if block_in <= MAX_FFT_BLOCK {
                Box::new(
                    Fft::<f32>::new(rin, rout, CHUNK_HINT, 1, FixedSync::Both)
                        .map_err(|e| format!("resampler: {e}"))?,
                )
            } else {
                let params = SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2);
                Box::new(
                    Async::<f32>::new_sinc(
                        rout as f64 / rin as f64,
                        1.0,
                        &params,
                        CHUNK_HINT,
                        1,
                        FixedAsync::Input,
                    )
                    .map_err(|e| format!("resampler: {e}"))?,
                )
            };
            Some(built)
        };
        let to_trim = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(ToTarget {
            rate_in,
            inner,
            pending: Vec::new(),
            frames_in: 0,
            frames_out: 0,
            to_trim,
            scratch: Vec::new(),
        })
    }

    /// The input rate this resampler was built for.
    pub(crate) fn rate_in(&self) -> u32 {
        self.rate_in
    }

    /// Feeds mono input frames; whole chunks are resampled into `out` at once.
    pub(crate) fn push(&mut self, mono: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.frames_in += mono.len() as u64;
        let Some(resampler) = self.inner.as_mut() else {
            out.extend_from_slice(mono);
            self.frames_out += mono.len() as u64;
            return Ok(());
        };
        self.pending.extend_from_slice(mono);
        let mut pos = 0;
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() - pos < need {
                break;
            }
            let chunk = &self.pending[pos..pos + need];
            let written = run_chunk(resampler.as_mut(), chunk, &mut self.scratch)?;
            append_trimmed(
                &self.scratch[..written],
                &mut self.to_trim,
                &mut self.frames_out,
                out,
            );
            pos += need;
        }
        self.pending.drain(..pos);
        Ok(())
    }

    /// Flushes the last partial chunk and the resampler's delay line; afterwards exactly
    /// `ceil(frames_in · 16000 / rate_in)` frames have been appended to `out` in total.
    pub(crate) fn finish(mut self, out: &mut Vec<f32>) -> Result<(), String> {
        let Some(resampler) = self.inner.as_mut() else {
            return Ok(());
        };
        let expected = (self.frames_in * u64::from(TARGET_RATE)).div_ceil(u64::from(self.rate_in));
        let mut chunk = std::mem::take(&mut self.pending);
        // Each pass feeds one chunk: first the remaining input padded with silence, then pure
        // silence until the delayed tail has come out. The bound only guards against a
        // resampler that never produces output.
        for _ in 0..64 {
            if self.frames_out >= expected {
                break;
            }
            let need = resampler.input_frames_next();
            chunk.resize(need, 0.0);
            let written = run_chunk(resampler.as_mut(), &chunk, &mut self.scratch)?;
            append_trimmed(
                &self.scratch[..written],
                &mut self.to_trim,
                &mut self.frames_out,
                out,
            );
            chunk.clear();
        }
        if self.frames_out < expected {
            return Err(format!(
                "resampler produced {} of {expected} frames",
                self.frames_out
            ));
        }
        let surplus = (self.frames_out - expected) as usize;
        out.truncate(out.len() - surplus);
        Ok(())
    }
}

/// Resamples one full chunk into `scratch`, returning the number of frames written.
fn run_chunk(
    resampler: &mut dyn Resampler<f32>,
    chunk: &[f32],
    scratch: &mut Vec<f32>,
) -> Result<usize, String> {
    scratch.resize(resampler.output_frames_next(), 0.0);
    let frames_out = scratch.len();
    let input = InterleavedSlice::new(chunk, 1, chunk.len()).map_err(|e| e.to_string())?;
    let mut output = InterleavedSlice::new_mut(scratch.as_mut_slice(), 1, frames_out)
        .map_err(|e| e.to_string())?;
    let (_, written) = resampler
        .process_into_buffer(&input, &mut output, None)
        .map_err(|e| format!("resampler: {e}"))?;
    Ok(written)
}

/// Appends `produced` to `out`, first dropping what remains of the start-up delay.
fn append_trimmed(produced: &[f32], to_trim: &mut usize, frames_out: &mut u64, out: &mut Vec<f32>) {
    let skip = (*to_trim).min(produced.len());
    *to_trim -= skip;
    out.extend_from_slice(&produced[skip..]);
    *frames_out += (produced.len() - skip) as u64;
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * freq * n as f32 / rate as f32).sin())
            .collect()
    }

    fn resample_in_pieces(rate: u32, input: &[f32], piece: usize) -> Vec<f32> {
        let mut r = ToTarget::new(rate).unwrap();
        let mut out = Vec::new();
        for part in input.chunks(piece) {
            r.push(part, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn output_length_is_exact_for_common_and_odd_rates() {
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 96_000, 44_101] {
            for frames in [0usize, 1, 100, 4_410, 44_100 + 17] {
                let out = resample_in_pieces(rate, &vec![0.1; frames], 1000);
                let expected = (frames as u64 * 16_000).div_ceil(u64::from(rate)) as usize;
                assert_eq!(out.len(), expected, "rate {rate}, {frames} frames");
            }
        }
    }

    #[test]
    fn sine_keeps_phase_and_amplitude_whatever_the_piece_size() {
        let input = sine(44_100, 440.0, 44_100);
        let a = resample_in_pieces(44_100, &input, 333);
        let b = resample_in_pieces(44_100, &input, 44_100);
        assert_eq!(a, b, "chunking must not change the result");
        let reference = sine(16_000, 440.0, a.len());
        // Away from the edges the output matches the ideal 16 kHz sine (no delay left in).
        let err = a[800..a.len() - 800]
            .iter()
            .zip(&reference[800..a.len() - 800])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(44_100, 16_000), 100);
        assert_eq!(gcd(16_000, 8_000), 8_000);
        assert_eq!(gcd(44_101, 16_000), 1);
    }
}
