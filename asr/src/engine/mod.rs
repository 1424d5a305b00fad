//! [`WhisperEngine`]: a loaded Whisper model and the long-form transcription loop (30 s windows,
//! timestamp seeking, temperature fallback, no-speech skipping, prompt conditioning, VAD skips).
//!
//! The network runs on one of two engines ([`EngineKind`]): CTranslate2 (`ct2`, the default: the
//! packages' own `model.bin` on CTranslate2's int8/float kernels) or voxfleet's candle network
//! (`model`, `decode`). The loop above them is the same.

use std::io::Write;
use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as cw, Config};

use crate::ct2::{Ct2Encoded, Ct2Lease, Ct2Net, Ct2Step};
use crate::decode::{LogitRules, WindowRequest, WindowResult, decode_window};
use crate::model::{WhisperNet, tensor_bytes};
use crate::tokens::TextTokenizer;
use crate::vad::SileroVad;
use crate::words;
use crate::{
    AsrError, ComputeType, DeviceSpec, EngineKind, EngineSettings, Progress, Segment,
    TranscribeOptions, Transcript,
};
use voxfleet_models::WhisperFiles;

mod batched;
mod window;

use batched::WordWindow;
use window::mel_window;

const SAMPLE_RATE: f64 = cw::SAMPLE_RATE as f64;
/// Mel frames per second (hop of 160 samples).
const FRAMES_PER_S: f64 = SAMPLE_RATE / cw::HOP_LENGTH as f64;
/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;
const TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
/// Windows quieter than this RMS (−70 dBFS) are digital silence: skipped without decoding
/// (Whisper tends to hallucinate "you" on them even with VAD off).
const SILENCE_RMS: f32 = 3.2e-4;

/// Longest chunk of batched mode: Whisper's window.
const BATCH_CHUNK_S: f64 = 30.0;
/// Silence kept around each VAD region in batched mode (faster-whisper pads by 0.4 s too): a
/// chunk that starts right on the first word loses it.
const BATCH_PAD_S: f64 = 0.4;

/// Progress once the first `seek` mel frames are done, with the text of the segments after
/// the first `reported` (which then counts them as reported).
fn progress_at(
    seek: usize,
    total_s: f64,
    windows_done: usize,
    segments: &[Segment],
    reported: &mut usize,
) -> Progress {
    Progress {
        processed_s: (seek as f64 / FRAMES_PER_S).min(total_s),
        total_s,
        windows_done,
        segments_so_far: segments.len(),
        new_text: new_text(segments, reported),
    }
}

/// The trimmed texts of `segments[*reported..]`, each after a space but the very first
/// segment's; `reported` then counts them all.
fn new_text(segments: &[Segment], reported: &mut usize) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate().skip(*reported) {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(s.text.trim());
    }
    *reported = segments.len();
    out
}

fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// The network of one engine.
enum Net {
    Ct2(Ct2Net),
    Candle(Box<WhisperNet>),
}

