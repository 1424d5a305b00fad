//! Diarization end to end: conversations generated with espeak-ng (two voices that differ
//! clearly, irregular turns and pauses, assembled with sox), uploaded with
//! `process=transcribe,diarize`, run by the real worker with the converted pyannote
//! segmentation and CAM++ models; scored by diarization error rate against the turns the test
//! built. Voiceprints land in PostgreSQL under both profiles; exports and the
//! OpenAI-compatible endpoint carry speaker labels; known speakers are named by voice.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use voxfleet_speakers::{Turn, cosine_similarity, diarization_error_rate};

/// Two espeak-ng voices that CAM++ tells apart (a male and a female variant; two male
/// variants can score as close as 0.77, MODELS.md).
const VOICES: [&str; 2] = ["en-us", "en-us+f3"];

/// (speaker, text, pause after in seconds): irregular turn lengths, a speaker talking twice in
/// a row across a pause, pauses from 0.3 to 1.5 s.
const SCRIPT: &[(usize, &str, f64)] = &[
    (
        0,
        "Good morning, thanks for joining the weekly planning call.",
        0.6,
    ),
    (1, "Morning. I have two updates about the release.", 0.4),
    (0, "Go ahead.", 0.9),
    (
        1,
        "The build is green again, and the installer now checks its models before it starts.",
        0.3,
    ),
    (1, "We also cut the start up time in half.", 1.5),
    (
        0,
        "That is great news. What about the search index, can we rebuild it from the database?",
        0.5,
    ),
    (
        1,
        "Yes, a full rebuild took eleven minutes on the test machine.",
        0.7,
    ),
    (0, "Perfect. Let us ship it on Thursday then.", 0.4),
];

/// A broken pipeline (one speaker for everything, labels swapped at random, turns shifted)
/// scores well above this; the measured value is printed.
const MAX_DER: f64 = 0.25;

fn seconds(path: &Path) -> f64 {
    run_tool(Command::new("soxi").arg("-D").arg(path))
        .trim()
        .parse()
        .unwrap()
}

/// One utterance as 16 kHz mono WAV.
fn utterance(dir: &Path, name: &str, voice: &str, text: &str) -> PathBuf {
    let raw = dir.join(format!("{name}-22k.wav"));
    run_tool(
        Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(&raw)
            .arg(text),
    );
    let out = dir.join(format!("{name}.wav"));
    run_tool(
        Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16"])
            .arg(&out),
    );
    out
}

fn silence(dir: &Path, secs: f64) -> PathBuf {
    let out = dir.join(format!("silence-{secs}.wav"));
    if !out.exists() {
        run_tool(
            Command::new("sox")
                .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
                .arg(&out)
                .args(["trim", "0", &format!("{secs}")]),
        );
    }
    out
}

/// The conversation as one WAV, with the reference turns (each utterance's whole file, so
/// espeak's own short lead-in and tail count as speech; the collar absorbs them).
fn conversation(dir: &Path) -> (PathBuf, Vec<Turn>) {
    let mut parts = Vec::new();
    let mut turns = Vec::new();
    let mut t = 0.0;
    for (i, (speaker, text, pause)) in SCRIPT.iter().enumerate() {
        let u = utterance(dir, &format!("u{i}"), VOICES[*speaker], text);
        let d = seconds(&u);
        turns.push(Turn {
            start: t,
            end: t + d,
            speaker: *speaker,
        });
        t += d + pause;
        parts.push(u);
        parts.push(silence(dir, *pause));
    }
    let out = dir.join("conversation.wav");
    run_tool(Command::new("sox").args(&parts).arg(&out));
    (out, turns)
}

