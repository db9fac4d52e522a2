-- private_key_jwt client authentication (RFC 7523) and pushed authorization requests
-- (RFC 9126).
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT    NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN jwks                       TEXT    NOT NULL DEFAULT ''; -- JWKS JSON, by value
ALTER TABLE clients ADD COLUMN jwks_uri                   TEXT    NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_par                INTEGER NOT NULL DEFAULT 0;

-- The jti of each client assertion accepted, until the assertion expires: single use.
CREATE TABLE used_assertions (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) STRICT;
CREATE INDEX used_assertions_expires_at ON used_assertions (expires_at);

-- Pushed authorization requests: the request_uri id, its client and the parameters.
CREATE TABLE pushed_requests (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    params     TEXT    NOT NULL, -- application/x-www-form-urlencoded
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX pushed_requests_expires_at ON pushed_requests (expires_at);
