-- voxfleet schema, part 3: speakers (diarization) and their voiceprints.

-- The latest diarization job, kept apart from transcription_job: the two run independently,
-- and a result is written only by the job the file is linked to (an older job finishing
-- late must not overwrite a newer one's speakers).
ALTER TABLE files
    ADD COLUMN diarization_job   uuid,
    ADD COLUMN diarization_model text,
    ADD COLUMN diarized_at       timestamptz;

-- One row per speaker a diarization found in a file. Replaced as a whole when the file is
-- diarized again, so ids are only stable between two diarizations.
CREATE TABLE speakers (
    id         uuid PRIMARY KEY,
    file_id    uuid        NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    -- Copied from the file so that listing a user's speakers needs no join.
    owner      uuid,
    -- The diarizer's label (SPEAKER_00, ...): what turns and exports use when no name is set.
    label      text        NOT NULL,
    -- Set by a user, or by matching a known voice; NULL until then.
    name       text,
    speech_s   double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (file_id, label)
);
CREATE INDEX speakers_owner ON speakers (owner);

-- Who speaks when. file_id is repeated here (rather than reached through speakers) so the
-- turns of a file read in order from the primary key.
CREATE TABLE speaker_turns (
    file_id    uuid    NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    idx        integer NOT NULL,
    speaker_id uuid    NOT NULL REFERENCES speakers (id) ON DELETE CASCADE,
    start_s    double precision NOT NULL,
    end_s      double precision NOT NULL,
    PRIMARY KEY (file_id, idx)
);
-- Deleting a file's speakers cascades here by speaker_id: without this, a scan per speaker.
CREATE INDEX speaker_turns_speaker ON speaker_turns (speaker_id);

-- Voiceprints, one per speaker and embedding profile. They live here, not only in a search
-- index: an index is rebuilt from PostgreSQL, never the other way round (a peer kept them
-- only in its index and lost them in a migration). Profiles ('v3', 'v4') use different
-- models and dimensions, so a speaker may hold one of each while the active profile changes.
CREATE TABLE speaker_embeddings (
    speaker_id uuid    NOT NULL REFERENCES speakers (id) ON DELETE CASCADE,
    profile    text    NOT NULL,
    model      text    NOT NULL,
    -- Stored separately so a truncated or mixed-up vector is refused on the way in rather
    -- than found when two vectors of different lengths are compared.
    dim        integer NOT NULL,
    vector     real[]  NOT NULL,
    -- The job that computed it (NULL when imported).
    job_id     uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (speaker_id, profile),
    CONSTRAINT speaker_embeddings_dim CHECK (
        dim > 0 AND array_ndims(vector) = 1 AND cardinality(vector) = dim)
);
-- Matching and re-indexing read all the voiceprints of one profile.
CREATE INDEX speaker_embeddings_profile ON speaker_embeddings (profile);
