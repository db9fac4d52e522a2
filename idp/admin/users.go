package admin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// NewUser is the input of Admin.CreateUser.
type NewUser struct {
	Email, Name, Password string
}

// CreateUser validates and stores a new user with a hashed password. The e-mail is
// stored lower-cased; a taken e-mail returns an error wrapping storage.ErrAlreadyExists.
func (a *Admin) CreateUser(ctx context.Context, actor string, in NewUser) (*storage.User, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	hash, err := a.hashPassword(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	now := a.now()
	u := &storage.User{
		ID:           secret.NewID(),
		Email:        email,
		Name:         strings.TrimSpace(in.Name),
		PasswordHash: hash,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := a.Store.CreateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserCreate, Result: audit.ResultFailure},
			fmt.Sprintf("email=%s err=%v", email, err))
		if errors.Is(err, storage.ErrAlreadyExists) {
			return nil, existsError{fmt.Sprintf("a user with e-mail %s already exists", email)}
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserCreate, UserID: u.ID, Result: audit.ResultSuccess},
		"email="+email)
	return u, nil
}

// existsError is a taken unique key, said for people: it wraps storage.ErrAlreadyExists
// without the database's own message.
type existsError struct{ msg string }

func (e existsError) Error() string { return e.msg }
func (e existsError) Unwrap() error { return storage.ErrAlreadyExists }

// NormalizeEmail checks that s is a bare e-mail address and lower-cases it.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("e-mail is required")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", fmt.Errorf("%q is not a valid e-mail address", s)
	}
	return strings.ToLower(addr.Address), nil
}

// FindUser returns the user with that id or e-mail (an argument containing '@' is an
// e-mail, since ids never contain one). A missing user wraps storage.ErrNotFound.
func (a *Admin) FindUser(ctx context.Context, idOrEmail string) (*storage.User, error) {
	key := strings.TrimSpace(idOrEmail)
	if key == "" {
		return nil, invalidf("user id or e-mail is required")
	}
	var (
		u   *storage.User
		err error
	)
	if strings.Contains(key, "@") {
		u, err = a.Store.GetUserByEmail(ctx, strings.ToLower(key))
	} else {
		u, err = a.Store.GetUser(ctx, key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("user %q not found: %w", key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("find user %q: %w", key, err)
	}
	return u, nil
}

// DisableUser disables the user with that id or e-mail, signs them out everywhere
// (deletes all their sessions) and revokes all their tokens.
func (a *Admin) DisableUser(ctx context.Context, actor, idOrEmail string) error {
	u, err := a.FindUser(ctx, idOrEmail)
	if err != nil {
		return err
	}
	now := a.now()
	u.Disabled = true
	u.UpdatedAt = now
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserDisable, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("err=%v", err))
		return fmt.Errorf("disable user %s: %w", u.ID, err)
	}
	sessions, err := a.endSessions(ctx, u.ID, "account disabled")
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserDisable, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("disabled but sessions not deleted: err=%v", err))
		return fmt.Errorf("delete sessions of user %s: %w", u.ID, err)
	}
	if err := a.Store.RevokeUserTokens(ctx, u.ID, now); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserDisable, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("disabled, %d sessions deleted, tokens not revoked: err=%v", sessions, err))
		return fmt.Errorf("revoke tokens of user %s: %w", u.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserDisable, UserID: u.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("email=%s sessions_deleted=%d tokens_revoked=true", u.Email, sessions))
	return nil
}
