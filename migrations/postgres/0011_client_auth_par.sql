-- private_key_jwt client authentication (RFC 7523) and pushed authorization requests
-- (RFC 9126).
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method text    NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN jwks                       text    NOT NULL DEFAULT ''; -- JWKS JSON, by value
ALTER TABLE clients ADD COLUMN jwks_uri                   text    NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_par                boolean NOT NULL DEFAULT false;

-- The jti of each client assertion accepted, until the assertion expires: single use.
CREATE TABLE used_assertions (
    client_id  text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX used_assertions_expires_at_idx ON used_assertions (expires_at);

-- Pushed authorization requests: the request_uri id, its client and the parameters.
CREATE TABLE pushed_requests (
    id         text        PRIMARY KEY,
    client_id  text        NOT NULL,
    params     text        NOT NULL, -- application/x-www-form-urlencoded
    expires_at timestamptz NOT NULL
);
CREATE INDEX pushed_requests_expires_at_idx ON pushed_requests (expires_at);
