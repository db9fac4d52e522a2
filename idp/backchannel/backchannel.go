package backchannel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// backchannelEvent is the event a logout token carries (OIDC Back-Channel Logout 1.0, 2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// Back-channel delivery bounds: each attempt gets backchannelAttemptTimeout, a network
// error or 5xx answer is retried once after backchannelRetryDelay, and everything for
// one client must finish within backchannelTotalTimeout.
const (
	backchannelTokenLifetime  = 2 * time.Minute
	backchannelAttemptTimeout = 5 * time.Second
	backchannelRetryDelay     = 500 * time.Millisecond
	backchannelTotalTimeout   = 15 * time.Second
)

// Store is the storage the notifier reads and ends sessions in: the sessions and the
// clients they signed in to.
type Store interface {
	storage.SessionStore
	storage.ClientStore
}

// Notifier tells relying parties that an SSO session ended, by POSTing an OIDC
// Back-Channel Logout 1.0 logout token to the backchannel_logout_uri of every client the
// session signed in to. Delivery runs in the background: ending a session never waits
// for a slow relying party.
type Notifier struct {
	Store  Store
	Keys   *keys.Manager
	Issuer string
	// HTTPClient sends the logout tokens; nil means a client that does not follow
	// redirects (a redirect is a failed delivery: the token is not sent on elsewhere).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Audit      *audit.Auditor
	Now        func() time.Time

	pending sync.WaitGroup
	once    sync.Once
	client  *http.Client
}

// Wait blocks until every delivery started so far has finished (for tests and shutdown).
func (b *Notifier) Wait() { b.pending.Wait() }

func (b *Notifier) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Notifier) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

func (b *Notifier) httpClient() *http.Client {
	b.once.Do(func() {
		b.client = b.HTTPClient
		if b.client == nil {
			b.client = &http.Client{
				Timeout:       backchannelAttemptTimeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
	})
	return b.client
}

// SessionEnded notifies, in the background, every client session sess signed in to that
// has a BackchannelLogoutURI. It reads the session's clients from storage, so call it
// while they are still recorded (Server.endSession reads them before deleting the session).
func (b *Notifier) SessionEnded(ctx context.Context, sess *storage.Session) {
	b.deliver(ctx, sess, b.targets(ctx, sess.ID))
}

// targets returns the clients of session id that want back-channel logout. A storage
// error is logged and yields none: the session must still end.
func (b *Notifier) targets(ctx context.Context, sessionID string) []*storage.Client {
	ids, err := b.Store.ListSessionClients(ctx, sessionID)
	if err != nil {
		b.logger().ErrorContext(ctx, "back-channel logout: list session clients", "err", err)
		return nil
	}
	var out []*storage.Client
	for _, id := range ids {
		c, err := b.Store.GetClient(ctx, id)
		if err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				b.logger().ErrorContext(ctx, "back-channel logout: load client", "client_id", id, "err", err)
			}
			continue
		}
		if c.BackchannelLogoutURI != "" {
			out = append(out, c)
		}
	}
	return out
}

// deliver sends a logout token for sess to each client, each in its own goroutine with a
// context detached from the caller's (which usually ends with the HTTP request).
func (b *Notifier) deliver(ctx context.Context, sess *storage.Session, clients []*storage.Client) {
	if len(clients) == 0 {
		return
	}
	detached := context.WithoutCancel(ctx)
	for _, c := range clients {
		b.pending.Go(func() {
			ctx, cancel := context.WithTimeout(detached, backchannelTotalTimeout)
			defer cancel()
			b.notify(ctx, sess, c)
		})
	}
}

