//! Diarization error rate (DER), for tests and benchmarks.
//!
//! DER = (missed + false alarm + confusion) / total, all in seconds of speaker time, where
//! `total` is the reference speaker time (overlap counts once per speaker). For each stretch of
//! time with `r` reference and `h` hypothesis speakers active: missed += `max(0, r − h)`,
//! false alarm += `max(0, h − r)`, confusion += `min(r, h)` minus the active pairs matched by the
//! speaker mapping. The mapping is one-to-one and maximises the total time matched reference and
//! hypothesis speakers are both active; it is found with the Hungarian algorithm (O(k³) for k
//! speakers, no limit on k), as in md-eval and pyannote.metrics.
//!
//! `collar` is a half-width, as in md-eval's `-c` and dscore: `±collar` seconds around every
//! reference turn boundary are not scored (pyannote.metrics' `collar` is the full width, i.e.
//! twice this). Overlapped speech is scored. Turns of one speaker that overlap count once.

use crate::binarize::Turn;

/// Result of [`diarization_error_rate`]; durations in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DerReport {
    /// `(missed + false_alarm + confusion) / total`; 0 when both sides are empty, infinite when
    /// only the reference is empty.
    pub der: f64,
    /// Reference speaker time not covered by enough hypothesis speakers.
    pub missed: f64,
    /// Hypothesis speaker time beyond the reference speakers active.
    pub false_alarm: f64,
    /// Speaker time attributed to the wrong (mapped) speaker.
    pub confusion: f64,
    /// Scored reference speaker time.
    pub total: f64,
}

