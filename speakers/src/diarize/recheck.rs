//! [`DiarizeOptions::recheck`]: a second look at the speakers the clustering found, on longer
//! and cleaner audio than it clustered.
//!
//! The windows method clusters one embedding per (window, local speaker): short clips, and on
//! voices the segmentation model does not tell apart, mixtures of two people. A few such
//! clips can make a cluster of their own, a speaker who does not exist (on the development
//! set's `tune` part, most wrong speaker counts were one speaker too many, the extra one with
//! under 5 s of speech). The turns the pipeline has found say better where each speaker talks
//! alone, so each speaker's single-speaker stretches are cut into pieces of 1–3 s and embedded
//! again.
//!
//! Two found speakers are then the same person when their pieces agree with each other as well as
//! each speaker's pieces agree among themselves: each speaker's pieces are split in two interleaved
//! halves (even and odd in time), the similarity of the two halves' means is that speaker's
//! self-similarity, and the mean similarity of one speaker's halves to the other's is their
//! cross-similarity. The pair whose cross-similarity comes nearest to the lower self-similarity of
//! the two (of the one that has one; the recording's median self-similarity for two speakers of a
//! single piece each) is merged while it is within `margin` of it; then the merged speaker's halves
//! are formed again and the next pair looked at. Comparing with the recording's own self-similarity
//! rather than a fixed threshold is what makes the rule hold across channels: a telephone channel
//! lifts the similarity of different voices and of one voice alike. A speaker with a single piece
//! has no self-similarity; two such are left apart when no speaker of the recording has one. The
//! speaker-count hints are kept: nothing is merged below `min_speakers`, and nothing runs with
//! `num_speakers`.
//!
//! A speaker with under [`DiarizeOptions::fold_below_s`] of speech (2 s by default) has at most
//! one short piece to check; such a speaker is folded into the one whose mean embedding is nearest ([`fold_slight`]). On the
//! `tune` part the wrong counts left after the merges were extra speakers of 0.2–0.5 s; on its
//! real telephone-band part (AMI through a telephone channel), extra speakers of 1.1–1.9 s.
//!
//! Written here because no crate does it: it is specific to this pipeline's turns and model.
use crate::binarize::Turn;
use crate::cluster::cosine_similarity;
use crate::error::SpeakersError;
use crate::onnx::SAMPLE_RATE;

use super::{DiarizeOptions, Diarizer, Segmented, embed_batches, mean_embedding, turns_of};
use crate::powerset::NUM_LOCAL_SPEAKERS;

/// Single-speaker stretches shorter than this (seconds, after trimming) are not embedded.
const MIN_PIECE_S: f64 = 1.0;
/// Longer stretches are cut into equal pieces of at most this (seconds).
const MAX_PIECE_S: f64 = 3.0;
/// Trimmed off each end of a stretch (seconds): turn boundaries are found to about a frame
/// of 17 ms, but the voice of the neighbouring turn can bleed over for longer.
const TRIM_S: f64 = 0.1;
/// Pieces embedded per speaker at most, spread over the recording.
const MAX_PIECES: usize = 24;

/// Where each of `num_speakers` speakers talks alone in `turns`: sorted, non-overlapping
/// `(start, end)` stretches in seconds.
fn exclusive_stretches(turns: &[Turn], num_speakers: usize) -> Vec<Vec<(f64, f64)>> {
    let mut bounds: Vec<f64> = turns.iter().flat_map(|t| [t.start, t.end]).collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new(); num_speakers];
    for pair in bounds.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let mid = 0.5 * (a + b);
        let mut active = turns.iter().filter(|t| t.start <= mid && mid < t.end);
        let (Some(first), None) = (active.next(), active.next()) else {
            continue;
        };
        let Some(list) = out.get_mut(first.speaker) else {
            continue;
        };
        match list.last_mut() {
            Some(last) if last.1 >= a => last.1 = b,
            _ => list.push((a, b)),
        }
    }
    out
}

/// The pieces of `stretches` that are embedded: each trimmed by [`TRIM_S`] at both ends,
/// those of at least [`MIN_PIECE_S`] cut into equal pieces of at most [`MAX_PIECE_S`]; at
/// most [`MAX_PIECES`], evenly spread, in time order.
fn pieces(stretches: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for &(a, b) in stretches {
        let (a, b) = (a + TRIM_S, b - TRIM_S);
        let len = b - a;
        if len < MIN_PIECE_S {
            continue;
        }
        let n = (len / MAX_PIECE_S).ceil().max(1.0) as usize;
        let step = len / n as f64;
        out.extend((0..n).map(|i| (a + i as f64 * step, a + (i + 1) as f64 * step)));
    }
    if out.len() > MAX_PIECES {
        let n = out.len();
        out = (0..MAX_PIECES).map(|i| out[i * n / MAX_PIECES]).collect();
    }
    out
}

