package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// expiryDeletes are the statements of DeleteExpired; each takes now (unix nanoseconds)
// as its only parameter. Rows whose expiry is NULL (the zero time) never expire.
var expiryDeletes = []struct{ what, query string }{
	// A request whose code outlives it is kept until the code expires too.
	{"auth requests", `DELETE FROM auth_requests WHERE expires_at < ?1
		AND (code_expires_at IS NULL OR code_expires_at < ?1)`},
	{"sessions", `DELETE FROM sessions WHERE expires_at < ?1`},
	{"access tokens", `DELETE FROM access_tokens WHERE expires_at < ?1`},
	{"refresh tokens", `DELETE FROM refresh_tokens WHERE expires_at < ?1`},
	{"rate limits", `DELETE FROM rate_limits WHERE expires_at < ?1`},
	{"signing keys", `DELETE FROM signing_keys WHERE expires_at < ?1`},
	{"challenges", `DELETE FROM challenges WHERE expires_at < ?1`},
}

// DeleteExpired removes auth requests, sessions, tokens, rate-limit windows, signing keys
// and MFA challenges whose expiry is before now, in one transaction, and returns how
// many rows went. Failure counters and server secrets never expire.
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
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, wrap("delete expired", err)
	}
	return total, nil
}
