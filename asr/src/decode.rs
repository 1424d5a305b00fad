//! Decoding one 30 s window: logit rules (suppression, timestamp grammar), greedy / sampled /
//! beam search over a batch of hypotheses that share the window's audio keys/values.

use candle_core::Tensor;

use crate::AsrError;
use crate::model::{DecoderCache, WhisperNet};
use crate::tokens::SpecialTokens;

/// The first timestamp may be at most this many 20 ms steps into the window (1.0 s).
pub(crate) const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;

/// What to decode in one window.
pub(crate) struct WindowRequest<'a> {
    /// `[<|startofprev|>, prompt…,] <|startoftranscript|>, [lang, task]`.
    pub prompt: &'a [u32],
    /// Index of `<|startoftranscript|>` in `prompt` (where no-speech probability is read).
    pub sot_index: usize,
    pub temperature: f32,
    /// > 1: beam search at temperature 0; at temperature > 0, the number of samples drawn.
    pub beam_size: usize,
    /// Most tokens to generate.
    pub max_new: usize,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct WindowResult {
    /// Generated tokens, without the final `<|endoftext|>`.
    pub tokens: Vec<u32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
}

/// Token rules applied to every step's logits before choosing.
pub(crate) struct LogitRules<'a> {
    pub special: &'a SpecialTokens,
    /// Never produced (the package's list plus task/control tokens).
    pub suppress: &'a [u32],
    /// Not produced as the first token (blank, `<|endoftext|>`).
    pub suppress_begin: &'a [u32],
}

fn block(logits: &mut [f32], range: std::ops::Range<usize>) {
    let end = range.end.min(logits.len());
    if range.start < end {
        logits[range.start..end].fill(f32::NEG_INFINITY);
    }
}

/// log-softmax into `out`.
pub(crate) fn log_softmax(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let lse = max + sum.ln();
    out.clear();
    out.extend(logits.iter().map(|&l| l - lse));
}

fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + xs.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

impl LogitRules<'_> {
    /// Masks `logits` in place given the tokens generated so far in this window (`seq`), and
    /// leaves their log-softmax in `logprobs`.
    pub(crate) fn apply(&self, logits: &mut [f32], seq: &[u32], logprobs: &mut Vec<f32>) {
        let ts = self.special.timestamp_begin as usize;
        let eot = self.special.eot as usize;
        let n = logits.len();
        let mut ban = |t: u32| {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        };
        if seq.is_empty() {
            self.suppress_begin.iter().for_each(|&t| ban(t));
        }
        self.suppress.iter().for_each(|&t| ban(t));
        ban(self.special.no_timestamps);

        // Timestamps come in pairs: after a lone timestamp the next token is a timestamp (or the
        // end); after a pair it is text.
        let is_ts = |t: u32| t as usize >= ts;
        let last_ts = seq.last().is_some_and(|&t| is_ts(t));
        let penult_ts = seq.len() < 2 || is_ts(seq[seq.len() - 2]);
        if last_ts {
            if penult_ts {
                block(logits, ts..n);
            } else {
                block(logits, 0..eot);
            }
        }
        // Timestamps never go backwards (a closing timestamp may repeat the opening one).
        if let Some(&prev) = seq.iter().rev().find(|&&t| is_ts(t)) {
            let floor = if last_ts && !penult_ts {
                prev
            } else {
                prev + 1
            };
            block(logits, ts..floor as usize);
        }
        // A window starts with a timestamp within its first second.
        if seq.is_empty() {
            block(logits, 0..ts);
            block(logits, ts + MAX_INITIAL_TIMESTAMP_STEPS as usize + 1..n);
        }
        // When timestamps together are likelier than any single text token, emit a timestamp.
        log_softmax(logits, logprobs);
        if ts < n {
            let ts_mass = log_sum_exp(&logprobs[ts..]);
            let best_text = logprobs[..ts]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            if ts_mass > best_text {
                block(logits, 0..ts);
                log_softmax(logits, logprobs);
            }
        }
    }
}

/// SplitMix64: a small deterministic generator for temperature sampling.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

fn sample(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = logits
        .iter()
        .map(|&l| ((l - max) / temperature).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let mut r = rng.next_f32() * total;
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i as u32;
        }
        r -= w;
    }
    argmax(logits)
}

/// The `k` best (index, value) pairs, best first.
fn top_k(xs: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &x) in xs.iter().enumerate() {
        if x == f32::NEG_INFINITY || (best.len() == k && x <= best[k - 1].1) {
            continue;
        }
        let pos = best.partition_point(|&(_, v)| v >= x);
        best.insert(pos, (i as u32, x));
        best.truncate(k);
    }
    best
}

