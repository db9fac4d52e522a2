package sqlite

import (
	"context"
	"strings"

	"github.com/openidp/idp/storage"
)

const userCols = `id, email, name, password_hash, disabled, type, groups, mfa_grace_started,
	mfa_grace_logins, created_at, updated_at`

func scanUser(sc scanner) (*storage.User, error) {
	var u storage.User
	err := sc.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Disabled, &u.Type,
		listCol[string]{&u.Groups}, timeCol{&u.MFAGraceStarted}, &u.MFAGraceLogins,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser inserts u with its e-mail lower-cased; ErrAlreadyExists when the id or
// e-mail is taken.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO users (`+userCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, strings.ToLower(u.Email), u.Name, u.PasswordHash, u.Disabled, u.Type, list(u.Groups),
		ts(u.MFAGraceStarted), u.MFAGraceLogins, ts(u.CreatedAt), ts(u.UpdatedAt))
	return wrap("create user", err)
}

// GetUser returns the user with that id, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (*storage.User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get user", err)
	}
	return u, nil
}

// GetUserByEmail looks the user up by e-mail (case-insensitive), or ErrNotFound.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*storage.User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`,
		strings.ToLower(email)))
	if err != nil {
		return nil, wrap("get user by email", err)
	}
	return u, nil
}

// ListUsers returns all users ordered by creation time.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap("list users", err)
	}
	defer rows.Close()
	var out []storage.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap("list users", err)
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list users", err)
	}
	return out, nil
}

// SearchUsers returns at most limit users whose e-mail or name contains query (ASCII
// case-insensitive), ordered by e-mail.
func (s *Store) SearchUsers(ctx context.Context, query string, limit int) ([]storage.User, error) {
	pattern := "%" + storage.EscapeLike(strings.ToLower(query)) + "%"
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users
		WHERE email LIKE ? ESCAPE '\' OR lower(name) LIKE ? ESCAPE '\'
		ORDER BY email LIMIT ?`, pattern, pattern, limit)
	if err != nil {
		return nil, wrap("search users", err)
	}
	defer rows.Close()
	var out []storage.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap("search users", err)
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("search users", err)
	}
	return out, nil
}

// UpdateUser replaces name, e-mail, password hash, disabled flag, type, groups, MFA
// grace fields and UpdatedAt of the user with u.ID; ErrNotFound when missing,
// ErrAlreadyExists when the e-mail is taken.
func (s *Store) UpdateUser(ctx context.Context, u *storage.User) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users
		SET email = ?, name = ?, password_hash = ?, disabled = ?, type = ?, groups = ?,
			mfa_grace_started = ?, mfa_grace_logins = ?, updated_at = ?
		WHERE id = ?`,
		strings.ToLower(u.Email), u.Name, u.PasswordHash, u.Disabled, u.Type, list(u.Groups),
		ts(u.MFAGraceStarted), u.MFAGraceLogins, ts(u.UpdatedAt), u.ID)
	if err != nil {
		return wrap("update user", err)
	}
	return wrap("update user", mustAffect(res))
}
