//! [`Method::Windows`]: one embedding per (window, local speaker), clustered; every local
//! speaker then goes to its nearest centroid, two of one window to different clusters.
use std::borrow::Cow;

use super::*;

impl Diarizer {
    /// [`Method::Windows`]: embeds every (window, local speaker) candidate and clusters them.
    /// `None` when nothing can be embedded.
    pub(super) fn by_windows(
        &self,
        ctx: &Segmented<'_>,
        opts: &DiarizeOptions,
        cluster_opts: &ClusterOptions,
        report: &mut dyn FnMut(f64),
        check: &dyn Fn() -> Result<(), SpeakersError>,
    ) -> Result<Option<Labelled>, SpeakersError> {
        let (pcm, starts, activations) = (ctx.pcm, ctx.starts, ctx.activations);
        let num_windows = starts.len();
        let mut candidates = self.candidates(pcm, starts, activations, true);
        if candidates.is_empty() {
            candidates = self.candidates(pcm, starts, activations, false);
        }
        tracing::debug!(
            windows = num_windows,
            candidates = candidates.len(),
            "diarization: segmentation done"
        );
        if candidates.is_empty() {
            return Ok(None);
        }
        let embeddings =
            self.embed_all(&clips_of(pcm, &candidates), opts.batch_size, report, check)?;
        // What is clustered and assigned: the embeddings less the background, when asked.
        let centred: Vec<Cow<'_, [f32]>> = match self.background(opts, ctx.narrowband) {
            Some(bg) => embeddings
                .iter()
                .map(|e| Cow::Owned(bg.center(e, ctx.narrowband)))
                .collect(),
            None => embeddings
                .iter()
                .map(|e| Cow::Borrowed(e.as_slice()))
                .collect(),
        };

