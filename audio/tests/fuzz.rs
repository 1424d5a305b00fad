//! Property tests: random bytes, and truncated or bit-flipped valid files of every format, give
//! `Ok` or a coded `Err` and never unwind out of the library.
//!
//! The library catches decoder panics itself, so "did not unwind" alone would hide them. A panic
//! hook counts every panic raised while the library runs (and keeps stderr quiet for those); each
//! test prints the count, and a caught panic must have become `corrupt_audio`.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;
use proptest::sample::Index;
use voxfleet_audio::{DecodeOptions, decode_bytes, probe_bytes};

use common::{WavFormat, run, sines, wav_bytes};
use voxfleet_errors::Classified;

thread_local! {
    static IN_LIBRARY: Cell<bool> = const { Cell::new(false) };
}
static PANICS: AtomicU64 = AtomicU64::new(0);
static PANIC_MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static OUTCOMES: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

fn install_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_LIBRARY.with(Cell::get) {
                PANICS.fetch_add(1, Ordering::SeqCst);
                let mut messages = PANIC_MESSAGES.lock().unwrap_or_else(|e| e.into_inner());
                if messages.len() < 20 {
                    messages.push(info.to_string());
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// Decodes and probes `bytes`, asserting the library returned normally.
fn check(bytes: Vec<u8>, ext: Option<&str>) -> Result<(), TestCaseError> {
    install_hook();
    let before = PANICS.load(Ordering::SeqCst);
    IN_LIBRARY.with(|f| f.set(true));
    let opts = DecodeOptions::default();
    let decoded = catch_unwind(AssertUnwindSafe(|| decode_bytes(bytes.clone(), ext, &opts)));
    let probed = catch_unwind(AssertUnwindSafe(|| probe_bytes(bytes, ext)));
    IN_LIBRARY.with(|f| f.set(false));
    prop_assert!(decoded.is_ok(), "decode_bytes unwound instead of returning");
    prop_assert!(probed.is_ok(), "probe_bytes unwound instead of returning");
    let decoded = decoded.unwrap_or_else(|_| unreachable!());
    let code = match &decoded {
        Ok(audio) => {
            prop_assert!(audio.samples.iter().all(|s| (-1.0..=1.0).contains(s)));
            "ok"
        }
        Err(err) => err.code(),
    };
    *OUTCOMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(code)
        .or_default() += 1;
    if PANICS.load(Ordering::SeqCst) > before {
        prop_assert!(decoded.is_err(), "a panic must not yield audio");
    }
    Ok(())
}

fn report(test: &str) {
    let messages = PANIC_MESSAGES.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "{test}: outcomes so far {:?}; panics caught in the library: {}",
        OUTCOMES.lock().unwrap_or_else(|e| e.into_inner()),
        PANICS.load(Ordering::SeqCst)
    );
    for m in messages.iter() {
        eprintln!("  panic: {m}");
    }
}

/// Short valid files of every format (0.4 s, 22.05 kHz, so debug-mode decoding stays fast).
fn seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        common::require_tool("ffmpeg", "ffmpeg");
        let dir = tempfile::tempdir().expect("tempdir");
        let wav = wav_bytes(
            22_050,
            2,
            &sines(22_050, 8_820, &[440.0, 660.0], &[0.5, 0.3]),
            WavFormat::Pcm16,
        );
        let src: PathBuf = dir.path().join("seed.wav");
        std::fs::write(&src, &wav).expect("write seed");
        let mut seeds = vec![
            ("wav".to_owned(), wav),
            (
                "wav".to_owned(),
                wav_bytes(
                    8_000,
                    1,
                    &sines(8_000, 3_200, &[300.0], &[0.5]),
                    WavFormat::Float32,
                ),
            ),
        ];
        for (ext, codec) in [
            ("flac", "flac"),
            ("mp3", "libmp3lame"),
            ("ogg", "libvorbis"),
            ("m4a", "aac"),
            ("aac", "aac"),
        ] {
            let out = dir.path().join(format!("seed.{ext}"));
            let (src, out_s) = (src.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
            let mut args = vec!["-v", "error", "-y", "-i", src, "-c:a", codec];
            if ext == "aac" {
                args.extend(["-f", "adts"]);
            }
            args.push(out_s);
            run("ffmpeg", &args);
            seeds.push((ext.to_owned(), std::fs::read(&out).expect("read seed")));
        }
        seeds
    })
}

/// Applies a truncation and byte overwrites to a seed.
fn mutate(seed: &[u8], keep: f64, flips: &[(Index, u8)]) -> Vec<u8> {
    let mut bytes = seed[..((seed.len() as f64 * keep) as usize).max(1)].to_vec();
    let len = bytes.len();
    for (at, xor) in flips {
        bytes[at.index(len)] ^= xor | 1;
    }
    bytes
}

/// Runs `cases` cases of `strategy` through `check`, failing with proptest's minimal input.
/// `VOXFLEET_FUZZ_SCALE=N` multiplies every case count (for a deeper run, e.g. in release).
fn fuzz<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let scale: u32 = std::env::var("VOXFLEET_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let config = ProptestConfig {
        cases: cases * scale,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(err) = runner.run(&strategy, test) {
        panic!("{err}");
    }
}

/// One test, so the printed totals cover every case: 16,000 inputs, under 10 s in debug.
#[test]
fn decoding_never_panics() {
    // Random bytes: almost all unrecognised, some accidental MP3/ADTS syncs.
    fuzz(
        1_000,
        proptest::collection::vec(any::<u8>(), 0..65_536),
        |bytes| check(bytes, None),
    );

    // Random bodies behind each container's magic bytes, so the probe lets them through.
    let magics: Vec<&'static [u8]> = vec![
        b"RIFF\xff\xff\xff\xffWAVEfmt ",
        b"fLaC\0\0\0\x22",
        b"OggS\0\x02",
        b"ID3\x04\0\0\0\0\0\0",
        b"\xff\xfb\x90\x64",
        b"\0\0\0\x20ftypM4A ",
        b"\xff\xf1\x50\x80",
    ];
    let behind_magic = (
        prop::sample::select(magics),
        proptest::collection::vec(any::<u8>(), 0..16_384),
    );
    fuzz(3_000, behind_magic, |(magic, body)| {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&body);
        check(bytes, None)
    });

    // Valid short files of every format, truncated anywhere and with up to 12 bytes changed.
    for (ext, seed) in seeds() {
        let audio = decode_bytes(seed.clone(), Some(ext), &DecodeOptions::default());
        // 0.4 s, plus up to two 1024-frame AAC blocks of untrimmed priming/padding at 22.05 kHz.
        let duration_s = audio.map(|a| a.duration_s);
        assert!(
            duration_s.as_ref().is_ok_and(|d| (0.39..0.5).contains(d)),
            "seed {ext}: {duration_s:?}"
        );
    }
    let mutations = (
        any::<Index>(),
        0.0f64..=1.0,
        proptest::collection::vec((any::<Index>(), any::<u8>()), 0..12),
    );
    fuzz(12_000, mutations, |(which, keep, flips)| {
        let (ext, seed) = which.get(seeds());
        check(mutate(seed, keep, &flips), Some(ext))
    });

    report("decoding_never_panics");
}
