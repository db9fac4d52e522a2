-- Password-reset links ("Forgot your password?"). The token is stored only as a hash.
-- A new password posted with a link waits here (pending_hash, argon2id) until the person
-- has passed their second factor; using the link consumes it and every other link of
-- the person.
CREATE TABLE password_resets (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    token_hash      TEXT    NOT NULL UNIQUE,
    auth_request_id TEXT    NOT NULL DEFAULT '',
    pending_id      TEXT    NOT NULL DEFAULT '',
    pending_hash    TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    consumed_at     INTEGER
) STRICT;

CREATE INDEX password_resets_user_id ON password_resets (user_id);
CREATE INDEX password_resets_expires_at ON password_resets (expires_at);
