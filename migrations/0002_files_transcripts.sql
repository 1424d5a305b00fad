-- voxfleet schema, part 2: media files, transcript segments, usage.

CREATE TABLE files (
    id             uuid PRIMARY KEY,
    owner          uuid,
    filename       text        NOT NULL,
    content_type   text,
    size_bytes     bigint      NOT NULL,
    sha256         text        NOT NULL,
    storage_key    text        NOT NULL,
    -- Probed at upload: duration, container, codec, rate, channels; NULL when the probe failed
    -- (the transcription job then fails with the decoder's code).
    duration_s     double precision,
    audio          jsonb,
    probe_error    text,
    -- The latest transcription job, and the transcript it produced.
    transcription_job uuid,
    transcript_model  text,
    language       text,
    transcribed_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_owner_newest ON files (owner, created_at DESC, id DESC);
CREATE INDEX files_newest ON files (created_at DESC, id DESC);

CREATE TABLE transcript_segments (
    file_id        uuid    NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    idx            integer NOT NULL,
    start_s        double precision NOT NULL,
    end_s          double precision NOT NULL,
    text           text    NOT NULL,
    avg_logprob    real    NOT NULL,
    no_speech_prob real    NOT NULL,
    temperature    real    NOT NULL DEFAULT 0,
    compression_ratio real NOT NULL DEFAULT 0,
    language       text    NOT NULL,
    PRIMARY KEY (file_id, idx)
);

-- One row per successful model job: what budgets and per-owner minutes are built on. Kept
-- when the file is deleted (the minutes were spent); one row per job even across retries.
CREATE TABLE usage_records (
    job_id             uuid PRIMARY KEY,
    owner              uuid,
    file_id            uuid,
    kind               text        NOT NULL,
    model              text        NOT NULL,
    audio_seconds      double precision NOT NULL,
    processing_seconds double precision NOT NULL,
    at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_owner ON usage_records (owner, at);
