//! Short single-speaker sub-segments on the global frame grid, for [`crate::diarize`]'s
//! `Clustering::SubSegments`.
//!
//! Why: segmentation-3.0 names at most three *local* speakers per 10 s window, and on voices it
//! does not separate well (synthetic voices, telephone audio) it gives one local speaker to two
//! people who take turns. The embedding of that local speaker is then a mixture, and clustering
//! such mixtures merges the people. Embedding short stretches where the estimated speaker count
//! is exactly one (1.5 s by default, as x-vector/VBx pipelines do) keeps each embedding to one
//! voice in all but the stretches that straddle a turn change; the window's local speakers are
//! then only used to say who else speaks in overlapped frames.
//!
//! Everything here is plain bookkeeping on frame indices; the model runs in `diarize`.

use realfft::RealFftPlanner;

use crate::cluster::cosine_similarity;

/// Energy above 4.2 kHz at least this far below the 0.3–3.4 kHz band (dB) marks telephone-band
/// audio. Wideband speech in the development set sits at −10 to −26 dB; audio that was 8 kHz
/// before resampling has next to nothing there.
const NARROWBAND_DB: f64 = -35.0;

/// How sub-segments are cut and their clusters cleaned up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubSegmentOptions {
    /// Length of a sub-segment, seconds. Default 1.5.
    pub len_s: f64,
    /// Hop between sub-segments of one run, seconds. Default 0.75.
    pub step_s: f64,
    /// Runs of single-speaker frames shorter than this are not embedded. Default 0.5.
    pub min_s: f64,
    /// Clusters holding less speech than this (seconds of sub-segment length, overlaps
    /// counted once per sub-segment) are folded into their nearest larger cluster when no
    /// exact speaker count is given. Default 3.0.
    pub min_cluster_s: f64,
    /// Cluster the embeddings less the recording's mean embedding (what every voice of the
    /// recording shares: channel, band, room). Default false: on the development set it
    /// helped telephone audio but split real meetings where one person talks most (the mean
    /// is then that person, and what is left of their segments is noise).
    pub center: bool,
}

impl Default for SubSegmentOptions {
    fn default() -> Self {
        Self {
            len_s: 1.5,
            step_s: 0.75,
            min_s: 0.5,
            min_cluster_s: 3.0,
            center: false,
        }
    }
}

/// `embeddings` less their mean; a vector left at zero keeps its original value.
pub fn centered(embeddings: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let dim = embeddings.first().map_or(0, Vec::len);
    let mut mean = vec![0f32; dim];
    for e in embeddings {
        for (m, x) in mean.iter_mut().zip(e) {
            *m += x / embeddings.len() as f32;
        }
    }
    embeddings
        .iter()
        .map(|e| {
            let c: Vec<f32> = e.iter().zip(&mean).map(|(x, m)| x - m).collect();
            if c.iter().any(|&x| x != 0.0) {
                c
            } else {
                e.clone()
            }
        })
        .collect()
}

/// Whether 16 kHz `pcm` is telephone-band (nothing above 4 kHz): see [`NARROWBAND_DB`].
/// Every voice of such audio looks more alike to a speaker model trained on wideband speech,
/// so sub-segment clustering uses a tighter threshold there and known-speaker naming a higher
/// bar ([`crate::assign::known_speaker_min_similarity`]). Looks at up to 2,000 frames of 512
/// samples spread over the input (a hand-written band-energy ratio: no crate measures this).
pub fn is_narrowband(pcm: &[f32]) -> bool {
    const N: usize = 512;
    const SR: f64 = 16_000.0;
    let frames = pcm.len() / N;
    if frames == 0 {
        return false;
    }
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let window: Vec<f64> = (0..N)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N as f64).cos())
        .collect();
    let stride = frames.div_ceil(2000);
    let (mut low, mut high) = (0.0f64, 0.0f64);
    for frame in (0..frames).step_by(stride) {
        for ((x, &s), w) in input
            .iter_mut()
            .zip(&pcm[frame * N..(frame + 1) * N])
            .zip(&window)
        {
            *x = s as f64 * w;
        }
        if fft.process(&mut input, &mut spectrum).is_err() {
            return false;
        }
        for (bin, c) in spectrum.iter().enumerate() {
            let hz = bin as f64 * SR / N as f64;
            let power = c.norm_sqr();
            if (300.0..3400.0).contains(&hz) {
                low += power;
            } else if (4200.0..7800.0).contains(&hz) {
                high += power;
            }
        }
    }
    low > 0.0 && 10.0 * (high / low).max(1e-30).log10() < NARROWBAND_DB
}

