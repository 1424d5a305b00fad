-- Word timestamps: a segment's words with their times and probabilities, when the
-- transcription asked for them (NULL otherwise).
ALTER TABLE transcript_segments ADD COLUMN words jsonb;
