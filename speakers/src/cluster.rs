//! Agglomerative clustering of speaker embeddings on cosine distance.
//!
//! Cosine distance is `1 - cos(a, b)`, in `[0, 2]`: 0 for the same direction, 1 for orthogonal
//! vectors. Starting from one cluster per embedding, the two closest clusters are merged until the
//! closest pair is at least `threshold` apart, so `threshold` is the largest cosine distance at
//! which two clusters are still judged the same speaker (lower = more speakers). It depends on
//! the embedding model and should be tuned on labelled data. Speaker-count hints override it:
//! `num_speakers` merges to exactly that many clusters; `max_speakers` keeps merging past the
//! threshold while there are too many; `min_speakers` stops merging at that many.
//!
//! Linkage: [`Linkage::Centroid`] compares the means of the members' unit vectors (by cosine);
//! [`Linkage::Average`] takes the mean pairwise distance (updated by Lance–Williams). The
//! implementation keeps the full `n × n` distance matrix (f32) and each cluster's nearest
//! neighbour, so memory is O(n²) and time roughly O(n²) per run plus O(n·d) per merge for
//! centroid linkage. Ties go to the lowest indices, so results are deterministic.

use thiserror::Error;

/// How the distance between two clusters is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Linkage {
    /// Cosine distance between the clusters' mean vectors (pyannote's default).
    #[default]
    Centroid,
    /// Mean cosine distance over all cross-cluster pairs.
    Average,
}

/// Options for [`cluster_embeddings`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterOptions {
    /// Stop merging when the closest clusters are at least this cosine distance apart.
    /// Default 0.6 (cosine similarity 0.4).
    pub threshold: f32,
    /// Default [`Linkage::Centroid`].
    pub linkage: Linkage,
    /// Exact number of clusters (clamped to the number of embeddings); overrides the rest.
    pub num_speakers: Option<usize>,
    /// Never merge below this many clusters.
    pub min_speakers: Option<usize>,
    /// Keep merging past the threshold while there are more clusters than this.
    pub max_speakers: Option<usize>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            threshold: 0.6,
            linkage: Linkage::Centroid,
            num_speakers: None,
            min_speakers: None,
            max_speakers: None,
        }
    }
}

/// Why clustering refused its input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ClusterError {
    /// Embeddings must all have the same, non-zero dimension.
    #[error("embedding {index} has dimension {found}, expected {expected}")]
    DimensionMismatch {
        /// Index of the offending embedding.
        index: usize,
        /// Dimension of the first embedding.
        expected: usize,
        /// Dimension found.
        found: usize,
    },
    /// An embedding holds NaN or infinity, or is all zeros.
    #[error("embedding {index} is not finite or has zero norm")]
    InvalidEmbedding {
        /// Index of the offending embedding.
        index: usize,
    },
    /// `min_speakers` is greater than `max_speakers`, or a hint is zero.
    #[error("inconsistent speaker-count hints: {0}")]
    InvalidHints(&'static str),
}

/// Result of [`cluster_embeddings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Cluster of each embedding; clusters are numbered by their first member's index.
    pub labels: Vec<usize>,
    /// L2-normalised mean of each cluster's (normalised) members.
    pub centroids: Vec<Vec<f32>>,
}

impl Clustering {
    /// Number of clusters.
    pub fn num_clusters(&self) -> usize {
        self.centroids.len()
    }
}

/// `v / |v|`; `None` for a zero or non-finite vector.
pub(crate) fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    if denom > 0.0 { dot / denom } else { 0.0 }
}

/// The closest centroid to `embedding` by cosine similarity: `(index, similarity)`, ties to the
/// lower index. `None` when there are no centroids.
pub fn assign(embedding: &[f32], centroids: &[Vec<f32>]) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (index, centroid) in centroids.iter().enumerate() {
        let similarity = cosine_similarity(embedding, centroid);
        if best.is_none_or(|(_, s)| similarity > s) {
            best = Some((index, similarity));
        }
    }
    best
}

