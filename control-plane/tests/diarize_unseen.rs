//! Diarization end to end on voices nobody tuned on, through the real control plane, worker
//! and models. Asserted: the number of speakers and a DER bound (collar ±0.25 s), with the
//! measured values printed.
//!
//! - Real people: six voices of Debian's Asterisk prompt packages (8 kHz telephone prompts in
//!   French, Italian, Russian and Spanish; `scripts/tools.sh` fetches them) that neither the
//!   diarization development set nor any tuning ever used, in conversations of 2, 3, 4 and 5.
//! - espeak-ng: conversations of 2, 3, 4 and 5 voices made from the variants that
//!   `benches/python/diarize_devset.py` keeps out of both its `tune` and its `test` parts
//!   (`held_out_variants`), taken in the order that list gives them, not picked by ear or by
//!   score.
//!
//! Each conversation goes through the files API (`process=diarize`); some also through
//! `POST /v1/audio/transcriptions` with `response_format=diarized_json`.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
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

/// The issue's DER goal for real recordings (15 %; 10 % was its goal for synthetic speech): a
/// result with a speaker lost or two speakers merged scores well above it.
const MAX_DER: f64 = 0.15;

fn seconds(path: &Path) -> f64 {
    run_tool(Command::new("soxi").arg("-D").arg(path))
        .trim()
        .parse()
        .unwrap()
}

/// Joins turns (one clip each, all at one sample rate) into one conversation WAV with pauses of
/// 0.4–0.9 s between them (the `k`-th pause set by `first + k`); the reference turns are the
/// clips' extents.
fn assemble(
    dir: &Path,
    name: &str,
    rate: u32,
    clips: &[(usize, PathBuf)],
    first: usize,
) -> (PathBuf, Vec<Turn>) {
    let mut parts = Vec::new();
    let mut turns = Vec::new();
    let mut t = 0.0;
    for (i, (speaker, clip)) in clips.iter().enumerate() {
        let d = seconds(clip);
        turns.push(Turn {
            start: t,
            end: t + d,
            speaker: *speaker,
        });
        let pause = 0.4 + 0.1 * (((first + i) * 7) % 6) as f64;
        let gap = dir.join(format!("{name}-gap{i}.wav"));
        silence(&gap, rate, pause);
        t += d + pause;
        parts.push(clip.clone());
        parts.push(gap);
    }
    let out = dir.join(format!("{name}.wav"));
    run_tool(Command::new("sox").args(&parts).arg(&out));
    (out, turns)
}

fn silence(path: &Path, rate: u32, secs: f64) {
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(path)
            .args(["trim", "0", &format!("{secs}")]),
    );
}

/// `src` as 16-bit mono at `rate`, with the lead-in and tail silence cut so a reference turn
/// is the speech.
fn trimmed(src: &Path, rate: u32, dst: &Path) {
    run_tool(
        Command::new("sox")
            .arg(src)
            .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(dst)
            .args(["silence", "1", "0.02", "0.5%", "reverse", "silence", "1"])
            .args(["0.02", "0.5%", "reverse"]),
    );
}

/// Each voice speaks in a rotating order (a different one first every round), three rounds.
fn rotation(voices: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..3).flat_map(move |round| (0..voices).map(move |k| (round, (k + round) % voices)))
}

/// An espeak-ng conversation as one 16 kHz WAV and its reference turns, about 15 s per voice.
fn espeak_conversation(dir: &Path, n: usize, voices: &[&str]) -> (PathBuf, Vec<Turn>) {
    let mut clips = Vec::new();
    for (line, (round, speaker)) in (n * 3..).zip(rotation(voices.len())) {
        let text = format!(
            "{} {}",
            LINES[line % LINES.len()],
            LINES[(line + 7) % LINES.len()]
        );
        let name = format!("c{n}-r{round}-s{speaker}");
        let raw = dir.join(format!("{name}-22k.wav"));
        run_tool(
            Command::new("espeak-ng")
                .args(["-v", voices[speaker], "-s", "155", "-w"])
                .arg(&raw)
                .arg(&text),
        );
        let wav = dir.join(format!("{name}.wav"));
        trimmed(&raw, 16_000, &wav);
        clips.push((speaker, wav));
    }
    // The pauses the measured figures of the ignored test were taken with.
    assemble(dir, &format!("conversation-{n}"), 16_000, &clips, n * 3 + 1)
}