/// One speaker's pieces (start in seconds, embedding: unit length, centred when the
/// clustering was), in time order, split into interleaved halves.
#[derive(Clone)]
struct Halves {
    pieces: Vec<(f64, Vec<f32>)>,
    even: Vec<f32>,
    odd: Vec<f32>,
}

impl Halves {
    fn new(mut pieces: Vec<(f64, Vec<f32>)>) -> Option<Self> {
        pieces.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = |parity: usize| {
            mean_embedding(
                pieces
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 2 == parity)
                    .map(|(_, (_, e))| e.as_slice()),
            )
        };
        let even = half(0)?;
        let odd = half(1).unwrap_or_else(|| even.clone());
        Some(Self { pieces, even, odd })
    }

    /// Similarity of the two halves; `None` with a single piece.
    fn self_similarity(&self) -> Option<f32> {
        (self.pieces.len() >= 2).then(|| cosine_similarity(&self.even, &self.odd))
    }

    fn cross_similarity(&self, other: &Halves) -> f32 {
        let pairs = [
            (&self.even, &other.even),
            (&self.even, &other.odd),
            (&self.odd, &other.even),
            (&self.odd, &other.odd),
        ];
        pairs
            .iter()
            .map(|(a, b)| cosine_similarity(a, b))
            .sum::<f32>()
            / 4.0
    }
}

/// Which speakers to merge, given each speaker's pieces (start, embedding; empty: nothing to
/// compare). Returns each speaker's new id (ids numbered by their lowest old
/// speaker), or `None` when nothing is merged.
fn merges(
    speakers: Vec<Vec<(f64, Vec<f32>)>>,
    margin: f32,
    min_speakers: usize,
) -> Option<Vec<usize>> {
    let n = speakers.len();
    // Each group: its old speakers and their pieces' halves.
    let mut groups: Vec<(Vec<usize>, Option<Halves>)> = speakers
        .into_iter()
        .enumerate()
        .map(|(i, p)| (vec![i], Halves::new(p)))
        .collect();
    let mut merged = false;
    while groups.len() > min_speakers.max(1) {
        // What a speaker with a single piece is held to: the recording's median
        // self-similarity, when some speaker has one.
        let mut selfs: Vec<f32> = groups
            .iter()
            .filter_map(|(_, h)| h.as_ref()?.self_similarity())
            .collect();
        selfs.sort_by(f32::total_cmp);
        let typical = selfs.get(selfs.len() / 2).copied();
        let mut best: Option<(f32, usize, usize)> = None;
        for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                let (Some(ha), Some(hb)) = (&groups[a].1, &groups[b].1) else {
                    continue;
                };
                let reference = match (ha.self_similarity(), hb.self_similarity()) {
                    (Some(x), Some(y)) => x.min(y),
                    (Some(x), None) | (None, Some(x)) => x,
                    (None, None) => match typical {
                        Some(t) => t,
                        None => continue,
                    },
                };
                let score = ha.cross_similarity(hb) - reference;
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, a, b));
                }
            }
        }
        let Some((score, a, b)) = best.filter(|(s, _, _)| *s >= -margin) else {
            break;
        };
        tracing::debug!(score, "diarization: recheck merges two speakers");
        let (members, hb) = groups.remove(b);
        groups[a].0.extend(members);
        let mut pieces = groups[a].1.take().map_or_else(Vec::new, |h| h.pieces);
        pieces.extend(hb.map_or_else(Vec::new, |h| h.pieces));
        groups[a].1 = Halves::new(pieces);
        merged = true;
    }
    if !merged {
        return None;
    }
    let mut ids = vec![0; n];
    groups.sort_by_key(|(members, _)| members.iter().min().copied());
    for (id, (members, _)) in groups.iter().enumerate() {
        for &m in members {
            ids[m] = id;
        }
    }
    Some(ids)
}

/// One speaker's pieces: each one's start (seconds) and unit embedding.
type Pieces = Vec<(f64, Vec<f32>)>;

