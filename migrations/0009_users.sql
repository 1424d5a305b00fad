-- Users (issue 17). Until now a token was the owner of what it made: every `owner` column
-- (files, jobs, speakers, usage records, search documents) holds a token id. Each existing
-- token becomes a user with the token's own id, name and role, so every owner column now
-- names that user without a row being rewritten, and the token keeps working as one of the
-- user's tokens. From here on a token belongs to a user and the user holds the role.

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    -- NULL for accounts made from a bare token (service accounts); unique ignoring case.
    email            text CHECK (email IS NULL OR (length(email) BETWEEN 3 AND 254)),
    name             text        NOT NULL,
    role             text        NOT NULL CHECK (role IN ('user', 'admin', 'super_admin')),
    -- argon2id in PHC format; NULL: no password, the account cannot sign in with one.
    password_hash    text,
    public_sharing   boolean     NOT NULL DEFAULT false,
    -- Applied to the user's transcriptions that name none.
    default_language text,
    default_prompt   text,
    -- The platform's own id for this person.
    external_id      text UNIQUE,
    disabled         boolean     NOT NULL DEFAULT false,
    -- Minutes of audio per calendar month (NULL: unlimited).
    transcription_budget_minutes integer CHECK (transcription_budget_minutes >= 10),
    -- LLM tokens per calendar month (NULL: unlimited), in steps of 10,000.
    token_budget     bigint CHECK (token_budget >= 100000 AND token_budget % 10000 = 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_login_at    timestamptz,
    -- Set when an admin deletes the account: from then on it is gone from the API and its
    -- tokens are revoked; the `delete_user` job removes what it owns, then the row.
    deleting_at      timestamptz
);
CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_newest ON users (created_at DESC, id DESC);

INSERT INTO users (id, name, role, created_at)
SELECT id, name, role, created_at FROM api_tokens;

ALTER TABLE api_tokens ADD COLUMN user_id uuid REFERENCES users (id);
UPDATE api_tokens SET user_id = id;
ALTER TABLE api_tokens ALTER COLUMN user_id SET NOT NULL;
-- The role is the user's now.
ALTER TABLE api_tokens DROP COLUMN role;
-- A token that may act for other users (`X-Voxfleet-User`), granted by an admin.
ALTER TABLE api_tokens ADD COLUMN can_delegate boolean NOT NULL DEFAULT false;
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);

-- The audit log names the person as well as the acting token (`actor`), the outcome and the
-- address the request came from.
ALTER TABLE audit_log ADD COLUMN user_id uuid;
ALTER TABLE audit_log ADD COLUMN outcome text NOT NULL DEFAULT 'success';
ALTER TABLE audit_log ADD COLUMN source_ip text;
CREATE INDEX audit_log_user ON audit_log (user_id, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);
UPDATE audit_log a SET user_id = t.user_id FROM api_tokens t WHERE a.actor = t.id;
