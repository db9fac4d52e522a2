-- Device authorizations (RFC 8628). The device polls with the device code, the person
-- types the user code on /device; both are stored only hashed (the short user code as a
-- keyed MAC). state moves pending → approved → consumed (tokens issued once), or
-- pending → denied. The login_* columns are the sign-in that approved it.
CREATE TABLE device_authorizations (
    id               TEXT    NOT NULL PRIMARY KEY,
    device_code_hash TEXT    NOT NULL UNIQUE,
    user_code_hash   TEXT    NOT NULL UNIQUE,
    client_id        TEXT    NOT NULL,
    scopes           TEXT    NOT NULL DEFAULT '[]',
    state            TEXT    NOT NULL DEFAULT 'pending',
    login_user_id    TEXT    NOT NULL DEFAULT '',
    login_session_id TEXT    NOT NULL DEFAULT '',
    login_auth_time  INTEGER,
    login_amr        TEXT    NOT NULL DEFAULT '[]',
    login_acr        TEXT    NOT NULL DEFAULT '',
    last_poll_at     INTEGER,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX device_authorizations_expires_at ON device_authorizations (expires_at);
