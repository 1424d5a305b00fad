//! [`WhisperEngine`]: a loaded Whisper model and the long-form transcription loop (30 s windows,
//! timestamp seeking, temperature fallback, no-speech skipping, prompt conditioning, VAD skips).

use std::io::Write;
use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as cw, Config};

use crate::decode::{LogitRules, WindowRequest, WindowResult, decode_window};
use crate::model::{WhisperNet, tensor_bytes};
use crate::tokens::TextTokenizer;
use crate::vad::SileroVad;
use crate::{AsrError, DeviceSpec, Progress, Segment, TranscribeOptions, Transcript};
use voxfleet_models::WhisperFiles;

const SAMPLE_RATE: f64 = cw::SAMPLE_RATE as f64;
/// Mel frames per second (hop of 160 samples).
const FRAMES_PER_S: f64 = SAMPLE_RATE / cw::HOP_LENGTH as f64;
/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;
const TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
/// Windows quieter than this RMS (−70 dBFS) are digital silence: skipped without decoding
/// (Whisper tends to hallucinate "you" on them even with VAD off).
const SILENCE_RMS: f32 = 3.2e-4;

/// Progress once the first `seek` mel frames are done.
fn progress_at(seek: usize, total_s: f64, windows_done: usize, segments: usize) -> Progress {
    Progress {
        processed_s: (seek as f64 / FRAMES_PER_S).min(total_s),
        total_s,
        windows_done,
        segments_so_far: segments,
    }
}

fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// A loaded Whisper model. Immutable: share it in an `Arc` and call [`WhisperEngine::transcribe`]
/// from several threads at once (each call has its own decoder caches).
pub struct WhisperEngine {
    name: String,
    device: DeviceSpec,
    net: WhisperNet,
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
    /// Loads weights (converted to f32 on CPU, f16 on CUDA), tokenizer and config.
    pub fn load(src: &WhisperFiles, device: DeviceSpec) -> Result<Self, AsrError> {
        let dev = device.open()?;
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
        let buf = std::fs::read(&src.weights).map_err(|e| load_err("weights", &src.weights, e))?;
        let tensors = candle_core::safetensors::load_buffer(&buf, &Device::Cpu)
            .map_err(|e| load_err("weights", &src.weights, e))?;
        drop(buf);
        let dtype = if dev.is_cpu() { DType::F32 } else { DType::F16 };
        let vb = VarBuilder::from_tensors(tensors, dtype, &dev);
        let net = WhisperNet::load(vb, config).map_err(|e| load_err("weights", &src.weights, e))?;
        let bytes = tensor_bytes(net.tensors().into_iter());
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
        tracing::info!(model = %src.name, %device, bytes, "loaded whisper");
        Ok(Self {
            name: src.name.clone(),
            device,
            net,
            mel_filters: src.mel_filters.clone(),
            multilingual: src.multilingual,
            suppress,
            suppress_begin: src.suppress_ids_begin.clone(),
            tokenizer,
            bytes,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn device(&self) -> DeviceSpec {
        self.device
    }

    /// Bytes of weights held on the device.
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

        let t_mel = std::time::Instant::now();
        let mel = self.mel(pcm)?;
        tracing::debug!(mel_s = t_mel.elapsed().as_secs_f64(), "log-mel computed");
        let content_frames = pcm.len() / cw::HOP_LENGTH;
        let sp = &self.tokenizer.special;
        let rules = LogitRules {
            special: sp,
            suppress: &self.suppress,
            suppress_begin: &self.suppress_begin,
        };
        let mut all_tokens: Vec<u32> = match &opts.initial_prompt {
            Some(p) if !p.trim().is_empty() => self.tokenizer.encode(&format!(" {}", p.trim()))?,
            _ => Vec::new(),
        };
        let mut prompt_reset_since = 0;
        let mut seek = 0usize;
        let mut windows_done = 0usize;
        let input_stride = cw::N_FRAMES / self.net.config.max_source_positions;
        let max_new = self.net.config.max_target_positions / 2;

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
                let progress = progress_at(seek, total_s, windows_done, out.segments.len());
                if on_progress(&progress).is_break() {
                    return Err(AsrError::Cancelled);
                }
                continue;
            }
            let mut window = mel.narrow(2, seek, segment_size)?;
            if segment_size < cw::N_FRAMES {
                window = window.pad_with_zeros(2, 0, cw::N_FRAMES - segment_size)?;
            }
            let t_enc = std::time::Instant::now();
            let audio = self.net.encode(&window)?;
            let enc_s = t_enc.elapsed().as_secs_f64();
            let t_dec = std::time::Instant::now();
            let lang = match &language {
                Some(l) => l.clone(),
                None => {
                    let l = self.detect_language(&audio)?;
                    tracing::debug!(language = %l, "detected language");
                    out.language = l.clone();
                    language = Some(l.clone());
                    l
                }
            };
            let mut prompt = Vec::new();
            let history = &all_tokens[prompt_reset_since..];
            if !history.is_empty() {
                prompt.push(sp.sot_prev);
                let keep = history.len().min(max_new - 1);
                prompt.extend_from_slice(&history[history.len() - keep..]);
            }
            let sot_index = prompt.len();
            prompt.push(sp.sot);
            if self.multilingual {
                prompt.push(self.tokenizer.language_token(&lang).unwrap_or(sp.sot + 1));
                prompt.push(if opts.translate {
                    sp.translate
                } else {
                    sp.transcribe
                });
            }
            // Asked again before each fallback attempt, so a cancel does not wait out a window
            // that needs several temperatures.
            let at = progress_at(seek, total_s, windows_done, out.segments.len());
            let mut proceed = || on_progress(&at).is_continue();
            let (result, text) = self.decode_with_fallback(
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
                seek += self.add_segments(
                    &result,
                    &text,
                    time_offset,
                    total_s,
                    segment_size,
                    input_stride,
                    &mut out.segments,
                )?;
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
            let progress = progress_at(seek, total_s, windows_done, out.segments.len());
            if on_progress(&progress).is_break() {
                return Err(AsrError::Cancelled);
            }
        }
        Ok(out)
    }
}

impl WhisperEngine {
    /// `Some(code)` when the language is fixed, `None` when it is to be detected.
    fn check_language(&self, opts: &TranscribeOptions) -> Result<Option<String>, AsrError> {
        let requested = opts
            .language
            .as_deref()
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty() && l != "auto");
        if !self.multilingual {
            if opts.translate {
                return Err(AsrError::InvalidOptions(format!(
                    "model {} is English-only and cannot translate",
                    self.name
                )));
            }
            return match requested {
                None => Ok(Some("en".into())),
                Some(l) if l == "en" => Ok(Some(l)),
                Some(l) => Err(AsrError::UnsupportedLanguage(l)),
            };
        }
        match requested {
            None => Ok(None),
            Some(l) if self.tokenizer.language_token(&l).is_some() => Ok(Some(l)),
            Some(l) => Err(AsrError::UnsupportedLanguage(l)),
        }
    }

    /// Log-mel of the whole file plus 30 s of silence, [1, n_mels, frames].
    fn mel(&self, pcm: &[f32]) -> Result<Tensor, AsrError> {
        let n_mels = self.net.config.num_mel_bins;
        let (mel, frames) = crate::mel::log_mel(pcm, cw::N_SAMPLES, &self.mel_filters, n_mels);
        let mel = Tensor::from_vec(mel, (1, n_mels, frames), self.net.device())?;
        Ok(mel.to_dtype(self.net.dtype())?)
    }

    /// The most likely language token after `<|startoftranscript|>`.
    fn detect_language(&self, audio: &Tensor) -> Result<String, AsrError> {
        let sp = &self.tokenizer.special;
        let mut cache = self.net.new_cache(audio)?;
        let input = Tensor::new(&[[sp.sot]], self.net.device())?;
        let logits = self
            .net
            .last_logits(&self.net.decode(&input, &mut cache)?)?;
        let row = &logits[0];
        sp.languages
            .iter()
            .filter(|(_, id)| (*id as usize) < row.len())
            .max_by(|a, b| row[a.1 as usize].total_cmp(&row[b.1 as usize]))
            .map(|(code, _)| code.clone())
            .ok_or_else(|| AsrError::UnsupportedLanguage("(none in tokenizer)".into()))
    }

