-- Password-reset links ("Forgot your password?"). The token is stored only as a hash.
-- A new password posted with a link waits here (pending_hash, argon2id) until the person
-- has passed their second factor; using the link consumes it and every other link of
-- the person.
CREATE TABLE password_resets (
    id              text        PRIMARY KEY,
    user_id         text        NOT NULL,
    token_hash      text        NOT NULL UNIQUE,
    auth_request_id text        NOT NULL DEFAULT '',
    pending_id      text        NOT NULL DEFAULT '',
    pending_hash    text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz
);
CREATE INDEX password_resets_user_id_idx ON password_resets (user_id);
CREATE INDEX password_resets_expires_at_idx ON password_resets (expires_at);
