-- Second factors, backup codes, challenges, failure counters and server secrets.
-- Same conventions as 0001_init.sql: times are INTEGER unix nanoseconds (UTC) with NULL
-- for the zero time.Time, booleans are INTEGER 0 / 1, byte slices are BLOBs (NULL when
-- empty).

CREATE TABLE factors (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,             -- totp, backup, email, sms, webauthn
    name         TEXT    NOT NULL DEFAULT '',
    target       TEXT    NOT NULL DEFAULT '',  -- e-mail address or E.164 number
    secret       BLOB,                         -- sealed by the caller
    confirmed    INTEGER NOT NULL DEFAULT 0,
    last_step    INTEGER NOT NULL DEFAULT 0,   -- last accepted TOTP time step
    created_at   INTEGER,
    last_used_at INTEGER                       -- NULL if never used
) STRICT;

CREATE INDEX factors_user_id ON factors (user_id);

CREATE TABLE backup_codes (
    user_id    TEXT    NOT NULL,
    code_hash  TEXT    NOT NULL,
    created_at INTEGER,
    used_at    INTEGER, -- NULL while unused
    PRIMARY KEY (user_id, code_hash)
) STRICT;

CREATE TABLE challenges (
    id          TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL DEFAULT '',
    factor_id   TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL DEFAULT '',
    code_hash   TEXT    NOT NULL DEFAULT '', -- '' when the kind sends no code
    data        BLOB,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER,
    expires_at  INTEGER,                     -- NULL: never attemptable, never deleted
    consumed_at INTEGER                      -- NULL until used
) STRICT;

CREATE INDEX challenges_expires_at ON challenges (expires_at);

CREATE TABLE failure_counters (
    key          TEXT    NOT NULL PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER, -- NULL when not locked
    updated_at   INTEGER
) STRICT;

CREATE TABLE server_secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    sealed     BLOB    NOT NULL,
    created_at INTEGER
) STRICT;
