//! Speaker work the handlers share: voiceprints of a diarized file's speakers taken from
//! their own (not overlapped) speech, the active embedding profile, and speaker-model work in
//! a blocking thread with its errors as job errors.
use std::sync::atomic::{AtomicBool, Ordering};

use voxfleet_jobs::HandlerError;
use voxfleet_speakers::{Progress, SpeakersError, Turn};

use crate::context::JobContext;
use crate::steps::audio::fetch_audio;
use crate::steps::blocking::run_blocking;

/// The active embedding profile (the setting), `v4` when unset.
pub async fn active_profile(ctx: &JobContext) -> Result<String, HandlerError> {
    Ok(
        voxfleet_store::settings::get_embedding_settings(&ctx.rt.pool)
            .await?
            .active_profile,
    )
}

/// The parts of `speaker`'s turns where no other speaker talks: what a voiceprint is taken from
/// (overlapped speech would blend two voices). Falls back to all of its turns when nothing is
/// left.
pub fn exclusive_regions(turns: &[Turn], speaker: usize) -> Vec<(f64, f64)> {
    let others: Vec<&Turn> = turns.iter().filter(|t| t.speaker != speaker).collect();
    let own: Vec<(f64, f64)> = turns
        .iter()
        .filter(|t| t.speaker == speaker)
        .map(|t| (t.start, t.end))
        .collect();
    let mut out = Vec::new();
    for &(start, end) in &own {
        let mut pieces = vec![(start, end)];
        for o in &others {
            pieces = pieces
                .into_iter()
                .flat_map(|(s, e)| {
                    if o.end <= s || o.start >= e {
                        vec![(s, e)]
                    } else {
                        [(s, o.start.max(s)), (o.end.min(e), e)]
                            .into_iter()
                            .filter(|(a, b)| b - a > 0.0)
                            .collect()
                    }
                })
                .collect();
        }
        out.extend(pieces);
    }
    if out.iter().map(|(s, e)| e - s).sum::<f64>() < 0.5 {
        return own;
    }
    out
}

/// [`run_blocking`] for speaker work: its progress (a share of the work) is scaled to
/// `total_ms`, its errors mapped to job errors.
pub async fn blocking_with_progress<T: Send + 'static>(
    ctx: &JobContext,
    total_ms: u64,
    work: impl FnOnce(&mut dyn FnMut(Progress), &AtomicBool) -> Result<T, SpeakersError>
    + Send
    + 'static,
) -> Result<T, HandlerError> {
    run_blocking(ctx, total_ms, move |progress, stop| {
        let mut scaled = |p: Progress| {
            if p.total_ms > 0 {
                progress((p.done_ms as f64 / p.total_ms as f64 * total_ms as f64) as u64);
            }
        };
        work(&mut scaled, stop).map_err(HandlerError::from)
    })
    .await
}

/// Voiceprints of one profile extracted from a file's audio.
pub struct Extracted {
    pub model: String,
    pub dim: usize,
    /// Per speaker; `None` when it has too little clean speech.
    pub prints: Vec<(uuid::Uuid, Option<Vec<f32>>)>,
}

impl Extracted {
    /// `put_embeddings` rows.
    pub fn rows<'a>(&'a self, profile: &'a str) -> Vec<(uuid::Uuid, &'a str, &'a str, &'a [f32])> {
        self.prints
            .iter()
            .filter_map(|(id, v)| v.as_deref().map(|v| (*id, profile, self.model.as_str(), v)))
            .collect()
    }
}

/// Extracts `profile` voiceprints from a diarized file's audio, for its speakers (or only
/// those in `only`), from each speaker's non-overlapped turns. `not_diarized` when the file
/// has no turns; the audio errors of [`fetch_audio`]. With `report`, progress is reported in
/// speakers.
pub async fn extract_prints(
    ctx: &JobContext,
    file: &voxfleet_store::files::StoredFile,
    profile: &str,
    only: Option<&std::collections::HashSet<uuid::Uuid>>,
    report: bool,
) -> Result<Extracted, HandlerError> {
    let rows = voxfleet_store::speakers::turns(&ctx.rt.pool, file.id).await?;
    if rows.is_empty() {
        return Err(HandlerError::permanent(
            "not_diarized",
            format!("file {} has no speakers yet: diarize it first", file.id),
        ));
    }
    ctx.checkpoint()?;
    let audio = fetch_audio(ctx, file).await?;
    // Speakers numbered in order of first turn.
    let mut ids: Vec<uuid::Uuid> = Vec::new();
    let turns: Vec<Turn> = rows
        .iter()
        .map(|r| {
            let speaker = ids
                .iter()
                .position(|&i| i == r.speaker_id)
                .unwrap_or_else(|| {
                    ids.push(r.speaker_id);
                    ids.len() - 1
                });
            Turn {
                start: r.start_s,
                end: r.end_s,
                speaker,
            }
        })
        .collect();
    let wanted: Vec<usize> = (0..ids.len())
        .filter(|&i| only.is_none_or(|o| o.contains(&ids[i])))
        .collect();
    let models = ctx.rt.speech.speaker_models.clone();
    let total = wanted.len() as u64;
    if report {
        ctx.progress(0, total).await;
    }
    let samples = audio.samples;
    let name = profile.to_owned();
    let picked = wanted.clone();
    let (model, dim, prints) = blocking_with_progress(ctx, total, move |progress, stop| {
        let m = models.profile(&name)?;
        let mut prints = Vec::new();
        for (n, &i) in picked.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Err(SpeakersError::Cancelled);
            }
            let regions = exclusive_regions(&turns, i);
            prints.push(m.embedder.voiceprint(&samples, &regions)?);
            if report {
                progress(Progress {
                    done_ms: n as u64 + 1,
                    total_ms: picked.len() as u64,
                });
            }
        }
        Ok((m.model.clone(), m.embedder.dim(), prints))
    })
    .await?;
    Ok(Extracted {
        model,
        dim,
        prints: wanted.iter().map(|&i| ids[i]).zip(prints).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: usize) -> Turn {
        Turn {
            start,
            end,
            speaker,
        }
    }

    #[test]
    fn overlap_is_cut_out_of_voiceprint_regions() {
        let turns = [t(0.0, 5.0, 0), t(4.0, 8.0, 1), t(9.0, 12.0, 0)];
        assert_eq!(exclusive_regions(&turns, 0), [(0.0, 4.0), (9.0, 12.0)]);
        assert_eq!(exclusive_regions(&turns, 1), [(5.0, 8.0)]);
        // All overlapped: the turns themselves.
        let turns = [t(0.0, 2.0, 0), t(0.0, 2.0, 1)];
        assert_eq!(exclusive_regions(&turns, 1), [(0.0, 2.0)]);
    }
}