    /// Decodes at increasing temperatures until the text is neither repetitive nor improbable.
    /// `proceed` is asked before every attempt after the first; false means cancelled.
    #[allow(clippy::too_many_arguments)]
    fn decode_with_fallback(
        &self,
        audio: &Tensor,
        rules: &LogitRules<'_>,
        prompt: &[u32],
        sot_index: usize,
        opts: &TranscribeOptions,
        window: usize,
        proceed: &mut dyn FnMut() -> bool,
    ) -> Result<(WindowResult, String), AsrError> {
        let schedule: Vec<f32> = match opts.temperature {
            Some(t) => vec![t.max(0.0)],
            None => TEMPERATURES.to_vec(),
        };
        let mut last = None;
        for (i, &temperature) in schedule.iter().enumerate() {
            if i > 0 && !proceed() {
                return Err(AsrError::Cancelled);
            }
            let req = WindowRequest {
                prompt,
                sot_index,
                temperature,
                beam_size: opts.beam_size.max(1),
                max_new: self.net.config.max_target_positions / 2,
                seed: 0x5eed ^ ((window as u64) << 8) ^ i as u64,
            };
            let result = decode_window(&self.net, audio, rules, &req)?;
            let text = self.tokenizer.decode(&result.tokens)?;
            let ratio = compression_ratio(&text);
            let needs_fallback =
                (ratio > 2.4 || result.avg_logprob < -1.0) && result.no_speech_prob <= 0.6;
            tracing::trace!(
                temperature,
                ratio,
                avg_logprob = result.avg_logprob,
                "window attempt"
            );
            last = Some((result, text));
            if !needs_fallback {
                break;
            }
        }
        last.ok_or_else(|| AsrError::InvalidOptions("empty temperature schedule".into()))
    }

    /// Turns a window's tokens into segments; returns how many mel frames to advance.
    #[allow(clippy::too_many_arguments)]
    fn add_segments(
        &self,
        result: &WindowResult,
        window_text: &str,
        time_offset: f64,
        total_s: f64,
        segment_size: usize,
        input_stride: usize,
        out: &mut Vec<Segment>,
    ) -> Result<usize, AsrError> {
        let ts = self.tokenizer.special.timestamp_begin;
        let tokens = &result.tokens;
        let is_ts = |t: u32| t >= ts;
        let secs = |t: u32| (t - ts) as f64 * TIME_PRECISION;
        let compression = compression_ratio(window_text);
        let mut push = |start: f64, end: f64, toks: &[u32]| -> Result<(), AsrError> {
            let text = self.tokenizer.decode(toks)?;
            let start = time_offset + start;
            // No words (only punctuation: Whisper's answer to noise), or past the end of the
            // audio (timestamps into the zero padding of the last window): not a segment.
            if !text.chars().any(char::is_alphanumeric) || start >= total_s {
                return Ok(());
            }
            let end = (time_offset + end).clamp(start, total_s);
            out.push(Segment {
                start,
                end,
                text,
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
                temperature: result.temperature,
                compression_ratio: compression,
            });
            Ok(())
        };
        let single_ending = tokens.len() >= 2
            && is_ts(tokens[tokens.len() - 1])
            && !is_ts(tokens[tokens.len() - 2]);
        let mut cuts: Vec<usize> = (1..tokens.len())
            .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
            .collect();
        if cuts.is_empty() {
            // No complete pair: one segment for the window, advance by the whole window.
            let mut end = segment_size as f64 / FRAMES_PER_S;
            if let Some(&last) = tokens.iter().rev().find(|&&t| is_ts(t))
                && last != ts
            {
                end = secs(last);
            }
            push(0.0, end, tokens)?;
            return Ok(segment_size);
        }
        if single_ending {
            cuts.push(tokens.len());
        }
        let mut from = 0;
        for &cut in &cuts {
            let piece = &tokens[from..cut];
            if let (Some(&a), Some(&b)) = (piece.first(), piece.last())
                && is_ts(a)
                && is_ts(b)
            {
                push(secs(a), secs(b), piece)?;
            }
            from = cut;
        }
        if single_ending {
            Ok(segment_size)
        } else {
            // Resume at the last complete timestamp pair (a pair at 0.00 would not move: take
            // the whole window then).
            let advance = (tokens[from - 1] - ts) as usize * input_stride;
            Ok(if advance == 0 { segment_size } else { advance })
        }
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
