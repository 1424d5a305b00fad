//! What a caller can ask of the [`Diarizer`](super::Diarizer): [`DiarizeOptions`] and the
//! [`Method`] of embedding and clustering.
use crate::subsegment::SubSegmentOptions;

/// Default [`DiarizeOptions::min_cluster_size`]: no folding. On the development set's `tune`
/// part (`voxfleet-bench-diarize --sweep-min-cluster-size 0,4,8,12,16`) every size tried
/// folded real speakers with little speech (AMI: 3/10 counts right with none, 1/10 with 4-16).
pub const DEFAULT_MIN_CLUSTER_SIZE: usize = 0;

/// Options of [`Diarizer::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeOptions {
    /// Exact number of speakers; overrides the threshold and the other hints.
    pub num_speakers: Option<usize>,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Clustering threshold (cosine distance); default
    /// [`FrontEnd::default_threshold`](crate::FrontEnd::default_threshold).
    pub threshold: Option<f32>,
    /// Clips per embedding batch (also how often `stop` is checked). Default 32.
    pub batch_size: usize,
    /// Segmentation window step in seconds. Default 1.0 (10 s windows, 90 % overlap).
    pub step_s: f64,
    /// What is embedded and clustered. Default [`Method::Windows`].
    pub method: Method,
    /// How [`Method::SubSegments`] cuts and cleans up.
    pub subsegments: SubSegmentOptions,
    /// [`Method::Windows`]: clusters with fewer members (embedded window and local speaker
    /// pairs) than this are folded into their nearest cluster, as pyannote's
    /// `min_cluster_size` does; 0 or 1 keeps every cluster. Not applied with `num_speakers`.
    pub min_cluster_size: usize,
    /// [`Method::Windows`] without `threshold`: when set, the clustering threshold comes from
    /// the recording itself, this factor times the median cosine distance from each embedding
    /// to its nearest one in a window that does not overlap its own (how far apart one voice's
    /// stretches lie in this recording), within [`ADAPTIVE_RANGE`].
    pub threshold_scale: Option<f32>,
    /// [`Method::Windows`] without `threshold`, `threshold_scale` or `num_speakers`: when set,
    /// the number of speakers is where the dendrogram of the clustered embeddings jumps most
    /// within this range of cosine distances ([`crate::cluster::count_at_largest_gap`]),
    /// within the speaker-count hints.
    pub gap_range: Option<(f32, f32)>,
    /// [`Method::Windows`]: subtract the embedding model's [`Background`](crate::Background)
    /// mean (of the recording's band) from every unit embedding before clustering and
    /// assignment, when the model has one and a threshold for it (given, or the model's
    /// [`FrontEnd::default_background_threshold`](crate::FrontEnd::default_background_threshold):
    /// CAM++ on wideband audio). The speakers' embeddings stay the model's own. Default on.
    pub background: bool,
    /// When set, a second look at the speakers found (the `recheck` module of `diarize`): each
    /// speaker's single-speaker stretches are embedded again in pieces of 1–3 s, and two speakers
    /// whose pieces agree with each other within this margin (cosine similarity) of how well each
    /// one's pieces agree among themselves are merged; a speaker with under two seconds of speech
    /// is folded into the nearest. Not with `num_speakers`; never below `min_speakers`. Default
    /// [`DEFAULT_RECHECK`].
    pub recheck: Option<f32>,
    /// With [`DiarizeOptions::recheck`]: a speaker with less speech than this (seconds) is
    /// folded into the speaker whose embedding is nearest. Default [`DEFAULT_FOLD_BELOW_S`].
    pub fold_below_s: f64,
    /// With [`DiarizeOptions::recheck`]: the weight of the diarizer's embedding model in how
    /// similar two pieces are; the rest is the second model's
    /// ([`Diarizer::with_second`](super::Diarizer::with_second)), whose pieces are then
    /// embedded too. 1 (the default), or no second model: the first model alone.
    pub recheck_weight: f32,
}

/// Default [`DiarizeOptions::fold_below_s`]: such a speaker has at most one short piece to be
/// checked by. On the development set's `tune` part (`voxfleet-bench-diarize --split tune
/// --fold-below 1|2|3`) 2 s against 1 s gave the real telephone-band part (AMI through a
/// telephone channel) 4/10 right counts instead of 3/10 (DER 42.5 → 41.6 %) and changed no
/// other part; 3 s folded real AMI speakers and espeak voices (synthetic 16/20 → 14/20).
pub const DEFAULT_FOLD_BELOW_S: f64 = 2.0;

/// Default [`DiarizeOptions::recheck`]. On the development set's `tune` part
/// (`voxfleet-bench-diarize --split tune --sweep-recheck off,0,0.03,0.06,0.1,0.15`), margins
/// 0.03–0.06 gave the most right counts (synthetic 13/20 → 15/20, telephone 3/5 → 5/5; at 0.05 with
/// speakers under a second folded, synthetic 16/20 and noisy 3/5 → 4/5); 0.1 and more merged real
/// AMI speakers (DER 17.3 % → 20.8 %).
pub const DEFAULT_RECHECK: Option<f32> = Some(0.05);

/// Bounds of the recording-derived threshold of [`DiarizeOptions::threshold_scale`].
pub const ADAPTIVE_RANGE: (f32, f32) = (0.1, 0.7);

/// What [`Diarizer::run`] embeds and clusters. On the development set
/// (`voxfleet-bench-diarize`, issue 14) sub-segments were better on the `tune` part (synthetic
/// voices, telephone) but split unseen real voices into too many speakers on the `test` part,
/// so the windows stay the default; the others are there to be measured and chosen per job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Every (window, local speaker) of the segmentation, pyannote 3.x style: one embedding
    /// per local speaker and window, clustered; threshold
    /// [`FrontEnd::default_threshold`](crate::FrontEnd::default_threshold).
    #[default]
    Windows,
    /// Short stretches where the estimated speaker count is one ([`crate::subsegment`]),
    /// clustered, small clusters folded; each frame where one speaker talks takes the label
    /// of its nearest sub-segment, and each window's local speakers the label most of their
    /// frames got (that names the speakers of overlapped frames). Threshold
    /// [`FrontEnd::default_subsegment_threshold`](crate::FrontEnd::default_subsegment_threshold).
    SubSegments,
    /// The number of speakers from [`Method::Windows`], the labels from
    /// [`Method::SubSegments`] clustered to that number.
    Hybrid,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        Self {
            num_speakers: None,
            min_speakers: None,
            max_speakers: None,
            threshold: None,
            batch_size: 32,
            step_s: 1.0,
            method: Method::default(),
            subsegments: SubSegmentOptions::default(),
            min_cluster_size: DEFAULT_MIN_CLUSTER_SIZE,
            threshold_scale: None,
            gap_range: None,
            background: true,
            recheck: DEFAULT_RECHECK,
            fold_below_s: DEFAULT_FOLD_BELOW_S,
            recheck_weight: 1.0,
        }
    }
}
