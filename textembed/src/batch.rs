//! What the two BERT backends and the pipeline around them share: the embedding size and one
//! padded batch of token ids.

/// Size of the embeddings of every model here.
pub const DIM: usize = 384;

/// One padded batch of token ids, row-major `[rows, len]`.
pub(crate) struct Batch {
    pub rows: usize,
    pub len: usize,
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub type_ids: Vec<u32>,
}
