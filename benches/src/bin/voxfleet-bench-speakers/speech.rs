//! The benchmark's speech: espeak-ng sentences in a few voices (cached as WAVs), joined into a
//! conversation with its reference turns.
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use voxfleet_speakers::Turn;

use super::cli::run;
use super::progress::bar;

pub(super) const SENTENCES: [&str; 24] = [
    "Speaker diarization answers the question of who spoke when.",
    "Every voice leaves a fingerprint in the spectrum of the sound.",
    "The model turns a second and a half of speech into a short vector.",
    "Two clips of the same person give vectors that point the same way.",
    "Different people give vectors that are far apart from each other.",
    "A filter bank splits the sound into eighty bands on the mel scale.",
    "The network looks at about a hundred and fifty frames at a time.",
    "Meetings often have three or four people talking in turn.",
    "Sometimes two of them speak at once, and the model has to notice.",
    "The segmentation model listens to ten seconds of audio per window.",
    "Windows overlap, so every moment is heard about ten times.",
    "Clustering groups the vectors that belong to one voice.",
    "The threshold decides how different two voices must be.",
    "Interviews usually have one person asking and one answering.",
    "A lecture is mostly a single voice with a few questions at the end.",
    "Phone calls are narrow band, which makes voices harder to tell apart.",
    "The worker writes a label next to every sentence of the transcript.",
    "Customers can rename the speakers once they know who they are.",
    "A voice print stored last week can find the same person today.",
    "Short clips carry less information than long ones.",
    "Background music and noise make the task much harder.",
    "The benchmark measures how many clips are embedded per second.",
    "It also checks that both programs compute the same vectors.",
    "A good pipeline runs many times faster than real time on a laptop.",
];
/// Voices for the embedding clips; the first three also hold the conversation.
pub(super) const VOICES: [&str; 4] = ["en-us", "en-us+f3", "en-gb+m3", "en-us+f4"];
/// Which voice speaks each conversation turn (repeated).
pub(super) const TURN_ORDER: [usize; 6] = [0, 1, 2, 1, 0, 2];
pub(super) const SAMPLE_RATE: usize = 16_000;
pub(super) const MIN_CONVERSATION_S: f64 = 130.0;
pub(super) const GAP_S: f64 = 0.3;
/// One sentence in one voice, 16 kHz mono, leading/trailing silence cut.
pub(super) fn part(dir: &Path, voice: usize, sentence: usize) -> Result<Vec<f32>> {
    let wav = dir.join(format!("v{voice}-s{sentence:02}.wav"));
    if !wav.is_file() {
        let raw = dir.join(format!("v{voice}-s{sentence:02}-raw.wav"));
        run(Command::new("espeak-ng")
            .args(["-v", VOICES[voice], "-s", "150"])
            .arg("-w")
            .arg(&raw)
            .arg(SENTENCES[sentence]))
        .context("espeak-ng (apt-get install espeak-ng)")?;
        let tmp = dir.join(format!("v{voice}-s{sentence:02}.tmp.wav"));
        run(Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16"])
            .arg(&tmp))
        .context("sox (apt-get install sox)")?;
        std::fs::rename(&tmp, &wav)?;
        std::fs::remove_file(&raw).ok();
    }
    let pcm = voxfleet_audio::decode_file(&wav, &Default::default())?.samples;
    let loud = |x: &f32| x.abs() > 1e-3;
    let a = pcm.iter().position(loud).unwrap_or(0);
    let b = pcm.iter().rposition(loud).map_or(a, |i| i + 1);
    Ok(pcm[a..b].to_vec())
}

/// All parts, by voice then sentence.
pub(super) fn speech(dir: &Path) -> Result<Vec<Vec<Vec<f32>>>> {
    std::fs::create_dir_all(dir)?;
    let pb = bar(
        (VOICES.len() * SENTENCES.len()) as u64,
        "espeak-ng speech (cached)",
    );
    let mut out = Vec::new();
    for v in 0..VOICES.len() {
        let mut parts = Vec::new();
        for s in 0..SENTENCES.len() {
            parts.push(part(dir, v, s)?);
            pb.inc(1);
        }
        out.push(parts);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// The conversation and its reference turns.
pub(super) fn conversation(parts: &[Vec<Vec<f32>>]) -> (Vec<f32>, Vec<Turn>) {
    let gap = vec![0f32; (GAP_S * SAMPLE_RATE as f64) as usize];
    let mut pcm = gap.clone();
    let mut turns = Vec::new();
    let mut i = 0;
    while (pcm.len() as f64) < MIN_CONVERSATION_S * SAMPLE_RATE as f64 {
        let speaker = TURN_ORDER[i % TURN_ORDER.len()];
        let p = &parts[speaker][i % SENTENCES.len()];
        let start = pcm.len() as f64 / SAMPLE_RATE as f64;
        pcm.extend_from_slice(p);
        turns.push(Turn {
            start,
            end: pcm.len() as f64 / SAMPLE_RATE as f64,
            speaker,
        });
        pcm.extend_from_slice(&gap);
        i += 1;
    }
    (pcm, turns)
}
