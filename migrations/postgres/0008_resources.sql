-- Resource indicators (RFC 8707): the registered resources, the resources an
-- authorization request was authorized for, and those of a refresh token's grant.
CREATE TABLE resources (
    uri             text        PRIMARY KEY, -- absolute, no fragment; compared exactly
    name            text        NOT NULL DEFAULT '',
    allowed_clients text[],                  -- client ids; empty: none
    required_scopes text[],
    created_at      timestamptz
);
CREATE INDEX resources_created_at_idx ON resources (created_at, uri);

ALTER TABLE auth_requests  ADD COLUMN resources text[];
ALTER TABLE refresh_tokens ADD COLUMN resources text[];
