//! Whisper on CTranslate2 (through `ct2rs`), the engine faster-whisper, WhisperX and speaches run.
//!
//! CTranslate2 does the network: the encoder, the decoder with its timestamp rules, greedy /
//! beam / sampled search, the no-speech probability, and language detection, on its own int8 or
//! float kernels (MKL + Intel OpenMP on x86 CPUs here, see `scripts/tools.sh`). voxfleet keeps the
//! long-form loop on top (`engine`): the 30 s windows, seeking by timestamps, the temperature
//! fallback, prompts, VAD skips, progress and cancellation.
//!
//! It reads the CTranslate2 model directory `models fetch` keeps (`ct2/model.bin`, `config.json`,
//! `vocabulary.txt`): the same files faster-whisper loads, not a conversion.

use std::path::Path;
use std::sync::{Condvar, Mutex};

use ct2rs::sys::{
    self, ComputeType as Ct2Compute, Config, Device, StorageView, Whisper, WhisperOptions,
};

use crate::decode::WindowResult;
use crate::{AsrError, ComputeType, DeviceSpec};

/// A loaded CTranslate2 Whisper model: one instance per replica, each lent to one transcription
/// at a time.
///
/// Why not CTranslate2's own replicas (several `device_indices`)? They share the packed int8
/// weights, and two of them running at once on the CPU crash in MKL's packed int8 GEMM with an
/// integer division by zero (SIGFPE, measured here with two and four concurrent calls); separate
/// instances, each with its own weights, run side by side without it (the
/// `two_replicas_transcribe_at_once` test).
pub(crate) struct Ct2Net {
    pool: Vec<Whisper>,
    free: Mutex<Vec<usize>>,
    returned: Condvar,
    /// Token strings by id, as CTranslate2 reads them (`vocabulary.txt`): prompts are passed to
    /// it as strings.
    vocab: Vec<String>,
    pub n_mels: usize,
}

