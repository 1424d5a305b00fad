//! The tokenizer and Whisper's special tokens, looked up by name (never hard-coded ids: English-only
//! and multilingual vocabularies differ by one).

use std::path::Path;

use tokenizers::Tokenizer;

use crate::AsrError;

#[derive(Debug, Clone)]
pub(crate) struct SpecialTokens {
    pub sot: u32,
    pub eot: u32,
    pub transcribe: u32,
    pub translate: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    /// `<|0.00|>`; every id from here up is a timestamp (0.02 s steps).
    pub timestamp_begin: u32,
    /// (`"en"`, id of `<|en|>`) for every language token.
    pub languages: Vec<(String, u32)>,
}

pub(crate) struct TextTokenizer {
    inner: Tokenizer,
    pub special: SpecialTokens,
}

fn token(t: &Tokenizer, names: &[&str], path: &Path) -> Result<u32, AsrError> {
    names
        .iter()
        .find_map(|n| t.token_to_id(n))
        .ok_or_else(|| AsrError::Load {
            what: "tokenizer",
            path: path.to_path_buf(),
            reason: format!("token {} is missing", names[0]),
        })
}

impl TextTokenizer {
    pub(crate) fn load(path: &Path) -> Result<Self, AsrError> {
        let inner = Tokenizer::from_file(path).map_err(|e| AsrError::Load {
            what: "tokenizer",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let t = &inner;
        let sot = token(t, &["<|startoftranscript|>"], path)?;
        let translate = token(t, &["<|translate|>"], path)?;
        let no_timestamps = token(t, &["<|notimestamps|>"], path)?;
        // Language tokens sit between <|startoftranscript|> and <|translate|>.
        let languages = (sot + 1..translate)
            .filter_map(|id| {
                let s = t.id_to_token(id)?;
                let code = s.strip_prefix("<|")?.strip_suffix("|>")?.to_string();
                Some((code, id))
            })
            .collect();
        let special = SpecialTokens {
            sot,
            eot: token(t, &["<|endoftext|>"], path)?,
            transcribe: token(t, &["<|transcribe|>"], path)?,
            translate,
            sot_prev: token(t, &["<|startofprev|>"], path)?,
            sot_lm: token(t, &["<|startoflm|>"], path)?,
            no_speech: token(t, &["<|nospeech|>", "<|nocaptions|>"], path)?,
            no_timestamps,
            timestamp_begin: t.token_to_id("<|0.00|>").unwrap_or(no_timestamps + 1),
            languages,
        };
        Ok(Self { inner, special })
    }

    /// Text tokens of `text` (no special tokens).
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, AsrError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| AsrError::Runtime {
                context: "tokenizing the prompt",
                source: e,
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of the text tokens among `ids` (timestamps and other special tokens dropped).
    pub(crate) fn decode(&self, ids: &[u32]) -> Result<String, AsrError> {
        let text: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        self.inner
            .decode(&text, true)
            .map_err(|e| AsrError::Runtime {
                context: "detokenizing",
                source: e,
            })
    }

    pub(crate) fn language_token(&self, code: &str) -> Option<u32> {
        self.special
            .languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, id)| *id)
    }
}
