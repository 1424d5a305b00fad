-- TOTP multi-factor sign-in (issue 17). `mfa_secret` is set at enrolment and becomes active
-- (`mfa_enabled`) once a code from it verifies; `mfa_last_step` is the newest time step
-- accepted, so a code is accepted once. Backup codes are single use and stored hashed.
ALTER TABLE users ADD COLUMN mfa_secret text;
ALTER TABLE users ADD COLUMN mfa_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN mfa_last_step bigint;

CREATE TABLE mfa_backup_codes (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_sha256 text NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_sha256)
);

-- A session opened by a user whose role must use multi-factor sign-in but who has not
-- enrolled reaches only enrolment (and `/v1/me`, logout) until they have.
ALTER TABLE sessions ADD COLUMN mfa_pending boolean NOT NULL DEFAULT false;