/// The network for one transcription: a leased CTranslate2 instance, or the candle network.
enum Run<'a> {
    Ct2(Ct2Lease<'a>),
    Candle(&'a WhisperNet),
}

/// One window's encoder output.
enum Encoded {
    Ct2(Ct2Encoded),
    Candle(Tensor),
}

/// A loaded Whisper model. Immutable: share it in an `Arc` and call [`WhisperEngine::transcribe`]
/// from several threads at once (each call has its own decoder state).
pub struct WhisperEngine {
    name: String,
    device: DeviceSpec,
    engine: EngineKind,
    compute_type: Option<ComputeType>,
    net: Net,
    /// Dimensions (mel bins, audio and text positions), from the model's `config.json`.
    config: Config,
    tokenizer: TextTokenizer,
    mel_filters: Vec<f32>,
    multilingual: bool,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    bytes: u64,
}

fn load_err(what: &'static str, path: &std::path::Path, reason: impl ToString) -> AsrError {
    AsrError::Load {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// gzip-style compression ratio of `text` (high when the text repeats itself).
pub(crate) fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let packed = z
        .write_all(text.as_bytes())
        .and_then(|_| z.finish())
        .map(|v| v.len())
        .unwrap_or(text.len());
    text.len() as f32 / packed.max(1) as f32
}

impl WhisperEngine {
    /// Loads the model on `device` with the engine `settings` name: CTranslate2 reads
    /// `ct2/model.bin` at the compute type asked for (int8 on CPU by default); candle reads
    /// `model.safetensors` (f32 on CPU, f16 on CUDA).
    pub fn load(
        src: &WhisperFiles,
        device: DeviceSpec,
        settings: &EngineSettings,
    ) -> Result<Self, AsrError> {
        let config: Config = std::fs::read(&src.config)
            .map_err(|e| load_err("config", &src.config, e))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| load_err("config", &src.config, e))
            })?;
        let n_filters = config.num_mel_bins * (cw::N_FFT / 2 + 1);
        if src.mel_filters.len() != n_filters {
            return Err(load_err(
                "mel filters",
                &src.config,
                format!("expected {n_filters} values, got {}", src.mel_filters.len()),
            ));
        }
        let (net, bytes, compute_type) = match settings.engine {
            EngineKind::Ct2 => {
                let compute = settings
                    .compute_type
                    .unwrap_or_else(|| ComputeType::default_for(device));
                compute.check_on(device)?;
                let net = Ct2Net::load(
                    &src.ct2_dir,
                    device,
                    compute,
                    settings.cpu_threads,
                    settings.replicas,
                )?;
                if net.n_mels != config.num_mel_bins {
                    return Err(load_err(
                        "CTranslate2 model",
                        &src.ct2_dir,
                        format!(
                            "{} mel bins, config.json says {}",
                            net.n_mels, config.num_mel_bins
                        ),
                    ));
                }
                // What the budget counted: `model.bin` once per instance.
                let bytes = Self::estimate_bytes(src, device, settings);
                (Net::Ct2(net), bytes, Some(compute))
            }
            EngineKind::Candle => {
                let dev = device.open()?;
                let buf = std::fs::read(&src.weights)
                    .map_err(|e| load_err("weights", &src.weights, e))?;
                let tensors = candle_core::safetensors::load_buffer(&buf, &Device::Cpu)
                    .map_err(|e| load_err("weights", &src.weights, e))?;
                drop(buf);
                let dtype = if dev.is_cpu() { DType::F32 } else { DType::F16 };
                let vb = VarBuilder::from_tensors(tensors, dtype, &dev);
                let net = WhisperNet::load(vb, config.clone())
                    .map_err(|e| load_err("weights", &src.weights, e))?;
                let bytes = tensor_bytes(net.tensors().into_iter());
                (Net::Candle(Box::new(net)), bytes, None)
            }
        };
        let tokenizer = TextTokenizer::load(&src.tokenizer)?;
        let sp = &tokenizer.special;
        let mut suppress = src.suppress_ids.clone();
        suppress.extend([
            sp.transcribe,
            sp.translate,
            sp.sot,
            sp.sot_prev,
            sp.sot_lm,
            sp.no_speech,
        ]);
        tracing::info!(
            model = %src.name,
            %device,
            engine = %settings.engine,
            compute_type = ?compute_type,
            bytes,
            "loaded whisper"
        );
        Ok(Self {
            name: src.name.clone(),
            device,
            engine: settings.engine,
            compute_type,
            net,
            config,
            mel_filters: src.mel_filters.clone(),
            multilingual: src.multilingual,
            suppress,
            suppress_begin: src.suppress_ids_begin.clone(),
            tokenizer,
            bytes,
        })
    }

    /// About how many bytes [`WhisperEngine::load`] will hold, from the files' sizes (before
    /// loading anything): CTranslate2's `model.bin` once per replica; candle's weights, halved
    /// on CUDA (f16).
    pub fn estimate_bytes(
        src: &WhisperFiles,
        device: DeviceSpec,
        settings: &EngineSettings,
    ) -> u64 {
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        match settings.engine {
            EngineKind::Ct2 => {
                size(&src.ct2_dir.join("model.bin")) * settings.replicas.max(1) as u64
            }
            EngineKind::Candle => match device {
                DeviceSpec::Cpu => size(&src.weights),
                DeviceSpec::Cuda(_) => size(&src.weights) / 2,
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn device(&self) -> DeviceSpec {
        self.device
    }

    pub fn engine(&self) -> EngineKind {
        self.engine
    }

    /// CTranslate2's compute type (`None` on the candle engine).
    pub fn compute_type(&self) -> Option<ComputeType> {
        self.compute_type
    }

    /// Bytes of weights: on the device for candle; the `model.bin` file for CTranslate2.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Language codes the model knows.
    pub fn languages(&self) -> Vec<String> {
        if !self.multilingual {
            return vec!["en".into()];
        }
        let langs = &self.tokenizer.special.languages;
        langs.iter().map(|(c, _)| c.clone()).collect()
    }

    /// Transcribes 16 kHz mono `pcm`. Blocking; call it on a blocking thread. `on_progress` runs
    /// after every 30 s window; returning `Break` stops with [`AsrError::Cancelled`].
    pub fn transcribe(
        &self,
        pcm: &[f32],
        opts: &TranscribeOptions,
        vad: Option<&SileroVad>,
        on_progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Transcript, AsrError> {
        if opts.word_timestamps && self.engine != EngineKind::Ct2 {
            return Err(words_need_ct2());
        }
        if opts.batched {
            return self.transcribe_batched(pcm, opts, vad, on_progress);
        }
        let total_s = pcm.len() as f64 / SAMPLE_RATE;
        let mut language = self.check_language(opts)?;
        let regions = match vad {
            Some(v) if opts.vad => Some(v.speech_regions(pcm)?),
            _ => None,
        };
        let mut out = Transcript {
            language: language.clone().unwrap_or_else(|| "en".into()),
            duration_s: total_s,
            segments: Vec::new(),
        };
        if regions.as_ref().is_some_and(|r| r.is_empty()) || pcm.is_empty() {
            return Ok(out);
        }
        let span = tracing::info_span!("transcribe", model = %self.name, audio_s = total_s);
        let _enter = span.enter();

        let run = self.runner();
        let t_mel = std::time::Instant::now();
        let n_mels = self.config.num_mel_bins;
        let (mel, mel_frames) = crate::mel::log_mel(pcm, cw::N_SAMPLES, &self.mel_filters, n_mels);
        tracing::debug!(mel_s = t_mel.elapsed().as_secs_f64(), "log-mel computed");
        let content_frames = pcm.len() / cw::HOP_LENGTH;
        let sp = &self.tokenizer.special;
        let rules = LogitRules {
            special: sp,
            suppress: &self.suppress,
            suppress_begin: &self.suppress_begin,
        };
        let mut all_tokens: Vec<u32> = self.initial_prompt(opts)?;
        let mut prompt_reset_since = 0;
        let mut seek = 0usize;
        let mut windows_done = 0usize;
        let mut reported = 0usize;
        let mut last_speech = 0.0;
        let input_stride = cw::N_FRAMES / self.config.max_source_positions;

        while seek < content_frames {
            if let Some(regions) = &regions {
                // Jump over stretches VAD found no speech in.
                let now = seek as f64 / FRAMES_PER_S;
                match regions.iter().find(|&&(_, end)| end > now + 0.05) {
                    None => break,
                    Some(&(start, _)) if start > now => {
                        seek = ((start * FRAMES_PER_S) as usize).min(content_frames);
                        if seek >= content_frames {
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            let time_offset = seek as f64 / FRAMES_PER_S;
            let segment_size = cw::N_FRAMES.min(content_frames - seek);
            let samples = &pcm[seek * cw::HOP_LENGTH..(seek + segment_size) * cw::HOP_LENGTH];
            if rms(samples) < SILENCE_RMS {
                seek += segment_size;
                windows_done += 1;
                let progress =
                    progress_at(seek, total_s, windows_done, &out.segments, &mut reported);
                if on_progress(&progress).is_break() {
                    return Err(AsrError::Cancelled);
                }
                continue;
            }
            let window = mel_window(&mel, mel_frames, n_mels, seek, segment_size);
            let t_enc = std::time::Instant::now();
            let audio = self.encode(&run, window)?;
            let enc_s = t_enc.elapsed().as_secs_f64();
            let t_dec = std::time::Instant::now();
            let lang = match &language {
                Some(l) => l.clone(),
                None => {
                    let l = self.detect_language(&run, &audio)?;
                    tracing::debug!(language = %l, "detected language");
                    out.language = l.clone();
                    language = Some(l.clone());
                    l
                }
            };
            let (prompt, sot_index) =
                self.prompt(&all_tokens[prompt_reset_since..], &lang, opts.translate);
            // Asked again before each fallback attempt, so a cancel does not wait out a window
            // that needs several temperatures.
            // Everything is reported already: `at` carries no text, however often it is sent.
            let at = progress_at(seek, total_s, windows_done, &out.segments, &mut reported);
            let mut proceed = || on_progress(&at).is_continue();
            let (result, text) = self.decode_with_fallback(
                &run,
                &audio,
                &rules,
                &prompt,
                sot_index,
                opts,
                windows_done,
                &mut proceed,
            )?;
            windows_done += 1;
            let dec_s = t_dec.elapsed().as_secs_f64();
            tracing::debug!(enc_s, dec_s, tokens = result.tokens.len(), "window timing");

            let skip = result.no_speech_prob > 0.6 && result.avg_logprob < -1.0;
            if skip {
                seek += segment_size;
            } else {
                let before = out.segments.len();
                let mut tokens = Vec::new();
                seek += self.add_segments(
                    &result,
                    &text,
                    time_offset,
                    total_s,
                    segment_size,
                    Some(input_stride),
                    &mut out.segments,
                    &mut tokens,
                )?;
                if opts.word_timestamps && out.segments.len() > before {
                    let window = WordWindow {
                        segments: before..out.segments.len(),
                        tokens,
                        frames: segment_size,
                        offset: time_offset,
                    };
                    self.add_words(
                        &run,
                        &audio,
                        &lang,
                        opts.translate,
                        &[window],
                        &mut out.segments,
                        &mut last_speech,
                    )?;
                }
                all_tokens.extend_from_slice(&result.tokens);
                if !opts.condition_on_previous_text || result.temperature > 0.5 {
                    prompt_reset_since = all_tokens.len();
                }
                tracing::debug!(
                    time_offset,
                    new = out.segments.len() - before,
                    temperature = result.temperature,
                    "window decoded"
                );
            }
            let progress = progress_at(seek, total_s, windows_done, &out.segments, &mut reported);
            if on_progress(&progress).is_break() {
                return Err(AsrError::Cancelled);
            }
        }
        Ok(out)
    }
}

fn words_need_ct2() -> AsrError {
    AsrError::InvalidOptions(
        "word timestamps need the CTranslate2 engine (`--engine ct2`); this worker runs candle"
            .into(),
    )
}

/// An encoder output handed to the other engine's decoder: a bug, not an input problem.
fn mismatched() -> AsrError {
    AsrError::Runtime {
        context: "decoding",
        source: "an encoder output of one engine reached the other's decoder".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_flags_repetition() {
        let plain = "The quick brown fox jumps over the lazy dog.";
        let looped = "I'm sorry. ".repeat(30);
        assert!(compression_ratio(plain) < 2.4);
        assert!(compression_ratio(&looped) > 2.4);
        assert_eq!(compression_ratio(""), 0.0);
    }
}
