//! The command line of voxfleet-bench-diarize, and the clustering settings it asks for.
use std::path::PathBuf;

use anyhow::{Context, Result};
use voxfleet_speakers::DiarizeOptions;

use super::devset::default_dir;

/// DER and speaker-count accuracy of the diarization pipeline on the development set.
#[derive(Debug, clap::Parser)]
pub(super) struct Args {
    /// Which recordings: `tune`, `test` or `all`.
    #[arg(long, default_value = "all")]
    pub(super) split: String,
    /// Only parts whose name starts with this (synthetic, ami, real-mix, ...).
    #[arg(long)]
    pub(super) part: Option<String>,
    /// Cosine-distance threshold of the agglomerative clustering (default: the embedding
    /// model's, `FrontEnd::default_threshold`).
    #[arg(long)]
    pub(super) threshold: Option<f32>,
    /// What is embedded and clustered: `windows` (one embedding per window and local
    /// speaker, the default), `subsegments` (1.5 s stretches of one speaker) or `hybrid`
    /// (the windows' count, the sub-segments' labels); see `voxfleet_speakers::Method`.
    #[arg(long, default_value = "windows")]
    pub(super) method: String,
    /// Sub-segment length in seconds (`--method subsegments`).
    #[arg(long)]
    pub(super) sub_len: Option<f64>,
    /// Hop between sub-segments in seconds.
    #[arg(long)]
    pub(super) sub_step: Option<f64>,
    /// Clusters with less sub-segment speech than this (seconds) are folded.
    #[arg(long)]
    pub(super) min_cluster: Option<f64>,
    /// Cluster sub-segment embeddings less the recording's mean embedding.
    #[arg(long)]
    pub(super) center: bool,
    /// Also check known-speaker naming (`known_speaker_references`) on the recordings whose
    /// manifest entry names its people (`voices`: the real-voice mixes): each person's
    /// reference is their first 10 s of speech in another recording of the same part, every
    /// person of the part is offered, and the worker's matching runs at a range of
    /// thresholds.
    #[arg(long)]
    pub(super) known: bool,
    /// Give the Diarizer the reference's number of speakers.
    #[arg(long)]
    pub(super) oracle_count: bool,
    /// `--method windows`: clusters with fewer members than this are folded
    /// (`DiarizeOptions::min_cluster_size`; default: the Diarizer's).
    #[arg(long)]
    pub(super) min_cluster_size: Option<usize>,
    /// Also run these thresholds (comma-separated) on every recording, the models' outputs
    /// computed once, and print one summary row per part for each setting.
    #[arg(long, value_delimiter = ',')]
    pub(super) sweep_threshold: Vec<f32>,
    /// Also run these `min_cluster_size` values (comma-separated), crossed with
    /// `--sweep-threshold`.
    #[arg(long, value_delimiter = ',')]
    pub(super) sweep_min_cluster_size: Vec<usize>,
    /// `--method windows`: the threshold from each recording, this factor times its median
    /// nearest-neighbour distance (`DiarizeOptions::threshold_scale`).
    #[arg(long)]
    pub(super) threshold_scale: Option<f32>,
    /// `--method windows`: the speaker count from the largest jump of the dendrogram within
    /// this range of cosine distances, `lo,hi` (`DiarizeOptions::gap_range`).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub(super) gap_range: Vec<f32>,
    /// Also run these tops of the gap range (comma-separated; its bottom from `--gap-range`,
    /// else 0.1), crossed with the other sweeps.
    #[arg(long, value_delimiter = ',')]
    pub(super) sweep_gap_top: Vec<f32>,
    /// Also run these `threshold_scale` values (comma-separated), crossed with the other
    /// sweeps.
    #[arg(long, value_delimiter = ',')]
    pub(super) sweep_scale: Vec<f32>,
    /// Instead of diarizing, write what the windows method clusters (every embedded window
    /// and local speaker, with the reference speaker who covers it) as JSON lines to this
    /// file, for `python/diarize_embeddings.py`.
    #[arg(long)]
    pub(super) dump_embeddings: Option<PathBuf>,
    /// With `--dump-embeddings`: also embed each clip with this embedding profile's model
    /// (`v3`: GE2E), written as `embedding2`, to judge the two models and their fusion.
    #[arg(long, requires = "dump_embeddings")]
    pub(super) dump_second: Option<String>,
    /// `--method windows`: cluster the embeddings as the model gives them, not centred on its
    /// background mean (`DiarizeOptions::background`, on by default; it applies where the
    /// model has a threshold for it, or `--threshold` names one).
    #[arg(long)]
    pub(super) no_background: bool,
    /// Instead of diarizing, print how the embeddings the windows method clusters separate
    /// voices: cosine similarities of clips of one reference speaker (windows at least 10 s
    /// apart) and of different speakers of one recording, per part, as the model gives them
    /// and centred on its background, with the equal error rate.
    #[arg(long)]
    pub(super) similarities: bool,
    /// Instead of diarizing, fit the background means on the `tune` part (every embedding the
    /// windows method clusters, by band) and write them as Rust source to this file
    /// (`speakers/src/background/campplus.rs`).
    #[arg(long)]
    pub(super) fit_background: Option<PathBuf>,
    /// The second look at the speakers found (`DiarizeOptions::recheck`): merge two whose
    /// single-speaker pieces agree within this margin of their own agreement (default: the
    /// Diarizer's; `--recheck off` for none).
    #[arg(long)]
    pub(super) recheck: Option<String>,
    /// Also run these recheck margins (comma-separated; `off` for none), crossed with the
    /// other sweeps.
    #[arg(long, value_delimiter = ',')]
    pub(super) sweep_recheck: Vec<String>,
    /// With the recheck: speakers with less speech than this (seconds) are folded into the
    /// nearest (`DiarizeOptions::fold_below_s`; default: the Diarizer's).
    #[arg(long)]
    pub(super) fold_below: Option<f64>,
    /// Give the diarizer a second embedding model (this profile's: `v3` is GE2E) for the
    /// recheck's pieces (`Diarizer::with_second`); used where `--recheck-weight` is under 1.
    #[arg(long)]
    pub(super) second: Option<String>,
    /// With the recheck and `--second`: the weight of the diarizer's own model in how similar
    /// two pieces are, the rest the second model's (`DiarizeOptions::recheck_weight`;
    /// default 1, the first model alone).
    #[arg(long)]
    pub(super) recheck_weight: Option<f32>,
    /// Also run these recheck weights (comma-separated), crossed with the other sweeps.
    #[arg(long, value_delimiter = ',')]
    pub(super) sweep_recheck_weight: Vec<f32>,
    /// Write each recording's turns (the first setting's) as RTTM into this directory.
    #[arg(long)]
    pub(super) write_rttm: Option<PathBuf>,
    /// One line per recording.
    #[arg(short, long)]
    pub(super) verbose: bool,
    /// Where the development set is (built on first use).
    #[arg(long, default_value_os_t = default_dir())]
    pub(super) dir: PathBuf,
}