/// Maximal runs `[start, end)` of frames whose count is exactly one.
pub fn single_speaker_runs(count: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &c) in count.iter().enumerate() {
        match (c == 1, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, count.len()));
    }
    runs
}

/// Cuts runs into sub-segments of `len` frames every `step` frames; the last one of a run ends
/// at the run's end. Runs shorter than `min` are skipped; runs up to `len` are kept whole.
pub fn cut(runs: &[(usize, usize)], len: usize, step: usize, min: usize) -> Vec<(usize, usize)> {
    let (len, step) = (len.max(1), step.max(1));
    let mut out = Vec::new();
    for &(a, b) in runs {
        let n = b.saturating_sub(a);
        if n < min.max(1) {
            continue;
        }
        if n <= len {
            out.push((a, b));
            continue;
        }
        let mut s = a;
        loop {
            if s + len >= b {
                out.push((b - len, b));
                break;
            }
            out.push((s, s + len));
            s += step;
        }
    }
    out
}

/// Folds clusters whose total length (frames of their segments) is under `min_frames` into the
/// most similar remaining cluster, keeping at least `keep_at_least` clusters (the largest ones).
/// Returns the new labels, numbered by first appearance, and the number of clusters.
pub fn fold_small_clusters(
    segments: &[(usize, usize)],
    labels: &[usize],
    embeddings: &[Vec<f32>],
    min_frames: usize,
    keep_at_least: usize,
) -> (Vec<usize>, usize) {
    let weights: Vec<usize> = segments.iter().map(|&(a, b)| b - a).collect();
    fold_light_clusters(&weights, labels, embeddings, min_frames, keep_at_least)
}

/// [`fold_small_clusters`] with a weight per item (frames, or 1 to count members): clusters
/// whose members weigh less than `min_weight` in all are folded.
pub fn fold_light_clusters<E: AsRef<[f32]>>(
    weights: &[usize],
    labels: &[usize],
    embeddings: &[E],
    min_weight: usize,
    keep_at_least: usize,
) -> (Vec<usize>, usize) {
    let k = labels.iter().max().map_or(0, |&m| m + 1);
    let mut size = vec![0usize; k];
    for (&w, &l) in weights.iter().zip(labels) {
        size[l] += w;
    }
    // Clusters by size, largest first; the large ones, and enough of the largest to keep the
    // floor, survive.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&x, &y| size[y].cmp(&size[x]).then(x.cmp(&y)));
    let keep: Vec<bool> = {
        let mut keep = vec![false; k];
        for (rank, &c) in order.iter().enumerate() {
            keep[c] = size[c] >= min_weight || rank < keep_at_least;
        }
        if !keep.iter().any(|&x| x)
            && let Some(&c) = order.first()
        {
            keep[c] = true;
        }
        keep
    };
    let dim = embeddings.first().map_or(0, |e| e.as_ref().len());
    let mut centroids = vec![vec![0f32; dim]; k];
    for (e, &l) in embeddings.iter().zip(labels) {
        for (c, x) in centroids[l].iter_mut().zip(e.as_ref()) {
            *c += x;
        }
    }
    // Each member of a folded cluster goes to the kept cluster nearest to its own embedding.
    let mut relabel: Vec<usize> = labels
        .iter()
        .zip(embeddings)
        .map(|(&l, e)| {
            if keep[l] {
                return l;
            }
            (0..k)
                .filter(|&c| keep[c])
                .max_by(|&x, &y| {
                    cosine_similarity(e.as_ref(), &centroids[x])
                        .total_cmp(&cosine_similarity(e.as_ref(), &centroids[y]))
                        .then(y.cmp(&x))
                })
                .unwrap_or(l)
        })
        .collect();
    let mut new_id = vec![usize::MAX; k];
    let mut next = 0;
    for l in &mut relabel {
        if new_id[*l] == usize::MAX {
            new_id[*l] = next;
            next += 1;
        }
        *l = new_id[*l];
    }
    (relabel, next)
}