/// Clusters embeddings (see the module docs for the stopping rule).
pub fn cluster_embeddings<E: AsRef<[f32]>>(
    embeddings: &[E],
    options: &ClusterOptions,
) -> Result<Clustering, ClusterError> {
    agglomerate(embeddings, options, None)
}

/// The dendrogram's heights: merging everything into one cluster, the distance of each merge
/// in order, as a running maximum (centroid linkage can merge below an earlier merge). The
/// `k`-th height (from 0) is where `n - k` clusters become `n - k - 1`.
pub fn merge_heights<E: AsRef<[f32]>>(
    embeddings: &[E],
    linkage: Linkage,
) -> Result<Vec<f32>, ClusterError> {
    let options = ClusterOptions {
        threshold: f32::INFINITY,
        linkage,
        num_speakers: Some(1),
        min_speakers: None,
        max_speakers: None,
    };
    let mut heights = Vec::new();
    agglomerate(embeddings, &options, Some(&mut heights))?;
    let mut top = f32::NEG_INFINITY;
    for h in &mut heights {
        top = top.max(*h);
        *h = top;
    }
    Ok(heights)
}

/// The number of clusters where the dendrogram's [`merge_heights`] jump most within `range`
/// (cosine distance): the merges below the largest jump join one speaker's stretches, the ones
/// above join different speakers. Each possible cut is a span of thresholds (from one merge's
/// height to the next one's); its gap is the part of that span inside `range`, so the range
/// bounds where a cut may fall. Keeping every embedding apart (below the first merge) and
/// merging them all (above the last) are cuts too.
pub fn count_at_largest_gap(heights: &[f32], range: (f32, f32)) -> usize {
    let n = heights.len() + 1;
    let (lo, hi) = range;
    // Cut `k` keeps `n - k` clusters: thresholds in (heights[k - 1], heights[k]].
    let mut best: Option<(f32, usize)> = None;
    for k in 0..n {
        let below = if k == 0 { lo } else { heights[k - 1].max(lo) };
        let above = heights.get(k).copied().unwrap_or(f32::INFINITY).min(hi);
        let gap = above - below;
        if gap > 0.0 && best.is_none_or(|(g, _)| gap > g) {
            best = Some((gap, n - k));
        }
    }
    best.map_or(n, |(_, count)| count)
}

