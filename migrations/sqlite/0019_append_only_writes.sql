-- The write path, continued (issue 9): what every token request writes lands at the end
-- of each B-tree it touches, and touches fewer of them. Token and refresh family ids
-- are now time-ordered (secret.NewSortableID), so their keys append.
--
-- access_tokens is keyed by its id alone (WITHOUT ROWID: one B-tree instead of a table
-- and its primary-key index), and its person and family indexes hold only the rows that
-- have one: a client_credentials token has neither, and adds no entry to them.
CREATE TABLE access_tokens_0019 (
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
) STRICT, WITHOUT ROWID;

INSERT INTO access_tokens_0019 (id, client_id, user_id, audience, scopes, auth_time, amr, acr,
    session_id, family_id, created_at, expires_at)
    SELECT id, client_id, user_id, audience, scopes, auth_time, amr, acr,
    session_id, family_id, created_at, expires_at FROM access_tokens;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_0019 RENAME TO access_tokens;

-- Queries on these say "user_id <> ''" / "family_id <> ''" so that SQLite uses them.
CREATE INDEX access_tokens_user_id ON access_tokens (user_id) WHERE user_id <> '';
CREATE INDEX access_tokens_family_id ON access_tokens (family_id) WHERE family_id <> '';
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

-- Audit events of no person (client_credentials tokens, most client events) add no
-- entry to the person index.
DROP INDEX audit_events_user_id;
CREATE INDEX audit_events_user_id ON audit_events (user_id, occurred_at) WHERE user_id <> '';

-- A fork of the chain (two events naming the same predecessor) was refused by a unique
-- index on prev_hash: a hash, so every event wrote to a random page of it. An event
-- must now link to the newest event, which is stricter (it refuses a fork, and any
-- event that skips the newest) and costs one look at the end of the table. SQLite has
-- one writer at a time and the writer reads the head inside its write transaction, so
-- only a bug, or someone writing to the file by hand, meets this.
DROP INDEX audit_events_prev_hash;
CREATE TRIGGER audit_events_link BEFORE INSERT ON audit_events
WHEN NEW.prev_hash <> COALESCE((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), '')
BEGIN
    SELECT RAISE(ABORT, 'audit chain: an event must link to the newest event');
END;
