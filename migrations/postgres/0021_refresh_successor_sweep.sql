-- A rotated refresh token keeps its successor's value, sealed, so that a retry within
-- the reuse grace window gets the same successor (0012). After the window it serves
-- nothing, yet it is the value of a token that may still be current: kept until the
-- rotated token expired, it outlived the window by weeks, and the encryption key it was
-- sealed under by as long (`idp reencrypt` does not re-seal it). The cleanup now drops
-- it once the window is over (ClearRefreshSuccessors). The index holds only the rows
-- that still keep one — the last window's rotations — so that sweep reads a handful of
-- entries, not the table.
--
-- Those rotated over an hour ago are past any window: they go now, before the index is
-- built.
UPDATE refresh_tokens SET successor_sealed = NULL
WHERE successor_sealed IS NOT NULL AND rotated_at < now() - interval '1 hour';

CREATE INDEX refresh_tokens_successor_sealed ON refresh_tokens (rotated_at) WHERE successor_sealed IS NOT NULL;
