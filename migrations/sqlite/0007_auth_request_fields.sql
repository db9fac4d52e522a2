-- An essential acr (from the claims parameter) gets a column of its own instead of an
-- "essential:" prefix inside acr_values, and the sign-in records whether it used a grace
-- login (so that the grace is counted once per sign-in). In-flight requests are converted.
ALTER TABLE auth_requests ADD COLUMN essential_acr TEXT    NOT NULL DEFAULT '[]';
ALTER TABLE auth_requests ADD COLUMN login_grace   INTEGER NOT NULL DEFAULT 0;

UPDATE auth_requests SET
    essential_acr = (SELECT json_group_array(substr(value, 11)) FROM json_each(auth_requests.acr_values)
                     WHERE value LIKE 'essential:%'),
    acr_values    = (SELECT json_group_array(value) FROM json_each(auth_requests.acr_values)
                     WHERE value NOT LIKE 'essential:%')
WHERE acr_values LIKE '%"essential:%';