struct Hypothesis {
    tokens: Vec<u32>,
    sum_logprob: f32,
}

impl Hypothesis {
    /// Length-normalised log-probability used to rank finished hypotheses.
    fn score(&self) -> f32 {
        self.sum_logprob / self.tokens.len().max(1) as f32
    }
}

/// Decodes one window given its audio features [1, 1500, D].
pub(crate) fn decode_window(
    net: &WhisperNet,
    audio: &Tensor,
    rules: &LogitRules<'_>,
    req: &WindowRequest<'_>,
) -> Result<WindowResult, AsrError> {
    let device = net.device();
    let mut cache = net.new_cache(audio)?;
    let prompt = Tensor::new(req.prompt, device)?.unsqueeze(0)?;
    let hidden = net.decode(&prompt, &mut cache)?;
    let first = net
        .logits_at(&hidden, 0, &[req.sot_index, req.prompt.len() - 1])?
        .to_vec2::<f32>()?;
    let mut scratch = Vec::new();
    log_softmax(&first[0], &mut scratch);
    let no_speech_prob = scratch
        .get(rules.special.no_speech as usize)
        .map_or(0.0, |lp| lp.exp());
    let first_logits = first[1].clone();
    // The prompt fills at most half the context; never run past the model's positions.
    let room = net.config.max_target_positions.saturating_sub(cache.len());
    let max_new = req.max_new.min(room);

    let best = if req.beam_size > 1 && req.temperature == 0.0 {
        beam_search(net, &mut cache, rules, first_logits, req.beam_size, max_new)?
    } else {
        let n = if req.temperature > 0.0 {
            req.beam_size.max(1)
        } else {
            1
        };
        sample_rows(net, &mut cache, rules, first_logits, n, max_new, req)?
    };
    let avg_logprob = best.sum_logprob / (best.tokens.len() + 1) as f32;
    Ok(WindowResult {
        tokens: best.tokens,
        avg_logprob,
        no_speech_prob,
        temperature: req.temperature,
    })
}

