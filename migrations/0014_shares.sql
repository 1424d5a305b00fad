-- Public share links (issue 17): an expiring, revocable, read-only link to one file's
-- transcript, made by a user with `public_sharing` while the instance allows it.
CREATE TABLE share_links (
    id           uuid PRIMARY KEY,
    token_sha256 text        NOT NULL UNIQUE,
    file_id      uuid        NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    owner        uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX share_links_file ON share_links (file_id);
