-- Device authorizations (RFC 8628). The device polls with the device code, the person
-- types the user code on /device; both are stored only hashed (the short user code as a
-- keyed MAC). state moves pending → approved → consumed (tokens issued once), or
-- pending → denied. The login_* columns are the sign-in that approved it.
CREATE TABLE device_authorizations (
    id               text        PRIMARY KEY,
    device_code_hash text        NOT NULL UNIQUE,
    user_code_hash   text        NOT NULL UNIQUE,
    client_id        text        NOT NULL,
    scopes           text[],
    state            text        NOT NULL DEFAULT 'pending',
    login_user_id    text        NOT NULL DEFAULT '',
    login_session_id text        NOT NULL DEFAULT '',
    login_auth_time  timestamptz,
    login_amr        text[],
    login_acr        text        NOT NULL DEFAULT '',
    last_poll_at     timestamptz,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX device_authorizations_expires_at_idx ON device_authorizations (expires_at);
