//! Plain data at the crate's edge: options in, transcript and progress out.

use serde::{Deserialize, Serialize};

/// How to transcribe. `Default` gives: detect the language (or English for `.en` models),
/// transcribe, greedy decoding, the temperature fallback schedule, VAD on, previous-text
/// conditioning on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscribeOptions {
    /// ISO code such as `"en"`; `None` detects it on the first window (multilingual models) or
    /// uses `"en"` (English-only models).
    pub language: Option<String>,
    /// Translate to English instead of transcribing (multilingual models only).
    pub translate: bool,
    /// 1 = greedy; n > 1 = beam search with n beams (at temperature 0).
    pub beam_size: usize,
    /// `Some(t)`: decode at this temperature only. `None`: 0.0, 0.2, …, 1.0, moving on when the
    /// text repeats itself (gzip ratio > 2.4) or the model is unsure (mean log-prob < −1).
    pub temperature: Option<f32>,
    /// Text that conditions the first window (spelling of names, style).
    pub initial_prompt: Option<String>,
    /// Skip stretches without speech using Silero VAD (when a VAD model is given).
    pub vad: bool,
    /// Feed each window's text as the prompt of the next.
    pub condition_on_previous_text: bool,
    /// Batched mode: the speech cut into chunks of up to 30 s (by VAD when `vad`), decoded
    /// `batch_size` at a time, each on its own (no previous text, no temperature fallback, no
    /// timestamps: one segment per chunk).
    pub batched: bool,
    /// Chunks per encoder/decoder call in batched mode.
    pub batch_size: usize,
    /// Time every word (cross-attention alignment, as faster-whisper's `word_timestamps`):
    /// each segment then carries its [`Word`]s. CTranslate2 engine only.
    pub word_timestamps: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            translate: false,
            beam_size: 1,
            temperature: None,
            initial_prompt: None,
            vad: true,
            condition_on_previous_text: true,
            batched: false,
            batch_size: 8,
            word_timestamps: false,
        }
    }
}

/// One stretch of text with times in seconds from the start of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Mean log-probability of the window's tokens this segment came from.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start of that window.
    pub no_speech_prob: f32,
    /// Temperature the window was finally decoded at.
    pub temperature: f32,
    /// gzip compression ratio of the window's text.
    pub compression_ratio: f32,
    /// The segment's words with their times, when word timestamps were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// One word of a segment, timed by aligning its tokens with the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// As Whisper spells it, with its leading space and any punctuation attached.
    pub word: String,
    pub start: f64,
    pub end: f64,
    /// Mean probability of the word's tokens.
    pub probability: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub duration_s: f64,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// All segment texts joined with spaces.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.segments.iter().map(|s| s.text.trim()).collect();
        parts.join(" ")
    }
}

/// Reported after each 30 s window.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub processed_s: f64,
    pub total_s: f64,
    pub windows_done: usize,
    pub segments_so_far: usize,
    /// The segments finished since the last report, for clients that show text as it comes
    /// (trimmed texts, each after a space except the transcript's very first): the reports'
    /// `new_text` joined is the transcript's [`Transcript::text`].
    pub new_text: String,
}

/// Which implementation runs Whisper's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// CTranslate2 (through `ct2rs`), reading the packages' `model.bin`: the default.
    #[default]
    Ct2,
    /// voxfleet's own Whisper network on candle (the converted `model.safetensors`).
    Candle,
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ct2" | "ctranslate2" => Ok(EngineKind::Ct2),
            "candle" => Ok(EngineKind::Candle),
            other => Err(format!(
                "unknown engine `{other}`: expected `ct2` or `candle`"
            )),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Ct2 => "ct2",
            EngineKind::Candle => "candle",
        })
    }
}

/// Precision of CTranslate2's weights and arithmetic (the candle engine ignores it: f32 on CPU,
/// f16 on CUDA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeType {
    Int8,
    Float32,
    /// CUDA only.
    Float16,
    /// CUDA only: int8 weights, f16 arithmetic.
    Int8Float16,
}

impl ComputeType {
    /// int8 on CPU (faster-whisper's CPU setting) where it gives right answers (see
    /// [`ComputeType::check_on`]) and is fast (MKL on Intel CPUs, oneDNN on others; not MKL
    /// forced onto another CPU: see [`ComputeType::cpu_default_note`]), float32 where not;
    /// float16 on CUDA.
    pub fn default_for(device: crate::DeviceSpec) -> Self {
        match device {
            crate::DeviceSpec::Cpu if crate::ct2::cpu_int8_default().is_ok() => ComputeType::Int8,
            crate::DeviceSpec::Cpu => ComputeType::Float32,
            crate::DeviceSpec::Cuda(_) => ComputeType::Float16,
        }
    }

    /// Whether CTranslate2 can compute at this type on `device`: the CUDA-only types are
    /// refused on the CPU, and int8 on a CPU where this build's int8 kernels give wrong text
    /// (no AVX-512 VNNI, or MKL held below it).
    pub fn check_on(self, device: crate::DeviceSpec) -> Result<(), crate::AsrError> {
        if device != crate::DeviceSpec::Cpu {
            return Ok(());
        }
        if self.cuda_only() {
            return Err(crate::AsrError::InvalidOptions(format!(
                "compute type {self} needs a CUDA device; on CPU use int8 or float32"
            )));
        }
        if self == ComputeType::Int8
            && let Err(why) = crate::ct2::cpu_int8()
        {
            return Err(crate::AsrError::InvalidOptions(format!(
                "compute type int8 on this CPU: {why}; use float32"
            )));
        }
        Ok(())
    }

    /// Why the CPU's default is not int8 on this machine (`None` where it is): no AVX-512
    /// VNNI, MKL held below it, or `CT2_USE_MKL` forcing MKL, whose int8 kernels are slow
    /// there, onto a CPU that is not Intel's.
    pub fn cpu_default_note() -> Option<String> {
        crate::ct2::cpu_int8_default().err()
    }

    pub fn cuda_only(self) -> bool {
        matches!(self, ComputeType::Float16 | ComputeType::Int8Float16)
    }
}

impl std::str::FromStr for ComputeType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "int8" => Ok(ComputeType::Int8),
            "float32" | "f32" => Ok(ComputeType::Float32),
            "float16" | "f16" => Ok(ComputeType::Float16),
            "int8_float16" => Ok(ComputeType::Int8Float16),
            other => Err(format!(
                "unknown compute type `{other}`: expected int8, float32, float16 or int8_float16"
            )),
        }
    }
}

impl std::fmt::Display for ComputeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComputeType::Int8 => "int8",
            ComputeType::Float32 => "float32",
            ComputeType::Float16 => "float16",
            ComputeType::Int8Float16 => "int8_float16",
        })
    }
}

/// How a [`crate::ModelCache`] loads Whisper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    pub engine: EngineKind,
    /// `None`: [`ComputeType::default_for`] the device.
    pub compute_type: Option<ComputeType>,
    /// CPU threads one transcription uses (CTranslate2's intra-op threads); 0: the cores divided
    /// among the replicas.
    /// The candle engine sizes itself from `RAYON_NUM_THREADS` instead.
    pub cpu_threads: usize,
    /// Transcriptions one loaded model runs at once (CTranslate2 replicas sharing the weights;
    /// the worker passes its job concurrency).
    pub replicas: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            engine: EngineKind::Ct2,
            compute_type: None,
            cpu_threads: 0,
            replicas: 1,
        }
    }
}