/// The encoder's output for a batch of windows, kept for language detection and every fallback
/// attempt.
pub(crate) struct Ct2Encoded(StorageView<'static>);

fn runtime(context: &'static str) -> impl Fn(anyhow::Error) -> AsrError {
    move |e| AsrError::Runtime {
        context,
        source: e.into(),
    }
}

impl Ct2Net {
    /// Loads `dir` (a CTranslate2 Whisper directory) on `device`, `threads` CPU threads for
    /// each call (0: CTranslate2's default), `replicas` calls at once (they share the weights).
    pub(crate) fn load(
        dir: &Path,
        device: DeviceSpec,
        compute: ComputeType,
        threads: usize,
        replicas: usize,
    ) -> Result<Self, AsrError> {
        let load_err = |reason: String| AsrError::Load {
            what: "CTranslate2 model",
            path: dir.to_path_buf(),
            reason,
        };
        let vocab_path = dir.join("vocabulary.txt");
        let vocab: Vec<String> = std::fs::read_to_string(&vocab_path)
            .map_err(|e| load_err(format!("{}: {e}", vocab_path.display())))?
            .lines()
            .map(str::to_string)
            .collect();
        // CTranslate2 makes one replica per entry of `device_indices`.
        let (device, index) = match device {
            DeviceSpec::Cpu => (Device::CPU, 0),
            DeviceSpec::Cuda(n) => (Device::CUDA, n as i32),
        };
        let replicas = replicas.max(1);
        // 0: the cores shared among the replicas (CTranslate2's own default is 4 threads each,
        // whatever the machine).
        let threads = match threads {
            0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / replicas).max(1),
            n => n,
        };
        let pool = (0..replicas)
            .map(|_| {
                let config = Config {
                    device,
                    compute_type: compute.to_ct2(),
                    device_indices: vec![index],
                    num_threads_per_replica: threads,
                    ..Default::default()
                };
                Whisper::new(dir, config).map_err(|e| load_err(format!("{e:#}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n_mels = pool[0].n_mels();
        Ok(Self {
            free: Mutex::new((0..pool.len()).rev().collect()),
            returned: Condvar::new(),
            pool,
            vocab,
            n_mels,
        })
    }

    /// An instance for one transcription, waiting for one to be free.
    pub(crate) fn lease(&self) -> Ct2Lease<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(i) = free.pop() {
                return Ct2Lease { net: self, i };
            }
            free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One instance of a [`Ct2Net`], given back when dropped.
pub(crate) struct Ct2Lease<'a> {
    net: &'a Ct2Net,
    i: usize,
}

impl Drop for Ct2Lease<'_> {
    fn drop(&mut self) {
        self.net
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.i);
        self.net.returned.notify_one();
    }
}

impl Ct2Lease<'_> {
    fn inner(&self) -> &Whisper {
        &self.net.pool[self.i]
    }

    /// Encodes `batch` windows' log-mels, each `n_mels × 3000` row-major, one after another.
    pub(crate) fn encode(&self, mel: &mut [f32], batch: usize) -> Result<Ct2Encoded, AsrError> {
        let n_mels = self.net.n_mels;
        let frames = mel.len() / (n_mels * batch.max(1));
        let view = StorageView::new(&[batch, n_mels, frames], mel, Device::CPU)
            .map_err(runtime("passing the log-mel to CTranslate2"))?;
        let out = self
            .inner()
            .encode(&view, false)
            .map_err(runtime("encoding a window"))?;
        Ok(Ct2Encoded(out))
    }

    /// Language token strings (`<|en|>`) with their probabilities, best first, for the first
    /// window of the batch.
    pub(crate) fn detect_language(
        &self,
        audio: &Ct2Encoded,
    ) -> Result<Vec<(String, f32)>, AsrError> {
        let found = self
            .inner()
            .detect_language(&audio.0)
            .map_err(runtime("detecting the language"))?;
        Ok(found
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.language, d.probability))
            .collect())
    }

    /// Decodes each window of the batch with its prompt (one per window, each ending with
    /// `<|startoftranscript|>` and the language and task tokens); CTranslate2 applies the
    /// timestamp rules, `suppress` and the blank rule itself.
    pub(crate) fn generate(
        &self,
        audio: &Ct2Encoded,
        prompts: &[&[u32]],
        suppress: &[u32],
        step: &Ct2Step,
    ) -> Result<Vec<WindowResult>, AsrError> {
        let words: Vec<Vec<&str>> = prompts
            .iter()
            .map(|prompt| {
                prompt
                    .iter()
                    .map(|&id| {
                        self.net
                            .vocab
                            .get(id as usize)
                            .map(String::as_str)
                            .ok_or_else(|| AsrError::Runtime {
                                context: "building the prompt",
                                source: format!("token {id} is not in the vocabulary").into(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        let sampled = step.temperature > 0.0;
        let opts = WhisperOptions {
            beam_size: if sampled { 1 } else { step.beam_size.max(1) },
            // best_of at a temperature: that many samples, the most probable kept.
            num_hypotheses: if sampled { step.beam_size.max(1) } else { 1 },
            sampling_topk: if sampled { 0 } else { 1 },
            sampling_temperature: if sampled { step.temperature } else { 1.0 },
            // The total of prompt and new tokens (the decoder's positions): CTranslate2 decodes
            // at most half of it, and never past it.
            max_length: step.max_length,
            return_scores: true,
            return_no_speech_prob: true,
            max_initial_timestamp_index: crate::decode::MAX_INITIAL_TIMESTAMP_STEPS as usize,
            suppress_blank: true,
            suppress_tokens: suppress.iter().map(|&t| t as i32).collect(),
            ..Default::default()
        };
        let results = self
            .inner()
            .generate(&audio.0, &words, &opts)
            .map_err(runtime("decoding a window"))?;
        if results.len() != prompts.len() {
            return Err(AsrError::Runtime {
                context: "decoding a window",
                source: format!(
                    "CTranslate2 returned {} results for {} windows",
                    results.len(),
                    prompts.len()
                )
                .into(),
            });
        }
        Ok(results
            .into_iter()
            .map(|result| {
                // The best of the hypotheses: CTranslate2 orders them by score.
                let tokens: Vec<u32> = result
                    .sequences_ids
                    .first()
                    .map(|s| s.iter().map(|&t| t as u32).collect())
                    .unwrap_or_default();
                // CTranslate2's score is the sum of log-probabilities over the length (length
                // penalty 1); Whisper's avg_logprob counts the end token in the length as well.
                let score = result.scores.first().copied().unwrap_or(f32::NEG_INFINITY);
                let n = tokens.len() as f32;
                WindowResult {
                    tokens,
                    avg_logprob: score * n / (n + 1.0),
                    no_speech_prob: result.no_speech_prob,
                    temperature: step.temperature,
                }
            })
            .collect())
    }
}

impl Ct2Lease<'_> {
    /// Aligns each window's text tokens with its audio (dynamic time warping over the alignment
    /// heads' cross-attention): per window, `(text token index, frame index)` pairs over its
    /// tokens and the end-of-text token after them, and each token's probability. `start`: the
    /// `<|startoftranscript|>` sequence (with language and task); `frames`: each window's mel
    /// frames of audio (the rest is padding).
    pub(crate) fn align(
        &self,
        audio: &Ct2Encoded,
        start: &[u32],
        texts: &[Vec<u32>],
        frames: &[usize],
    ) -> Result<Vec<Alignment>, AsrError> {
        let start: Vec<usize> = start.iter().map(|&t| t as usize).collect();
        let texts: Vec<Vec<usize>> = texts
            .iter()
            .map(|t| t.iter().map(|&t| t as usize).collect())
            .collect();
        // faster-whisper's median filter width.
        let found = self
            .inner()
            .align(&audio.0, &start, &texts, frames, 7)
            .map_err(runtime("aligning words"))?;
        Ok(found
            .into_iter()
            .map(|r| Alignment {
                path: r
                    .alignments
                    .iter()
                    .map(|a| (a.token_x, a.frame_x))
                    .collect(),
                token_probs: r.text_token_probs,
            })
            .collect())
    }
}

/// One window's alignment: the DTW path and the text tokens' probabilities.
pub(crate) struct Alignment {
    pub path: Vec<(i64, i64)>,
    pub token_probs: Vec<f32>,
}

/// One decoding attempt's settings.
pub(crate) struct Ct2Step {
    pub temperature: f32,
    pub beam_size: usize,
    /// The decoder's positions (448).
    pub max_length: usize,
}

impl ComputeType {
    fn to_ct2(self) -> Ct2Compute {
        match self {
            ComputeType::Int8 => Ct2Compute::INT8,
            ComputeType::Float32 => Ct2Compute::FLOAT32,
            ComputeType::Float16 => Ct2Compute::FLOAT16,
            ComputeType::Int8Float16 => Ct2Compute::INT8_FLOAT16,
        }
    }
}

/// The GEMM library CTranslate2 computes with on this CPU. This build has two: Intel MKL, which
/// CTranslate2 takes on Intel CPUs, and oneDNN, which it takes elsewhere (AMD's); `CT2_USE_MKL`
/// (`1`/`true`/`TRUE`, or anything else for no) overrides the choice, as in faster-whisper's
/// wheel. The same rule as CTranslate2's `cpu::get_gemm_backend`, so logs and benches can say
/// which one ran.
pub fn cpu_backend() -> &'static str {
    backend_for(&cpu_vendor(), std::env::var("CT2_USE_MKL").ok().as_deref())
}

fn backend_for(vendor: &str, use_mkl: Option<&str>) -> &'static str {
    let mkl = match use_mkl {
        Some(v) if !v.is_empty() => matches!(v, "1" | "true" | "TRUE"),
        _ => vendor == "GenuineIntel",
    };
    if mkl { "MKL" } else { "oneDNN" }
}

/// Whether this build of CTranslate2 can run on `device`. The CPU always can (MKL or oneDNN,
/// [`cpu_backend`]). CUDA needs the `cuda` feature (CTranslate2 built with CUDA; the default
/// build is without) and a visible GPU.
pub(crate) fn check_device(device: DeviceSpec) -> Result<(), AsrError> {
    check_cuda(device)
}

fn check_cuda(device: DeviceSpec) -> Result<(), AsrError> {
    let DeviceSpec::Cuda(n) = device else {
        return Ok(());
    };
    let count = sys::get_device_count(Device::CUDA);
    if (n as i64) < i64::from(count) {
        return Ok(());
    }
    Err(AsrError::DeviceUnavailable {
        device: device.to_string(),
        reason: if count == 0 && !cfg!(feature = "cuda") {
            "this build of CTranslate2 has no CUDA (build with `--features cuda`, or use \
             `--engine candle`)"
                .into()
        } else if count == 0 {
            "CTranslate2 sees no GPU (driver, or CUDA_VISIBLE_DEVICES)".into()
        } else {
            format!("CTranslate2 sees {count} GPU(s)")
        },
    })
}

/// Seeds CTranslate2's sampler (temperature fallback), so a run is repeatable.
pub(crate) fn seed(seed: u32) {
    sys::set_random_seed(seed);
}

/// The CPU's vendor string (`GenuineIntel`, `AuthenticAMD`), from /proc/cpuinfo.
fn cpu_vendor() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("vendor_id"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Whether int8 gives right answers on this CPU, and if not why. Measured on a Xeon with
/// AVX-512 VNNI and AMX by limiting MKL's code paths with `MKL_ENABLE_INSTRUCTIONS`: with
/// `AVX512_E1` (VNNI) and above tiny.en int8 transcribes the bench recording word for word as
/// without the limit; with `AVX512` (no VNNI) or `AVX2` every window decodes to "uh..." (with
/// MKL 2026.2 and 2025.3 alike; float32 stays right, and faster-whisper's own CTranslate2 wheel
/// stays right too, so the cause is in this build and is not found yet). So int8 needs VNNI
/// and no lower MKL limit; the default compute type falls back to float32 without them.
pub(crate) fn cpu_int8() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    let vnni = std::arch::is_x86_feature_detected!("avx512vnni");
    #[cfg(not(target_arch = "x86_64"))]
    let vnni = false;
    int8_verdict(
        vnni,
        std::env::var("MKL_ENABLE_INSTRUCTIONS").ok().as_deref(),
    )
}

/// Whether int8 should be this CPU's default compute type, and if not why: it must be right
/// ([`cpu_int8`]) and fast. MKL's int8 GEMM is fast on Intel CPUs only: on a 2-core AMD EPYC
/// with AVX-512 VNNI (2026-12-07, quiet machine, `voxfleet-bench-asr`), tiny.en greedy on the
/// 189 s bench recording took 39.5 s at int8 on MKL against 7.5 s at float32, and
/// faster-whisper's own CTranslate2 wheel forced onto MKL (`CT2_USE_MKL=1`) took 33.7 s at
/// int8 against 4.7 s on oneDNN. CTranslate2 takes oneDNN on such CPUs unless `CT2_USE_MKL`
/// forces MKL, so only that case falls back to float32.
pub(crate) fn cpu_int8_default() -> Result<(), String> {
    cpu_int8()?;
    int8_speed_verdict(&cpu_vendor(), cpu_backend())
}

fn int8_speed_verdict(vendor: &str, backend: &str) -> Result<(), String> {
    if vendor == "GenuineIntel" || backend != "MKL" {
        return Ok(());
    }
    Err(format!(
        "CT2_USE_MKL puts int8 on MKL, whose int8 kernels are slow on a {} CPU (float32 \
         measured 5x faster on an AMD EPYC; unset CT2_USE_MKL for oneDNN)",
        if vendor.is_empty() {
            "non-Intel"
        } else {
            vendor
        }
    ))
}

fn int8_verdict(vnni: bool, mkl_limit: Option<&str>) -> Result<(), String> {
    if !vnni {
        return Err(
            "this CPU has no AVX-512 VNNI, and this build's int8 kernels give wrong \
                    text without it"
                .into(),
        );
    }
    if let Some(limit) = mkl_limit {
        let ok = [
            "AVX512_E1",
            "AVX512_E2",
            "AVX512_E3",
            "AVX512_E4",
            "AVX512_E5",
            "AVX10",
        ]
        .iter()
        .any(|p| limit.trim().to_ascii_uppercase().starts_with(p));
        if !ok {
            return Err(format!(
                "MKL_ENABLE_INSTRUCTIONS={limit} keeps MKL below AVX-512 VNNI, where this \
                 build's int8 kernels give wrong text"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{backend_for, int8_speed_verdict, int8_verdict};

    #[test]
    fn int8_is_the_default_unless_mkl_is_forced_off_intel() {
        assert!(int8_speed_verdict("GenuineIntel", "MKL").is_ok());
        assert!(int8_speed_verdict("AuthenticAMD", "oneDNN").is_ok());
        let amd = int8_speed_verdict("AuthenticAMD", "MKL").unwrap_err();
        assert!(
            amd.contains("AuthenticAMD") && amd.contains("CT2_USE_MKL"),
            "{amd}"
        );
        assert!(
            int8_speed_verdict("", "MKL")
                .unwrap_err()
                .contains("non-Intel")
        );
    }

    #[test]
    fn the_backend_follows_ctranslate2s_rule() {
        assert_eq!(backend_for("GenuineIntel", None), "MKL");
        assert_eq!(backend_for("AuthenticAMD", None), "oneDNN");
        assert_eq!(backend_for("AuthenticAMD", Some("")), "oneDNN");
        assert_eq!(backend_for("AuthenticAMD", Some("1")), "MKL");
        assert_eq!(backend_for("AuthenticAMD", Some("TRUE")), "MKL");
        assert_eq!(backend_for("GenuineIntel", Some("0")), "oneDNN");
        assert_eq!(backend_for("GenuineIntel", Some("yes")), "oneDNN");
    }

    #[test]
    fn int8_needs_vnni_and_no_lower_mkl_limit() {
        assert!(int8_verdict(true, None).is_ok());
        assert!(int8_verdict(true, Some("AVX512_E1")).is_ok());
        assert!(int8_verdict(true, Some("avx512_e4")).is_ok());
        assert!(int8_verdict(false, None).is_err());
        for low in ["AVX2", "AVX512", "SSE4_2", "AVX2_E1"] {
            let e = int8_verdict(true, Some(low)).unwrap_err();
            assert!(e.contains(low), "{e}");
        }
    }
}
