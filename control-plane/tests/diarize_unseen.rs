//! Diarization end to end on voices nobody tuned on: conversations of 2, 3, 4 and 5 espeak-ng
//! voices made from the variants that `benches/python/diarize_devset.py` keeps out of both its
//! `tune` and its `test` parts (`held_out_variants`), taken in the order that list gives them,
//! not picked by ear or by score. Each goes through the files API (`process=diarize`, the real
//! worker and models); two also through `POST /v1/audio/transcriptions` with
//! `response_format=diarized_json`. Asserted: the number of speakers and a DER bound (collar
//! ±0.25 s), with the measured values printed.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use voxfleet_speakers::{Turn, diarization_error_rate};

/// The held-out variants in the dev-set script's order, with accents in a fixed rotation.
const CONVERSATIONS: [&[&str]; 4] = [
    &["en-us+Gene2", "en-gb+Henrique"],
    &["en-gb-scotland+Lee", "en-us+Mario", "en-029+Michael"],
    &[
        "en-us-nyc+anika",
        "en-gb-x-rp+boris",
        "en-us+ed",
        "en-gb+edward",
    ],
    &[
        "en-gb-scotland+edward2",
        "en-us+f1",
        "en-029+f4",
        "en-us-nyc+f5",
        "en-gb-x-rp+grandpa",
    ],
];

const LINES: [&str; 20] = [
    "Thanks for coming in early, I know the roads were bad this morning.",
    "No problem, the bus was almost empty for once.",
    "Let us start with the schedule for the new warehouse.",
    "The builders say the roof will be finished by the end of the month.",
    "That is two weeks later than they promised in the spring.",
    "Right, but the rain stopped them for most of October.",
    "Do we know what the delay will cost us?",
    "About four thousand, mostly for the rented trucks.",
    "I can move some money from the travel budget to cover it.",
    "Good, then the opening date can stay where it is.",
    "Who is going to tell the customers about the new address?",
    "I will write the letter today and send it on Monday.",
    "Please include a map, the entrance is hard to find.",
    "And the phone numbers stay the same, that matters to people.",
    "We should also thank the neighbours for their patience.",
    "A small party after the opening would be a nice gesture.",
    "I like that idea, let us plan it for a Friday.",
    "Then I think we are done for today.",
    "One more thing, the printer on the second floor is broken again.",
    "I will call the repair shop after lunch.",
];

/// Measured after the change on these conversations (values printed by the test): a result
/// with a speaker lost or two speakers merged scores well above it.
const MAX_DER: f64 = 0.15;

fn seconds(path: &Path) -> f64 {
    run_tool(Command::new("soxi").arg("-D").arg(path))
        .trim()
        .parse()
        .unwrap()
}

/// The conversation as one 16 kHz WAV and its reference turns: each voice speaks in a
/// rotating order (a different one every round), 0.4–0.9 s pauses, about 15 s per voice.
fn conversation(dir: &Path, n: usize, voices: &[&str]) -> (PathBuf, Vec<Turn>) {
    let mut parts = Vec::new();
    let mut turns = Vec::new();
    let mut t = 0.0;
    let rounds = 3;
    let mut line = n * 3;
    for round in 0..rounds {
        for k in 0..voices.len() {
            let speaker = (k + round) % voices.len();
            let text = format!(
                "{} {}",
                LINES[line % LINES.len()],
                LINES[(line + 7) % LINES.len()]
            );
            line += 1;
            let name = format!("c{n}-r{round}-s{speaker}");
            let raw = dir.join(format!("{name}-22k.wav"));
            run_tool(
                Command::new("espeak-ng")
                    .args(["-v", voices[speaker], "-s", "155", "-w"])
                    .arg(&raw)
                    .arg(&text),
            );
            let wav = dir.join(format!("{name}.wav"));
            // 16 kHz, espeak's lead-in and tail silence cut so the reference is the speech.
            run_tool(
                Command::new("sox")
                    .arg(&raw)
                    .args(["-r", "16000", "-c", "1", "-b", "16"])
                    .arg(&wav)
                    .args(["silence", "1", "0.02", "0.5%", "reverse", "silence", "1"])
                    .args(["0.02", "0.5%", "reverse"]),
            );
            let d = seconds(&wav);
            turns.push(Turn {
                start: t,
                end: t + d,
                speaker,
            });
            let pause = 0.4 + 0.1 * ((line * 7) % 6) as f64;
            let gap = dir.join(format!("{name}-gap.wav"));
            run_tool(
                Command::new("sox")
                    .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
                    .arg(&gap)
                    .args(["trim", "0", &format!("{pause}")]),
            );
            t += d + pause;
            parts.push(wav);
            parts.push(gap);
        }
    }
    let out = dir.join(format!("conversation-{n}.wav"));
    run_tool(Command::new("sox").args(&parts).arg(&out));
    (out, turns)
}

