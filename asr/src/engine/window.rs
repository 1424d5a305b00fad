//! One 30 s window of the long-form loop: language, prompts, encoding, and decoding with
//! temperature fallback into timed segments.
use super::*;

impl WhisperEngine {
    /// `Some(code)` when the language is fixed, `None` when it is to be detected.
    pub(super) fn check_language(
        &self,
        opts: &TranscribeOptions,
    ) -> Result<Option<String>, AsrError> {
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
    pub(super) fn initial_prompt(&self, opts: &TranscribeOptions) -> Result<Vec<u32>, AsrError> {
        match opts.initial_prompt.as_deref() {
            Some(p) if !p.trim().is_empty() => self.tokenizer.encode(&format!(" {}", p.trim())),
            _ => Ok(Vec::new()),
        }
    }

    /// A window's prompt: `[<|startofprev|>, the last of history…,] <|startoftranscript|>`, and
    /// on multilingual models the language and task tokens; with the index of
    /// `<|startoftranscript|>`.
    pub(super) fn prompt(&self, history: &[u32], lang: &str, translate: bool) -> (Vec<u32>, usize) {
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
    pub(super) fn runner(&self) -> Run<'_> {
        match &self.net {
            Net::Ct2(net) => Run::Ct2(net.lease()),
            Net::Candle(net) => Run::Candle(net),
        }
    }

    /// Runs the encoder on one window's log-mel (`n_mels × 3000`, row-major).
    pub(super) fn encode(&self, run: &Run<'_>, mut window: Vec<f32>) -> Result<Encoded, AsrError> {
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
    pub(super) fn detect_language(
        &self,
        run: &Run<'_>,
        audio: &Encoded,
    ) -> Result<String, AsrError> {
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
    pub(super) fn decode_with_fallback(
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
    pub(super) fn add_segments(
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

/// One window of the whole file's log-mel (`n_mels × frames`, row-major): `size` frames from
/// `seek`, zero-padded to 3000 frames, `n_mels × 3000` row-major.
pub(super) fn mel_window(
    mel: &[f32],
    frames: usize,
    n_mels: usize,
    seek: usize,
    size: usize,
) -> Vec<f32> {
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
}