        // The clusters are trained on the clips with enough clean speech (all when none has).
        let mut trained: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].clean_s >= MIN_TRAIN_S)
            .collect();
        if trained.is_empty() {
            trained = (0..candidates.len()).collect();
        }
        let train: Vec<&[f32]> = trained.iter().map(|&i| centred[i].as_ref()).collect();
        let adaptive;
        let cluster_opts = match opts.threshold_scale.filter(|_| opts.threshold.is_none()) {
            Some(scale) => {
                let windows: Vec<usize> = trained.iter().map(|&i| candidates[i].window).collect();
                let apart =
                    (WINDOW_SAMPLES as f64 / (opts.step_s * SAMPLE_RATE as f64)).ceil() as usize;
                let threshold = adaptive_threshold(&train, &windows, apart, scale)
                    .unwrap_or(cluster_opts.threshold);
                tracing::debug!(threshold, "diarization: threshold from the recording");
                adaptive = ClusterOptions {
                    threshold,
                    ..*cluster_opts
                };
                &adaptive
            }
            None => match opts
                .gap_range
                .filter(|_| opts.threshold.is_none() && cluster_opts.num_speakers.is_none())
            {
                Some(range) => {
                    let heights = merge_heights(&train, cluster_opts.linkage)?;
                    let lower = cluster_opts.min_speakers.unwrap_or(1);
                    let upper = cluster_opts.max_speakers.unwrap_or(usize::MAX);
                    let count =
                        count_at_largest_gap(&heights, range).clamp(lower, upper.max(lower));
                    tracing::debug!(count, "diarization: speaker count from the dendrogram");
                    adaptive = ClusterOptions {
                        num_speakers: Some(count),
                        ..*cluster_opts
                    };
                    &adaptive
                }
                None => cluster_opts,
            },
        };
        let clustering = cluster_embeddings(&train, cluster_opts)?;
        let centroids = if cluster_opts.num_speakers.is_none() && opts.min_cluster_size > 1 {
            let (labels, k) = subsegment::fold_light_clusters(
                &vec![1; train.len()],
                &clustering.labels,
                &train,
                opts.min_cluster_size,
                cluster_opts.min_speakers.unwrap_or(1),
            );
            cluster_means(&labels, k, &train)
        } else {
            clustering.centroids
        };
        let mut clusters = vec![[None; NUM_LOCAL_SPEAKERS]; num_windows];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); centroids.len()];
        let mut first = 0;
        while first < candidates.len() {
            let window = candidates[first].window;
            let mut end = first;
            while end < candidates.len() && candidates[end].window == window {
                end += 1;
            }
            let sims: Vec<Vec<f32>> = (first..end)
                .map(|i| {
                    centroids
                        .iter()
                        .map(|c| cosine_similarity(&centred[i], c))
                        .collect()
                })
                .collect();
            for (offset, cluster) in best_assignment(&sims).into_iter().enumerate() {
                clusters[window][candidates[first + offset].speaker] = Some(cluster);
                members[cluster].push(first + offset);
            }
            first = end;
        }
        let speaker_embeddings = members
            .iter()
            .zip(&centroids)
            .map(|(members, centroid)| {
                mean_embedding(members.iter().map(|&m| embeddings[m].as_slice()))
                    .unwrap_or_else(|| centroid.clone())
            })
            .collect();
        Ok(Some(Labelled {
            clusters,
            speaker_embeddings,
            frame_labels: Vec::new(),
        }))
    }

    /// The (window, local speaker) pairs worth embedding, in window order. `strict = false`
    /// takes every active speaker with any audio (for inputs where nothing passes the limits).
    pub(super) fn candidates(
        &self,
        pcm: &[f32],
        starts: &[usize],
        activations: &[Vec<[f32; NUM_LOCAL_SPEAKERS]>],
        strict: bool,
    ) -> Vec<Candidate> {
        let frame_s = FRAME_SAMPLES as f64 / SAMPLE_RATE as f64;
        let (min_active, min_embed) = if strict {
            (MIN_ACTIVE_S, (MIN_EMBED_S * SAMPLE_RATE as f64) as usize)
        } else {
            (0.0, 1)
        };
        let mut out = Vec::new();
        for (window, (&start, acts)) in starts.iter().zip(activations).enumerate() {
            for speaker in 0..NUM_LOCAL_SPEAKERS {
                let active: Vec<bool> = acts.iter().map(|f| f[speaker] > 0.5).collect();
                let clean: Vec<bool> = acts
                    .iter()
                    .map(|f| {
                        f[speaker] > 0.5
                            && f.iter()
                                .enumerate()
                                .all(|(other, &v)| other == speaker || v <= 0.5)
                    })
                    .collect();
                let n_active = active.iter().filter(|&&a| a).count();
                let n_clean = clean.iter().filter(|&&a| a).count();
                if n_active == 0 || (n_active as f64) * frame_s < min_active {
                    continue;
                }
                let mask = if n_clean as f64 * frame_s >= MIN_CLEAN_S {
                    &clean
                } else {
                    &active
                };
                let mut spans: Vec<(usize, usize)> = Vec::new();
                for (j, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                    let a = (start + j * FRAME_SAMPLES).min(pcm.len());
                    let b = (start + (j + 1) * FRAME_SAMPLES).min(pcm.len());
                    if b <= a {
                        continue;
                    }
                    match spans.last_mut() {
                        Some(last) if last.1 == a => last.1 = b,
                        _ => spans.push((a, b)),
                    }
                }
                let samples: usize = spans.iter().map(|(a, b)| b - a).sum();
                if samples < min_embed {
                    continue;
                }
                out.push(Candidate {
                    window,
                    speaker,
                    spans,
                    clean_s: n_clean as f64 * frame_s,
                });
            }
        }
        out
    }
}