/// The real voices: folders of `~/.cache/voxfleet/voices-asterisk` (fetched by
/// `scripts/tools.sh`), one person each (the packages name them; `fr` is Armelle Desjardins,
/// `es` July E. Jiménez of Avatar Ltda.).
const REAL_VOICES: [&str; 6] = [
    "fr_CA_f_June",
    "it_IT_m_Carlo",
    "ru_RU_f_IvrvoiceRU",
    "it_IT_f_Menardi",
    "fr",
    "es",
];

/// Which real voices talk in the 2-, 3-, 4- and 5-person conversations (indices into
/// [`REAL_VOICES`]), fixed before any was measured. The pair is two French-speaking women, so
/// the same conversation can be transcribed in one language for `diarized_json`.
const REAL_CONVERSATIONS: [&[usize]; 4] = [&[0, 4], &[1, 2, 3], &[5, 0, 1, 2], &[3, 4, 5, 0, 1]];

fn voices_dir() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let dir = Path::new(&home).join(".cache/voxfleet/voices-asterisk");
    assert!(
        dir.join(".complete").exists(),
        "{} is missing: run scripts/tools.sh",
        dir.display()
    );
    dir
}

/// A voice's prompts in name order (its own folder only, not the shared digit and letter
/// folders), as trimmed 8 kHz clips of 1.5–5 s, from the `skip`-th on.
fn prompts(dir: &Path, voice: &str, skip: usize, out: &Path) -> impl Iterator<Item = PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(voice))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("wav" | "gsm"))
        })
        .collect();
    files.sort();
    let out = out.to_owned();
    let voice = voice.to_owned();
    files.into_iter().skip(skip).filter_map(move |src| {
        let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
        let dst = out.join(format!("{voice}-{stem}.wav"));
        trimmed(&src, 8_000, &dst);
        let d = seconds(&dst);
        (1.5..=5.0).contains(&d).then_some(dst)
    })
}

