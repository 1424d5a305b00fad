//! [`Method::SubSegments`]: 1.5 s stretches where one speaker talks, embedded and clustered;
//! frames and windows take their labels from them.
use super::*;

impl Diarizer {
    /// [`Method::SubSegments`] (see there). `None` when no stretch of one speaker is long
    /// enough to embed.
    pub(super) fn by_subsegments(
        &self,
        ctx: &Segmented<'_>,
        opts: &DiarizeOptions,
        cluster_opts: &ClusterOptions,
        report: &mut dyn FnMut(f64),
        check: &dyn Fn() -> Result<(), SpeakersError>,
    ) -> Result<Option<Labelled>, SpeakersError> {
        let so = &opts.subsegments;
        if !(so.len_s.is_finite()
            && so.len_s > 0.0
            && so.step_s.is_finite()
            && so.step_s > 0.0
            && so.min_s.is_finite()
            && so.min_s >= 0.0
            && so.min_cluster_s.is_finite()
            && so.min_cluster_s >= 0.0)
        {
            return Err(SpeakersError::InvalidOptions(format!(
                "sub-segment options must be finite and positive, got {so:?}"
            )));
        }
        let (pcm, starts, activations) = (ctx.pcm, ctx.starts, ctx.activations);
        let fs = ctx.frame_step;
        let no_clusters: Vec<Chunk<'_>> = starts
            .iter()
            .zip(activations)
            .map(|(&start, acts)| Chunk {
                start: start as f64 / SAMPLE_RATE as f64,
                activations: acts,
                clusters: [None; NUM_LOCAL_SPEAKERS],
            })
            .collect();
        let count = aggregate(
            &no_clusters,
            ctx.duration_s,
            &AggregateOptions {
                frame_step: fs,
                count_threshold: 0.5,
            },
        )
        .count;
        let num_frames = count.len();
        let frames = |s: f64| ((s / fs).round() as usize).max(1);
        let segments = subsegment::cut(
            &subsegment::single_speaker_runs(&count),
            frames(so.len_s),
            frames(so.step_s),
            frames(so.min_s),
        );
        tracing::debug!(
            windows = starts.len(),
            subsegments = segments.len(),
            "diarization: segmentation done"
        );
        if segments.is_empty() {
            return Ok(None);
        }
        let clips: Vec<Vec<f32>> = segments
            .iter()
            .map(|&(a, b)| {
                pcm[(a * FRAME_SAMPLES).min(pcm.len())..(b * FRAME_SAMPLES).min(pcm.len())].to_vec()
            })
            .collect();
        if clips.iter().any(Vec::is_empty) {
            return Ok(None);
        }
        let embeddings = self.embed_all(&clips, opts.batch_size, report, check)?;
        // Clustered (and folded) centred when asked; the speakers' embeddings stay in the
        // model's space, where voiceprints are matched.
        let centered;
        let space: &[Vec<f32>] = if so.center && embeddings.len() > 1 {
            centered = subsegment::centered(&embeddings);
            &centered
        } else {
            &embeddings
        };
        let clustering = cluster_embeddings(space, cluster_opts)?;
        let (labels, k) = if cluster_opts.num_speakers.is_some() {
            (clustering.labels, clustering.centroids.len())
        } else {
            subsegment::fold_small_clusters(
                &segments,
                &clustering.labels,
                space,
                frames(so.min_cluster_s),
                cluster_opts.min_speakers.unwrap_or(1),
            )
        };
        let frame_labels = subsegment::frame_labels(&segments, &labels, num_frames);

        // Each window's local speaker takes the label most of its labelled frames have.
        let clusters = starts
            .iter()
            .zip(activations)
            .map(|(&start, acts)| {
                let offset = (start as f64 / SAMPLE_RATE as f64 / fs).round() as usize;
                let mut out = [None; NUM_LOCAL_SPEAKERS];
                for (speaker, slot) in out.iter_mut().enumerate() {
                    let mut votes = vec![0usize; k];
                    for (j, f) in acts.iter().enumerate() {
                        if f[speaker] > 0.5
                            && let Some(Some(l)) = frame_labels.get(offset + j)
                        {
                            votes[*l] += 1;
                        }
                    }
                    *slot = (0..k)
                        .filter(|&c| votes[c] > 0)
                        .max_by(|&a, &b| votes[a].cmp(&votes[b]).then(b.cmp(&a)));
                }
                out
            })
            .collect();
        let speaker_embeddings = cluster_means(&labels, k, &embeddings);
        Ok(Some(Labelled {
            clusters,
            speaker_embeddings,
            frame_labels,
        }))
    }
}
