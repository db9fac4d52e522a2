-- Account types, groups and MFA grace of users; per-client MFA policy and back-channel
-- logout; password and second-factor times of sessions and the clients each session
-- signed in to; per-account-type MFA policies; remembered devices. Same conventions as
-- 0001_init.sql: a zero time.Time is NULL, lists are text[] (NULL for a nil slice), no
-- foreign keys. An MFA policy is jsonb (storage.MFAPolicy, durations as JSON numbers of
-- nanoseconds); '{}' is the zero policy.

ALTER TABLE users
    ADD COLUMN type              text        NOT NULL DEFAULT '',
    ADD COLUMN groups            text[],
    ADD COLUMN mfa_grace_started timestamptz,  -- NULL when no grace is running
    ADD COLUMN mfa_grace_logins  integer     NOT NULL DEFAULT 0;

ALTER TABLE clients
    ADD COLUMN policy                 jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN backchannel_logout_uri text  NOT NULL DEFAULT '';

ALTER TABLE sessions
    ADD COLUMN password_at timestamptz,
    ADD COLUMN mfa_at      timestamptz, -- NULL if no second factor was verified
    ADD COLUMN factors     text[];      -- the factor kinds verified
-- Until now auth_time was the time of the password check.
UPDATE sessions SET password_at = auth_time;

-- The clients a session signed in to, for back-channel logout. The store deletes a
-- session's rows with the session.
CREATE TABLE session_clients (
    session_id text NOT NULL,
    client_id  text NOT NULL,
    PRIMARY KEY (session_id, client_id)
);

CREATE TABLE type_policies (
    type   text  PRIMARY KEY,
    policy jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE devices (
    id           text        PRIMARY KEY,
    user_id      text        NOT NULL,
    token_hash   text        NOT NULL,  -- hex SHA-256 of the cookie value
    name         text        NOT NULL DEFAULT '',
    ip           text        NOT NULL DEFAULT '',
    created_at   timestamptz,
    last_used_at timestamptz,
    expires_at   timestamptz,
    CONSTRAINT devices_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX devices_user_id_idx ON devices (user_id, created_at);
CREATE INDEX devices_expires_at_idx ON devices (expires_at);