/// A conversation of real people as one 8 kHz WAV (a telephone recording) and its reference
/// turns: each turn is two consecutive prompts of one voice with 0.15 s between them.
fn real_conversation(dir: &Path, c: usize, people: &[usize]) -> (PathBuf, Vec<Turn>) {
    let voices = voices_dir();
    let clip_dir = dir.join(format!("real-{c}"));
    std::fs::create_dir_all(&clip_dir).unwrap();
    let mut pools: Vec<_> = people
        .iter()
        .map(|&v| prompts(&voices, REAL_VOICES[v], 20 * c, &clip_dir))
        .collect();
    let gap = clip_dir.join("join.wav");
    silence(&gap, 8_000, 0.15);
    let mut clips = Vec::new();
    for (i, (_, speaker)) in rotation(people.len()).enumerate() {
        let a = pools[speaker].next().expect("enough prompts");
        let b = pools[speaker].next().expect("enough prompts");
        let turn = clip_dir.join(format!("turn{i}.wav"));
        run_tool(Command::new("sox").arg(&a).arg(&gap).arg(&b).arg(&turn));
        clips.push((speaker, turn));
    }
    assemble(dir, &format!("real-conversation-{c}"), 8_000, &clips, 0)
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

/// Segments of `diarized_json` as turns, speakers numbered by label; `model` and `language`
/// as the form fields (no language: detected).
async fn diarized_json(env: &Env, wav: &Path, model: &str, language: Option<&str>) -> Vec<Turn> {
    let mut form = Form::new()
        .part(
            "file",
            Part::bytes(std::fs::read(wav).unwrap()).file_name("meeting.wav"),
        )
        .text("model", model.to_owned())
        .text("response_format", "diarized_json")
        .text("chunking_strategy", "auto");
    if let Some(l) = language {
        form = form.text("language", l.to_owned());
    }
    let (status, v) = env.openai_json(form, Duration::from_secs(600)).await;
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

/// Scores one result against its reference: printed, and a failure noted when the count is not
/// `n` or the DER is over `bound`.
fn judge(label: &str, n: usize, reference: &[Turn], hyp: &[Turn], bound: f64) -> Option<String> {
    let der = diarization_error_rate(reference, hyp, 0.25);
    eprintln!(
        "{label}: {} speakers over {} turns, DER {:.3} (missed {:.2} s, false alarm {:.2} s, confusion {:.2} s of {:.2} s)",
        count(hyp),
        hyp.len(),
        der.der,
        der.missed,
        der.false_alarm,
        der.confusion,
        der.total
    );
    // A broken result fails the same bound: two voices merged into one. Not at the looser
    // segment-level bound, which merging two of three voices can stay under (the count
    // catches that).
    let merged: Vec<Turn> = reference
        .iter()
        .map(|t| Turn {
            speaker: t.speaker.min(n - 2),
            ..*t
        })
        .collect();
    assert!(bound > MAX_DER || diarization_error_rate(reference, &merged, 0.25).der > bound);
    (count(hyp) != n || der.der > bound).then(|| {
        format!(
            "{label}: {} speakers (want {n}), DER {:.3} (bound {bound})",
            count(hyp),
            der.der
        )
    })
}

fn audio_dir(env: &Env) -> PathBuf {
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Real people nobody tuned on, as a telephone recording: the count and DER ≤ 15 % (the
/// issue's goal for real recordings) through the files API; the French pair also through
/// `diarized_json`, transcribed by the multilingual model.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "issue 14 is open: on these real voices (8 kHz, telephone-band threshold 0.16) the pipeline finds 2/2, 4/3, 4/4 and 7/5 speakers (DER 0.19, 0.15, 0.10, 0.18; diarized_json 2/2, 0.16) on 2026-12-06 with speakers under 2 s folded (3/2, 7/3 or 8/3, 7/4, 10/5 and DER 0.26-0.50 with under 1 s folded); run with --ignored"]
async fn unseen_real_voices_are_counted_and_separated() {
    let mut env = Env::start().await;
    env.worker("speech", &["--queues", "gpu", "--preload"]);
    let dir = audio_dir(&env);
    let mut failures = Vec::new();
    for (c, people) in REAL_CONVERSATIONS.iter().enumerate() {
        let n = people.len();
        let names: Vec<&str> = people.iter().map(|&v| REAL_VOICES[v]).collect();
        let (wav, reference) = real_conversation(&dir, c, people);
        let hyp = files_api(&env, &wav).await;
        let label = format!("{n} people {names:?}, files API");
        failures.extend(judge(&label, n, &reference, &hyp, MAX_DER));
        if n == 2 {
            let segs = diarized_json(&env, &wav, "base", Some("fr")).await;
            let label = format!("{n} people {names:?}, diarized_json");
            failures.extend(judge(&label, n, &reference, &segs, 2.0 * MAX_DER));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "issue 14 is open: on these held-out voices the pipeline finds 2/2, 2/3, 4/4 and 5/5 speakers (DER 0.22, 0.40, 0.06, 0.10; diarized_json 2/3, 0.40 and 5/5, 0.07) on 2026-12-06 with the recheck and wideband embeddings centred on the background (1/2, 2/3, 3/4, 3/5 and DER 0.49, 0.40, 0.30, 0.47 before both); run with --ignored"]
async fn unseen_espeak_voices_are_counted_and_separated() {
    let mut env = Env::start().await;
    env.worker("speech", &["--queues", "gpu", "--preload"]);
    let dir = audio_dir(&env);
    let mut failures = Vec::new();
    for voices in CONVERSATIONS {
        let n = voices.len();
        let (wav, reference) = espeak_conversation(&dir, n, voices);
        let hyp = files_api(&env, &wav).await;
        let label = format!("{n} voices {voices:?}, files API");
        failures.extend(judge(&label, n, &reference, &hyp, MAX_DER));
        if n == 3 || n == 5 {
            // Segment-level labels: the words' speaker, so the bound is looser by the
            // pauses inside segments (scored as speech).
            let segs = diarized_json(&env, &wav, "gpt-4o-transcribe-diarize", None).await;
            let label = format!("{n} voices, diarized_json");
            failures.extend(judge(&label, n, &reference, &segs, 2.0 * MAX_DER));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
