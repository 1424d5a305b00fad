-- Sign-in sessions (issue 17): `POST /v1/auth/login` opens a session with a short-lived
-- access token (an `api_tokens` row tied to the session) and a refresh token; each refresh
-- rotates the refresh token, and a rotated one presented again revokes the whole session.
-- Failed sign-ins in a row lock the account for a while.
ALTER TABLE users ADD COLUMN failed_logins integer NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until timestamptz;

CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text,
    source_ip     text
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);

CREATE TABLE session_refresh_tokens (
    token_sha256 text PRIMARY KEY,
    session_id   uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    used_at      timestamptz
);
CREATE INDEX session_refresh_tokens_session ON session_refresh_tokens (session_id);

ALTER TABLE api_tokens ADD COLUMN session_id uuid REFERENCES sessions (id) ON DELETE CASCADE;
