//! Shared test support: the ONNX models (fetched into the models directory), espeak-ng speech
//! and synthetic conversations with exactly known turns.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use voxfleet_models::ModelsDir;
use voxfleet_speakers::{Embedder, Segmenter, Turn, WindowType};
use voxfleet_testkit::{espeak, work_dir};

pub const SR: usize = 16_000;

const FETCH: &str =
    "run `cargo run -p voxfleet-worker -- models fetch` first (or set VOXFLEET_MODELS_DIR)";

pub fn models_dir() -> &'static ModelsDir {
    static DIR: OnceLock<ModelsDir> = OnceLock::new();
    DIR.get_or_init(|| {
        ModelsDir::new(
            std::env::var_os("VOXFLEET_MODELS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(voxfleet_models::default_models_dir),
        )
    })
}

fn onnxruntime() {
    if let Err(e) = voxfleet_models::onnx::ensure_onnxruntime(models_dir()) {
        panic!("ONNX Runtime is not available: {e}\n{FETCH}");
    }
}

pub fn segmenter() -> Arc<Segmenter> {
    static M: OnceLock<Arc<Segmenter>> = OnceLock::new();
    M.get_or_init(|| {
        onnxruntime();
        let p = models_dir()
            .segmentation()
            .unwrap_or_else(|e| panic!("segmentation-3.0 is not available: {e}\n{FETCH}"));
        Arc::new(Segmenter::load(&p).expect("load segmentation-3.0"))
    })
    .clone()
}

/// The embedding model of `profile` (`v4`: CAM++, `v3`: Resemblyzer GE2E by default).
fn embedder(profile: &str) -> Arc<Embedder> {
    onnxruntime();
    let m = models_dir()
        .speaker_model(profile)
        .unwrap_or_else(|e| panic!("speaker model {profile} is not available: {e}\n{FETCH}"));
    let window = if m.povey_window {
        WindowType::Povey
    } else {
        WindowType::Hamming
    };
    Arc::new(Embedder::load(&m.path, window).expect("load the speaker model"))
}

/// CAM++ (the v4 speaker model: WeSpeaker interface, `feats` → 192-d).
pub fn campplus() -> Arc<Embedder> {
    static M: OnceLock<Arc<Embedder>> = OnceLock::new();
    M.get_or_init(|| embedder("v4")).clone()
}

/// Resemblyzer GE2E (the v3 speaker model: `mels` → 256-d).
pub fn ge2e() -> Arc<Embedder> {
    static M: OnceLock<Arc<Embedder>> = OnceLock::new();
    M.get_or_init(|| embedder("v3")).clone()
}

/// `text` spoken by espeak-ng voice `voice` at 150 wpm, 16 kHz mono, leading and trailing
/// silence removed.
pub fn speak(voice: &str, text: &str) -> Vec<f32> {
    let how = espeak::Voice {
        voice: Some(voice),
        wpm: Some(150),
        word_gap: None,
    };
    let path = espeak::say(&work_dir("speakers"), how, text);
    let pcm = voxfleet_audio::decode_file(&path, &voxfleet_audio::DecodeOptions::default())
        .expect("decode wav")
        .samples;
    let _ = std::fs::remove_file(&path);
    let loud = |x: &f32| x.abs() > 1e-3;
    let a = pcm.iter().position(loud).unwrap_or(0);
    let b = pcm.iter().rposition(loud).map_or(0, |i| i + 1);
    pcm[a..b.max(a)].to_vec()
}

/// Sentences of varied length (2–7 s at 150 wpm).
pub const SENTENCES: [&str; 12] = [
    "Good morning, did you get the report I sent yesterday?",
    "Yes, I read it twice.",
    "The numbers for the third quarter look much better than we expected, especially in the northern region.",
    "That is great news for the whole team.",
    "We should still check the shipping costs before the meeting on Friday afternoon.",
    "I agree completely.",
    "Can you ask the finance department to send us the final figures by Thursday?",
    "Of course, I will write to them today.",
    "Remember that the board wants a short summary rather than a long presentation with many slides.",
    "Then let us keep it to five pages at most.",
    "Fine, and I will prepare the charts tonight so that you can review them tomorrow morning.",
    "Perfect, thank you very much.",
];

/// A deterministic pseudo-random number in `[0, 1)`.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A conversation: turns cycling through `voices` (speaker = index into `voices`; the order
/// of speakers is varied), sentences from [`SENTENCES`], pauses of 0.3–1.5 s between turns,
/// until at least `min_s` seconds. Returns the samples and the exact reference turns.
pub fn conversation(voices: &[&str], min_s: f64, seed: u64) -> (Vec<f32>, Vec<Turn>) {
    let mut rng = Lcg(seed);
    let mut pcm: Vec<f32> = vec![0.0; (0.5 * SR as f64) as usize];
    let mut turns = Vec::new();
    let mut previous = usize::MAX;
    let mut k = 0;
    while (pcm.len() as f64 / SR as f64) < min_s {
        let mut speaker = (rng.next() * voices.len() as f64) as usize % voices.len();
        if speaker == previous {
            speaker = (speaker + 1) % voices.len();
        }
        previous = speaker;
        let speech = speak(voices[speaker], SENTENCES[k % SENTENCES.len()]);
        k += 1;
        let start = pcm.len() as f64 / SR as f64;
        pcm.extend_from_slice(&speech);
        turns.push(Turn {
            start,
            end: pcm.len() as f64 / SR as f64,
            speaker,
        });
        let pause = 0.3 + 1.2 * rng.next();
        pcm.extend(std::iter::repeat_n(0.0, (pause * SR as f64) as usize));
    }
    (pcm, turns)
}
