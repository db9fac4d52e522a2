-- Initial schema of the SQLite backend.
--
-- Conventions:
--   * times are INTEGER unix nanoseconds (UTC); NULL stands for the zero time.Time;
--   * durations are INTEGER nanoseconds;
--   * lists ([]string) are JSON arrays in TEXT columns;
--   * booleans are INTEGER 0 / 1.
-- The schema_migrations table is created by the migrator, not here.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE, -- stored lower-cased
    name          TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER,
    updated_at    INTEGER
) STRICT;

CREATE INDEX users_created_at ON users (created_at);

CREATE TABLE clients (
    id                        TEXT    NOT NULL PRIMARY KEY,
    name                      TEXT    NOT NULL DEFAULT '',
    secret_hash               BLOB,
    public                    INTEGER NOT NULL DEFAULT 0,
    redirect_uris             TEXT    NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT    NOT NULL DEFAULT '[]',
    grant_types               TEXT    NOT NULL DEFAULT '[]',
    scopes                    TEXT    NOT NULL DEFAULT '[]',
    skip_consent              INTEGER NOT NULL DEFAULT 0,
    access_token_format       TEXT    NOT NULL DEFAULT '',
    id_token_signing_alg      TEXT    NOT NULL DEFAULT '',
    access_token_lifetime     INTEGER NOT NULL DEFAULT 0,
    id_token_lifetime         INTEGER NOT NULL DEFAULT 0,
    refresh_token_lifetime    INTEGER NOT NULL DEFAULT 0,
    created_at                INTEGER
) STRICT;

CREATE INDEX clients_created_at ON clients (created_at);

CREATE TABLE auth_requests (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL DEFAULT '',
    state                 TEXT    NOT NULL DEFAULT '',
    nonce                 TEXT    NOT NULL DEFAULT '',
    scopes                TEXT    NOT NULL DEFAULT '[]',
    response_type         TEXT    NOT NULL DEFAULT '',
    response_mode         TEXT    NOT NULL DEFAULT '',
    prompt                TEXT    NOT NULL DEFAULT '[]',
    max_age               INTEGER,             -- seconds; NULL when the request had none
    acr_values            TEXT    NOT NULL DEFAULT '[]',
    login_hint            TEXT    NOT NULL DEFAULT '',
    ui_locales            TEXT    NOT NULL DEFAULT '[]',
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    hint_user_id          TEXT    NOT NULL DEFAULT '',
    created_at            INTEGER,
    expires_at            INTEGER,
    login_user_id         TEXT    NOT NULL DEFAULT '',
    login_session_id      TEXT    NOT NULL DEFAULT '',
    login_auth_time       INTEGER,
    login_amr             TEXT    NOT NULL DEFAULT '[]',
    login_acr             TEXT    NOT NULL DEFAULT '',
    login_done            INTEGER NOT NULL DEFAULT 0,
    code_hash             TEXT    NOT NULL DEFAULT '', -- '' until a code is issued
    code_expires_at       INTEGER,
    code_redeemed         INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX auth_requests_code_hash ON auth_requests (code_hash) WHERE code_hash <> '';
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL,
    auth_time    INTEGER,
    amr          TEXT    NOT NULL DEFAULT '[]',
    acr          TEXT    NOT NULL DEFAULT '',
    ip           TEXT    NOT NULL DEFAULT '',
    user_agent   TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER,
    last_seen_at INTEGER,
    expires_at   INTEGER
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id, created_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '[]',
    granted_at INTEGER,
    PRIMARY KEY (user_id, client_id)
) STRICT;

CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE access_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL DEFAULT '', -- '' for client_credentials
    audience   TEXT    NOT NULL DEFAULT '[]',
    scopes     TEXT    NOT NULL DEFAULT '[]',
    auth_time  INTEGER,
    amr        TEXT    NOT NULL DEFAULT '[]',
    acr        TEXT    NOT NULL DEFAULT '',
    session_id TEXT    NOT NULL DEFAULT '',
    family_id  TEXT    NOT NULL DEFAULT '', -- '' when issued without a refresh token
    created_at INTEGER,
    expires_at INTEGER
) STRICT;

CREATE INDEX access_tokens_user_id ON access_tokens (user_id);
CREATE INDEX access_tokens_family_id ON access_tokens (family_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    token_hash TEXT    NOT NULL UNIQUE,
    family_id  TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL DEFAULT '',
    audience   TEXT    NOT NULL DEFAULT '[]',
    scopes     TEXT    NOT NULL DEFAULT '[]',
    auth_time  INTEGER,
    amr        TEXT    NOT NULL DEFAULT '[]',
    acr        TEXT    NOT NULL DEFAULT '',
    session_id TEXT    NOT NULL DEFAULT '',
    created_at INTEGER,
    expires_at INTEGER,
    rotated_at INTEGER, -- NULL while current
    revoked_at INTEGER  -- NULL unless revoked
) STRICT;

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
    id             TEXT    NOT NULL PRIMARY KEY,
    algorithm      TEXT    NOT NULL,
    private_sealed BLOB,
    public_jwk     BLOB,
    created_at     INTEGER,
    retired_at     INTEGER, -- NULL while it signs
    expires_at     INTEGER  -- NULL while it signs
) STRICT;

CREATE INDEX signing_keys_algorithm ON signing_keys (algorithm, retired_at);
CREATE INDEX signing_keys_created_at ON signing_keys (created_at);

CREATE TABLE audit_events (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    occurred_at INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    user_id     TEXT    NOT NULL DEFAULT '',
    client_id   TEXT    NOT NULL DEFAULT '',
    ip          TEXT    NOT NULL DEFAULT '',
    user_agent  TEXT    NOT NULL DEFAULT '',
    result      TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
CREATE INDEX audit_events_user_id ON audit_events (user_id, occurred_at);
CREATE INDEX audit_events_client_id ON audit_events (client_id, occurred_at);
CREATE INDEX audit_events_type ON audit_events (type, occurred_at);

CREATE TABLE rate_limits (
    key          TEXT    NOT NULL PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL -- window_start + window: the window is open before it
) STRICT;

CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
