-- Account types, groups and MFA grace of users; per-client MFA policy and back-channel
-- logout; password and second-factor times of sessions and the clients each session
-- signed in to; per-account-type MFA policies; remembered devices.
-- Same conventions as 0001_init.sql: times are INTEGER unix nanoseconds (UTC) with NULL
-- for the zero time.Time, lists are JSON arrays in TEXT columns. An MFA policy is a JSON
-- object in a TEXT column (storage.MFAPolicy, durations as JSON numbers of nanoseconds);
-- '{}' is the zero policy.

ALTER TABLE users ADD COLUMN type TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN mfa_grace_started INTEGER; -- NULL when no grace is running
ALTER TABLE users ADD COLUMN mfa_grace_logins INTEGER NOT NULL DEFAULT 0;

ALTER TABLE clients ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';

ALTER TABLE sessions ADD COLUMN password_at INTEGER;
ALTER TABLE sessions ADD COLUMN mfa_at INTEGER; -- NULL if no second factor was verified
ALTER TABLE sessions ADD COLUMN factors TEXT; -- JSON list of the factor kinds verified
-- Until now auth_time was the time of the password check.
UPDATE sessions SET password_at = auth_time;

-- The clients a session signed in to, for back-channel logout. The store deletes a
-- session's rows with the session.
CREATE TABLE session_clients (
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id)
) STRICT;

CREATE TABLE type_policies (
    type   TEXT NOT NULL PRIMARY KEY,
    policy TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE TABLE devices (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE, -- hex SHA-256 of the cookie value
    name         TEXT    NOT NULL DEFAULT '',
    ip           TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER,
    last_used_at INTEGER,
    expires_at   INTEGER
) STRICT;

CREATE INDEX devices_user_id ON devices (user_id, created_at);
CREATE INDEX devices_expires_at ON devices (expires_at);
