-- An essential acr (from the claims parameter) gets a column of its own instead of an
-- "essential:" prefix inside acr_values, and the sign-in records whether it used a grace
-- login (so that the grace is counted once per sign-in). In-flight requests are converted.
ALTER TABLE auth_requests ADD COLUMN essential_acr text[];
ALTER TABLE auth_requests ADD COLUMN login_grace   boolean NOT NULL DEFAULT false;

UPDATE auth_requests SET
    essential_acr = ARRAY(SELECT substr(v, 11) FROM unnest(acr_values) AS v WHERE v LIKE 'essential:%'),
    acr_values    = ARRAY(SELECT v FROM unnest(acr_values) AS v WHERE v NOT LIKE 'essential:%')
WHERE EXISTS (SELECT 1 FROM unnest(acr_values) AS v WHERE v LIKE 'essential:%');