/// One clustering setting of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Setting {
    pub(super) threshold: Option<f32>,
    pub(super) min_cluster_size: usize,
    pub(super) threshold_scale: Option<f32>,
    pub(super) gap_range: Option<(f32, f32)>,
    pub(super) recheck: Option<f32>,
    pub(super) recheck_weight: f32,
}

impl Args {
    /// Whether any sweep flag is given (the models' outputs are then kept between settings).
    pub(super) fn sweeping(&self) -> bool {
        !self.sweep_threshold.is_empty()
            || !self.sweep_min_cluster_size.is_empty()
            || !self.sweep_scale.is_empty()
            || !self.sweep_gap_top.is_empty()
            || !self.sweep_recheck.is_empty()
            || !self.sweep_recheck_weight.is_empty()
    }

    /// The settings to run: the one the flags name first, then every other of the sweeps'
    /// cross product.
    pub(super) fn settings(&self) -> Result<Vec<Setting>> {
        let min_cluster_size = self
            .min_cluster_size
            .unwrap_or(DiarizeOptions::default().min_cluster_size);
        let gap_range = (self.gap_range.len() == 2).then(|| (self.gap_range[0], self.gap_range[1]));
        let margin = |s: &str| -> Result<Option<f32>> {
            match s {
                "off" | "none" => Ok(None),
                m => Ok(Some(
                    m.parse().with_context(|| format!("recheck margin {m}"))?,
                )),
            }
        };
        let recheck = match &self.recheck {
            Some(m) => margin(m)?,
            None => DiarizeOptions::default().recheck,
        };

        let recheck_weight = self
            .recheck_weight
            .unwrap_or(DiarizeOptions::default().recheck_weight);
        let mut settings = vec![Setting {
            threshold: self.threshold,
            min_cluster_size,
            threshold_scale: self.threshold_scale,
            gap_range,
            recheck,
            recheck_weight,
        }];
        if self.sweeping() {
            let thresholds: Vec<Option<f32>> = if self.sweep_threshold.is_empty() {
                vec![self.threshold]
            } else {
                self.sweep_threshold.iter().copied().map(Some).collect()
            };
            let sizes = if self.sweep_min_cluster_size.is_empty() {
                vec![min_cluster_size]
            } else {
                self.sweep_min_cluster_size.clone()
            };
            let scales: Vec<Option<f32>> = if self.sweep_scale.is_empty() {
                vec![self.threshold_scale]
            } else {
                self.sweep_scale.iter().copied().map(Some).collect()
            };
            let gaps: Vec<Option<(f32, f32)>> = if self.sweep_gap_top.is_empty() {
                vec![gap_range]
            } else {
                let lo = gap_range.map_or(0.1, |(lo, _)| lo);
                self.sweep_gap_top
                    .iter()
                    .map(|&hi| Some((lo, hi)))
                    .collect()
            };
            let rechecks: Vec<Option<f32>> = if self.sweep_recheck.is_empty() {
                vec![recheck]
            } else {
                self.sweep_recheck
                    .iter()
                    .map(|m| margin(m))
                    .collect::<Result<_>>()?
            };
            let weights = if self.sweep_recheck_weight.is_empty() {
                vec![recheck_weight]
            } else {
                self.sweep_recheck_weight.clone()
            };
            for &threshold in &thresholds {
                for &min_cluster_size in &sizes {
                    for &threshold_scale in &scales {
                        for &gap_range in &gaps {
                            for &recheck in &rechecks {
                                for &recheck_weight in &weights {
                                    let setting = Setting {
                                        threshold,
                                        min_cluster_size,
                                        threshold_scale,
                                        gap_range,
                                        recheck,
                                        recheck_weight,
                                    };
                                    if !settings.contains(&setting) {
                                        settings.push(setting);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(settings)
    }
}
