//! [`ModelsDir`]: how the other crates find verified model files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::convert::WhisperConfig;
use crate::error::{FormatError, ModelError};
use crate::manifest::{MANIFEST_FILE, Manifest, sha256_file};
use crate::registry::{self, ModelSpec, ONNXRUNTIME_LIB};
use crate::verify::{FileState, check_file, check_size};

/// `~/.cache/voxfleet/models` (binaries let `VOXFLEET_MODELS_DIR` override it).
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/voxfleet/models")
}

/// A Whisper model ready for candle: paths plus what the decoder needs from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperFiles {
    /// Registry name (`whisper-tiny.en`).
    pub name: String,
    pub dir: PathBuf,
    /// candle `whisper::Config` JSON.
    pub config: PathBuf,
    /// HF-named f16 `model.safetensors`.
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
    /// The CTranslate2 model directory (`model.bin`, `config.json`, `vocabulary.txt`).
    pub ct2_dir: PathBuf,
    /// `num_mel_bins × 201` row-major Slaney filterbank, for `whisper::audio::pcm_to_mel`.
    pub mel_filters: Vec<f32>,
    pub multilingual: bool,
    pub suppress_ids: Vec<u32>,
    pub suppress_ids_begin: Vec<u32>,
}

/// One model's installation state, for `models list` / `models verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub description: String,
    /// Recorded in the manifest.
    pub installed: bool,
    pub files: Vec<FileStatus>,
}

impl ModelStatus {
    pub fn ok(&self) -> bool {
        self.installed && self.files.iter().all(|f| f.state == FileState::Ok)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileStatus {
    pub name: String,
    pub path: PathBuf,
    /// Size recorded in the manifest.
    pub size: Option<u64>,
    pub state: FileState,
}

/// The model file behind an embedding profile (see [`ModelsDir::speaker_model`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerModelFile {
    /// `v3` or `v4`.
    pub profile: String,
    /// Registry name of the shipped model (`campplus`), or `speaker-v4/model.onnx` for an
    /// operator's own file.
    pub name: String,
    pub path: PathBuf,
    /// Kaldi fbank with the povey window (CAM++) rather than Hamming (WeSpeaker). Models with
    /// another front end (GE2E mels, raw waveform) ignore it.
    pub povey_window: bool,
    /// An operator's file rather than a shipped one.
    pub supplied: bool,
}

/// How a text-embedding model's weights are stored (which backend runs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextModelFormat {
    /// BERT weights in f32 safetensors (names without the `bert.` prefix), for candle.
    BertSafetensors,
    /// An ONNX model taking `input_ids`, `attention_mask`, `token_type_ids` and giving
    /// `last_hidden_state`, for ONNX Runtime.
    Onnx,
}

/// A text-embedding model's verified files (see [`ModelsDir::text_model`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextModelFiles {
    /// Registry name (`all-minilm-l6-v2`).
    pub name: String,
    pub format: TextModelFormat,
    pub weights: PathBuf,
    /// Hugging Face `tokenizer.json`.
    pub tokenizer: PathBuf,
}

/// A models directory (see `fetch` for how it is filled).
#[derive(Debug)]
pub struct ModelsDir {
    root: PathBuf,
    /// Files already hashed in this process, with the size and mtime they had then.
    verified: Mutex<HashMap<PathBuf, Hashed>>,
}

/// (size, mtime, sha256) of a file when it was hashed.
type Hashed = (u64, Option<SystemTime>, String);

