-- Second factors, backup codes, challenges, failure counters and server secrets. Same
-- conventions as 0001_init.sql: a zero time.Time is NULL, opaque blobs are bytea (NULL
-- when empty), hex hashes are text, no foreign keys.

CREATE TABLE factors (
    id           text        PRIMARY KEY,
    user_id      text        NOT NULL,
    kind         text        NOT NULL,             -- totp, backup, email, sms, webauthn
    name         text        NOT NULL DEFAULT '',
    target       text        NOT NULL DEFAULT '',  -- e-mail address or E.164 number
    secret       bytea,                            -- sealed by the caller
    confirmed    boolean     NOT NULL DEFAULT false,
    last_step    bigint      NOT NULL DEFAULT 0,   -- last accepted TOTP time step
    created_at   timestamptz,
    last_used_at timestamptz                       -- NULL if never used
);
CREATE INDEX factors_user_id_idx ON factors (user_id);

CREATE TABLE backup_codes (
    user_id    text        NOT NULL,
    code_hash  text        NOT NULL,
    created_at timestamptz,
    used_at    timestamptz, -- NULL while unused
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE challenges (
    id          text        PRIMARY KEY,
    user_id     text        NOT NULL DEFAULT '',
    factor_id   text        NOT NULL DEFAULT '',
    kind        text        NOT NULL DEFAULT '',
    code_hash   text        NOT NULL DEFAULT '', -- '' when the kind sends no code
    data        bytea,
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz,
    expires_at  timestamptz,                     -- NULL: never attemptable, never deleted
    consumed_at timestamptz                      -- NULL until used
);
CREATE INDEX challenges_expires_at_idx ON challenges (expires_at);

CREATE TABLE failure_counters (
    key          text        PRIMARY KEY,
    failures     integer     NOT NULL DEFAULT 0,
    locked_until timestamptz, -- NULL when not locked
    updated_at   timestamptz
);

CREATE TABLE server_secrets (
    name       text        PRIMARY KEY,
    sealed     bytea       NOT NULL,
    created_at timestamptz
);
