//! Embedding normalisation against a background set: the mean CAM++ embedding of many voices
//! (one mean for wideband audio, one for telephone-band), subtracted from each unit-length
//! embedding before clustering.
//!
//! Why: CAM++'s embeddings of the voices of one recording share a component that depends on
//! the channel, not the speaker. It lifts the cosine similarity of different voices, most of
//! all through a telephone channel (on the development set, the 90th percentile of
//! different-speaker similarity is 0.54 on real telephone mixes against 0.28 at 16 kHz), so a
//! threshold that separates voices in one band merges or splits them in the other.
//! Subtracting a background mean (what x-vector systems do before scoring) removes the shared
//! component. The recording's own mean does not work: with two voices it makes their stretches
//! point in opposite directions and halves the similarity of one voice's stretches.
//!
//! The means are fitted on the `tune` part of the diarization development set only
//! (`voxfleet-bench-diarize --fit-background`, which writes `background/campplus.rs`): every
//! embedding the windows method clusters, by the band its recording is in
//! ([`crate::subsegment::is_narrowband`]). They belong to the CAM++ model voxfleet ships
//! (`models fetch`, 192 dimensions); another model gets no background and is clustered as it
//! is.

mod campplus;

/// Background means of one embedding model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Background {
    pub wideband: &'static [f32],
    pub narrowband: &'static [f32],
}

/// The background of CAM++ (192 dimensions), fitted as the module docs say.
pub const CAMPPLUS: Background = Background {
    wideband: &campplus::WIDEBAND,
    narrowband: &campplus::NARROWBAND,
};

impl Background {
    /// The background for an embedding model of `dim` dimensions with an 80-bin fbank front
    /// end: CAM++'s for 192, none otherwise.
    pub fn for_model(front_end: crate::FrontEnd, dim: usize) -> Option<Self> {
        (matches!(front_end, crate::FrontEnd::Fbank80 { .. }) && dim == CAMPPLUS.wideband.len())
            .then_some(CAMPPLUS)
    }

    /// `e / |e|` less the band's mean. `e` unchanged when its dimension differs or it is zero.
    pub fn center(&self, e: &[f32], narrowband: bool) -> Vec<f32> {
        let mean = if narrowband {
            self.narrowband
        } else {
            self.wideband
        };
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        if mean.len() != e.len() || !(norm.is_finite() && norm > 0.0) {
            return e.to_vec();
        }
        e.iter().zip(mean).map(|(x, m)| x / norm - m).collect()
    }
}

/// The mean of unit-length `embeddings` (what `background/*.rs` holds); `None` when empty.
pub fn fit<E: AsRef<[f32]>>(embeddings: &[E]) -> Option<Vec<f32>> {
    let dim = embeddings.first()?.as_ref().len();
    let mut mean = vec![0.0f64; dim];
    let mut n = 0usize;
    for e in embeddings {
        let e = e.as_ref();
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        if e.len() != dim || !(norm.is_finite() && norm > 0.0) {
            continue;
        }
        for (m, x) in mean.iter_mut().zip(e) {
            *m += f64::from(x / norm);
        }
        n += 1;
    }
    (n > 0).then(|| mean.iter().map(|m| (m / n as f64) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centering_removes_the_shared_component() {
        // Two voices sharing a channel direction: cosine 0.8 as they are, 0 once it is gone.
        static MEAN: [f32; 3] = [0.0, 0.0, 0.8];
        let bg = Background {
            wideband: &MEAN,
            narrowband: &[0.0, 0.0, 0.0],
        };
        let a = [0.6, 0.0, 0.8];
        let b = [0.0, 0.6, 0.8];
        assert!((crate::cosine_similarity(&a, &b) - 0.64).abs() < 1e-6);
        let (ca, cb) = (bg.center(&a, false), bg.center(&b, false));
        assert!(crate::cosine_similarity(&ca, &cb).abs() < 1e-6);
        // The narrowband mean is used for narrowband audio; other dimensions pass through.
        assert_eq!(bg.center(&[3.0, 0.0, 4.0], true), vec![0.6, 0.0, 0.8]);
        assert_eq!(bg.center(&[1.0, 2.0], false), vec![1.0, 2.0]);
        assert_eq!(fit(&[[2.0f32, 0.0], [0.0, 3.0]]), Some(vec![0.5, 0.5]));
        assert_eq!(fit::<[f32; 2]>(&[]), None);
    }

    #[test]
    fn campplus_background_fits_the_shipped_model() {
        assert_eq!(CAMPPLUS.wideband.len(), 192);
        assert_eq!(CAMPPLUS.narrowband.len(), 192);
        assert!(CAMPPLUS.wideband.iter().all(|x| x.is_finite()));
        let fbank = crate::FrontEnd::Fbank80 {
            window: crate::WindowType::Povey,
        };
        assert!(Background::for_model(fbank, 192).is_some());
        assert!(Background::for_model(fbank, 256).is_none());
        assert!(Background::for_model(crate::FrontEnd::Ge2eMel40, 192).is_none());
    }
}
