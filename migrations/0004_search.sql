-- voxfleet schema, part 4: search-index bookkeeping and maintenance runs.

-- The search index is derived from these tables and can always be rebuilt from them. A file's
-- index documents are current when indexed_version = index_version: every change that alters
-- what the index holds for a file (a transcript, a diarization, a speaker's name, a
-- voiceprint) bumps index_version in the same statement, and a reindex records the version it
-- read, so a change made while it ran leaves the file pending instead of marked done.
ALTER TABLE files
    ADD COLUMN index_version   bigint NOT NULL DEFAULT 0,
    ADD COLUMN indexed_version bigint,
    ADD COLUMN indexed_at      timestamptz,
    -- The text-embedding model of the file's chunks, and how many there are.
    ADD COLUMN index_model     text,
    ADD COLUMN index_chunks    integer;

-- The latest run of each maintenance section (reindex, integrity, repair, migration): its job,
-- state and report (live counts while it runs, the final report after). The admin routes read
-- it; the migration's state here is what lets it resume after a crash or a stop.
CREATE TABLE maintenance_runs (
    section     text PRIMARY KEY,
    job_id      uuid,
    -- running, completed, stopped, failed (and finalized for the migration)
    state       text NOT NULL,
    report      jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at  timestamptz,
    finished_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Speakers a migration could not give a voiceprint of `profile` (their audio is gone or
-- undecodable). "Retry failed" clears and retries them; "force complete" finalizes without.
CREATE TABLE embedding_failures (
    speaker_id uuid    NOT NULL REFERENCES speakers (id) ON DELETE CASCADE,
    profile    text    NOT NULL,
    error_code text    NOT NULL,
    message    text    NOT NULL,
    attempts   integer NOT NULL DEFAULT 1,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (speaker_id, profile)
);
