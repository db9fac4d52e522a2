-- Initial PostgreSQL schema of the identity provider: one table per record of package
-- storage. Conventions: a zero time.Time is stored as NULL, lists as text[] (NULL for a
-- nil slice), durations as bigint nanoseconds, hashes held as []byte and opaque blobs as
-- bytea, hex hashes as text. No foreign keys: the storage contract lets records refer to
-- ids that do not (or no longer) exist, and cleanup is explicit.

CREATE TABLE users (
    id            text        PRIMARY KEY,
    email         text        NOT NULL,   -- lower-cased by the store
    name          text        NOT NULL DEFAULT '',
    password_hash text        NOT NULL DEFAULT '',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz,
    updated_at    timestamptz,
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_created_at_idx ON users (created_at, id);

CREATE TABLE clients (
    id                        text        PRIMARY KEY,
    name                      text        NOT NULL DEFAULT '',
    secret_hash               bytea,
    public                    boolean     NOT NULL DEFAULT false,
    redirect_uris             text[],
    post_logout_redirect_uris text[],
    grant_types               text[],
    scopes                    text[],
    skip_consent              boolean     NOT NULL DEFAULT false,
    access_token_format       text        NOT NULL DEFAULT '',
    id_token_signing_alg      text        NOT NULL DEFAULT '',
    access_token_lifetime     bigint      NOT NULL DEFAULT 0, -- nanoseconds
    id_token_lifetime         bigint      NOT NULL DEFAULT 0, -- nanoseconds
    refresh_token_lifetime    bigint      NOT NULL DEFAULT 0, -- nanoseconds
    created_at                timestamptz
);
CREATE INDEX clients_created_at_idx ON clients (created_at, id);

CREATE TABLE auth_requests (
    id                    text        PRIMARY KEY,
    client_id             text        NOT NULL DEFAULT '',
    redirect_uri          text        NOT NULL DEFAULT '',
    state                 text        NOT NULL DEFAULT '',
    nonce                 text        NOT NULL DEFAULT '',
    scopes                text[],
    response_type         text        NOT NULL DEFAULT '',
    response_mode         text        NOT NULL DEFAULT '',
    prompt                text[],
    max_age               bigint,                 -- seconds; NULL when absent
    acr_values            text[],
    login_hint            text        NOT NULL DEFAULT '',
    ui_locales            text[],
    code_challenge        text        NOT NULL DEFAULT '',
    code_challenge_method text        NOT NULL DEFAULT '',
    hint_user_id          text        NOT NULL DEFAULT '',
    created_at            timestamptz,
    expires_at            timestamptz,
    login_user_id         text        NOT NULL DEFAULT '',
    login_session_id      text        NOT NULL DEFAULT '',
    login_auth_time       timestamptz,
    login_amr             text[],
    login_acr             text        NOT NULL DEFAULT '',
    login_done            boolean     NOT NULL DEFAULT false,
    code_hash             text        NOT NULL DEFAULT '', -- hex SHA-256; '' until issued
    code_expires_at       timestamptz,
    code_redeemed         boolean     NOT NULL DEFAULT false
);
-- A code hash identifies exactly one request, so ConsumeAuthCode can redeem one row.
CREATE UNIQUE INDEX auth_requests_code_hash_key ON auth_requests (code_hash) WHERE code_hash <> '';
CREATE INDEX auth_requests_expires_at_idx ON auth_requests (expires_at);

CREATE TABLE sessions (
    id           text        PRIMARY KEY,
    token_hash   text        NOT NULL,
    user_id      text        NOT NULL DEFAULT '',
    auth_time    timestamptz,
    amr          text[],
    acr          text        NOT NULL DEFAULT '',
    ip           text        NOT NULL DEFAULT '',
    user_agent   text        NOT NULL DEFAULT '',
    created_at   timestamptz,
    last_seen_at timestamptz,
    expires_at   timestamptz,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE consents (
    user_id    text        NOT NULL,
    client_id  text        NOT NULL,
    scopes     text[],
    granted_at timestamptz,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE access_tokens (
    id         text        PRIMARY KEY,
    client_id  text        NOT NULL DEFAULT '',
    user_id    text        NOT NULL DEFAULT '', -- '' for client_credentials
    audience   text[],
    scopes     text[],
    auth_time  timestamptz,
    amr        text[],
    acr        text        NOT NULL DEFAULT '',
    session_id text        NOT NULL DEFAULT '',
    family_id  text        NOT NULL DEFAULT '', -- refresh family; '' if none
    created_at timestamptz,
    expires_at timestamptz
);
CREATE INDEX access_tokens_user_id_idx ON access_tokens (user_id) WHERE user_id <> '';
CREATE INDEX access_tokens_family_id_idx ON access_tokens (family_id) WHERE family_id <> '';
CREATE INDEX access_tokens_expires_at_idx ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    id         text        PRIMARY KEY,
    token_hash text        NOT NULL,
    family_id  text        NOT NULL,
    client_id  text        NOT NULL DEFAULT '',
    user_id    text        NOT NULL DEFAULT '',
    audience   text[],
    scopes     text[],
    auth_time  timestamptz,
    amr        text[],
    acr        text        NOT NULL DEFAULT '',
    session_id text        NOT NULL DEFAULT '',
    created_at timestamptz,
    expires_at timestamptz,
    rotated_at timestamptz, -- NULL while current
    revoked_at timestamptz, -- NULL unless revoked
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
    id             text        PRIMARY KEY,
    algorithm      text        NOT NULL,
    private_sealed bytea,
    public_jwk     bytea,
    created_at     timestamptz,
    retired_at     timestamptz, -- NULL while it signs
    expires_at     timestamptz  -- NULL while it signs
);
CREATE INDEX signing_keys_active_idx ON signing_keys (algorithm) WHERE retired_at IS NULL;
CREATE INDEX signing_keys_created_at_idx ON signing_keys (created_at);

CREATE TABLE audit_events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time       timestamptz,
    type       text        NOT NULL DEFAULT '',
    user_id    text        NOT NULL DEFAULT '',
    client_id  text        NOT NULL DEFAULT '',
    ip         text        NOT NULL DEFAULT '',
    user_agent text        NOT NULL DEFAULT '',
    result     text        NOT NULL DEFAULT '',
    reason     text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_user_id_idx ON audit_events (user_id, id) WHERE user_id <> '';
CREATE INDEX audit_events_client_id_idx ON audit_events (client_id, id) WHERE client_id <> '';
CREATE INDEX audit_events_type_idx ON audit_events (type, id);
CREATE INDEX audit_events_time_idx ON audit_events (time);

CREATE TABLE rate_limits (
    key          text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    window_ns    bigint      NOT NULL, -- length of the current window, nanoseconds
    count        integer     NOT NULL
);
CREATE INDEX rate_limits_window_start_idx ON rate_limits (window_start);
