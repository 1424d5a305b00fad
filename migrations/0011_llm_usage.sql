-- LLM token budgets (issue 17): the platform's own LLM work (summaries, chat, titles, event
-- extraction) for a user, reserved before a call and committed with the real count after, or
-- reported after the fact. A reservation not committed within an hour stops counting.
CREATE TABLE llm_usage (
    id           uuid PRIMARY KEY,
    -- NULL once the user is deleted (the row stays for accounting).
    owner        uuid,
    operation    text        NOT NULL,
    reserved     bigint      NOT NULL CHECK (reserved >= 0),
    tokens       bigint      CHECK (tokens >= 0),
    state        text        NOT NULL CHECK (state IN ('reserved', 'committed', 'released')),
    at           timestamptz NOT NULL DEFAULT now(),
    committed_at timestamptz
);
CREATE INDEX llm_usage_owner ON llm_usage (owner, at);
