package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const userCols = `id, email, name, password_hash, disabled, type, groups, mfa_grace_started,
	mfa_grace_logins, created_at, updated_at`

func scanUser(row scanner) (storage.User, error) {
	var u storage.User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Disabled, &u.Type, &u.Groups,
		scanTS(&u.MFAGraceStarted), &u.MFAGraceLogins, scanTS(&u.CreatedAt), scanTS(&u.UpdatedAt))
	return u, err
}

// CreateUser inserts u with its e-mail lower-cased; ErrAlreadyExists when the id or
// e-mail is taken.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		u.ID, strings.ToLower(u.Email), u.Name, u.PasswordHash, u.Disabled, u.Type, u.Groups,
		ts(u.MFAGraceStarted), u.MFAGraceLogins, ts(u.CreatedAt), ts(u.UpdatedAt))
	return wrapErr("create user", err)
}

// GetUser returns the user with that id, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (*storage.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, wrapErr("get user", err)
	}
	return &u, nil
}

// GetUserByEmail returns the user with that e-mail, compared case-insensitively, or
// ErrNotFound.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*storage.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE email = $1`,
		strings.ToLower(email)))
	if err != nil {
		return nil, wrapErr("get user by email", err)
	}
	return &u, nil
}

// ListUsers returns all users ordered by creation time.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.User, error) { return scanUser(r) })
	if err != nil {
		return nil, wrapErr("list users", err)
	}
	return users, nil
}

// SearchUsers returns at most limit users whose e-mail or name contains query (ASCII
// case-insensitive), ordered by e-mail.
func (s *Store) SearchUsers(ctx context.Context, query string, limit int) ([]storage.User, error) {
	pattern := "%" + storage.EscapeLike(strings.ToLower(query)) + "%"
	rows, _ := s.pool.Query(ctx, `SELECT `+userCols+` FROM users
		WHERE email LIKE $1 ESCAPE '\' OR lower(name) LIKE $1 ESCAPE '\'
		ORDER BY email COLLATE "C" LIMIT $2`, pattern, limit)
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.User, error) { return scanUser(r) })
	if err != nil {
		return nil, wrapErr("search users", err)
	}
	return users, nil
}

// UpdateUser replaces name, e-mail, password hash, disabled flag, type, groups, MFA
// grace fields and UpdatedAt of user u.ID; ErrNotFound when missing, ErrAlreadyExists
// when the e-mail is taken.
func (s *Store) UpdateUser(ctx context.Context, u *storage.User) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users
		SET name = $2, email = $3, password_hash = $4, disabled = $5, type = $6, groups = $7,
			mfa_grace_started = $8, mfa_grace_logins = $9, updated_at = $10
		WHERE id = $1`,
		u.ID, u.Name, strings.ToLower(u.Email), u.PasswordHash, u.Disabled, u.Type, u.Groups,
		ts(u.MFAGraceStarted), u.MFAGraceLogins, ts(u.UpdatedAt))
	if err != nil {
		return wrapErr("update user", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update user")
	}
	return nil
}