/// Per frame (of `num_frames`), the label of the sub-segment covering it whose centre is
/// nearest; `None` where no sub-segment covers the frame.
pub fn frame_labels(
    segments: &[(usize, usize)],
    labels: &[usize],
    num_frames: usize,
) -> Vec<Option<usize>> {
    let mut best: Vec<Option<(usize, usize)>> = vec![None; num_frames];
    for (&(a, b), &l) in segments.iter().zip(labels) {
        let centre2 = a + b; // twice the centre, to stay in integers
        for (f, slot) in best.iter_mut().enumerate().take(b.min(num_frames)).skip(a) {
            let d = (2 * f + 1).abs_diff(centre2);
            if slot.is_none_or(|(bd, _)| d < bd) {
                *slot = Some((d, l));
            }
        }
    }
    best.into_iter().map(|s| s.map(|(_, l)| l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowband_is_told_from_wideband() {
        let tone = |hz: &[f64]| -> Vec<f32> {
            (0..16_000)
                .map(|i| {
                    hz.iter()
                        .map(|f| (2.0 * std::f64::consts::PI * f * i as f64 / 16_000.0).sin())
                        .sum::<f64>() as f32
                        * 0.1
                })
                .collect()
        };
        assert!(is_narrowband(&tone(&[440.0, 1200.0, 3000.0])));
        // A 5 kHz component 20 dB down is wideband.
        let mut wide = tone(&[440.0, 1200.0, 3000.0]);
        for (x, y) in wide.iter_mut().zip(tone(&[5000.0])) {
            *x += 0.1 * y;
        }
        assert!(!is_narrowband(&wide));
        assert!(!is_narrowband(&[]));
        assert!(!is_narrowband(&vec![0.0; 4096]));
    }

    #[test]
    fn runs_are_the_single_speaker_stretches() {
        assert_eq!(
            single_speaker_runs(&[0, 1, 1, 2, 1, 0, 1]),
            vec![(1, 3), (4, 5), (6, 7)]
        );
        assert!(single_speaker_runs(&[]).is_empty());
        assert!(single_speaker_runs(&[0, 2, 2]).is_empty());
    }

    #[test]
    fn runs_are_cut_into_overlapping_pieces_ending_at_the_run_end() {
        // len 4, step 2, min 2: a 1-frame run is dropped, a 3-frame run is kept whole, a 9-frame
        // run gives 0..4, 2..6, 4..8 and then 5..9 (aligned to the end).
        let segs = cut(&[(0, 1), (10, 13), (20, 29)], 4, 2, 2);
        assert_eq!(segs, vec![(10, 13), (20, 24), (22, 26), (24, 28), (25, 29)]);
        // A run of exactly len is one piece.
        assert_eq!(cut(&[(0, 4)], 4, 2, 1), vec![(0, 4)]);
    }

    #[test]
    fn small_clusters_fold_into_their_nearest_large_one() {
        let segments = vec![(0, 10), (10, 20), (20, 22), (22, 32), (32, 34)];
        let labels = vec![0, 0, 1, 2, 3];
        let embeddings = vec![
            vec![1.0, 0.0],
            vec![1.0, 0.1],
            vec![0.2, 1.0], // small, nearer cluster 2
            vec![0.0, 1.0],
            vec![1.0, 0.0], // small, nearer cluster 0
        ];
        let (labels2, k) = fold_small_clusters(&segments, &labels, &embeddings, 5, 1);
        assert_eq!((labels2, k), (vec![0, 0, 1, 1, 0], 2));
        // The floor keeps the largest clusters even when they are small.
        let (labels3, k) = fold_small_clusters(&segments, &labels, &embeddings, 100, 2);
        assert_eq!(k, 2);
        assert_eq!(labels3, vec![0, 0, 1, 1, 0]);
    }

    #[test]
    fn light_clusters_fold_by_member_count() {
        // Cluster 1 has one member, cluster 0 three, cluster 2 two: with a minimum of 2 members
        // only cluster 1 folds, into cluster 2, whose centroid is nearer.
        let labels = vec![0, 0, 0, 1, 2, 2];
        let embeddings = vec![
            [1.0f32, 0.0],
            [1.0, 0.1],
            [0.9, 0.0],
            [0.3, 1.0],
            [0.0, 1.0],
            [0.1, 1.0],
        ];
        let (folded, k) = fold_light_clusters(&[1; 6], &labels, &embeddings, 2, 1);
        assert_eq!((folded, k), (vec![0, 0, 0, 1, 1, 1], 2));
        // Weights count: one heavy member keeps its cluster.
        let (kept, k) = fold_light_clusters(&[1, 1, 1, 5, 1, 1], &labels, &embeddings, 2, 1);
        assert_eq!((kept, k), (labels.clone(), 3));
    }

    #[test]
    fn frames_take_the_label_of_the_nearest_centre() {
        // Segments 0..4 (label 0) and 2..6 (label 1): frames 0-2 are nearer the first centre
        // (2), frames 3-5 the second (4); frame 6 is uncovered.
        let labels = frame_labels(&[(0, 4), (2, 6)], &[0, 1], 7);
        assert_eq!(
            labels,
            vec![Some(0), Some(0), Some(0), Some(1), Some(1), Some(1), None]
        );
    }
}