async fn upload(env: &Env, path: &Path, process: &str) -> Value {
    let (status, v) = env.upload(ADMIN, path, Some(process)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

async fn wait_done(env: &Env, job: &str) -> Value {
    env.wait_ended(job, Duration::from_secs(300)).await
}

fn vector(v: &Value) -> Vec<f32> {
    v["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_is_diarized_labelled_and_voiceprinted() {
    let mut env = Env::start().await;
    env.worker("speech", &["--queues", "gpu", "--preload"]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let (wav, reference) = conversation(&dir);

    // One submission: transcription and diarization.
    let up = upload(&env, &wav, "transcribe,diarize").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let jobs: Vec<String> = up["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(jobs.len(), 2, "{up}");
    for j in &jobs {
        let done = wait_done(&env, j).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }

    // Speakers and turns: exactly two speakers, DER under the bound.
    let (sp, hyp) = env.speakers_and_turns(&id).await;
    let speakers = sp["speakers"].as_array().unwrap();
    assert_eq!(speakers.len(), 2, "{sp}");
    let ids: Vec<&str> = speakers.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let der = diarization_error_rate(&reference, &hyp, 0.25);
    eprintln!("DER {:.3} ({der:?}) over {} turns", der.der, hyp.len());
    assert!(der.der < MAX_DER, "DER {der:?}\nhyp {hyp:?}");
    // A broken result fails the same bound: everything one speaker.
    let one: Vec<Turn> = hyp.iter().map(|t| Turn { speaker: 0, ..*t }).collect();
    assert!(diarization_error_rate(&reference, &one, 0.25).der > MAX_DER);

    // Voiceprints: v4 (CAM++, 192-d) from the diarization; v3 (GE2E, 256-d) on request.
    for s in speakers {
        assert_eq!(s["profiles"], json!(["v4"]), "{s}");
    }
    let job = env
        .submit_with(
            json!({"kind": "extract_embeddings", "input": {"file_id": id, "profile": "v3"}}),
        )
        .await;
    let done = wait_done(&env, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["written"], 2, "{done}");
    let mut prints = Vec::new();
    for sid in &ids {
        let (s, v) = env
            .get(&format!("/v1/speakers/{sid}?include=embeddings"))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["profiles"], json!(["v3", "v4"]), "{v}");
        let e = v["embeddings"].as_array().unwrap();
        let by = |p: &str| e.iter().find(|x| x["profile"] == p).unwrap().clone();
        assert_eq!(by("v4")["dim"], 192);
        assert_eq!(by("v4")["model"], "campplus");
        assert_eq!(by("v3")["dim"], 256);
        assert_eq!(by("v3")["model"], "resemblyzer-ge2e");
        prints.push((vector(&by("v4")), vector(&by("v3"))));
    }
    let between_v4 = cosine_similarity(&prints[0].0, &prints[1].0);
    let between_v3 = cosine_similarity(&prints[0].1, &prints[1].1);
    eprintln!("between-speaker cosine: v4 {between_v4:.3}, v3 {between_v3:.3}");
    assert!(
        between_v4 < 0.6,
        "the two voices' v4 voiceprints are too close: {between_v4}"
    );

    // Exports carry speaker labels; a name given by a user replaces the label.
    let (s, _) = env
        .call(
            "PATCH",
            &format!("/v1/speakers/{}", ids[0]),
            Some(ADMIN),
            Some(json!({"name": "Host"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, tj) = env.get(&format!("/v1/files/{id}/transcript")).await;
    let labels: Vec<&str> = tj["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["speaker"].as_str())
        .collect();
    assert!(labels.contains(&"Host"), "{tj}");
    assert!(labels.iter().any(|l| l.starts_with("SPEAKER_")), "{tj}");
    let srt = env
        .text_auth(&format!("/v1/files/{id}/transcript?format=srt"))
        .await;
    assert!(srt.contains("Host: "), "{srt}");
    let vtt = env
        .text_auth(&format!("/v1/files/{id}/transcript?format=vtt"))
        .await;
    assert!(vtt.contains("<v Host>"), "{vtt}");

    // Word timestamps on the diarized file: each word carries the speaker of its own time,
    // so the words around a turn change go each to their speaker.
    let job = env
        .submit_with(
            json!({"kind": "transcribe", "input": {"file_id": id, "word_timestamps": true}}),
        )
        .await;
    let done = wait_done(&env, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, tj) = env.get(&format!("/v1/files/{id}/transcript")).await;
    let mut timed: Vec<(f64, String)> = Vec::new();
    for seg in tj["segments"].as_array().unwrap() {
        let words = seg["words"].as_array().expect("words in every segment");
        // Words as Whisper spells them (a leading space where one was said apart).
        let spelled: String = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
        assert_eq!(spelled.trim(), seg["text"].as_str().unwrap(), "{seg}");
        for w in words {
            assert_eq!(w["speaker"], seg["speaker"], "{seg}");
            let mid = 0.5 * (w["start"].as_f64().unwrap() + w["end"].as_f64().unwrap());
            timed.push((mid, w["speaker"].as_str().unwrap_or("").to_owned()));
        }
    }
    // Each label stands for the reference speaker most of its words fall in.
    let truth = |t: f64| {
        reference
            .iter()
            .find(|r| r.start <= t && t < r.end)
            .map(|r| r.speaker)
    };
    let mut votes: std::collections::HashMap<(String, usize), usize> = Default::default();
    for (t, label) in &timed {
        if let Some(r) = truth(*t) {
            *votes.entry((label.clone(), r)).or_default() += 1;
        }
    }
    let stands_for = |label: &str| {
        votes
            .iter()
            .filter(|((l, _), _)| l == label)
            .max_by_key(|(_, n)| **n)
            .map(|((_, r), _)| *r)
    };
    let judged: Vec<bool> = timed
        .iter()
        .filter_map(|(t, label)| truth(*t).map(|r| stands_for(label) == Some(r)))
        .collect();
    let right = judged.iter().filter(|x| **x).count();
    eprintln!("words with the right speaker: {right}/{}", judged.len());
    assert!(judged.len() >= 20, "{} words judged", judged.len());
    assert!(
        right as f64 >= 0.9 * judged.len() as f64,
        "{right}/{} words with the right speaker",
        judged.len()
    );

    // OpenAI-compatible diarization, with the host's voice given as a known speaker (a clip
    // that is not part of the conversation).
    let clip = utterance(
        &dir,
        "known",
        VOICES[0],
        "This is a short sample of my voice for the records.",
    );
    let data_url = format!(
        "data:audio/wav;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&clip).unwrap())
    );
    let form = Form::new()
        .part(
            "file",
            Part::bytes(std::fs::read(&wav).unwrap()).file_name("call.wav"),
        )
        .text("model", "gpt-4o-transcribe-diarize")
        .text("response_format", "diarized_json")
        .text("chunking_strategy", "auto")
        .text("known_speaker_names[]", "Alice")
        .text("known_speaker_references[]", data_url);
    // waited for: CI (four tests at once on 2 cores) once took over the client's 30 s here
    let (status, dj) = env.openai_json(form, Duration::from_secs(300)).await;
    assert_eq!(status, StatusCode::OK, "{dj}");
    assert_eq!(dj["task"], "transcribe");
    let segs = dj["segments"].as_array().unwrap();
    assert!(!segs.is_empty(), "{dj}");
    let mut seen: Vec<&str> = segs
        .iter()
        .map(|s| s["speaker"].as_str().unwrap())
        .collect();
    for s in segs {
        assert_eq!(s["type"], "transcript.text.segment");
        assert!(s["start"].as_f64().unwrap() < s["end"].as_f64().unwrap());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["A", "Alice"], "{dj}");
    // The first words are the host's (voice 0).
    assert_eq!(segs[0]["speaker"], "Alice", "{dj}");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_audio_gives_a_sensible_result() {
    let mut env = Env::start().await;
    env.worker("speech", &["--queues", "gpu"]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let voice = utterance(
        &dir,
        "one",
        VOICES[1],
        "Only one person talks in this recording, for a few seconds.",
    );
    // 8 channels at 48 kHz.
    let wide = dir.join("eight.wav");
    run_tool(
        Command::new("sox")
            .arg(&voice)
            .args(["-r", "48000", "-c", "8"])
            .arg(&wide),
    );
    let quiet = silence(&dir, 10.0);
    let short = dir.join("short.wav");
    run_tool(
        Command::new("sox")
            .arg(&voice)
            .arg(&short)
            .args(["trim", "0.5", "1"]),
    );
    let cases = [(wide, Some(1)), (quiet, Some(0)), (short, None)];
    for (path, expected) in cases {
        // `embed`: voiceprints under every profile.
        let up = upload(&env, &path, "diarize,embed").await;
        let done = wait_done(&env, up["jobs"][0].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{}: {done}", path.display());
        assert_eq!(done["attempts"], 1, "{done}");
        let n = done["result"]["speakers"].as_array().unwrap().len();
        match expected {
            Some(e) => assert_eq!(n, e, "{}: {done}", path.display()),
            None => assert!(n <= 1, "{}: {done}", path.display()),
        }
        assert_eq!(done["result"]["profiles"], json!(["v3", "v4"]), "{done}");
        let (_, sp) = env
            .get(&format!(
                "/v1/files/{}/speakers",
                up["id"].as_str().unwrap()
            ))
            .await;
        for s in sp["speakers"].as_array().unwrap() {
            assert_eq!(s["profiles"], json!(["v3", "v4"]), "{sp}");
        }
    }

    // A long recording: progress with an ETA, then a cancel stops the diarization mid-way.
    let long = dir.join("long.wav");
    run_tool(
        Command::new("sox")
            .arg(&voice)
            .arg(&long)
            .args(["repeat", "40"]),
    );
    let up = upload(&env, &long, "diarize").await;
    let job = up["jobs"][0].as_str().unwrap().to_owned();
    let running = env
        .wait_job(&job, Duration::from_secs(120), |j| {
            j["progress"]["done"].as_u64().is_some_and(|d| d > 0)
                || j["status"]
                    .as_str()
                    .is_some_and(|s| s != "queued" && s != "running")
        })
        .await;
    assert_eq!(running["status"], "running", "{running}");
    assert!(
        running["progress"]["total"].as_u64().unwrap() > 100_000,
        "{running}"
    );
    let (s, _) = env
        .call("POST", &format!("/v1/jobs/{job}/cancel"), Some(ADMIN), None)
        .await;
    assert!(s.is_success(), "{s}");
    let done = wait_done(&env, &job).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let (_, sp) = env
        .get(&format!(
            "/v1/files/{}/speakers",
            up["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        sp["speakers"],
        json!([]),
        "a cancelled diarization writes nothing: {sp}"
    );
    // Text is not audio: a coded failure after one attempt.
    let junk = dir.join("notes.wav");
    std::fs::write(&junk, b"these are not samples").unwrap();
    let up = upload(&env, &junk, "diarize").await;
    let done = wait_done(&env, up["jobs"][0].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "unsupported_format", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    // Embeddings of a file never diarized: a coded failure.
    let up = upload(&env, &voice, "transcribe").await;
    let job = env
        .submit_with(json!({"kind": "extract_embeddings", "input": {"file_id": up["id"]}}))
        .await;
    let done = wait_done(&env, &job).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "not_diarized", "{done}");
}