/// Cluster for each of (at most 3) local speakers given their similarities to every centroid:
/// distinct clusters maximising the total similarity when there are enough clusters, else each
/// its nearest.
fn best_assignment(sims: &[Vec<f32>]) -> Vec<usize> {
    let k = sims.first().map_or(0, Vec::len);
    let nearest = |row: &Vec<f32>| {
        (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    if k < sims.len() || sims.len() <= 1 {
        return sims.iter().map(nearest).collect();
    }
    fn search(
        sims: &[Vec<f32>],
        i: usize,
        used: &mut Vec<usize>,
        score: f32,
        best: &mut (f32, Vec<usize>),
    ) {
        if i == sims.len() {
            if score > best.0 {
                *best = (score, used.clone());
            }
            return;
        }
        for c in 0..sims[i].len() {
            if !used.contains(&c) {
                used.push(c);
                search(sims, i + 1, used, score + sims[i][c], best);
                used.pop();
            }
        }
    }
    let mut best = (f32::NEG_INFINITY, Vec::new());
    search(sims, 0, &mut Vec::new(), 0.0, &mut best);
    if best.1.len() == sims.len() {
        best.1
    } else {
        sims.iter().map(nearest).collect()
    }
}

/// [`DiarizeOptions::threshold_scale`]: `scale` × the median over embeddings of the cosine
/// distance to the nearest embedding whose window is at least `apart` windows from its own,
/// clamped to [`ADAPTIVE_RANGE`]. `None` when no embedding has such a neighbour.
fn adaptive_threshold(
    embeddings: &[&[f32]],
    windows: &[usize],
    apart: usize,
    scale: f32,
) -> Option<f32> {
    let mut nearest: Vec<f32> = (0..embeddings.len())
        .filter_map(|i| {
            (0..embeddings.len())
                .filter(|&j| windows[i].abs_diff(windows[j]) >= apart)
                .map(|j| 1.0 - cosine_similarity(embeddings[i], embeddings[j]))
                .min_by(f32::total_cmp)
        })
        .collect();
    if nearest.is_empty() {
        return None;
    }
    nearest.sort_by(f32::total_cmp);
    let median = nearest[nearest.len() / 2];
    Some((scale * median).clamp(ADAPTIVE_RANGE.0, ADAPTIVE_RANGE.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_keeps_local_speakers_apart() {
        // Both prefer cluster 0; the second is less sure, so it moves to cluster 1.
        let sims = vec![vec![0.9, 0.1], vec![0.6, 0.5]];
        assert_eq!(best_assignment(&sims), vec![0, 1]);
        // More local speakers than clusters: nearest each.
        let sims = vec![vec![0.9], vec![0.6]];
        assert_eq!(best_assignment(&sims), vec![0, 0]);
        assert_eq!(best_assignment(&[]), Vec::<usize>::new());
    }

    #[test]
    fn the_adaptive_threshold_scales_the_median_distance_to_another_window() {
        let unit = |deg: f32| {
            let r = deg.to_radians();
            vec![r.cos(), r.sin()]
        };
        // Distances 1 - cos: 0° vs 0° is 0, 0° vs 60° is 0.5. Windows 0 and 5 overlap
        // (`apart` 10), so each embedding's nearest far-enough neighbour is in window 20 or 30.
        let e = [unit(0.0), unit(0.0), unit(60.0), unit(60.0)];
        let refs: Vec<&[f32]> = e.iter().map(Vec::as_slice).collect();
        let windows = [0, 20, 5, 30];
        let t = adaptive_threshold(&refs, &windows, 10, 1.0).unwrap();
        // Nearest far-enough: 0→20 (0.0), 20→0 (0.0), 5→30 (0.0), 30→5 (0.0): median 0.
        assert_eq!(t, ADAPTIVE_RANGE.0, "clamped to the floor");
        let windows = [0, 20, 40, 60];
        let e = [unit(0.0), unit(30.0), unit(60.0), unit(120.0)];
        let refs: Vec<&[f32]> = e.iter().map(Vec::as_slice).collect();
        // Nearest: 0→30° (0.134), 30°→0 or 60° (0.134), 60°→30° (0.134), 120°→60° (0.5).
        let t = adaptive_threshold(&refs, &windows, 10, 2.0).unwrap();
        let d = 1.0 - 30f32.to_radians().cos();
        assert!((t - 2.0 * d).abs() < 1e-5, "{t}");
        assert_eq!(
            adaptive_threshold(&refs, &windows, 10, 100.0),
            Some(ADAPTIVE_RANGE.1)
        );
        // No two windows far enough apart: no threshold from the recording.
        assert_eq!(adaptive_threshold(&refs, &[0, 1, 2, 3], 10, 2.0), None);
    }
}
