//! The two document shapes of the embedded backend (chunks and speakers): their tantivy
//! schemas, and the conversions between our documents and tantivy's.
//!
//! Both shapes share the fields the generic code needs: a key (`id` / `speaker_id`, a raw
//! string, stored and fast so scans can sort by it), `file_id`, `owner` (empty string for
//! no owner; fast so the vector scan can filter without reading stored documents) and
//! `vector` (f32 little-endian bytes, stored and fast).
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use uuid::Uuid;

use crate::{ChunkDoc, ChunkHit, SearchError, SpeakerDoc, SpeakerHit};

/// Which document shape an index holds; decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Chunks,
    Speakers,
}

/// The tokenizer tantivy registers by default: words, lower-cased, English stemming.
const TEXT_TOKENIZER: &str = "en_stem";

/// Field handles of one index (the union of both shapes' fields; the other shape's are
/// `None`).
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub kind: Kind,
    /// `id` for chunks, `speaker_id` for speakers.
    pub key: Field,
    pub key_name: &'static str,
    pub file_id: Field,
    pub owner: Field,
    pub model: Field,
    pub vector: Field,
    // Chunks.
    pub seq: Option<Field>,
    pub start_s: Option<Field>,
    pub end_s: Option<Field>,
    pub speakers: Option<Field>,
    pub text: Option<Field>,
    // Speakers.
    pub label: Option<Field>,
    pub name: Option<Field>,
    pub profile: Option<Field>,
}

pub(crate) const VECTOR: &str = "vector";
pub(crate) const OWNER: &str = "owner";

fn english_text() -> TextOptions {
    TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

impl Kind {
    pub fn schema(self) -> Schema {
        let mut b = Schema::builder();
        match self {
            Kind::Chunks => {
                b.add_text_field("id", STRING | STORED | FAST);
                b.add_text_field("file_id", STRING | STORED);
                b.add_text_field(OWNER, STRING | STORED | FAST);
                b.add_u64_field("seq", STORED | INDEXED);
                b.add_f64_field("start_s", STORED);
                b.add_f64_field("end_s", STORED);
                b.add_text_field("speakers", english_text());
                b.add_text_field("text", english_text());
                b.add_text_field("model", STRING | STORED);
            }
            Kind::Speakers => {
                b.add_text_field("speaker_id", STRING | STORED | FAST);
                b.add_text_field("file_id", STRING | STORED);
                b.add_text_field(OWNER, STRING | STORED | FAST);
                b.add_text_field("label", STRING | STORED);
                b.add_text_field("name", english_text());
                b.add_text_field("profile", STRING | STORED);
                b.add_text_field("model", STRING | STORED);
            }
        }
        b.add_bytes_field(VECTOR, STORED | FAST);
        b.build()
    }

    /// The handles of `schema`'s fields; an index with another layout → `Backend` error.
    pub fn fields(self, schema: &Schema) -> Result<Fields, SearchError> {
        let get = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| SearchError::Backend(format!("index schema lacks the field `{name}`")))
        };
        let key_name = match self {
            Kind::Chunks => "id",
            Kind::Speakers => "speaker_id",
        };
        let chunks = self == Kind::Chunks;
        let opt = |name: &str, wanted: bool| -> Result<Option<Field>, SearchError> {
            if wanted {
                get(name).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Fields {
            kind: self,
            key: get(key_name)?,
            key_name,
            file_id: get("file_id")?,
            owner: get(OWNER)?,
            model: get("model")?,
            vector: get(VECTOR)?,
            seq: opt("seq", chunks)?,
            start_s: opt("start_s", chunks)?,
            end_s: opt("end_s", chunks)?,
            speakers: opt("speakers", chunks)?,
            text: opt("text", chunks)?,
            label: opt("label", !chunks)?,
            name: opt("name", !chunks)?,
            profile: opt("profile", !chunks)?,
        })
    }
}

/// `owner` as stored: the UUID, or the empty string for none.
pub(crate) fn owner_term(owner: Option<Uuid>) -> String {
    owner.map(|o| o.to_string()).unwrap_or_default()
}

pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Appends the f32s of `bytes` to `out`; `false` (and nothing appended) when the length is
/// not a multiple of 4.
pub(crate) fn extend_vector(bytes: &[u8], out: &mut Vec<f32>) -> bool {
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    out.extend(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    true
}

fn need(f: Option<Field>) -> Result<Field, SearchError> {
    f.ok_or_else(|| SearchError::Backend("field missing for this index kind".into()))
}

impl Fields {
    pub fn chunk_doc(&self, c: &ChunkDoc) -> Result<TantivyDocument, SearchError> {
        let mut d = TantivyDocument::new();
        d.add_text(self.key, &c.id);
        d.add_text(self.file_id, c.file_id.to_string());
        d.add_text(self.owner, owner_term(c.owner));
        d.add_u64(need(self.seq)?, u64::from(c.seq));
        d.add_f64(need(self.start_s)?, c.start_s);
        d.add_f64(need(self.end_s)?, c.end_s);
        let speakers = need(self.speakers)?;
        for s in &c.speakers {
            d.add_text(speakers, s);
        }
        d.add_text(need(self.text)?, &c.text);
        d.add_text(self.model, &c.model);
        d.add_bytes(self.vector, &vector_bytes(&c.vector));
        Ok(d)
    }

    pub fn speaker_doc(&self, s: &SpeakerDoc) -> Result<TantivyDocument, SearchError> {
        let mut d = TantivyDocument::new();
        d.add_text(self.key, s.speaker_id.to_string());
        d.add_text(self.file_id, s.file_id.to_string());
        d.add_text(self.owner, owner_term(s.owner));
        d.add_text(need(self.label)?, &s.label);
        if let Some(name) = &s.name {
            d.add_text(need(self.name)?, name);
        }
        d.add_text(need(self.profile)?, &s.profile);
        d.add_text(self.model, &s.model);
        d.add_bytes(self.vector, &vector_bytes(&s.vector));
        Ok(d)
    }

    pub fn str_of(&self, d: &TantivyDocument, f: Field) -> String {
        d.get_first(f)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn opt_str(&self, d: &TantivyDocument, f: Option<Field>) -> Option<String> {
        f.and_then(|f| d.get_first(f).and_then(|v| v.as_str()).map(str::to_owned))
    }

    fn uuid_of(&self, d: &TantivyDocument, f: Field) -> Result<Uuid, SearchError> {
        let s = self.str_of(d, f);
        Uuid::parse_str(&s)
            .map_err(|_| SearchError::Backend(format!("stored id `{s}` is not a UUID")))
    }

    pub fn owner_of(&self, d: &TantivyDocument) -> Option<Uuid> {
        Uuid::parse_str(&self.str_of(d, self.owner)).ok()
    }

    pub fn text_of(&self, d: &TantivyDocument) -> String {
        self.opt_str(d, self.text).unwrap_or_default()
    }

    /// A chunk hit from a stored chunk; `snippet` and ranks are the caller's.
    pub fn chunk_hit(
        &self,
        d: &TantivyDocument,
        score: f32,
        snippet: String,
    ) -> Result<ChunkHit, SearchError> {
        let f64_of = |f: Option<Field>| f.and_then(|f| d.get_first(f).and_then(|v| v.as_f64()));
        let seq = self
            .seq
            .and_then(|f| d.get_first(f).and_then(|v| v.as_u64()))
            .unwrap_or_default();
        Ok(ChunkHit {
            id: self.str_of(d, self.key),
            file_id: self.uuid_of(d, self.file_id)?,
            owner: self.owner_of(d),
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            start_s: f64_of(self.start_s).unwrap_or_default(),
            end_s: f64_of(self.end_s).unwrap_or_default(),
            speakers: self
                .speakers
                .map(|f| {
                    d.get_all(f)
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            snippet,
            score,
            text_rank: None,
            vector_rank: None,
        })
    }

    pub fn speaker_hit(&self, d: &TantivyDocument, score: f32) -> Result<SpeakerHit, SearchError> {
        Ok(SpeakerHit {
            speaker_id: self.uuid_of(d, self.key)?,
            file_id: self.uuid_of(d, self.file_id)?,
            owner: self.owner_of(d),
            label: self.opt_str(d, self.label).unwrap_or_default(),
            name: self.opt_str(d, self.name),
            profile: self.opt_str(d, self.profile).unwrap_or_default(),
            score,
        })
    }

    pub fn speaker_from(&self, d: &TantivyDocument) -> Result<SpeakerDoc, SearchError> {
        let mut vector = Vec::new();
        if let Some(bytes) = d.get_first(self.vector).and_then(|v| v.as_bytes()) {
            extend_vector(bytes, &mut vector);
        }
        Ok(SpeakerDoc {
            speaker_id: self.uuid_of(d, self.key)?,
            file_id: self.uuid_of(d, self.file_id)?,
            owner: self.owner_of(d),
            label: self.opt_str(d, self.label).unwrap_or_default(),
            name: self.opt_str(d, self.name),
            profile: self.opt_str(d, self.profile).unwrap_or_default(),
            model: self.str_of(d, self.model),
            vector,
        })
    }
}