fn agglomerate<E: AsRef<[f32]>>(
    embeddings: &[E],
    options: &ClusterOptions,
    mut heights: Option<&mut Vec<f32>>,
) -> Result<Clustering, ClusterError> {
    let n = embeddings.len();
    let (lower, upper) = bounds(n, options)?;
    let dim = embeddings.first().map_or(0, |e| e.as_ref().len());
    let mut sums: Vec<Vec<f32>> = Vec::with_capacity(n);
    for (index, embedding) in embeddings.iter().enumerate() {
        let embedding = embedding.as_ref();
        if embedding.len() != dim {
            return Err(ClusterError::DimensionMismatch {
                index,
                expected: dim,
                found: embedding.len(),
            });
        }
        sums.push(normalized(embedding).ok_or(ClusterError::InvalidEmbedding { index })?);
    }

    let mut dist = vec![0.0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let d = 1.0 - cosine_similarity(&sums[i], &sums[j]);
            dist[i * n + j] = d;
            dist[j * n + i] = d;
        }
    }
    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let mut nn = vec![usize::MAX; n];
    let mut nn_dist = vec![f32::INFINITY; n];
    for i in 0..n {
        rescan(i, n, &dist, &active, &mut nn, &mut nn_dist);
    }

    let mut clusters = n;
    while clusters > lower {
        // Closest pair: the smallest nearest-neighbour distance, ties to the lowest index.
        let mut a = usize::MAX;
        for i in 0..n {
            if active[i] && nn[i] != usize::MAX && (a == usize::MAX || nn_dist[i] < nn_dist[a]) {
                a = i;
            }
        }
        if a == usize::MAX {
            break;
        }
        if clusters <= upper && nn_dist[a] >= options.threshold {
            break;
        }
        if let Some(h) = heights.as_deref_mut() {
            h.push(nn_dist[a]);
        }
        let (keep, gone) = (a.min(nn[a]), a.max(nn[a]));
        merge(keep, gone, options.linkage, n, &mut dist, &mut sums, &size);
        active[gone] = false;
        parent[gone] = keep;
        size[keep] += size[gone];
        clusters -= 1;
        for k in 0..n {
            if !active[k] || k == keep {
                continue;
            }
            if nn[k] == keep || nn[k] == gone {
                rescan(k, n, &dist, &active, &mut nn, &mut nn_dist);
            } else if dist[k * n + keep] < nn_dist[k]
                || (dist[k * n + keep] == nn_dist[k] && keep < nn[k])
            {
                nn[k] = keep;
                nn_dist[k] = dist[k * n + keep];
            }
        }
        rescan(keep, n, &dist, &active, &mut nn, &mut nn_dist);
    }

    // Number clusters by first member; roots are the lowest member index of each cluster.
    let mut label_of_root = vec![usize::MAX; n];
    let mut labels = Vec::with_capacity(n);
    let mut centroids = Vec::new();
    for i in 0..n {
        let mut root = i;
        while parent[root] != root {
            root = parent[root];
        }
        if label_of_root[root] == usize::MAX {
            label_of_root[root] = centroids.len();
            centroids.push(normalized(&sums[root]).unwrap_or_else(|| sums[root].clone()));
        }
        labels.push(label_of_root[root]);
    }
    Ok(Clustering { labels, centroids })
}

/// `(lower, upper)` bounds on the final number of clusters implied by the hints.
fn bounds(n: usize, options: &ClusterOptions) -> Result<(usize, usize), ClusterError> {
    let floor = n.min(1);
    if let Some(k) = options.num_speakers {
        if k == 0 {
            return Err(ClusterError::InvalidHints("num_speakers is 0"));
        }
        let k = k.min(n).max(floor);
        return Ok((k, k));
    }
    let lower = options.min_speakers.unwrap_or(1).min(n).max(floor);
    let upper = options.max_speakers.unwrap_or(usize::MAX);
    if upper == 0 {
        return Err(ClusterError::InvalidHints("max_speakers is 0"));
    }
    if let (Some(min), Some(max)) = (options.min_speakers, options.max_speakers)
        && min > max
    {
        return Err(ClusterError::InvalidHints("min_speakers > max_speakers"));
    }
    Ok((lower, upper.max(lower)))
}

/// Recomputes the nearest active neighbour of `i` (ties to the lowest index).
fn rescan(
    i: usize,
    n: usize,
    dist: &[f32],
    active: &[bool],
    nn: &mut [usize],
    nn_dist: &mut [f32],
) {
    nn[i] = usize::MAX;
    nn_dist[i] = f32::INFINITY;
    for j in 0..n {
        if j != i && active[j] && (nn[i] == usize::MAX || dist[i * n + j] < nn_dist[i]) {
            nn[i] = j;
            nn_dist[i] = dist[i * n + j];
        }
    }
}