/// Turns and the number of speaker ids they may use: what [`Diarizer::second_look`] changes.
type Found = (Vec<Turn>, usize);

impl Diarizer {
    /// [`DiarizeOptions::recheck`] on the turns `found` of `found.1` speaker ids (see the
    /// module docs): merged and folded speakers get one id in `clusters`, `frame_labels` and
    /// `speaker_embeddings`, and the turns are made again. Returns the turns and the number
    /// of ids.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn second_look(
        &self,
        ctx: &Segmented<'_>,
        clusters: &mut [[Option<usize>; NUM_LOCAL_SPEAKERS]],
        frame_labels: &mut [Option<usize>],
        speaker_embeddings: &mut Vec<Vec<f32>>,
        found: Found,
        opts: &DiarizeOptions,
        check: &dyn Fn() -> Result<(), SpeakersError>,
    ) -> Result<Found, SpeakersError> {
        let (turns, num_speakers) = found;
        let Some(margin) = opts
            .recheck
            .filter(|_| opts.num_speakers.is_none() && num_speakers >= 2)
        else {
            return Ok((turns, num_speakers));
        };
        let pieces = self.embed_pieces(ctx, &turns, num_speakers, opts, check)?;
        let min_speakers = opts.min_speakers.unwrap_or(1);
        let ids = merges(pieces, margin, min_speakers);
        let mut speech = vec![0.0f64; num_speakers];
        for t in &turns {
            speech[t.speaker] += t.end - t.start;
        }
        let Some((ids, merged)) = fold_slight(
            ids,
            &speech,
            speaker_embeddings,
            min_speakers,
            opts.fold_below_s,
        ) else {
            return Ok((turns, num_speakers));
        };
        let renamed = |c: usize| ids.get(c).copied().unwrap_or(c);
        for window in clusters.iter_mut() {
            for c in window.iter_mut() {
                *c = c.map(renamed);
            }
        }
        for l in frame_labels.iter_mut() {
            *l = l.map(renamed);
        }
        *speaker_embeddings = merged;
        Ok(turns_of(
            ctx,
            clusters,
            frame_labels,
            speaker_embeddings.len(),
        ))
    }

    /// Each speaker's single-speaker stretches in `turns`, cut into [`pieces`] and embedded:
    /// by speaker, each piece's start and unit embedding (centred when the clustering was).
    fn embed_pieces(
        &self,
        ctx: &Segmented<'_>,
        turns: &[Turn],
        num_speakers: usize,
        opts: &DiarizeOptions,
        check: &dyn Fn() -> Result<(), SpeakersError>,
    ) -> Result<Vec<Pieces>, SpeakersError> {
        let pcm = ctx.pcm;
        let sample = |t: f64| ((t * SAMPLE_RATE as f64).round().max(0.0) as usize).min(pcm.len());
        let spans: Vec<(usize, (f64, f64))> = exclusive_stretches(turns, num_speakers)
            .iter()
            .enumerate()
            .flat_map(|(s, stretches)| pieces(stretches).into_iter().map(move |p| (s, p)))
            .collect();
        let clips: Vec<Vec<f32>> = spans
            .iter()
            .map(|&(_, (a, b))| pcm[sample(a)..sample(b)].to_vec())
            .collect();
        let embeddings = self.embed_all(&clips, opts.batch_size, &mut |_| {}, check)?;
        let weight = opts.recheck_weight.clamp(0.0, 1.0);
        let second = match self.second.as_deref().filter(|_| weight < 1.0) {
            Some(model) => Some(embed_batches(
                &clips,
                opts.batch_size,
                &mut |_| {},
                check,
                |refs| self.embed_second(model, refs),
            )?),
            None => None,
        };
        let background = self.background(opts, ctx.narrowband);
        let mut out: Vec<Pieces> = vec![Vec::new(); num_speakers];
        for (i, ((speaker, (start, _)), raw)) in spans.into_iter().zip(embeddings).enumerate() {
            let centred = match background {
                Some(bg) => bg.center(&raw, ctx.narrowband),
                None => raw,
            };
            let Some(unit) = crate::cluster::normalized(&centred) else {
                continue;
            };
            let piece = match second.as_ref().map(|s| crate::cluster::normalized(&s[i])) {
                None => unit,
                Some(None) => continue,
                Some(Some(other)) => fuse(&unit, &other, weight),
            };
            out[speaker].push((start, piece));
        }
        Ok(out)
    }
}

