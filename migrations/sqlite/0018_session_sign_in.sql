-- What each session's sign-in used (password or passkey, the second factors verified, a
-- remembered device standing in), for the account page's "Signed in with". Sessions from
-- before stay empty and are described from their amr.
ALTER TABLE sessions ADD COLUMN sign_in TEXT NOT NULL DEFAULT '[]'; -- JSON list