impl ModelsDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `name`: `tiny.en`, `base`, or the registry names `whisper-tiny.en`, `whisper-base`.
    pub fn whisper(&self, name: &str) -> Result<WhisperFiles, ModelError> {
        let spec = registry::whisper(name).ok_or_else(|| ModelError::UnknownModel {
            name: short_name(name),
            known: registry::whisper_names(),
        })?;
        let dir = self.verified_dir(spec)?;
        let config = dir.join("config.json");
        let bytes = std::fs::read(&config).map_err(|e| ModelError::io("reading", &config, e))?;
        let cfg: WhisperConfig =
            serde_json::from_slice(&bytes).map_err(|e| ModelError::Format {
                what: config.display().to_string(),
                format: "Whisper config.json",
                source: FormatError::new(0, e.to_string()),
            })?;
        Ok(WhisperFiles {
            name: spec.name.into(),
            weights: dir.join("model.safetensors"),
            tokenizer: dir.join("tokenizer.json"),
            ct2_dir: dir.join(registry::WHISPER_CT2_DIR),
            mel_filters: crate::mel::whisper_mel_filters(cfg.num_mel_bins),
            multilingual: cfg.multilingual(),
            suppress_ids: cfg.suppress_tokens,
            suppress_ids_begin: cfg.begin_suppress_tokens,
            config,
            dir,
        })
    }

    /// Path of the verified Silero VAD ONNX file.
    pub fn silero_vad(&self) -> Result<PathBuf, ModelError> {
        let spec = self.spec("silero-vad")?;
        Ok(self.verified_dir(spec)?.join("silero_vad.onnx"))
    }

    /// Path of the verified pyannote segmentation-3.0 ONNX file.
    pub fn segmentation(&self) -> Result<PathBuf, ModelError> {
        let spec = self.spec("pyannote-segmentation-3.0")?;
        Ok(self.verified_dir(spec)?.join(registry::SEGMENTATION_ONNX))
    }

    /// The model file of an embedding profile (`v3`, `v4`).
    ///
    /// An operator's own model wins: `<root>/speaker-<profile>/model.onnx` (e.g. the official
    /// WeSpeaker ResNet34 ONNX for `v4`, or a pyannote/embedding export for `v3`), used as is
    /// (not in the manifest; its fbank window is Hamming, WeSpeaker's, unless
    /// `speaker-<profile>/frontend.json` says `{"fbank_window": "povey"}`). Otherwise the
    /// shipped default, verified: CAM++ for `v4`, Resemblyzer GE2E for `v3`.
    pub fn speaker_model(&self, profile: &str) -> Result<SpeakerModelFile, ModelError> {
        let default = match profile {
            "v4" => ("campplus", registry::CAMPPLUS_ONNX, true),
            "v3" => ("resemblyzer-ge2e", registry::GE2E_ONNX, false),
            other => {
                return Err(ModelError::UnknownModel {
                    name: format!("embedding profile `{other}`"),
                    known: "v3, v4".into(),
                });
            }
        };
        let own_dir = self.root.join(format!("speaker-{profile}"));
        let own = own_dir.join("model.onnx");
        if own.is_file() {
            let frontend = own_dir.join("frontend.json");
            let povey_window = match std::fs::read(&frontend) {
                Ok(bytes) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&bytes).map_err(|e| ModelError::Format {
                            what: frontend.display().to_string(),
                            format: "front-end description (JSON)",
                            source: FormatError::new(0, e.to_string()),
                        })?;
                    match v.get("fbank_window").and_then(|w| w.as_str()) {
                        None | Some("hamming") => false,
                        Some("povey") => true,
                        Some(other) => {
                            return Err(ModelError::Format {
                                what: frontend.display().to_string(),
                                format: "front-end description (JSON)",
                                source: FormatError::new(
                                    0,
                                    format!("fbank_window `{other}`: expected hamming or povey"),
                                ),
                            });
                        }
                    }
                }
                Err(_) => false,
            };
            return Ok(SpeakerModelFile {
                profile: profile.into(),
                name: format!("speaker-{profile}/model.onnx"),
                path: own,
                povey_window,
                supplied: true,
            });
        }
        let (name, file, povey_window) = default;
        let spec = self.spec(name)?;
        Ok(SpeakerModelFile {
            profile: profile.into(),
            name: name.into(),
            path: self.verified_dir(spec)?.join(file),
            povey_window,
            supplied: false,
        })
    }

    /// The verified files of a text-embedding model: `all-minilm-l6-v2` (alias `minilm`,
    /// safetensors for candle) or `all-minilm-l6-v2-int8` (alias `minilm-int8`, ONNX).
    pub fn text_model(&self, name: &str) -> Result<TextModelFiles, ModelError> {
        let spec = self.spec(name)?;
        let (format, weights) = match spec.name {
            "all-minilm-l6-v2" => (TextModelFormat::BertSafetensors, registry::TEXT_SAFETENSORS),
            "all-minilm-l6-v2-int8" => (TextModelFormat::Onnx, registry::TEXT_ONNX),
            _ => {
                return Err(ModelError::UnknownModel {
                    name: name.into(),
                    known: "all-minilm-l6-v2, all-minilm-l6-v2-int8".into(),
                });
            }
        };
        let dir = self.verified_dir(spec)?;
        Ok(TextModelFiles {
            name: spec.name.into(),
            format,
            weights: dir.join(weights),
            tokenizer: dir.join(registry::TEXT_TOKENIZER),
        })
    }

    /// Path of the verified ONNX Runtime library (set `ORT_DYLIB_PATH` to it).
    pub fn onnxruntime(&self) -> Result<PathBuf, ModelError> {
        let spec = self.spec("onnxruntime")?;
        Ok(self.verified_dir(spec)?.join(ONNXRUNTIME_LIB))
    }

    /// Every registry model (and any other manifest entry) with each file's state. Hashes
    /// every installed file.
    pub fn status(&self) -> Result<Vec<ModelStatus>, ModelError> {
        let manifest = Manifest::load(&self.root)?;
        let mut out = Vec::new();
        for spec in registry::MODELS {
            let rec = manifest.models.get(spec.name);
            let files = spec
                .outputs()
                .into_iter()
                .map(|name| {
                    let path = self.root.join(spec.name).join(name);
                    let fr = rec.and_then(|r| r.files.get(name));
                    let state = match fr {
                        Some(fr) => check_file(&path, fr),
                        None if path.exists() => FileState::NotRecorded,
                        None => FileState::Missing,
                    };
                    FileStatus {
                        name: name.into(),
                        path,
                        size: fr.map(|f| f.size),
                        state,
                    }
                })
                .collect();
            out.push(ModelStatus {
                name: spec.name.into(),
                description: spec.description.into(),
                installed: rec.is_some(),
                files,
            });
        }
        Ok(out)
    }

    fn spec(&self, name: &str) -> Result<&'static ModelSpec, ModelError> {
        let name = name.trim();
        registry::find(name)
            .or_else(|| registry::find(&format!("whisper-{name}")))
            .ok_or_else(|| ModelError::UnknownModel {
                name: short_name(name),
                known: registry::known_names(),
            })
    }

    /// `<root>/<model>/` after checking every produced file against the manifest.
    fn verified_dir(&self, spec: &ModelSpec) -> Result<PathBuf, ModelError> {
        let dir = self.root.join(spec.name);
        let manifest = Manifest::load(&self.root)?;
        let missing = |path: PathBuf| ModelError::Missing {
            model: spec.name.into(),
            path,
            root: self.root.clone(),
        };
        let Some(rec) = manifest.models.get(spec.name) else {
            // Name the first absent file; if all are there, they were not installed by fetch.
            let first_absent = spec
                .outputs()
                .into_iter()
                .map(|n| dir.join(n))
                .find(|p| !p.exists());
            return Err(missing(
                first_absent.unwrap_or_else(|| self.root.join(MANIFEST_FILE)),
            ));
        };
        for name in spec.outputs() {
            let path = dir.join(name);
            let Some(fr) = rec.files.get(name) else {
                return Err(ModelError::Corrupt {
                    model: spec.name.into(),
                    path,
                    detail: "not recorded in manifest.json".into(),
                });
            };
            let state = match check_size(&path, fr) {
                Err(state) => state,
                Ok(()) => self.check_hash_cached(&path, &fr.sha256),
            };
            match state {
                FileState::Ok => {}
                FileState::Missing | FileState::NotRecorded => return Err(missing(path)),
                FileState::Corrupt { detail } => {
                    return Err(ModelError::Corrupt {
                        model: spec.name.into(),
                        path,
                        detail,
                    });
                }
            }
        }
        Ok(dir)
    }

    /// sha256 of `path` compared with `expected`, hashing only when the file's size or mtime
    /// changed since this `ModelsDir` last hashed it.
    fn check_hash_cached(&self, path: &Path, expected: &str) -> FileState {
        let meta = std::fs::metadata(path).ok();
        let stamp = meta.as_ref().map(|m| (m.len(), m.modified().ok()));
        if let (Some((len, mtime)), Ok(cache)) = (stamp, self.verified.lock())
            && let Some((l, t, sha)) = cache.get(path)
            && *l == len
            && *t == mtime
        {
            return if sha == expected {
                FileState::Ok
            } else {
                FileState::Corrupt {
                    detail: format!("sha256 {sha}, manifest says {expected}"),
                }
            };
        }
        match sha256_file(path) {
            Ok((sha, len)) => {
                let ok = sha == expected;
                let detail = format!("sha256 {sha}, manifest says {expected}");
                if let (Ok(mut cache), Some((_, mtime))) = (self.verified.lock(), stamp) {
                    cache.insert(path.to_path_buf(), (len, mtime, sha));
                }
                if ok {
                    FileState::Ok
                } else {
                    FileState::Corrupt { detail }
                }
            }
            Err(e) => FileState::Corrupt {
                detail: format!("unreadable: {e}"),
            },
        }
    }
}

/// A name as a client sent it, cut to 64 bytes for an error message (a job may name a
/// megabyte-long model).
fn short_name(name: &str) -> String {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}