/// Merges cluster `gone` into `keep`, updating `keep`'s row and column of `dist`. Cluster sizes
/// are those before the merge.
fn merge(
    keep: usize,
    gone: usize,
    linkage: Linkage,
    n: usize,
    dist: &mut [f32],
    sums: &mut [Vec<f32>],
    size: &[usize],
) {
    let (sk, sg) = (size[keep] as f32, size[gone] as f32);
    let moved = std::mem::take(&mut sums[gone]);
    for (x, y) in sums[keep].iter_mut().zip(&moved) {
        *x += y;
    }
    for k in 0..n {
        if k == keep || k == gone || sums[k].is_empty() {
            continue;
        }
        let d = match linkage {
            Linkage::Average => (sk * dist[keep * n + k] + sg * dist[gone * n + k]) / (sk + sg),
            Linkage::Centroid => 1.0 - cosine_similarity(&sums[keep], &sums[k]),
        };
        dist[keep * n + k] = d;
        dist[k * n + keep] = d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64, enough for reproducible test data.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f32 {
            ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
        }

        fn gaussian(&mut self) -> f32 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        }
    }

    const DIM: usize = 16;

    /// 60 unit vectors; point `i` belongs to centre `i % 3`. Centres 0 and 1 are orthogonal,
    /// centre 2 has cosine 0.3 with centre 0 (distance 0.7) and 0 with centre 1.
    fn three_clusters(seed: u64) -> Vec<Vec<f32>> {
        let mut centres = vec![vec![0.0f32; DIM]; 3];
        centres[0][0] = 1.0;
        centres[1][1] = 1.0;
        centres[2][0] = 0.3;
        centres[2][2] = (1.0f32 - 0.09).sqrt();
        let mut rng = Rng(seed);
        (0..60)
            .map(|i| {
                let v: Vec<f32> = centres[i % 3]
                    .iter()
                    .map(|c| c + 0.03 * rng.gaussian())
                    .collect();
                normalized(&v).expect("non-zero")
            })
            .collect()
    }

    #[test]
    fn threshold_recovers_three_clusters_with_both_linkages() {
        let data = three_clusters(7);
        let expected: Vec<usize> = (0..60).map(|i| i % 3).collect();
        for linkage in [Linkage::Centroid, Linkage::Average] {
            let options = ClusterOptions {
                linkage,
                ..ClusterOptions::default()
            };
            let result = cluster_embeddings(&data, &options).expect("valid input");
            assert_eq!(result.labels, expected, "{linkage:?}");
            assert_eq!(result.num_clusters(), 3);
            for (label, centroid) in result.centroids.iter().enumerate() {
                let norm: f32 = centroid.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5);
                assert_eq!(
                    assign(&data[label], &result.centroids).map(|a| a.0),
                    Some(label)
                );
            }
        }
    }

    #[test]
    fn num_speakers_forces_the_closest_clusters_to_merge() {
        let data = three_clusters(11);
        let options = ClusterOptions {
            num_speakers: Some(2),
            ..ClusterOptions::default()
        };
        let result = cluster_embeddings(&data, &options).expect("valid input");
        let expected: Vec<usize> = (0..60).map(|i| usize::from(i % 3 == 1)).collect();
        assert_eq!(result.labels, expected);
        // max_speakers = 2 overrides the threshold the same way.
        let options = ClusterOptions {
            max_speakers: Some(2),
            ..ClusterOptions::default()
        };
        assert_eq!(
            cluster_embeddings(&data, &options).expect("valid").labels,
            expected
        );
    }

    #[test]
    fn min_and_max_hints_bound_the_count() {
        let data = three_clusters(3);
        // A threshold that would merge everything still stops at min_speakers.
        let options = ClusterOptions {
            threshold: 2.5,
            min_speakers: Some(3),
            ..ClusterOptions::default()
        };
        let result = cluster_embeddings(&data, &options).expect("valid");
        assert_eq!(result.labels, (0..60).map(|i| i % 3).collect::<Vec<_>>());
        // min_speakers above the natural count splits a cluster.
        let options = ClusterOptions {
            min_speakers: Some(4),
            ..ClusterOptions::default()
        };
        assert_eq!(
            cluster_embeddings(&data, &options)
                .expect("valid")
                .num_clusters(),
            4
        );
        // A max above the natural count changes nothing; num_speakers above n is clamped.
        let options = ClusterOptions {
            max_speakers: Some(5),
            ..ClusterOptions::default()
        };
        assert_eq!(
            cluster_embeddings(&data, &options)
                .expect("valid")
                .num_clusters(),
            3
        );
        let options = ClusterOptions {
            num_speakers: Some(100),
            ..ClusterOptions::default()
        };
        assert_eq!(
            cluster_embeddings(&data, &options)
                .expect("valid")
                .num_clusters(),
            60
        );
        // Deterministic: same input, same output.
        let a = cluster_embeddings(&data, &ClusterOptions::default()).expect("valid");
        let b = cluster_embeddings(&data, &ClusterOptions::default()).expect("valid");
        assert_eq!(a, b);
    }

    #[test]
    fn linkage_does_not_chain_along_an_arc() {
        // Unit vectors every 25 degrees from 0 to 150: neighbours are 0.094 apart, so single
        // linkage at threshold 0.15 would chain them into one cluster; centroid and average
        // linkage see merged groups drift apart and stop with several clusters.
        let data: Vec<Vec<f32>> = (0..7)
            .map(|i| {
                let angle = (25.0 * i as f32).to_radians();
                vec![angle.cos(), angle.sin()]
            })
            .collect();
        for linkage in [Linkage::Centroid, Linkage::Average] {
            let options = ClusterOptions {
                threshold: 0.15,
                linkage,
                ..ClusterOptions::default()
            };
            let result = cluster_embeddings(&data, &options).expect("valid");
            assert!(
                result.num_clusters() >= 3,
                "{linkage:?}: {:?}",
                result.labels
            );
            // Clusters stay contiguous along the arc.
            assert!(
                result
                    .labels
                    .windows(2)
                    .all(|w| w[1] == w[0] || w[1] == w[0] + 1)
            );
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let data = vec![vec![1.0, 0.0], vec![1.0]];
        assert!(matches!(
            cluster_embeddings(&data, &ClusterOptions::default()),
            Err(ClusterError::DimensionMismatch { index: 1, .. })
        ));
        let data = vec![vec![0.0, 0.0]];
        assert_eq!(
            cluster_embeddings(&data, &ClusterOptions::default()),
            Err(ClusterError::InvalidEmbedding { index: 0 })
        );
        let options = ClusterOptions {
            min_speakers: Some(3),
            max_speakers: Some(2),
            ..ClusterOptions::default()
        };
        assert!(cluster_embeddings(&[vec![1.0f32]], &options).is_err());
        let empty: Vec<Vec<f32>> = Vec::new();
        let result = cluster_embeddings(&empty, &ClusterOptions::default()).expect("empty ok");
        assert_eq!(result.num_clusters(), 0);
        assert_eq!(assign(&[1.0], &[]), None);
    }

    #[test]
    fn the_largest_gap_in_the_dendrogram_gives_the_count() {
        for seed in 0..5 {
            let e = three_clusters(seed);
            let h = merge_heights(&e, Linkage::Centroid).unwrap();
            assert_eq!(h.len(), e.len() - 1);
            assert!(h.windows(2).all(|w| w[0] <= w[1]), "{h:?}");
            assert_eq!(
                count_at_largest_gap(&h, (0.05, 1.0)),
                3,
                "seed {seed}: {h:?}"
            );
        }
        // Heights 0.1, 0.12, 0.5, 0.52: the jump lies between the second and third merge.
        let h = [0.1, 0.12, 0.5, 0.52];
        assert_eq!(count_at_largest_gap(&h, (0.05, 0.7)), 3);
        // Only jumps below the range: everything merges.
        assert_eq!(count_at_largest_gap(&[0.01, 0.02, 0.03], (0.1, 0.7)), 1);
        // Everything far apart: nothing merges.
        assert_eq!(count_at_largest_gap(&[0.9, 0.95], (0.1, 0.7)), 3);
        assert_eq!(count_at_largest_gap(&[], (0.1, 0.7)), 1);
    }
}
