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

impl WhisperEngine {
    /// Batched mode: the speech (VAD regions, or the whole file without VAD) cut into chunks of
    /// at most 30 s at its longest pauses, each decoded once on its own, without timestamps,
    /// `opts.batch_size` chunks per encoder and decoder call (faster-whisper's batched pipeline
    /// and WhisperX do the same); each chunk gives one segment. No previous-text conditioning
    /// and no temperature fallback (`opts.temperature` or 0); the initial prompt conditions
    /// every chunk. Progress and cancellation between batches.
    fn transcribe_batched(
        &self,
        pcm: &[f32],
        opts: &TranscribeOptions,
        vad: Option<&SileroVad>,
        on_progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Transcript, AsrError> {
        let total_s = pcm.len() as f64 / SAMPLE_RATE;
        let language = self.check_language(opts)?;
        let regions = match vad {
            Some(v) if opts.vad => v.speech_regions(pcm)?,
            _ => vec![(0.0, total_s)],
        };
        let mut out = Transcript {
            language: language.clone().unwrap_or_else(|| "en".into()),
            duration_s: total_s,
            segments: Vec::new(),
        };
        let chunks = merge_chunks(&regions, BATCH_CHUNK_S, BATCH_PAD_S, total_s);
        if chunks.is_empty() {
            return Ok(out);
        }
        let span = tracing::info_span!("transcribe", model = %self.name, audio_s = total_s, batched = true);
        let _enter = span.enter();
        let run = self.runner();
        let n_mels = self.config.num_mel_bins;
        let chunk_mel = |&(a, b): &(f64, f64)| {
            let from = ((a * SAMPLE_RATE) as usize).min(pcm.len());
            let to = ((b * SAMPLE_RATE) as usize).clamp(from, pcm.len());
            let samples = &pcm[from..to];
            let (mel, frames) =
                crate::mel::log_mel(samples, cw::N_SAMPLES, &self.mel_filters, n_mels);
            let size = (samples.len() / cw::HOP_LENGTH).min(cw::N_FRAMES);
            (mel_window(&mel, frames, n_mels, 0, size), size)
        };
        let sp = &self.tokenizer.special;
        let lang = match language {
            Some(l) => l,
            None => {
                let l = self.detect_language(&run, &self.encode(&run, chunk_mel(&chunks[0]).0)?)?;
                out.language = l.clone();
                l
            }
        };
        let initial = self.initial_prompt(opts)?;
        let (mut prompt, sot_index) = self.prompt(&initial, &lang, opts.translate);
        // Without timestamps, as faster-whisper's batched pipeline decodes: with them, Whisper
        // ends about every other full 30 s chunk before its last sentence (the sequential
        // loop repairs that by seeking back; here it took a second pass over the tails, which
        // cost more than batching saved). Each chunk is then one segment.
        prompt.push(sp.no_timestamps);
        let rules = LogitRules {
            special: sp,
            suppress: &self.suppress,
            suppress_begin: &self.suppress_begin,
        };
        let temperature = opts.temperature.unwrap_or(0.0).max(0.0);
        let mut windows_done = 0;
        let mut reported = 0usize;
        let mut last_speech = 0.0;
        for group in chunks.chunks(opts.batch_size.max(1)) {
            let mut mels = Vec::with_capacity(group.len() * n_mels * cw::N_FRAMES);
            let mut sizes = Vec::with_capacity(group.len());
            for c in group {
                let (mel, size) = chunk_mel(c);
                mels.extend(mel);
                sizes.push(size);
            }
            let t = std::time::Instant::now();
            let (audio, results) = self.decode_batch(
                &run,
                mels,
                group.len(),
                &rules,
                &prompt,
                sot_index,
                temperature,
                opts,
            )?;
            tracing::debug!(
                chunks = group.len(),
                s = t.elapsed().as_secs_f64(),
                "batch decoded"
            );
            let mut windows = Vec::with_capacity(group.len());
            for ((&(start, end), size), result) in group.iter().zip(sizes).zip(results) {
                let before = out.segments.len();
                let mut tokens = Vec::new();
                if result.no_speech_prob <= 0.6 || result.avg_logprob >= -1.0 {
                    let text = self.tokenizer.decode(&result.tokens)?;
                    self.add_segments(
                        &result,
                        &text,
                        start,
                        // The chunk's own end: nothing reaches into its padding.
                        end,
                        size,
                        None,
                        &mut out.segments,
                        &mut tokens,
                    )?;
                }
                windows.push(WordWindow {
                    segments: before..out.segments.len(),
                    tokens,
                    frames: size,
                    offset: start,
                });
            }
            if opts.word_timestamps && windows.iter().any(|w| !w.segments.is_empty()) {
                let audio = audio.ok_or_else(words_need_ct2)?;
                self.add_words(
                    &run,
                    &audio,
                    &lang,
                    opts.translate,
                    &windows,
                    &mut out.segments,
                    &mut last_speech,
                )?;
            }
            windows_done += group.len();
            let progress = Progress {
                processed_s: group.last().map_or(total_s, |c| c.1).min(total_s),
                total_s,
                windows_done,
                segments_so_far: out.segments.len(),
                new_text: new_text(&out.segments, &mut reported),
            };
            if on_progress(&progress).is_break() {
                return Err(AsrError::Cancelled);
            }
        }
        Ok(out)
    }

    /// Encodes and decodes `n` windows (`mels`: their log-mels one after another) with the same
    /// prompt at one temperature: in one call each on CTranslate2 (the encoder output comes
    /// back too, for word timing), one window at a time on candle.
    #[allow(clippy::too_many_arguments)]
    fn decode_batch(
        &self,
        run: &Run<'_>,
        mut mels: Vec<f32>,
        n: usize,
        rules: &LogitRules<'_>,
        prompt: &[u32],
        sot_index: usize,
        temperature: f32,
        opts: &TranscribeOptions,
    ) -> Result<(Option<Encoded>, Vec<WindowResult>), AsrError> {
        let beam_size = opts.beam_size.max(1);
        let max_new = self.config.max_target_positions / 2;
        match run {
            Run::Ct2(net) => {
                let audio = net.encode(&mut mels, n)?;
                if temperature > 0.0 {
                    crate::ct2::seed(0x5eed);
                }
                let step = Ct2Step {
                    temperature,
                    beam_size,
                    max_length: self.config.max_target_positions,
                };
                let results = net.generate(&audio, &vec![prompt; n], rules.suppress, &step)?;
                Ok((Some(Encoded::Ct2(audio)), results))
            }
            Run::Candle(net) => Ok((
                None,
                mels.chunks_exact(mels.len() / n.max(1))
                    .enumerate()
                    .map(|(i, window)| {
                        let Encoded::Candle(audio) = self.encode(run, window.to_vec())? else {
                            return Err(mismatched());
                        };
                        let req = WindowRequest {
                            prompt,
                            sot_index,
                            temperature,
                            beam_size,
                            max_new,
                            seed: 0x5eed ^ ((i as u64) << 8),
                        };
                        decode_window(net, &audio, rules, &req)
                    })
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    /// Word timestamps for the segments of the `windows` encoded in `audio` (one window, or a
    /// batch in order): each window's segment tokens aligned in one CTranslate2 call.
    #[allow(clippy::too_many_arguments)]
    fn add_words(
        &self,
        run: &Run<'_>,
        audio: &Encoded,
        lang: &str,
        translate: bool,
        windows: &[WordWindow],
        segments: &mut [Segment],
        last_speech: &mut f64,
    ) -> Result<(), AsrError> {
        let (Run::Ct2(net), Encoded::Ct2(audio)) = (run, audio) else {
            return Err(words_need_ct2());
        };
        let (start, _) = self.prompt(&[], lang, translate);
        let texts: Vec<Vec<u32>> = windows.iter().map(|w| w.tokens.concat()).collect();
        let frames: Vec<usize> = windows.iter().map(|w| w.frames).collect();
        let aligned = net.align(audio, &start, &texts, &frames)?;
        let decode = |t: &[u32]| self.tokenizer.decode(t).unwrap_or_default();
        for ((w, text), a) in windows.iter().zip(&texts).zip(aligned) {
            if text.is_empty() || w.segments.is_empty() {
                continue;
            }
            let pieces = words::unicode_pieces(text, &decode);
            let timed =
                words::time_words(words::group_words(pieces, lang), &a.path, &a.token_probs);
            let counts: Vec<usize> = w.tokens.iter().map(Vec::len).collect();
            words::assign(
                timed,
                &counts,
                &mut segments[w.segments.clone()],
                w.offset,
                last_speech,
            );
        }
        Ok(())
    }

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

    /// The tokens of `opts.initial_prompt` (none when it is absent or blank).
    fn initial_prompt(&self, opts: &TranscribeOptions) -> Result<Vec<u32>, AsrError> {
        match opts.initial_prompt.as_deref() {
            Some(p) if !p.trim().is_empty() => self.tokenizer.encode(&format!(" {}", p.trim())),
            _ => Ok(Vec::new()),
        }
    }

    /// A window's prompt: `[<|startofprev|>, the last of history…,] <|startoftranscript|>`, and
    /// on multilingual models the language and task tokens; with the index of
    /// `<|startoftranscript|>`.
    fn prompt(&self, history: &[u32], lang: &str, translate: bool) -> (Vec<u32>, usize) {
        let sp = &self.tokenizer.special;
        let mut prompt = Vec::new();
        if !history.is_empty() {
            prompt.push(sp.sot_prev);
            let keep = history.len().min(self.config.max_target_positions / 2 - 1);
            prompt.extend_from_slice(&history[history.len() - keep..]);
        }
        let sot_index = prompt.len();
        prompt.push(sp.sot);
        if self.multilingual {
            prompt.push(self.tokenizer.language_token(lang).unwrap_or(sp.sot + 1));
            prompt.push(if translate {
                sp.translate
            } else {
                sp.transcribe
            });
        }
        (prompt, sot_index)
    }

    /// The network for one transcription (on CTranslate2, waits for a free instance).
    fn runner(&self) -> Run<'_> {
        match &self.net {
            Net::Ct2(net) => Run::Ct2(net.lease()),
            Net::Candle(net) => Run::Candle(net),
        }
    }

    /// Runs the encoder on one window's log-mel (`n_mels × 3000`, row-major).
    fn encode(&self, run: &Run<'_>, mut window: Vec<f32>) -> Result<Encoded, AsrError> {
        match run {
            Run::Ct2(net) => Ok(Encoded::Ct2(net.encode(&mut window, 1)?)),
            Run::Candle(net) => {
                let n_mels = self.config.num_mel_bins;
                let mel = Tensor::from_vec(window, (1, n_mels, cw::N_FRAMES), net.device())?
                    .to_dtype(net.dtype())?;
                Ok(Encoded::Candle(net.encode(&mel)?))
            }
        }
    }

    /// The most likely language after `<|startoftranscript|>`, among the tokenizer's languages.
    fn detect_language(&self, run: &Run<'_>, audio: &Encoded) -> Result<String, AsrError> {
        let sp = &self.tokenizer.special;
        let unknown = || AsrError::UnsupportedLanguage("(none in tokenizer)".into());
        match (run, audio) {
            (Run::Ct2(net), Encoded::Ct2(audio)) => net
                .detect_language(audio)?
                .into_iter()
                .filter_map(|(token, _)| {
                    let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
                    sp.languages
                        .iter()
                        .find(|(c, _)| c == code)
                        .map(|(c, _)| c.clone())
                })
                .next()
                .ok_or_else(unknown),
            (Run::Candle(net), Encoded::Candle(audio)) => {
                let mut cache = net.new_cache(audio)?;
                let input = Tensor::new(&[[sp.sot]], net.device())?;
                let logits = net.last_logits(&net.decode(&input, &mut cache)?)?;
                let row = &logits[0];
                sp.languages
                    .iter()
                    .filter(|(_, id)| (*id as usize) < row.len())
                    .max_by(|a, b| row[a.1 as usize].total_cmp(&row[b.1 as usize]))
                    .map(|(code, _)| code.clone())
                    .ok_or_else(unknown)
            }
            _ => Err(mismatched()),
        }
    }

    /// Decodes at increasing temperatures until the text is neither repetitive nor improbable.
    /// `proceed` is asked before every attempt after the first; false means cancelled.
    #[allow(clippy::too_many_arguments)]
    fn decode_with_fallback(
        &self,
        run: &Run<'_>,
        audio: &Encoded,
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
            let seed = 0x5eed ^ ((window as u64) << 8) ^ i as u64;
            let max_new = self.config.max_target_positions / 2;
            let beam_size = opts.beam_size.max(1);
            let result = match (run, audio) {
                (Run::Ct2(net), Encoded::Ct2(audio)) => {
                    if temperature > 0.0 {
                        crate::ct2::seed(seed as u32);
                    }
                    let step = Ct2Step {
                        temperature,
                        beam_size,
                        max_length: self.config.max_target_positions,
                    };
                    let mut one = net.generate(audio, &[prompt], rules.suppress, &step)?;
                    one.pop().ok_or_else(|| AsrError::Runtime {
                        context: "decoding a window",
                        source: "CTranslate2 returned no result".into(),
                    })?
                }
                (Run::Candle(net), Encoded::Candle(audio)) => {
                    let req = WindowRequest {
                        prompt,
                        sot_index,
                        temperature,
                        beam_size,
                        max_new,
                        seed,
                    };
                    decode_window(net, audio, rules, &req)?
                }
                _ => return Err(mismatched()),
            };
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

    /// Turns a window's tokens into segments, and each segment's text tokens into `out_tokens`;
    /// returns how many mel frames to advance.
    /// `input_stride`: mel frames per timestamp step when the loop seeks (text after the last
    /// complete timestamp pair is then decoded again in the next window); `None` in batched
    /// mode, where nothing is decoded twice, so that text becomes a segment up to the window's
    /// end.
    #[allow(clippy::too_many_arguments)]
    fn add_segments(
        &self,
        result: &WindowResult,
        window_text: &str,
        time_offset: f64,
        total_s: f64,
        segment_size: usize,
        input_stride: Option<usize>,
        out: &mut Vec<Segment>,
        out_tokens: &mut Vec<Vec<u32>>,
    ) -> Result<usize, AsrError> {
        let ts = self.tokenizer.special.timestamp_begin;
        let eot = self.tokenizer.special.eot;
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
                words: Vec::new(),
            });
            out_tokens.push(toks.iter().copied().filter(|&t| t < eot).collect());
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
            return Ok(segment_size);
        }
        let Some(input_stride) = input_stride else {
            // Batched: the unfinished last segment runs to the end of the chunk.
            let tail = &tokens[from..];
            let start = tail
                .first()
                .filter(|&&t| is_ts(t))
                .copied()
                .unwrap_or(tokens[from - 1]);
            push(secs(start), segment_size as f64 / FRAMES_PER_S, tail)?;
            return Ok(segment_size);
        };
        // Resume at the last complete timestamp pair (a pair at 0.00 would not move: take the
        // whole window then).
        let advance = (tokens[from - 1] - ts) as usize * input_stride;
        Ok(if advance == 0 { segment_size } else { advance })
    }
}

/// One window's segments, for word timing.
struct WordWindow {
    /// Where its segments are in the transcript.
    segments: std::ops::Range<usize>,
    /// Each segment's text tokens.
    tokens: Vec<Vec<u32>>,
    /// Mel frames of audio in the window.
    frames: usize,
    /// The window's start in the file, in seconds.
    offset: f64,
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

/// Speech regions (seconds, in order) grouped into chunks of at most `max_s` seconds for
/// batched decoding. A chunk takes whole regions; when the next one does not fit, the chunk is
/// cut at the longest pause in its second half (VAD splits sentences at short pauses between
/// words, and a cut inside a sentence costs words on both sides). A region longer than `max_s`
/// is cut into `max_s` pieces. Each chunk then gets up to `pad_s` of the surrounding silence on
/// either side (never past half the pause to its neighbour), clamped to `[0, total_s]`.
fn merge_chunks(regions: &[(f64, f64)], max_s: f64, pad_s: f64, total_s: f64) -> Vec<(f64, f64)> {
    // Regions clipped to the file, long ones cut.
    let mut r: Vec<(f64, f64)> = Vec::new();
    for &(a, b) in regions {
        let (mut a, b) = (a.max(0.0), b.min(total_s));
        while b - a > max_s {
            r.push((a, a + max_s));
            a += max_s;
        }
        if b > a {
            r.push((a, b));
        }
    }
    let mut groups: Vec<(f64, f64)> = Vec::new();
    let mut i = 0;
    while i < r.len() {
        let start = r[i].0;
        let mut j = i;
        while j + 1 < r.len() && r[j + 1].1 - start <= max_s {
            j += 1;
        }
        let mut cut = j;
        if j + 1 < r.len() {
            let gap = |k: usize| r[k + 1].0 - r[k].1;
            cut = (i..=j)
                .filter(|&k| r[k].1 - start >= max_s / 2.0)
                .max_by(|&x, &y| gap(x).total_cmp(&gap(y)))
                .unwrap_or(j);
        }
        groups.push((start, r[cut].1));
        i = cut + 1;
    }
    let n = groups.len();
    (0..n)
        .map(|k| {
            let (a, b) = groups[k];
            let before = if k == 0 {
                a
            } else {
                (a - groups[k - 1].1) / 2.0
            };
            let after = if k + 1 == n {
                total_s - b
            } else {
                (groups[k + 1].0 - b) / 2.0
            };
            (a - pad_s.min(before), b + pad_s.min(after))
        })
        .collect()
}

/// One window of the whole file's log-mel (`n_mels × frames`, row-major): `size` frames from
/// `seek`, zero-padded to 3000 frames, `n_mels × 3000` row-major.
fn mel_window(mel: &[f32], frames: usize, n_mels: usize, seek: usize, size: usize) -> Vec<f32> {
    let mut out = vec![0f32; n_mels * cw::N_FRAMES];
    let size = size.min(cw::N_FRAMES).min(frames.saturating_sub(seek));
    for (m, row) in out.chunks_exact_mut(cw::N_FRAMES).enumerate() {
        let from = m * frames + seek;
        row[..size].copy_from_slice(&mel[from..from + size]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_take_whole_regions_and_cut_at_the_longest_pause() {
        // Regions of 4 s with 0.2 s pauses, one 1.5 s pause at 24.6 s: the first chunk stops
        // there (not at 29.2 s where the next region no longer fits).
        let mut r = Vec::new();
        let mut t = 1.0;
        for k in 0..12 {
            r.push((t, t + 4.0));
            t += 4.0 + if k == 4 { 1.5 } else { 0.2 };
        }
        let c = merge_chunks(&r, 30.0, 0.0, 100.0);
        assert_eq!(c[0], (1.0, r[4].1));
        assert_eq!(c[1].0, r[5].0);
        assert!(c.iter().all(|&(a, b)| b - a <= 30.0 + 1e-9), "{c:?}");
        assert_eq!(c.last().unwrap().1, r[11].1);
        // A region longer than the limit is cut; ends are clamped to the file.
        assert_eq!(
            merge_chunks(&[(40.0, 105.0)], 30.0, 0.0, 200.0),
            vec![(40.0, 70.0), (70.0, 100.0), (100.0, 105.0)]
        );
        assert_eq!(
            merge_chunks(&[(0.0, 10.0)], 30.0, 0.0, 8.0),
            vec![(0.0, 8.0)]
        );
        assert!(merge_chunks(&[(9.0, 10.0)], 30.0, 0.0, 8.0).is_empty());
        // Padding: up to pad_s, at most half the pause to the neighbour.
        assert_eq!(
            merge_chunks(&[(0.2, 20.0), (20.5, 40.0)], 25.0, 0.4, 60.0),
            vec![(0.0, 20.25), (20.25, 40.4)]
        );
    }

    #[test]
    fn mel_window_takes_rows_and_pads() {
        // 2 mel bins × 5 frames: row m holds 10m + frame.
        let mel: Vec<f32> = (0..2)
            .flat_map(|m| (0..5).map(move |f| (10 * m + f) as f32))
            .collect();
        let w = mel_window(&mel, 5, 2, 3, 2);
        assert_eq!(w.len(), 2 * cw::N_FRAMES);
        assert_eq!(&w[..3], &[3.0, 4.0, 0.0]);
        assert_eq!(&w[cw::N_FRAMES..cw::N_FRAMES + 3], &[13.0, 14.0, 0.0]);
        assert!(w[2..cw::N_FRAMES].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn compression_ratio_flags_repetition() {
        let plain = "The quick brown fox jumps over the lazy dog.";
        let looped = "I'm sorry. ".repeat(30);
        assert!(compression_ratio(plain) < 2.4);
        assert!(compression_ratio(&looped) > 2.4);
        assert_eq!(compression_ratio(""), 0.0);
    }
}
