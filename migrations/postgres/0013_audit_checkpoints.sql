-- A keyed, anchored audit chain.
--
-- chain_key: the id of the audit chain key (derived from the encryption key, never
-- stored) whose HMAC-SHA256 is the event's hash; '' for the events written before this
-- version, whose hash is the unkeyed SHA-256 of migration 0004. `idp audit verify`
-- accepts unkeyed events only before the first keyed one, and refuses a trail whose
-- newest event is unkeyed, so keyed events cannot be downgraded unnoticed.
ALTER TABLE audit_events ADD COLUMN chain_key text NOT NULL DEFAULT '';

-- Signed checkpoints: the provider's signature (a compact JWS) over the newest event's id
-- and hash at a moment. Exported copies kept outside the database detect a rewritten
-- history, even by someone who has the keys.
CREATE TABLE audit_checkpoints (
    id         bigserial   PRIMARY KEY,
    event_id   bigint      NOT NULL,
    hash       text        NOT NULL,
    created_at timestamptz NOT NULL,
    jws        text        NOT NULL
);
CREATE INDEX audit_checkpoints_event_id_idx ON audit_checkpoints (event_id);
