-- voxfleet schema, part 5: operations (retention, the scheduler).

-- Retention's tombstone. A file is marked before anything of it is deleted; from then on the
-- API no longer lists or serves it, and every retention run first finishes the files marked
-- by an earlier, interrupted one (index documents, storage object, then the rows, which go
-- last because they hold the storage key). So a worker killed mid-file leaves a file that is
-- hidden and queued for completion, never one that is half there.
ALTER TABLE files ADD COLUMN deleting_at timestamptz;
CREATE INDEX files_deleting ON files (deleting_at) WHERE deleting_at IS NOT NULL;
CREATE INDEX files_created ON files (created_at);

-- The scheduler's durable record: per schedule, the latest slot (the due instant) that fired,
-- and the configuration it was computed from. A replica fires slot S only by moving `slot`
-- forward from below S in one statement, so each slot fires once however many replicas run;
-- after downtime only the latest missed slot is due, so a missed run runs once.
CREATE TABLE schedule_runs (
    name        text PRIMARY KEY,
    slot        timestamptz NOT NULL,
    fingerprint text        NOT NULL,
    job_id      uuid,
    fired_at    timestamptz,
    fired_by    text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
