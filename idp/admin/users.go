package admin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// NewUser is the input of Admin.CreateUser.
type NewUser struct {
	Email, Name, Password string
	// NoPassword creates a passkey-only account: it has no password (Password must be
	// empty) and signs in with a passkey registered through an enrolment link.
	NoPassword bool
}

// CreateUser validates and stores a new user with a hashed password, or with none when
// in.NoPassword. The e-mail is stored lower-cased; a taken e-mail returns an error
// wrapping storage.ErrAlreadyExists.
func (a *Admin) CreateUser(ctx context.Context, actor string, in NewUser) (*storage.User, error) {
	return a.createUser(ctx, actor, in, "", nil)
}

// createUser is CreateUser, the user stored with account type typ and groups gs
// (normalized). With a type or groups, an admin.user.update event naming them follows
// the admin.user.create event (both written ahead).
func (a *Admin) createUser(ctx context.Context, actor string, in NewUser, typ string, gs []string) (*storage.User, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	if in.NoPassword && in.Password != "" {
		return nil, invalidf("give either a password or no password, not both")
	}
	failed := func(userID string, err error) {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserCreate, UserID: userID, Result: audit.ResultFailure},
			fmt.Sprintf("email=%s err=%v", email, err))
	}
	taken := existsError{fmt.Sprintf("a user with e-mail %s already exists", email)}
	// A taken e-mail is refused before its success event is written ahead, and before
	// the password is hashed; CreateUser below still refuses one taken meanwhile.
	switch _, err := a.Store.GetUserByEmail(ctx, email); {
	case err == nil:
		failed("", taken)
		return nil, taken
	case !errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("create user: look up e-mail %s: %w", email, err)
	}
	var hash string
	if !in.NoPassword {
		if hash, err = a.hashPassword(ctx, in.Password); err != nil {
			return nil, err
		}
	}
	now := a.now()
	u := &storage.User{
		ID:           secret.NewID(),
		Email:        email,
		Name:         strings.TrimSpace(in.Name),
		PasswordHash: hash,
		Type:         typ,
		Groups:       gs,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	detail := "email=" + email
	if in.NoPassword {
		detail += " passkey_only=true"
	}
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserCreate, UserID: u.ID, Result: audit.ResultSuccess}, detail); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	typed := typ != "" || len(gs) > 0
	if typed {
		if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserUpdate, UserID: u.ID, Result: audit.ResultSuccess},
			fmt.Sprintf("type=%q groups=%q", typ, strings.Join(gs, ","))); err != nil {
			failed(u.ID, err)
			return nil, fmt.Errorf("create user: %w", err)
		}
	}
	if err := a.Store.CreateUser(ctx, u); err != nil {
		failed(u.ID, err)
		if typed {
			a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserUpdate, UserID: u.ID, Result: audit.ResultFailure},
				fmt.Sprintf("not created: err=%v", err))
		}
		if errors.Is(err, storage.ErrAlreadyExists) {
			return nil, taken
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// ChallengeEnrolment is the storage.Challenge kind of an enrolment link.
const ChallengeEnrolment = "enrolment"

// EnrolmentResult is what EnrolmentLink did.
type EnrolmentResult struct {
	UserID string
	Email  string
	// Link is the one-time link (valid RecoveryLinkLifetime): it is not stored and cannot
	// be shown again.
	Link      string
	ExpiresAt time.Time
	// Mailed says the link was e-mailed to the person (Admin.Mail is set).
	Mailed bool
}

// EnrolmentLink issues a one-time link, valid RecoveryLinkLifetime, on which the person
// with that id or e-mail registers a passkey (no password asked: for passkey-only
// accounts). It is e-mailed to the person's address when Admin.Mail is set, and
// returned. issuer is the link's base URL (Admin.Issuer when empty).
func (a *Admin) EnrolmentLink(ctx context.Context, actor, user, issuer string) (*EnrolmentResult, error) {
	base := strings.TrimRight(strings.TrimSpace(issuer), "/")
	if base == "" {
		base = strings.TrimRight(strings.TrimSpace(a.Issuer), "/")
	}
	if iss, err := url.Parse(base); base == "" || err != nil || !iss.IsAbs() || iss.Host == "" {
		return nil, invalidf("an enrolment link needs the issuer URL (e.g. https://id.example.com), got %q", base)
	}
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, invalidf("user %s is disabled", u.Email)
	}
	link, c := newLink(base, "/enrol", ChallengeEnrolment, u.ID, a.now())
	res := &EnrolmentResult{UserID: u.ID, Email: u.Email, Link: link, ExpiresAt: c.ExpiresAt}
	detail := "link=" + c.ID
	if a.Mail != nil {
		detail += " mailed=true"
	}
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminEnrolLink, UserID: u.ID, Result: audit.ResultSuccess}, detail); err != nil {
		return nil, fmt.Errorf("issue an enrolment link: %w", err)
	}
	if err := a.Store.CreateChallenge(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminEnrolLink, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("link=%s err=%v", c.ID, err))
		return nil, fmt.Errorf("issue an enrolment link: %w", err)
	}
	if a.Mail != nil {
		subject := "Set up your passkey"
		body := fmt.Sprintf("An account was prepared for you (%s).\n\nOpen this link to set up a passkey, with which you sign in:\n%s\n\n"+
			"The link works once and expires at %s. If you did not expect it, ignore this message.\n",
			u.Email, link, c.ExpiresAt.UTC().Format("2006-01-02 15:04 MST"))
		if err := a.Mail(ctx, u.Email, subject, body); err != nil {
			a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminEnrolLink, UserID: u.ID, Result: audit.ResultFailure},
				fmt.Sprintf("link=%s not e-mailed: err=%v", c.ID, err))
			return nil, fmt.Errorf("e-mail the enrolment link: %w", err)
		}
		res.Mailed = true
	}
	return res, nil
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
// (deletes all their sessions) and revokes all their tokens. It only takes access away,
// so it goes ahead when its audit event cannot be written (recordProtective).
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
	a.recordProtective(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserDisable, UserID: u.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("email=%s sessions_deleted=%d tokens_revoked=true", u.Email, sessions))
	return nil
}
