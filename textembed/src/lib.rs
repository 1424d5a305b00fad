//! voxfleet-textembed: transcripts made searchable by meaning.
//!
//! - `chunk`: [`chunk_transcript`] cuts a transcript (timed segments plus diarization turns)
//!   into overlapping windows of words ([`Chunk`]: time span, speakers, text). Pure logic.
//! - `embed`: [`TextEmbedder`] turns texts into 384-d unit vectors with all-MiniLM-L6-v2,
//!   exactly sentence-transformers' pipeline, on candle (`all-minilm-l6-v2`, f32; private
//!   module `bert_candle`) or ONNX Runtime (`all-minilm-l6-v2-int8`; `bert_onnx`). Model files
//!   come from `voxfleet_models::ModelsDir::text_model`.
//! - `error`: [`TextEmbedError`] with stable codes.
mod batch;
mod bert_candle;
mod bert_onnx;
pub mod chunk;
pub mod embed;
pub mod error;

pub use chunk::{Chunk, ChunkOptions, TimedText, Turn, chunk_transcript};
pub use embed::{DIM, EmbedOptions, MAX_TOKENS, TextEmbedder};
pub use error::TextEmbedError;
