//! CTranslate2's two CPU backends in this build, MKL and oneDNN: the one CTranslate2 computes
//! with is the one `voxfleet_asr::cpu_backend` names (the worker logs it, the bench prints it),
//! both are linked in and reachable, and both transcribe right. CTranslate2 reads its choice
//! once per process (`CT2_USE_MKL`) and logs it with `CT2_VERBOSE=1`, so each case runs this
//! test binary again in a child process with those variables set.

mod common;

use std::ops::ControlFlow;
use std::process::Command;

use common::*;
use voxfleet_asr::{ComputeType, DeviceSpec, EngineKind, EngineSettings, TranscribeOptions};

const CHILD: &str = "VOXFLEET_TEST_CPU_BACKEND_CHILD";
const NAME: &str = "ctranslate2_computes_with_the_backend_voxfleet_names";

/// In the child: loads tiny.en at int8 where this CPU allows it (float32 elsewhere), transcribes
/// the short sentence and prints the backend voxfleet names and the WER.
fn child() {
    let compute_type = match ComputeType::Int8.check_on(DeviceSpec::Cpu) {
        Ok(()) => ComputeType::Int8,
        Err(_) => ComputeType::Float32,
    };
    let cache = cache_with(EngineSettings {
        engine: EngineKind::Ct2,
        compute_type: Some(compute_type),
        cpu_threads: 2,
        replicas: 1,
    });
    let whisper = cache.whisper("tiny.en").expect("tiny.en");
    let opts = TranscribeOptions {
        vad: false,
        ..Default::default()
    };
    let t = whisper
        .transcribe(&speak(SHORT), &opts, None, &mut |_| {
            ControlFlow::Continue(())
        })
        .expect("transcribe");
    let wer = word_error_rate(SHORT, &t.text());
    eprintln!(
        "voxfleet backend: {} compute: {compute_type} wer: {wer:.3} text: {}",
        voxfleet_asr::cpu_backend(),
        t.text()
    );
}

#[test]
fn ctranslate2_computes_with_the_backend_voxfleet_names() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let mut seen = Vec::new();
    // CTranslate2's default, then MKL forced, then MKL refused (oneDNN).
    for use_mkl in [None, Some("1"), Some("0")] {
        let mut cmd = Command::new(&exe);
        cmd.args([NAME, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD, "1")
            .env("CT2_VERBOSE", "1");
        match use_mkl {
            Some(v) => cmd.env("CT2_USE_MKL", v),
            None => cmd.env_remove("CT2_USE_MKL"),
        };
        let out = cmd.output().expect("run the child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "CT2_USE_MKL={use_mkl:?}: {stderr}");
        let line = stderr
            .lines()
            .find_map(|l| l.split("voxfleet backend: ").nth(1))
            .unwrap_or_else(|| panic!("no result from the child: {stderr}"));
        let ours = line.split_whitespace().next().expect("a backend name");
        // CTranslate2 calls oneDNN "DNNL".
        let theirs = if ours == "oneDNN" { "DNNL" } else { ours };
        for kind in ["SGEMM", "GEMM_S8"] {
            assert!(
                stderr.contains(&format!("{kind} backend: {theirs} ")),
                "CT2_USE_MKL={use_mkl:?}: voxfleet names {ours}, CTranslate2 logged: {stderr}"
            );
        }
        let wer: f64 = line
            .split("wer: ")
            .nth(1)
            .and_then(|w| w.split_whitespace().next())
            .and_then(|w| w.parse().ok())
            .expect("a WER");
        assert!(wer <= 0.3, "CT2_USE_MKL={use_mkl:?}: {line}");
        eprintln!("CT2_USE_MKL={use_mkl:?}: {line}");
        seen.push(ours.to_owned());
    }
    assert_eq!(seen[1], "MKL");
    assert_eq!(seen[2], "oneDNN");
}