/// Dense indices for the speaker ids used in `turns`.
fn dense_ids(turns: &[Turn]) -> Vec<usize> {
    let mut ids: Vec<usize> = turns.iter().map(|t| t.speaker).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Speakers (dense indices) active at time `t`, deduplicated, into `out`.
fn active_at(turns: &[Turn], ids: &[usize], t: f64, out: &mut Vec<usize>) {
    out.clear();
    for turn in turns {
        if turn.start <= t
            && t < turn.end
            && let Ok(index) = ids.binary_search(&turn.speaker)
        {
            out.push(index);
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// Computes the DER of `hypothesis` against `reference`; see the module docs.
pub fn diarization_error_rate(reference: &[Turn], hypothesis: &[Turn], collar: f64) -> DerReport {
    let valid = |t: &&Turn| t.start.is_finite() && t.end.is_finite() && t.end > t.start;
    let reference: Vec<Turn> = reference.iter().filter(valid).copied().collect();
    let hypothesis: Vec<Turn> = hypothesis.iter().filter(valid).copied().collect();
    let ref_ids = dense_ids(&reference);
    let hyp_ids = dense_ids(&hypothesis);

    let collar = if collar.is_finite() {
        collar.max(0.0)
    } else {
        0.0
    };
    let mut no_score: Vec<(f64, f64)> = Vec::new();
    if collar > 0.0 {
        for turn in &reference {
            for boundary in [turn.start, turn.end] {
                no_score.push((boundary - collar, boundary + collar));
            }
        }
    }
    let mut cuts: Vec<f64> = reference
        .iter()
        .chain(&hypothesis)
        .flat_map(|t| [t.start, t.end])
        .chain(no_score.iter().flat_map(|&(a, b)| [a, b]))
        .collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();

    let (nr, nh) = (ref_ids.len(), hyp_ids.len());
    let mut overlap = vec![0.0f64; nr * nh];
    let (mut total, mut missed, mut false_alarm, mut paired) = (0.0, 0.0, 0.0, 0.0);
    let (mut ref_active, mut hyp_active) = (Vec::new(), Vec::new());
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let mid = 0.5 * (a + b);
        if no_score.iter().any(|&(s, e)| s <= mid && mid < e) {
            continue;
        }
        let d = b - a;
        active_at(&reference, &ref_ids, mid, &mut ref_active);
        active_at(&hypothesis, &hyp_ids, mid, &mut hyp_active);
        let (r, h) = (ref_active.len() as f64, hyp_active.len() as f64);
        total += d * r;
        missed += d * (r - h).max(0.0);
        false_alarm += d * (h - r).max(0.0);
        paired += d * r.min(h);
        for &i in &ref_active {
            for &j in &hyp_active {
                overlap[i * nh + j] += d;
            }
        }
    }

    let matched: f64 = hungarian_max(&overlap, nr, nh)
        .into_iter()
        .map(|(i, j)| overlap[i * nh + j])
        .sum();
    let confusion = (paired - matched).max(0.0);
    let errors = missed + false_alarm + confusion;
    let der = if total > 0.0 {
        errors / total
    } else if errors > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    DerReport {
        der,
        missed,
        false_alarm,
        confusion,
        total,
    }
}

/// One-to-one assignment of rows to columns maximising the summed `weights` (`rows × cols`,
/// row-major): the Hungarian algorithm (potentials, O(k³)) on the padded square cost matrix.
/// Returns `(row, col)` pairs for real rows and columns only.
fn hungarian_max(weights: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    let k = rows.max(cols);
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let cost = |i: usize, j: usize| {
        if i < rows && j < cols {
            -weights[i * cols + j]
        } else {
            0.0
        }
    };
    // 1-based potentials; p[j] is the row matched to column j (0 = none).
    let mut u = vec![0.0f64; k + 1];
    let mut v = vec![0.0f64; k + 1];
    let mut p = vec![0usize; k + 1];
    let mut way = vec![0usize; k + 1];
    for i in 1..=k {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; k + 1];
        let mut used = vec![false; k + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=k {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=k {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=k)
        .filter(|&j| p[j] != 0 && p[j] - 1 < rows && j - 1 < cols)
        .map(|j| (p[j] - 1, j - 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binarize::turn;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn reference() -> Vec<Turn> {
        vec![turn(0.0, 10.0, 0), turn(10.0, 20.0, 1)]
    }

    /// Misses [8, 10), confuses [15, 20), false alarm on [20, 23).
    fn hypothesis() -> Vec<Turn> {
        vec![
            turn(0.0, 8.0, 1),
            turn(10.0, 15.0, 2),
            turn(15.0, 20.0, 1),
            turn(20.0, 23.0, 2),
        ]
    }

    #[test]
    fn identical_timelines_have_zero_error() {
        let turns = vec![turn(0.0, 4.0, 0), turn(3.0, 6.0, 1), turn(6.0, 9.0, 0)];
        let report = diarization_error_rate(&turns, &turns, 0.0);
        assert_eq!(report.der, 0.0);
        assert!(close(report.total, 10.0));
        assert_eq!(diarization_error_rate(&[], &[], 0.25).der, 0.0);
    }

    #[test]
    fn crafted_errors_are_counted_with_the_optimal_mapping() {
        let report = diarization_error_rate(&reference(), &hypothesis(), 0.0);
        assert!(close(report.total, 20.0), "{report:?}");
        assert!(close(report.missed, 2.0), "{report:?}");
        assert!(close(report.false_alarm, 3.0), "{report:?}");
        assert!(close(report.confusion, 5.0), "{report:?}");
        assert!(close(report.der, 0.5), "{report:?}");
    }

    #[test]
    fn collar_removes_time_around_reference_boundaries() {
        let report = diarization_error_rate(&reference(), &hypothesis(), 0.5);
        assert!(close(report.total, 18.0), "{report:?}");
        assert!(close(report.missed, 1.5), "{report:?}");
        assert!(close(report.false_alarm, 2.5), "{report:?}");
        assert!(close(report.confusion, 4.5), "{report:?}");
        assert!(close(report.der, 8.5 / 18.0), "{report:?}");
    }

    #[test]
    fn labels_can_be_permuted_on_either_side() {
        let base = diarization_error_rate(&reference(), &hypothesis(), 0.0);
        let relabel = |turns: Vec<Turn>, map: &[usize]| -> Vec<Turn> {
            turns
                .into_iter()
                .map(|t| turn(t.start, t.end, map[t.speaker]))
                .collect()
        };
        let reference = relabel(reference(), &[5, 2]);
        let hypothesis = relabel(hypothesis(), &[9, 0, 7]);
        assert_eq!(diarization_error_rate(&reference, &hypothesis, 0.0), base);
        // Identity mapping of sorted ids is wrong in both cases above. A perfect hypothesis
        // under other labels still scores 0.
        let perfect = relabel(super::tests::reference(), &[0, 1]);
        assert_eq!(diarization_error_rate(&reference, &perfect, 0.0).der, 0.0);
    }

    #[test]
    fn missed_overlap_and_empty_reference() {
        // Two reference speakers overlap on [2, 4); the hypothesis has one speaker throughout.
        let reference = vec![turn(0.0, 4.0, 0), turn(2.0, 6.0, 1)];
        let hypothesis = vec![turn(0.0, 6.0, 3)];
        let report = diarization_error_rate(&reference, &hypothesis, 0.0);
        assert!(close(report.total, 8.0));
        assert!(close(report.missed, 2.0));
        assert!(close(report.confusion, 2.0));
        assert!(close(report.false_alarm, 0.0));
        assert_eq!(
            diarization_error_rate(&[], &hypothesis, 0.0).der,
            f64::INFINITY
        );
    }

    #[test]
    fn hungarian_matches_brute_force_on_small_matrices() {
        fn best_brute(w: &[f64], rows: usize, cols: usize, row: usize, used: &mut [bool]) -> f64 {
            if row == rows {
                return 0.0;
            }
            // Row left unmatched, or matched to a free column.
            let mut best = best_brute(w, rows, cols, row + 1, used);
            for col in 0..cols {
                if !used[col] {
                    used[col] = true;
                    let value = w[row * cols + col] + best_brute(w, rows, cols, row + 1, used);
                    used[col] = false;
                    best = best.max(value);
                }
            }
            best
        }
        let mut state = 0x1234_5678u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1000) as f64 / 10.0
        };
        for (rows, cols) in [(1, 1), (2, 3), (3, 2), (4, 4), (5, 3), (3, 6), (6, 6)] {
            for _ in 0..20 {
                let w: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
                let pairs = hungarian_max(&w, rows, cols);
                let mut seen_rows = vec![false; rows];
                let mut seen_cols = vec![false; cols];
                for &(r, c) in &pairs {
                    assert!(!seen_rows[r] && !seen_cols[c], "not one-to-one: {pairs:?}");
                    seen_rows[r] = true;
                    seen_cols[c] = true;
                }
                let got: f64 = pairs.iter().map(|&(r, c)| w[r * cols + c]).sum();
                let want = best_brute(&w, rows, cols, 0, &mut vec![false; cols]);
                assert!(close(got, want), "{rows}x{cols}: {got} vs {want}");
            }
        }
    }
}