/// Greedy (temperature 0) or sampled decoding of `n` independent rows; returns the best row.
fn sample_rows(
    net: &WhisperNet,
    cache: &mut DecoderCache,
    rules: &LogitRules<'_>,
    first_logits: Vec<f32>,
    n: usize,
    max_new: usize,
    req: &WindowRequest<'_>,
) -> Result<Hypothesis, AsrError> {
    let eot = rules.special.eot;
    let mut rng = Rng(req.seed);
    let mut rows: Vec<Hypothesis> = (0..n)
        .map(|_| Hypothesis {
            tokens: Vec::new(),
            sum_logprob: 0.0,
        })
        .collect();
    let mut done = vec![false; n];
    if n > 1 {
        cache.select_rows(&vec![0; n])?;
    }
    let mut logits = vec![first_logits; n];
    let mut scratch = Vec::new();
    for _ in 0..max_new {
        for (r, row) in rows.iter_mut().enumerate() {
            if done[r] {
                continue;
            }
            let l = &mut logits[r];
            rules.apply(l, &row.tokens, &mut scratch);
            let tok = if req.temperature > 0.0 {
                sample(l, req.temperature, &mut rng)
            } else {
                argmax(l)
            };
            row.sum_logprob += scratch[tok as usize];
            if tok == eot {
                done[r] = true;
            } else {
                row.tokens.push(tok);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        let next: Vec<u32> = rows
            .iter()
            .zip(&done)
            .map(|(h, &d)| {
                if d {
                    eot
                } else {
                    *h.tokens.last().unwrap_or(&eot)
                }
            })
            .collect();
        let input = Tensor::new(next.as_slice(), net.device())?.unsqueeze(1)?;
        logits = net.last_logits(&net.decode(&input, cache)?)?;
    }
    let best = (0..n)
        .max_by(|&a, &b| rows[a].score().total_cmp(&rows[b].score()))
        .unwrap_or(0);
    Ok(rows.swap_remove(best))
}

/// Beam search: each live beam proposes its `beam + 1` best next tokens; the best `beam`
/// continuations that do not end the text live on, ended ones are kept until `beam` of them are
/// collected; the winner has the highest length-normalised log-probability.
fn beam_search(
    net: &WhisperNet,
    cache: &mut DecoderCache,
    rules: &LogitRules<'_>,
    first_logits: Vec<f32>,
    beam: usize,
    max_new: usize,
) -> Result<Hypothesis, AsrError> {
    let eot = rules.special.eot;
    let mut beams = vec![Hypothesis {
        tokens: Vec::new(),
        sum_logprob: 0.0,
    }];
    let mut logits = vec![first_logits];
    let mut finished: Vec<Hypothesis> = Vec::new();
    let mut logprobs = Vec::new();
    for _ in 0..max_new {
        let mut candidates: Vec<(f32, usize, u32)> = Vec::with_capacity(beams.len() * (beam + 1));
        for (r, h) in beams.iter().enumerate() {
            rules.apply(&mut logits[r], &h.tokens, &mut logprobs);
            for (tok, lp) in top_k(&logprobs, beam + 1) {
                candidates.push((h.sum_logprob + lp, r, tok));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next = Vec::with_capacity(beam);
        let mut parents = Vec::with_capacity(beam);
        let mut newly_finished = Vec::new();
        for (score, parent, tok) in candidates {
            let mut tokens = beams[parent].tokens.clone();
            if tok == eot {
                newly_finished.push(Hypothesis {
                    tokens,
                    sum_logprob: score,
                });
            } else {
                tokens.push(tok);
                next.push(Hypothesis {
                    tokens,
                    sum_logprob: score,
                });
                parents.push(parent as u32);
                if next.len() == beam {
                    break;
                }
            }
        }
        for h in newly_finished {
            if finished.len() >= beam {
                break;
            }
            finished.push(h);
        }
        if finished.len() >= beam || next.is_empty() {
            break;
        }
        cache.select_rows(&parents)?;
        let last: Vec<u32> = next
            .iter()
            .map(|h| *h.tokens.last().unwrap_or(&eot))
            .collect();
        beams = next;
        let input = Tensor::new(last.as_slice(), net.device())?.unsqueeze(1)?;
        logits = net.last_logits(&net.decode(&input, cache)?)?;
    }
    if finished.len() < beam {
        beams.sort_by(|a, b| b.sum_logprob.total_cmp(&a.sum_logprob));
        let missing = beam - finished.len();
        finished.extend(beams.into_iter().take(missing));
    }
    finished
        .into_iter()
        .max_by(|a, b| a.score().total_cmp(&b.score()))
        .ok_or_else(|| AsrError::Runtime {
            context: "beam search",
            source: "no hypothesis survived".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special() -> SpecialTokens {
        // A toy vocabulary: 0..10 text, 10 eot, 11 sot, …, 20.. timestamps.
        SpecialTokens {
            sot: 11,
            eot: 10,
            transcribe: 12,
            translate: 13,
            sot_prev: 14,
            sot_lm: 15,
            no_speech: 16,
            no_timestamps: 17,
            timestamp_begin: 20,
            languages: vec![],
        }
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let s = special();
        let rules = LogitRules {
            special: &s,
            suppress: &[],
            suppress_begin: &[],
        };
        let mut l = vec![0.0; 100];
        rules.apply(&mut l, &[], &mut Vec::new());
        assert!(l[..20].iter().all(|x| x.is_infinite()));
        assert!(l[20..=70].iter().all(|x| x.is_finite()));
        assert!(l[71..].iter().all(|x| x.is_infinite()));
    }

    #[test]
    fn timestamps_pair_and_never_go_back() {
        let s = special();
        let rules = LogitRules {
            special: &s,
            suppress: &[],
            suppress_begin: &[],
        };
        // After "<|0.40|> text": timestamps ≥ 0.40 and text allowed.
        let mut l = vec![0.0; 100];
        l[3] = 10.0;
        rules.apply(&mut l, &[40, 3], &mut Vec::new());
        assert!(l[20..40].iter().all(|x| x.is_infinite()));
        assert!(l[3].is_finite() && l[41].is_finite());
        // After "<|0.40|> text <|0.80|>": must close with a timestamp ≥ 0.80 or end.
        let mut l = vec![0.0; 100];
        l[10] = 50.0;
        rules.apply(&mut l, &[40, 3, 60], &mut Vec::new());
        assert!(l[..10].iter().all(|x| x.is_infinite()));
        assert!(l[10].is_finite() && l[60].is_finite() && l[59].is_infinite());
        // After a pair: text only.
        let mut l = vec![0.0; 100];
        l[5] = 5.0;
        rules.apply(&mut l, &[40, 3, 60, 60], &mut Vec::new());
        assert!(l[20..].iter().all(|x| x.is_infinite()));
    }

    #[test]
    fn top_k_orders_and_skips_banned() {
        let xs = [0.1, f32::NEG_INFINITY, 0.5, 0.3, 0.9];
        assert_eq!(top_k(&xs, 2), vec![(4, 0.9), (2, 0.5)]);
        assert_eq!(top_k(&xs, 10).len(), 4);
    }

    #[test]
    fn rng_is_uniformish() {
        let mut r = Rng(1);
        let m: f32 = (0..10_000).map(|_| r.next_f32()).sum::<f32>() / 10_000.0;
        assert!((m - 0.5).abs() < 0.02, "{m}");
    }
}
