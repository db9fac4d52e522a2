-- The write path (issue 9): audit events name what they concern, and a rotated refresh
-- token keeps its successor, sealed, for a retry within the reuse grace window.
ALTER TABLE audit_events ADD COLUMN token_id   text; -- access or refresh token id; NULL when none
ALTER TABLE audit_events ADD COLUMN family_id  text; -- refresh family id
ALTER TABLE audit_events ADD COLUMN session_id text; -- SSO session id
ALTER TABLE audit_events ADD COLUMN factor_id  text; -- second factor id
CREATE INDEX audit_events_token_id ON audit_events (token_id) WHERE token_id IS NOT NULL;

ALTER TABLE refresh_tokens ADD COLUMN successor_id     text;  -- the token that replaced it
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed bytea; -- its value, sealed; never plaintext
