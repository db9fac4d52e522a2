-- What the redemption of each authorization code issued, so that a replay of the code can
-- revoke it (RFC 6749 §4.1.2). ConsumeAuthCode writes the row in the transaction that
-- redeems the code; IssueCodeTokens fills in the tokens in the transaction that stores
-- them, unless a replay came first; RevokeCodeGrant marks the replay and revokes them.
-- A row lives until the code and the tokens first issued with it have expired.
--
--   code_hash        hex SHA-256 of the code (the auth request row is deleted after issue)
--   access_token_id  the access token issued; '' until issued
--   family_id        the refresh-token family issued with it; '' if none
--   replayed_at      first replay of the code (unix ns); NULL while none was seen
CREATE TABLE code_grants (
    code_hash       TEXT    NOT NULL PRIMARY KEY,
    client_id       TEXT    NOT NULL DEFAULT '',
    user_id         TEXT    NOT NULL DEFAULT '',
    access_token_id TEXT    NOT NULL DEFAULT '',
    family_id       TEXT    NOT NULL DEFAULT '',
    redeemed_at     INTEGER,
    replayed_at     INTEGER,
    expires_at      INTEGER
) STRICT;

CREATE INDEX code_grants_expires_at ON code_grants (expires_at);
