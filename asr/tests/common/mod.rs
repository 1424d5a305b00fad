//! Shared test support: the model cache (models must have been fetched), espeak-ng speech, WER.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use voxfleet_asr::{ModelCache, SileroVad, WhisperEngine};
use voxfleet_testkit::espeak::{self, Voice};
use voxfleet_testkit::work_dir;

pub const SR: usize = 16_000;
/// espeak-ng settings tiny.en understands well: US voice, 130 wpm, 50 ms between words.
pub const VOICE: Voice<'static> = Voice {
    voice: Some("en-us"),
    wpm: Some(130),
    word_gap: Some(5),
};

const FETCH: &str =
    "run `cargo run -p voxfleet-worker -- models fetch` first (or set VOXFLEET_MODELS_DIR)";

fn models_dir() -> voxfleet_models::ModelsDir {
    let dir = std::env::var_os("VOXFLEET_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(voxfleet_models::default_models_dir);
    voxfleet_models::ModelsDir::new(dir)
}

/// The default engine (CTranslate2; int8, or float32 on a CPU where int8 is refused).
pub fn cache() -> &'static ModelCache {
    static CACHE: OnceLock<ModelCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        ModelCache::new(models_dir(), voxfleet_asr::DeviceSpec::Cpu).expect("cpu device")
    })
}

/// A cache of its own with other engine settings.
pub fn cache_with(settings: voxfleet_asr::EngineSettings) -> ModelCache {
    ModelCache::with_settings(models_dir(), voxfleet_asr::DeviceSpec::Cpu, settings)
        .expect("cpu device")
}

pub fn tiny_en() -> Arc<WhisperEngine> {
    cache()
        .whisper("tiny.en")
        .unwrap_or_else(|e| panic!("whisper tiny.en is not available: {e}\n{FETCH}"))
}

pub fn vad() -> Arc<SileroVad> {
    cache()
        .vad()
        .unwrap_or_else(|e| panic!("Silero VAD is not available: {e}\n{FETCH}"))
}

/// `text` spoken by espeak-ng, as 16 kHz mono samples (decoded by voxfleet-audio).
pub fn speak(text: &str) -> Vec<f32> {
    decode(&espeak::say(&work_dir("asr"), VOICE, text))
}

pub fn decode(path: &Path) -> Vec<f32> {
    voxfleet_audio::decode_file(path, &voxfleet_audio::DecodeOptions::default())
        .expect("decode wav")
        .samples
}

/// Sentences with `gap_s` of silence before each; returns samples and each sentence's span (s).
pub fn speak_with_gaps(sentences: &[&str], gap_s: f64) -> (Vec<f32>, Vec<(f64, f64)>) {
    let mut pcm = Vec::new();
    let mut spans = Vec::new();
    for s in sentences {
        pcm.extend(std::iter::repeat_n(0.0, (gap_s * SR as f64) as usize));
        let speech = speak(s);
        let (lead, tail) = edges(&speech);
        let start = (pcm.len() + lead) as f64 / SR as f64;
        let end = (pcm.len() + speech.len() - tail) as f64 / SR as f64;
        spans.push((start, end));
        pcm.extend(speech);
    }
    pcm.extend(std::iter::repeat_n(0.0, SR));
    (pcm, spans)
}

/// Samples of near-silence at the start and end of `pcm`.
fn edges(pcm: &[f32]) -> (usize, usize) {
    let loud = |x: &f32| x.abs() > 0.01;
    let lead = pcm.iter().position(loud).unwrap_or(pcm.len());
    let tail = pcm.iter().rev().position(loud).unwrap_or(0);
    (lead, tail)
}

pub const SHORT: &str = "The quick brown fox jumps over the lazy dog. Speech recognition with voxfleet works on the CPU.";

/// Plain sentences for the long-form case (about 80 s of speech).
pub const LONG: [&str; 14] = [
    "The weather was cold and clear on the morning of the first day.",
    "She walked to the station and bought a ticket for the early train.",
    "The train was late, so she read a book while she waited on the platform.",
    "When the train arrived, she found a seat next to the window.",
    "The fields outside were covered with a thin layer of white frost.",
    "After an hour, the train stopped at a small town near the river.",
    "She stepped off the train and looked for her brother in the crowd.",
    "He was waiting by the gate with two cups of hot coffee.",
    "They walked together along the river and talked about their plans.",
    "In the afternoon, they visited the old museum in the center of town.",
    "The museum had paintings, maps, and tools from many centuries ago.",
    "In the evening, they cooked dinner and watched the sun go down.",
    "The next morning, she took the train back to the city.",
    "It had been a short trip, but she was happy that she had gone.",
];

pub use voxfleet_asr::wer::word_error_rate;
