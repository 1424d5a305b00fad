-- voxfleet schema, part 1: jobs, settings, API tokens, audit log.
-- PostgreSQL is the source of truth; Redis holds only live queue state.

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    kind            text        NOT NULL,
    queue           text        NOT NULL,
    priority        text        NOT NULL DEFAULT 'normal',
    status          text        NOT NULL,
    input           jsonb       NOT NULL,
    owner           uuid,
    idempotency_key text,
    attempts        integer     NOT NULL DEFAULT 0,
    max_retries     integer,
    error_code      text,
    error_message   text,
    result          jsonb,
    progress_done   bigint,
    progress_total  bigint,
    worker          text,
    version         bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_status_check CHECK (status IN
        ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'))
);

CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND owner IS NOT NULL;
CREATE INDEX jobs_newest ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_newest ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_owner_newest ON jobs (owner, created_at DESC, id DESC);

CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid
);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('user', 'admin', 'super_admin')),
    token_sha256 text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE audit_log (
    id     bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  uuid,
    action text        NOT NULL,
    target text,
    detail jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