// notify builds, sends and audits the logout token for one client.
func (b *Notifier) notify(ctx context.Context, sess *storage.Session, c *storage.Client) {
	ev := storage.AuditEvent{Type: audit.EventBackchannelLogout, UserID: sess.UserID, ClientID: c.ID}
	token, err := b.logoutToken(ctx, sess, c)
	if err != nil {
		b.logger().ErrorContext(ctx, "back-channel logout: build token", "client_id", c.ID, "err", err)
		ev.Result, ev.Reason = audit.ResultFailure, "token not built: "+err.Error()
		b.Audit.Record(ctx, ev)
		return
	}
	status, attempts, err := b.post(ctx, c.BackchannelLogoutURI, token)
	switch {
	case err != nil:
		ev.Result, ev.Reason = audit.ResultFailure, fmt.Sprintf("attempts=%d error: %v", attempts, err)
	case status >= 200 && status < 300:
		ev.Result, ev.Reason = audit.ResultSuccess, fmt.Sprintf("status=%d attempts=%d", status, attempts)
	default:
		ev.Result, ev.Reason = audit.ResultFailure, fmt.Sprintf("status=%d attempts=%d", status, attempts)
	}
	if ev.Result == audit.ResultFailure {
		b.logger().WarnContext(ctx, "back-channel logout failed", "client_id", c.ID, "status", status, "attempts", attempts, "err", err)
	}
	b.Audit.Record(ctx, ev)
}

// logoutToken signs the logout token for client c with the active key of the client's
// ID-token algorithm, with the "logout+jwt" type the specification asks for.
func (b *Notifier) logoutToken(ctx context.Context, sess *storage.Session, c *storage.Client) (string, error) {
	alg := keys.AlgES256
	if c.IDTokenSigningAlg == keys.AlgRS256 {
		alg = keys.AlgRS256
	}
	key, err := b.Keys.Active(ctx, alg)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.Alg, Key: jose.JSONWebKey{Key: key.Private, KeyID: key.ID}},
		(&jose.SignerOptions{}).WithType("logout+jwt"),
	)
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	now := b.now()
	// Built field by field rather than with oidc.NewLogoutTokenClaims, which reads the
	// wall clock: iat follows the injected one.
	claims := &oidc.LogoutTokenClaims{
		Issuer:     b.Issuer,
		Subject:    sess.UserID,
		Audience:   oidc.Audience{c.ID},
		IssuedAt:   oidc.FromTime(now),
		Expiration: oidc.FromTime(now.Add(backchannelTokenLifetime)),
		JWTID:      secret.NewID(),
		Events:     map[string]any{backchannelEvent: struct{}{}},
		SessionID:  sess.ID,
	}
	payload, err := claims.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("marshal claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

// post sends the token, retrying once on a network error or a 5xx answer. It returns the
// last status (0 without an answer), how many attempts were made and the last error.
func (b *Notifier) post(ctx context.Context, uri, token string) (status, attempts int, err error) {
	body := url.Values{"logout_token": {token}}.Encode()
	for attempts = 1; ; attempts++ {
		status, err = b.postOnce(ctx, uri, body)
		if (err == nil && status < 500) || attempts == 2 {
			return status, attempts, err
		}
		select {
		case <-ctx.Done():
			return status, attempts, err
		case <-time.After(backchannelRetryDelay):
		}
	}
}

func (b *Notifier) postOnce(ctx context.Context, uri, body string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, backchannelAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.httpClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// EndSession deletes sess, audits why, and notifies the relying parties it signed in to.
// The CLI uses it too, so a session ended by an operator is announced like any other.
func (b *Notifier) EndSession(ctx context.Context, sess *storage.Session, reason string) error {
	// Read before the delete: the session's client list goes with it.
	clients := b.targets(ctx, sess.ID)
	if err := b.Store.DeleteSession(ctx, sess.ID); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	if b.Audit != nil {
		b.Audit.Record(ctx, storage.AuditEvent{Type: audit.EventSessionEnd, UserID: sess.UserID, Result: audit.ResultSuccess, Reason: reason})
	}
	b.deliver(ctx, sess, clients)
	return nil
}

// EndUserSessions ends every session of a user through EndSession and returns how many ended.
func (b *Notifier) EndUserSessions(ctx context.Context, userID, reason string) (int, error) {
	sessions, err := b.Store.ListUserSessions(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	var errs []error
	for i := range sessions {
		if err := b.EndSession(ctx, &sessions[i], reason); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
