//! Batched mode: the speech cut into chunks of at most 30 s at its longest pauses, decoded
//! several at a time; and word timing of decoded windows.
use super::*;

impl WhisperEngine {
    /// Batched mode: the speech (VAD regions, or the whole file without VAD) cut into chunks of
    /// at most 30 s at its longest pauses, each decoded once on its own, without timestamps,
    /// `opts.batch_size` chunks per encoder and decoder call (faster-whisper's batched pipeline
    /// and WhisperX do the same); each chunk gives one segment. No previous-text conditioning
    /// and no temperature fallback (`opts.temperature` or 0); the initial prompt conditions
    /// every chunk. Progress and cancellation between batches.
    pub(super) fn transcribe_batched(
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
    pub(super) fn decode_batch(
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
    pub(super) fn add_words(
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
}

/// One window's segments, for word timing.
pub(super) struct WordWindow {
    /// Where its segments are in the transcript.
    pub(super) segments: std::ops::Range<usize>,
    /// Each segment's text tokens.
    pub(super) tokens: Vec<Vec<u32>>,
    /// Mel frames of audio in the window.
    pub(super) frames: usize,
    /// The window's start in the file, in seconds.
    pub(super) offset: f64,
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
}