/// Two unit embeddings of one piece as one unit vector whose dot product with another so made
/// is `weight` × the first model's cosine + (1 − `weight`) × the second's.
fn fuse(first: &[f32], second: &[f32], weight: f32) -> Vec<f32> {
    let (a, b) = (weight.sqrt(), (1.0 - weight).sqrt());
    first
        .iter()
        .map(|x| a * x)
        .chain(second.iter().map(|x| b * x))
        .collect()
}

/// Folds the speakers of `ids` (each old speaker's new id; `None`: unchanged) with under
/// `below` seconds of speech into the one whose mean `embeddings` (by old speaker, by speech)
/// is nearest by cosine, while more than `min_speakers` with speech remain and one of them
/// has enough. Speakers without speech are left: they have no turns to move. Returns the new
/// ids, renumbered by lowest old speaker, and each new speaker's embedding (the unit mean of
/// its old speakers', weighted by their speech), or `None` when nothing changed.
fn fold_slight(
    ids: Option<Vec<usize>>,
    speech: &[f64],
    embeddings: &[Vec<f32>],
    min_speakers: usize,
    below: f64,
) -> Option<(Vec<usize>, Vec<Vec<f32>>)> {
    let changed = ids.is_some();
    let mut ids = ids.unwrap_or_else(|| (0..speech.len()).collect());
    let k = ids.iter().max().map_or(0, |m| m + 1);
    let mut total = vec![0.0f64; k];
    let mut sums: Vec<Vec<f32>> = vec![Vec::new(); k];
    for (old, &new) in ids.iter().enumerate() {
        let s = speech.get(old).copied().unwrap_or(0.0);
        total[new] += s;
        if let Some(e) = embeddings.get(old).filter(|e| !e.is_empty()) {
            sums[new].resize(e.len(), 0.0);
            for (x, y) in sums[new].iter_mut().zip(e) {
                *x += s.max(1e-3) as f32 * y;
            }
        }
    }
    let mut folded = false;
    loop {
        let alive: Vec<usize> = (0..k).filter(|&g| total[g] > 0.0).collect();
        if alive.len() <= min_speakers.max(1) || !alive.iter().any(|&g| total[g] >= below) {
            break;
        }
        let Some(&slight) = alive
            .iter()
            .filter(|&&g| total[g] < below && !sums[g].is_empty())
            .min_by(|&&a, &&b| total[a].total_cmp(&total[b]))
        else {
            break;
        };
        let Some(&into) = alive
            .iter()
            .filter(|&&g| g != slight && !sums[g].is_empty())
            .max_by(|&&a, &&b| {
                cosine_similarity(&sums[slight], &sums[a])
                    .total_cmp(&cosine_similarity(&sums[slight], &sums[b]))
            })
        else {
            break;
        };
        tracing::debug!(
            speech_s = total[slight],
            "diarization: folds a speaker with little speech"
        );
        for id in ids.iter_mut().filter(|id| **id == slight) {
            *id = into;
        }
        total[into] += total[slight];
        total[slight] = 0.0;
        let moved = std::mem::take(&mut sums[slight]);
        for (x, y) in sums[into].iter_mut().zip(moved) {
            *x += y;
        }
        folded = true;
    }
    if !(changed || folded) {
        return None;
    }
    // Renumber by lowest old speaker.
    let mut new_of = vec![usize::MAX; k];
    let mut merged = Vec::new();
    for id in ids.iter_mut() {
        if new_of[*id] == usize::MAX {
            new_of[*id] = merged.len();
            let sum = std::mem::take(&mut sums[*id]);
            merged.push(crate::cluster::normalized(&sum).unwrap_or(sum));
        }
        *id = new_of[*id];
    }
    Some((ids, merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binarize::turn;

    #[test]
    fn exclusive_stretches_leave_out_overlap() {
        let turns = [turn(0.0, 4.0, 0), turn(3.0, 6.0, 1), turn(6.0, 8.0, 1)];
        let s = exclusive_stretches(&turns, 3);
        assert_eq!(s[0], vec![(0.0, 3.0)]);
        // Adjacent turns of one speaker join into one stretch.
        assert_eq!(s[1], vec![(4.0, 8.0)]);
        assert!(s[2].is_empty());
    }

    #[test]
    fn pieces_are_trimmed_cut_and_capped() {
        // 0.2-0.9 is too short once trimmed; 2.0-9.2 is 7.0 s trimmed, three pieces of 2.33 s.
        let p = pieces(&[(0.0, 1.1), (2.0, 9.2)]);
        assert_eq!(p.len(), 3);
        assert!(
            (p[0].0 - 2.1).abs() < 1e-9 && (p[2].1 - 9.1).abs() < 1e-9,
            "{p:?}"
        );
        assert!(p.iter().all(|(a, b)| (b - a - 7.0 / 3.0).abs() < 1e-9));
        let long = pieces(&[(0.0, 1000.0)]);
        assert_eq!(long.len(), MAX_PIECES);
        assert!(long.windows(2).all(|w| w[0].1 <= w[1].0));
    }

    /// A unit vector at `deg` degrees in the plane of axes 0 and 1, with a little of axis
    /// `2 + k` so pieces of one voice are not identical.
    fn voice(deg: f32, k: usize) -> (f64, Vec<f32>) {
        let r = deg.to_radians();
        let mut v = vec![r.cos(), r.sin(), 0.0, 0.0, 0.0, 0.0];
        v[2 + k % 4] = 0.3;
        (k as f64, crate::cluster::normalized(&v).unwrap())
    }

    #[test]
    fn speakers_who_agree_as_well_as_with_themselves_merge() {
        // Speakers 0 and 2 are one voice (0°), speaker 1 another (80°).
        let speakers: Vec<Vec<(f64, Vec<f32>)>> = vec![
            (0..4).map(|k| voice(0.0, k)).collect(),
            (0..4).map(|k| voice(80.0, k)).collect(),
            (0..3).map(|k| voice(2.0, k + 1)).collect(),
        ];
        assert_eq!(merges(speakers.clone(), 0.05, 1), Some(vec![0, 1, 0]));
        // min_speakers 3: nothing may merge.
        assert_eq!(merges(speakers.clone(), 0.05, 3), None);
        // A margin wide enough merges the different voices too.
        assert_eq!(merges(speakers, 2.0, 1), Some(vec![0, 0, 0]));
    }

    #[test]
    fn a_speaker_without_pieces_is_left_alone() {
        let speakers: Vec<Vec<(f64, Vec<f32>)>> = vec![
            (0..4).map(|k| voice(0.0, k)).collect(),
            Vec::new(),
            vec![voice(1.0, 2)],
        ];
        // The one-piece speaker is compared against speaker 0's self-similarity.
        assert_eq!(merges(speakers, 0.05, 1), Some(vec![0, 1, 0]));
        // Two speakers with one piece each: nothing to compare them with.
        assert_eq!(
            merges(vec![vec![voice(0.0, 0)], vec![voice(0.0, 1)]], 0.5, 1),
            None
        );
    }

    #[test]
    fn fused_pieces_weigh_the_two_models_cosines() {
        let (a1, a2) = (voice(0.0, 0).1, voice(30.0, 1).1);
        let (b1, b2) = (voice(60.0, 2).1, voice(90.0, 3).1);
        let w = 0.7;
        let (x, y) = (fuse(&a1, &a2, w), fuse(&b1, &b2, w));
        let dot: f32 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
        let want = w * cosine_similarity(&a1, &b1) + (1.0 - w) * cosine_similarity(&a2, &b2);
        assert!((dot - want).abs() < 1e-5, "{dot} vs {want}");
        assert!((cosine_similarity(&x, &x) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn speakers_with_under_two_seconds_fold_into_the_nearest() {
        let e = |deg: f32| voice(deg, 0).1;
        let embeddings = vec![e(0.0), e(90.0), e(85.0), e(10.0)];
        // Speaker 2 (1.6 s) goes to speaker 1, its nearest; speaker 3 has no speech: left.
        let speech = [10.0, 5.0, 1.6, 0.0];
        assert_eq!(
            fold_slight(None, &speech, &embeddings, 1, 2.0).map(|(ids, _)| ids),
            Some(vec![0, 1, 1, 2])
        );
        // Merges already made are kept and renumbered with the fold.
        assert_eq!(
            fold_slight(Some(vec![0, 1, 2, 0]), &speech, &embeddings, 1, 2.0).map(|(ids, _)| ids),
            Some(vec![0, 1, 1, 0])
        );
        // Not below min_speakers, nor when nobody has enough speech.
        assert_eq!(fold_slight(None, &speech, &embeddings, 3, 2.0), None);
        assert_eq!(
            fold_slight(None, &[1.9, 0.4], &embeddings[..2], 1, 2.0),
            None
        );
    }
}
