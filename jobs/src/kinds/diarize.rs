//! `diarize`: who speaks when in a stored file, with a voiceprint per speaker (the worker's
//! `handlers/diarize.rs`).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section, check_profile};

/// Who speaks when in a stored file, with a voiceprint per speaker. Everything but `file_id`
/// is optional; the speaker-count hints are bounds, not guesses to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiarizeInput {
    pub file_id: Uuid,
    /// The exact number of speakers, when known (1–32).
    #[serde(default)]
    pub num_speakers: Option<u32>,
    #[serde(default)]
    pub min_speakers: Option<u32>,
    #[serde(default)]
    pub max_speakers: Option<u32>,
    /// Voiceprint profiles to store for every speaker. Default: `v4` (the model speakers are
    /// clustered with) and the active profile.
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    /// Name the speakers whose voices match these reference recordings (at most 4); the others
    /// keep their generic labels.
    #[serde(default)]
    pub known_speakers: Vec<KnownSpeaker>,
}

/// A reference recording of a known voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownSpeaker {
    pub name: String,
    /// A stored file holding a few seconds of that voice alone.
    pub file_id: Uuid,
}

impl DiarizeInput {
    pub const MAX_SPEAKERS: u32 = 32;
    pub const MAX_KNOWN_SPEAKERS: usize = 4;
}

impl Kind for DiarizeInput {
    const KIND: JobKind = JobKind::Diarize;
    const QUEUE: DefaultQueue = DefaultQueue::Gpu;
    const ADMIN_ONLY: bool = false;
    const MAX_RUNTIME_MINUTES: u64 = 240;
    const SECTION: Option<Section> = None;
    fn check(&self) -> Result<(), InputError> {
        for (name, v) in [
            ("num_speakers", self.num_speakers),
            ("min_speakers", self.min_speakers),
            ("max_speakers", self.max_speakers),
        ] {
            if let Some(v) = v
                && !(1..=Self::MAX_SPEAKERS).contains(&v)
            {
                return Err(InputError(format!(
                    "{name} must be between 1 and {}",
                    Self::MAX_SPEAKERS
                )));
            }
        }
        let (lo, hi) = (self.min_speakers.unwrap_or(1), self.max_speakers);
        if let Some(hi) = hi
            && lo > hi
        {
            return Err(InputError(
                "min_speakers must not exceed max_speakers".into(),
            ));
        }
        if let Some(n) = self.num_speakers
            && (n < lo || hi.is_some_and(|hi| n > hi))
        {
            return Err(InputError(
                "num_speakers lies outside min_speakers..max_speakers".into(),
            ));
        }
        for p in self.profiles.iter().flatten() {
            check_profile(p)?;
        }
        if self.known_speakers.len() > Self::MAX_KNOWN_SPEAKERS {
            return Err(InputError(format!(
                "at most {} known speakers",
                Self::MAX_KNOWN_SPEAKERS
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for k in &self.known_speakers {
            let n = k.name.trim();
            if n.is_empty() || n.chars().count() > 100 {
                return Err(InputError(
                    "a known speaker's name must have 1–100 characters".into(),
                ));
            }
            if !names.insert(n) {
                return Err(InputError(format!("known speaker `{n}` is named twice")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::JobKind;
    use serde_json::json;

    #[test]
    fn diarize_payloads_are_checked() {
        let k = JobKind::Diarize;
        let id = Uuid::nil();
        assert!(k.parse_input(&json!({"file_id": id})).is_ok());
        assert!(
            k.parse_input(
                &json!({"file_id": id, "min_speakers": 2, "max_speakers": 4, "num_speakers": 3})
            )
            .is_ok()
        );
        for bad in [
            json!({"file_id": id, "num_speakers": 0}),
            json!({"file_id": id, "max_speakers": 33}),
            json!({"file_id": id, "min_speakers": 3, "max_speakers": 2}),
            json!({"file_id": id, "min_speakers": 3, "num_speakers": 2}),
            json!({"file_id": id, "profiles": ["v5"]}),
            json!({"file_id": id, "known_speakers": [{"name": " ", "file_id": id}]}),
            json!({"file_id": id, "known_speakers": [{"name": "A", "file_id": id}, {"name": "A", "file_id": id}]}),
        ] {
            assert!(k.parse_input(&bad).is_err(), "{bad}");
        }
    }
}
