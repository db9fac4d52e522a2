package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const userCols = `id, email, name, password_hash, disabled, created_at, updated_at`

func scanUser(row scanner) (storage.User, error) {
	var u storage.User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Disabled,
		scanTS(&u.CreatedAt), scanTS(&u.UpdatedAt))
	return u, err
}

// CreateUser inserts u with its e-mail lower-cased; ErrAlreadyExists when the id or
// e-mail is taken.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, strings.ToLower(u.Email), u.Name, u.PasswordHash, u.Disabled, ts(u.CreatedAt), ts(u.UpdatedAt))
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

// UpdateUser replaces name, e-mail, password hash, disabled flag and UpdatedAt of user
// u.ID; ErrNotFound when missing, ErrAlreadyExists when the e-mail is taken.
func (s *Store) UpdateUser(ctx context.Context, u *storage.User) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users
		SET name = $2, email = $3, password_hash = $4, disabled = $5, updated_at = $6
		WHERE id = $1`,
		u.ID, u.Name, strings.ToLower(u.Email), u.PasswordHash, u.Disabled, ts(u.UpdatedAt))
	if err != nil {
		return wrapErr("update user", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update user")
	}
	return nil
}
