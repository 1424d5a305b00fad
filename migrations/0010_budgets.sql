-- Transcription budgets (issue 17). A transcription submitted by a user reserves its audio's
-- probed minutes in the transaction that records the job; the reservation counts against the
-- month while the job is queued or running and has no usage row yet, so it "becomes usage" on
-- success and is released on failure or cancel without a second write.
CREATE TABLE budget_reservations (
    job_id  uuid PRIMARY KEY,
    owner   uuid             NOT NULL,
    minutes double precision NOT NULL,
    at      timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX budget_reservations_owner ON budget_reservations (owner);
