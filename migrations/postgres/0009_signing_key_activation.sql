-- A rotated-in signing key is published before it signs: activates_at is when it starts
-- signing (NULL: at created_at). Existing keys signed from their creation.
ALTER TABLE signing_keys ADD COLUMN activates_at timestamptz;

UPDATE signing_keys SET activates_at = created_at;
