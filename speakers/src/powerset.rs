//! Powerset decoding of pyannote segmentation-3.0 outputs.
//!
//! The model emits, per frame, 7 log-probabilities over the powerset of 3 local speakers with
//! at most 2 active at once. Class order (as in pyannote.audio's `Powerset(3, 2)`):
//! `{}`, `{0}`, `{1}`, `{2}`, `{0,1}`, `{0,2}`, `{1,2}`.
//!
//! [`to_multilabel`] decodes hard (argmax class, then 0/1 per local speaker, which is what
//! pyannote does before aggregation); [`to_multilabel_soft`] gives each speaker the probability
//! mass of the classes that contain it.

/// Number of powerset classes per frame.
pub const NUM_CLASSES: usize = 7;
/// Number of local speakers per chunk.
pub const NUM_LOCAL_SPEAKERS: usize = 3;

/// Which local speakers each powerset class contains, in model output order.
pub const CLASSES: [[bool; NUM_LOCAL_SPEAKERS]; NUM_CLASSES] = [
    [false, false, false],
    [true, false, false],
    [false, true, false],
    [false, false, true],
    [true, true, false],
    [true, false, true],
    [false, true, true],
];

/// Hard decoding: for each frame (`logprobs` is `frames × 7`, row-major), the most likely class
/// becomes 1.0 for each speaker it contains and 0.0 otherwise.
///
/// Ties go to the lower class index; NaN never wins. A trailing partial frame (fewer than 7
/// values) is ignored.
pub fn to_multilabel(logprobs: &[f32]) -> Vec<[f32; NUM_LOCAL_SPEAKERS]> {
    logprobs
        .chunks_exact(NUM_CLASSES)
        .map(|frame| {
            let mut best = 0;
            for (class, &value) in frame.iter().enumerate().skip(1) {
                // `!(a <= b)` would let NaN win; compare explicitly.
                if value > frame[best] || (frame[best].is_nan() && !value.is_nan()) {
                    best = class;
                }
            }
            CLASSES[best].map(|active| if active { 1.0 } else { 0.0 })
        })
        .collect()
}

/// Soft decoding: each speaker's activation is the sum of `exp(logprob)` over the classes that
/// contain it (so it lies in `[0, 1]` when the row is a log-softmax). Same framing as
/// [`to_multilabel`].
pub fn to_multilabel_soft(logprobs: &[f32]) -> Vec<[f32; NUM_LOCAL_SPEAKERS]> {
    logprobs
        .chunks_exact(NUM_CLASSES)
        .map(|frame| {
            let mut out = [0.0f32; NUM_LOCAL_SPEAKERS];
            for (class, &value) in frame.iter().enumerate() {
                let p = value.exp();
                for (speaker, slot) in out.iter_mut().enumerate() {
                    if CLASSES[class][speaker] {
                        *slot += p;
                    }
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log-softmax row where `class` has probability `p` and the rest share `1 - p`.
    fn row(class: usize, p: f32) -> [f32; NUM_CLASSES] {
        let rest = (1.0 - p) / (NUM_CLASSES as f32 - 1.0);
        let mut r = [rest.ln(); NUM_CLASSES];
        r[class] = p.ln();
        r
    }

    #[test]
    fn hard_decoding_maps_each_class_to_its_speakers() {
        let mut logprobs = Vec::new();
        for class in 0..NUM_CLASSES {
            logprobs.extend_from_slice(&row(class, 0.7));
        }
        let decoded = to_multilabel(&logprobs);
        assert_eq!(
            decoded,
            vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.0, 0.0, 1.0],
                [1.0, 1.0, 0.0],
                [1.0, 0.0, 1.0],
                [0.0, 1.0, 1.0],
            ]
        );
    }

    #[test]
    fn hard_decoding_ignores_nan_and_partial_frames() {
        let mut logprobs = vec![f32::NAN, -3.0, -0.1, -3.0, -3.0, -3.0, -3.0];
        logprobs.extend_from_slice(&[0.0, 0.0]); // partial trailing frame
        assert_eq!(to_multilabel(&logprobs), vec![[0.0, 1.0, 0.0]]);
        // Ties go to the lower class: {0} (index 1) beats {0,2} (index 5).
        let tie = [-3.0, -0.5, -3.0, -3.0, -3.0, -0.5, -3.0];
        assert_eq!(to_multilabel(&tie), vec![[1.0, 0.0, 0.0]]);
    }

    #[test]
    fn soft_decoding_sums_mass_of_classes_containing_each_speaker() {
        // p({}) = 0.1, p({0}) = 0.2, p({0,1}) = 0.3, p({1,2}) = 0.4.
        let probs = [0.1f32, 0.2, 0.0, 0.0, 0.3, 0.0, 0.4];
        let logprobs: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let soft = to_multilabel_soft(&logprobs);
        assert_eq!(soft.len(), 1);
        let expected = [0.5, 0.7, 0.4];
        for (got, want) in soft[0].iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{:?} vs {expected:?}", soft[0]);
        }
    }
}