/// Speakers and turns of a diarized file, through the files API.
async fn files_api(env: &Env, wav: &Path) -> Vec<Turn> {
    let (status, up) = env.upload(ADMIN, wav, Some("diarize")).await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let id = up["id"].as_str().unwrap().to_owned();
    for j in up["jobs"].as_array().unwrap() {
        let done = env
            .wait_ended(j.as_str().unwrap(), Duration::from_secs(300))
            .await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    env.speakers_and_turns(&id).await.1
}

/// Segments of `diarized_json` as turns, speakers numbered by label.
async fn diarized_json(env: &Env, wav: &Path) -> Vec<Turn> {
    let form = Form::new()
        .part(
            "file",
            Part::bytes(std::fs::read(wav).unwrap()).file_name("meeting.wav"),
        )
        .text("model", "gpt-4o-transcribe-diarize")
        .text("response_format", "diarized_json")
        .text("chunking_strategy", "auto");
    // Transcription and diarization of a minute of speech on two busy cores can take longer
    // than the harness client's 30 s.
    let (status, text) = env
        .post_form_within(
            "/v1/audio/transcriptions",
            ADMIN,
            form,
            Duration::from_secs(600),
        )
        .await;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert_eq!(status, StatusCode::OK, "{v}");
    let mut labels: Vec<String> = Vec::new();
    v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let label = s["speaker"].as_str().unwrap().to_owned();
            let speaker = labels.iter().position(|l| *l == label).unwrap_or_else(|| {
                labels.push(label);
                labels.len() - 1
            });
            Turn {
                start: s["start"].as_f64().unwrap(),
                end: s["end"].as_f64().unwrap(),
                speaker,
            }
        })
        .collect()
}

fn count(turns: &[Turn]) -> usize {
    let mut s: Vec<usize> = turns.iter().map(|t| t.speaker).collect();
    s.sort_unstable();
    s.dedup();
    s.len()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "issue 14 is open: on these held-out voices the pipeline finds 1/2, 2/3, 3/4 and 3/5 speakers (DER 0.49, 0.40, 0.30, 0.47 on 2026-12-05); run with --ignored"]
async fn unseen_voices_are_counted_and_separated() {
    let mut env = Env::start().await;
    env.worker("speech", &["--queues", "gpu", "--preload"]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for voices in CONVERSATIONS {
        let n = voices.len();
        let (wav, reference) = conversation(&dir, n, voices);
        let hyp = files_api(&env, &wav).await;
        let der = diarization_error_rate(&reference, &hyp, 0.25);
        eprintln!(
            "{n} voices {voices:?}, files API: {} speakers, DER {:.3} (missed {:.2} s, false alarm {:.2} s, confusion {:.2} s of {:.2} s)",
            count(&hyp),
            der.der,
            der.missed,
            der.false_alarm,
            der.confusion,
            der.total
        );
        if count(&hyp) != n || der.der > MAX_DER {
            failures.push(format!(
                "{n} voices, files API: {} speakers, DER {:.3}",
                count(&hyp),
                der.der
            ));
        }
        // A broken result fails the same bound: two voices merged into one.
        let merged: Vec<Turn> = reference
            .iter()
            .map(|t| Turn {
                speaker: t.speaker.min(n - 2),
                ..*t
            })
            .collect();
        assert!(diarization_error_rate(&reference, &merged, 0.25).der > MAX_DER);
        if n == 3 || n == 5 {
            // Segment-level labels: the words' speaker, so the bound is looser by the
            // pauses inside segments (scored as speech).
            let segs = diarized_json(&env, &wav).await;
            let der = diarization_error_rate(&reference, &segs, 0.25);
            eprintln!(
                "{n} voices, diarized_json: {} speakers over {} segments, DER {:.3}",
                count(&segs),
                segs.len(),
                der.der
            );
            if count(&segs) != n || der.der > 2.0 * MAX_DER {
                failures.push(format!(
                    "{n} voices, diarized_json: {} speakers, DER {:.3}",
                    count(&segs),
                    der.der
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
