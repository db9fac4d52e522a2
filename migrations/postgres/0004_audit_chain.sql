-- Hash chain over the audit trail: every event stores the hash of the event before it
-- (prev_hash) and its own hash (hash = storage.ChainHash(prev_hash, event), lower-case
-- hex SHA-256). AppendAudit fills both in a transaction holding an advisory lock, so
-- appends from every process form one chain.
--
-- Rows written before this migration keep '' in both columns: they are outside the
-- chain. The first event appended afterwards has prev_hash '' (the hash of the newest
-- existing row) and starts the chain; `idp audit verify` checks from the first row that
-- has a hash onwards.

ALTER TABLE audit_events
    ADD COLUMN prev_hash text NOT NULL DEFAULT '',
    ADD COLUMN hash      text NOT NULL DEFAULT '';

-- A fork (two events naming the same predecessor) is refused by the database itself.
CREATE UNIQUE INDEX audit_events_prev_hash_idx ON audit_events (prev_hash) WHERE prev_hash <> '';
