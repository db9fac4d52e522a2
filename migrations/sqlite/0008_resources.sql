-- Resource indicators (RFC 8707): the registered resources, the resources an
-- authorization request was authorized for, and those of a refresh token's grant.
CREATE TABLE resources (
    uri             TEXT    NOT NULL PRIMARY KEY, -- absolute, no fragment; compared exactly
    name            TEXT    NOT NULL DEFAULT '',
    allowed_clients TEXT    NOT NULL DEFAULT '[]', -- client ids; empty: none
    required_scopes TEXT    NOT NULL DEFAULT '[]',
    created_at      INTEGER
) STRICT;

CREATE INDEX resources_created_at ON resources (created_at);

ALTER TABLE auth_requests  ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE refresh_tokens ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
