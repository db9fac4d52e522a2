package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// expiryDeletes are the statements of DeleteExpired; each takes now (unix nanoseconds)
// as its only parameter. Rows whose expiry is NULL (the zero time) never expire. The
// rows of a dependent statement go with their parent and are not counted.
var expiryDeletes = []struct {
	what, query string
	dependent   bool
}{
	// A request whose code outlives it is kept until the code expires too.
	{"auth requests", `DELETE FROM auth_requests WHERE expires_at < ?1
		AND (code_expires_at IS NULL OR code_expires_at < ?1)`, false},
	{"code grants", `DELETE FROM code_grants WHERE expires_at < ?1`, false},
	{"session clients", `DELETE FROM session_clients
		WHERE session_id IN (SELECT id FROM sessions WHERE expires_at < ?1)`, true},
	{"sessions", `DELETE FROM sessions WHERE expires_at < ?1`, false},
	{"access tokens", `DELETE FROM access_tokens WHERE expires_at < ?1`, false},
	{"refresh tokens", `DELETE FROM refresh_tokens WHERE expires_at < ?1`, false},
	{"rate limits", `DELETE FROM rate_limits WHERE expires_at < ?1`, false},
	{"signing keys", `DELETE FROM signing_keys WHERE expires_at < ?1`, false},
	{"challenges", `DELETE FROM challenges WHERE expires_at < ?1`, false},
	{"devices", `DELETE FROM devices WHERE expires_at < ?1`, false},
	{"password resets", `DELETE FROM password_resets WHERE expires_at < ?1`, false},
	// Kept a day past expiry, so that a late poll is still told expired_token.
	{"device authorizations", `DELETE FROM device_authorizations WHERE expires_at < ?1 - 86400000000000`, false},
	{"used assertions", `DELETE FROM used_assertions WHERE expires_at < ?1`, false},
	{"pushed requests", `DELETE FROM pushed_requests WHERE expires_at < ?1`, false},
	{"attempt counters", `DELETE FROM attempt_counters WHERE window_end < ?1 AND blocked_until < ?1`, false},
}

// DeleteExpired removes auth requests, code grants, sessions (with their session
// clients), tokens, rate-limit windows, signing keys, MFA challenges, remembered
// devices and password-reset links whose expiry is before now, device authorizations a day after their expiry,
// and attempt counters whose window and back-off are over, in one transaction, and returns how many rows went (session clients not
// counted). Attempt counters without a window, the old failure counters and server
// secrets never expire.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, d := range expiryDeletes {
			res, err := tx.ExecContext(ctx, d.query, now.UnixNano())
			if err != nil {
				return wrap(d.what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return wrap(d.what, err)
			}
			if !d.dependent {
				total += n
			}
		}
		return nil
	})
	if err != nil {
		return 0, wrap("delete expired", err)
	}
	return total, nil
}
