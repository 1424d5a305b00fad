//! Helpers shared by the integration tests: a WAV writer, signal measurements, and fixtures
//! generated once per test binary with espeak-ng, sox and ffmpeg.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Sample encoding for [`wav_bytes`].
#[derive(Clone, Copy, Debug)]
pub enum WavFormat {
    Pcm16,
    Float32,
}

/// A WAV file holding `interleaved` samples (in [-1, 1]) of `channels` channels.
pub fn wav_bytes(rate: u32, channels: u16, interleaved: &[f32], format: WavFormat) -> Vec<u8> {
    let (tag, bits): (u16, u16) = match format {
        WavFormat::Pcm16 => (1, 16),
        WavFormat::Float32 => (3, 32),
    };
    let block_align = channels * bits / 8;
    let data_len = (interleaved.len() * usize::from(bits / 8)) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in interleaved {
        match format {
            WavFormat::Pcm16 => out
                .extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()),
            WavFormat::Float32 => out.extend_from_slice(&s.to_le_bytes()),
        }
    }
    out
}

/// `frames` frames of a sine per channel, interleaved; `freqs[c]` and `amps[c]` per channel.
pub fn sines(rate: u32, frames: usize, freqs: &[f32], amps: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(frames * freqs.len());
    for n in 0..frames {
        for (f, a) in freqs.iter().zip(amps) {
            let t = n as f64 / f64::from(rate);
            out.push(a * (2.0 * std::f64::consts::PI * f64::from(*f) * t).sin() as f32);
        }
    }
    out
}

/// Frequency estimated from upward zero crossings, over the middle of the signal.
pub fn zero_crossing_hz(samples: &[f32], rate: u32) -> f64 {
    let mid = &samples[samples.len() / 10..samples.len() * 9 / 10];
    let ups: Vec<usize> = mid
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (ups[0], ups[ups.len() - 1]);
    (ups.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
}

/// Peak absolute value over the middle of the signal.
pub fn mid_peak(samples: &[f32]) -> f32 {
    samples[samples.len() / 10..samples.len() * 9 / 10]
        .iter()
        .fold(0.0, |m, s| m.max(s.abs()))
}

/// RMS per 20 ms frame at 16 kHz.
pub fn envelope(samples: &[f32]) -> Vec<f64> {
    samples
        .chunks(320)
        .map(|c| (c.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// Pearson correlation of two sequences over their common length.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The best envelope correlation of `a` shifted by up to `max_lag` frames against `b`, and
/// that shift (positive: `a` is late).
pub fn best_lag_correlation(a: &[f64], b: &[f64], max_lag: usize) -> (isize, f64) {
    let mut best = (0, f64::MIN);
    for lag in -(max_lag as isize)..=max_lag as isize {
        let corr = if lag >= 0 {
            correlation(&a[lag as usize..], b)
        } else {
            correlation(a, &b[(-lag) as usize..])
        };
        if corr > best.1 {
            best = (lag, corr);
        }
    }
    best
}

#[allow(unused_imports)]
pub use voxfleet_testkit::require_tool;

/// Runs a command, failing the test with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Audio fixtures, generated once per test binary into a temporary directory.
pub struct Fixtures {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixtures {
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// The sentence spoken in the fixtures.
pub const SENTENCE: &str = "The quick brown fox jumps over the lazy dog, while the worker \
    fleet transcribes every recording it is given.";

/// Encodings of one espeak-ng sentence, all from `ref.wav` (44.1 kHz stereo PCM16):
/// `float.wav`, `x.flac`, `x.mp3`, `x.ogg` (Vorbis), `x.m4a` (AAC), `x.aac` (ADTS),
/// `x.opus` (Opus in Ogg) and `video.mp4` (no audio track).
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        require_tool("espeak-ng", "espeak-ng");
        require_tool("sox", "sox");
        require_tool("ffmpeg", "ffmpeg");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let p = |n: &str| root.join(n).to_str().expect("utf-8 path").to_owned();
        run("espeak-ng", &["-w", &p("speech.wav"), SENTENCE]);
        run(
            "sox",
            &[
                &p("speech.wav"),
                "-r",
                "44100",
                "-c",
                "2",
                "-b",
                "16",
                &p("ref.wav"),
            ],
        );
        let ff = |args: &[&str], out: &str| {
            let (input, output) = (p("ref.wav"), p(out));
            let mut all: Vec<&str> = vec!["-v", "error", "-y", "-i", &input];
            all.extend_from_slice(args);
            all.push(&output);
            run("ffmpeg", &all);
        };
        ff(&["-c:a", "pcm_f32le"], "float.wav");
        ff(&["-c:a", "flac"], "x.flac");
        ff(&["-c:a", "libmp3lame", "-b:a", "128k"], "x.mp3");
        ff(&["-c:a", "libvorbis", "-q:a", "4"], "x.ogg");
        ff(&["-c:a", "aac", "-b:a", "128k"], "x.m4a");
        ff(&["-c:a", "aac", "-b:a", "128k", "-f", "adts"], "x.aac");
        ff(&["-c:a", "libopus", "-b:a", "64k"], "x.opus");
        run(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=64x64:rate=10",
                "-c:v",
                "mpeg4",
                &p("video.mp4"),
            ],
        );
        Fixtures { _dir: dir, root }
    })
}

/// Reads a fixture file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
