package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// opStorage implements op.Storage (and the optional interfaces we use) on top of
// storage.Storage. It holds no state of its own: every decision reads the database, so
// any number of processes can serve the same clients.
type opStorage struct {
	store      storage.Storage
	keys       *keys.Manager
	audit      *audit.Auditor
	logger     *slog.Logger
	issuer     string
	now        func() time.Time
	authReqTTL time.Duration
	codeTTL    time.Duration
	logoutKey  [32]byte // signs logout confirmation redirects
	deviceKey  [32]byte // keys the MACs of device user codes (op_device.go)
	// tokenIssued counts an access token issued by grant (metrics); nil: not counted.
	tokenIssued func(grant string)
	// minted holds the JWT access tokens minted for op until it takes them through
	// tokenCrypto (op_access_token.go).
	minted *accessTokenJWTs
	// signers caches the access-token signer of each signing key by key id
	// (op_access_token.go): a key's material never changes for its id.
	signers sync.Map // string -> jose.Signer
	// endSession is Server.endSession: it deletes the session, audits it and sends
	// back-channel logout.
	endSession func(ctx context.Context, sess *storage.Session, reason string) error
	// sealer seals the successor of a rotated refresh token; refreshGrace is the reuse
	// grace window (0: off) (op_refresh_grace.go).
	sealer       *seal.Sealer
	refreshGrace time.Duration
}

var (
	_ op.Storage                        = (*opStorage)(nil)
	_ op.ClientCredentialsStorage       = (*opStorage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*opStorage)(nil)
	_ op.CanTerminateSessionFromRequest = (*opStorage)(nil)
)

// --- auth requests and codes ---

func (s *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintUserID string) (op.AuthRequest, error) {
	c, err := s.getClient(ctx, req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(err)
	}
	// opInterceptor already refused over-long parameters; this holds whatever op parsed
	// them from (op_authorize_limits.go).
	if msg := authRequestViolation(req); msg != "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("%s", msg)
	}
	if req.ResponseType != oidc.ResponseTypeCode {
		return nil, &oidc.Error{ErrorType: "unsupported_response_type", Description: "only response_type=code is supported"}
	}
	if !slices.Contains(c.GrantTypes, string(oidc.GrantTypeCode)) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the authorization_code grant")
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc)
		}
	}
	switch {
	case req.CodeChallenge == "" && c.Public:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required for public clients")
	case req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	var essential []string
	if st := reqStateFrom(ctx); st != nil && st.claims != "" {
		var err error
		if essential, err = essentialACR(st.claims); err != nil {
			return nil, oidc.ErrInvalidRequest().WithDescription("%s", err.Error())
		}
	}
	// RFC 8707 §2: an invalid resource is answered with invalid_target, redirected.
	resources, err := s.checkResources(ctx, req.ClientID, requestedResources(ctx), req.Scopes)
	if err != nil {
		return nil, err
	}
	now := s.now()
	ar := &storage.AuthRequest{
		ID:                  secret.NewID(),
		ClientID:            req.ClientID,
		RedirectURI:         req.RedirectURI,
		State:               req.State,
		Nonce:               req.Nonce,
		Scopes:              req.Scopes,
		ResponseType:        string(req.ResponseType),
		ResponseMode:        string(req.ResponseMode),
		Prompt:              req.Prompt,
		ACRValues:           slices.Clone(req.ACRValues),
		EssentialACR:        essential,
		LoginHint:           req.LoginHint,
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod),
		HintUserID:          hintUserID,
		Resources:           resources,
		CreatedAt:           now,
		ExpiresAt:           now.Add(s.authReqTTL),
	}
	if req.MaxAge != nil {
		// At most what a time.Duration of seconds holds: a larger max_age would overflow
		// where it is compared (passwordSatisfied, consent.Evaluate) into a negative or
		// short one.
		v := int64(min(uint64(*req.MaxAge), uint64(1<<63-1)/uint64(time.Second)))
		ar.MaxAge = &v
	}
	for _, l := range req.UILocales {
		ar.UILocales = append(ar.UILocales, l.String())
	}
	if st := reqStateFrom(ctx); st != nil && st.deferInsert {
		// Stored by serveAuthorize or SaveAuthCode (op_sso.go).
		st.created, st.unsaved = ar, true
		return authRequest{r: ar}, nil
	}
	if err := s.store.CreateAuthRequest(ctx, ar); err != nil {
		return nil, fmt.Errorf("create auth request: %w", err)
	}
	return authRequest{r: ar}, nil
}

func (s *opStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	var ar *storage.AuthRequest
	if st := reqStateFrom(ctx); st != nil && st.authRequest != nil && st.authRequest.ID == id {
		// Finished within this very request (op_sso.go): what was just written.
		ar = st.authRequest
	} else {
		var err error
		if ar, err = s.store.GetAuthRequest(ctx, id); err != nil {
			return nil, fmt.Errorf("auth request: %w", err)
		}
	}
	if s.now().After(ar.ExpiresAt) {
		return nil, errors.New("auth request expired")
	}
	return authRequest{r: ar}, nil
}

// AuthRequestByCode redeems the code: the conditional update in storage guarantees that
// of any number of concurrent redemptions (in any process) exactly one succeeds.
//
// RFC 6749 §4.1.2: a code used more than once MUST be denied, and the server SHOULD
// revoke the tokens previously issued based on it. A redeemed code leaves a grant in
// storage; presenting it again revokes what the grant issued (revokeReplayedCode).
func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	hash := secret.Hash(code)
	ar, err := s.store.ConsumeAuthCode(ctx, hash, s.now())
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) && s.revokeReplayedCode(ctx, hash) {
			return nil, fmt.Errorf("redeem code: code already redeemed: %w", err)
		}
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventCodeReuse, Result: audit.ResultFailure, Reason: "code unknown or expired"})
		return nil, fmt.Errorf("redeem code: %w", err)
	}
	if !ar.Login.Done {
		return nil, errors.New("auth request not completed")
	}
	return authRequest{r: ar}, nil
}

// revokeReplayedCode revokes the tokens issued with the redeemed code codeHash (or, if
// the exchange that redeemed it has not stored them yet, makes it fail) and audits the
// replay. It reports whether the code had been redeemed.
func (s *opStorage) revokeReplayedCode(ctx context.Context, codeHash string) bool {
	g, err := s.store.RevokeCodeGrant(ctx, codeHash, s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "revoke tokens of a replayed code", "err", err)
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventCodeReplay, Result: audit.ResultFailure,
			Reason: "authorization code presented again; revoking its tokens failed"})
		return true
	}
	reason := "replayed authorization code; the exchange that redeemed it had issued nothing yet and will fail"
	if g.AccessTokenID != "" {
		reason = "replayed authorization code; access token revoked"
		if g.FamilyID != "" {
			reason = "replayed authorization code; access token and refresh family revoked"
		}
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventCodeReplay, UserID: g.UserID, ClientID: g.ClientID,
		Result: audit.ResultFailure, Reason: reason})
	return true
}

func (s *opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	if st := reqStateFrom(ctx); st != nil && st.unsaved && st.authRequest != nil && st.authRequest.ID == id {
		// An SSO sign-in finished within /authorize (op_sso.go): the request, its login
		// record and its code are stored in one insert.
		ar := st.authRequest
		ar.CodeHash, ar.CodeExpiresAt = secret.Hash(code), s.now().Add(s.codeTTL)
		if st.finishClient == "" && len(st.finishEvents) == 0 {
			if err := s.store.CreateAuthRequest(ctx, ar); err != nil {
				return fmt.Errorf("create auth request: %w", err)
			}
		} else {
			// With the session's client and the flow's events (Server.flowEvent): if
			// the events cannot be written, no code is issued.
			start := time.Now()
			err := s.store.FinishAuthRequest(ctx, &storage.AuthRequestFinish{
				Request: ar, SessionClient: st.finishClient, Events: st.finishEvents})
			if len(st.finishEvents) > 0 {
				s.audit.Observed(ctx, time.Since(start), err)
			}
			if err != nil {
				return fmt.Errorf("finish auth request: %w", err)
			}
		}
		st.unsaved = false
		return nil
	}
	return s.store.SaveAuthCode(ctx, id, secret.Hash(code), s.now().Add(s.codeTTL))
}

func (s *opStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	if st := reqStateFrom(ctx); st != nil && st.deletedAuthRequest == id {
		return nil // deleted with the tokens of its code (opStorage.issue)
	}
	return s.store.DeleteAuthRequest(ctx, id)
}

// --- tokens ---

// tokenGrant is what every token record needs to know about the grant it comes from.
type tokenGrant struct {
	clientID, userID, sessionID string
	audience, scopes, amr       []string
	resources                   []string // RFC 8707 resources the grant was authorized for
	authTime                    time.Time
	acr                         string
}

func (s *opStorage) grantOf(ctx context.Context, req op.TokenRequest) (tokenGrant, error) {
	switch r := req.(type) {
	case authRequest:
		return tokenGrant{clientID: r.r.ClientID, userID: r.r.Login.UserID, sessionID: r.r.Login.SessionID,
			audience: []string{r.r.ClientID}, scopes: r.r.Scopes, resources: r.r.Resources, amr: r.r.Login.AMR, authTime: r.r.Login.AuthTime,
			acr: r.r.Login.ACR}, nil
	case *refreshRequest:
		return tokenGrant{clientID: r.rt.ClientID, userID: r.rt.UserID, sessionID: r.rt.SessionID,
			audience: r.rt.Audience, scopes: r.scopes, resources: r.rt.Resources, amr: r.rt.AMR, authTime: r.rt.AuthTime, acr: r.rt.ACR}, nil
	case *clientCredentialsRequest:
		return tokenGrant{clientID: r.clientID, audience: []string{r.clientID}, scopes: r.scopes}, nil
	case *op.DeviceAuthorizationState:
		return deviceGrant(ctx)
	default:
		return tokenGrant{}, fmt.Errorf("unexpected token request type %T", req)
	}
}

// getClient reads a client once per request: op authenticates the client, checks its
// grant and builds the token in separate storage calls that all need it.
func (s *opStorage) getClient(ctx context.Context, id string) (*storage.Client, error) {
	st := reqStateFrom(ctx)
	if st != nil {
		if c, ok := st.clients[id]; ok {
			return c, nil
		}
	}
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	if st != nil {
		if st.clients == nil {
			st.clients = map[string]*storage.Client{}
		}
		st.clients[id] = c
	}
	return c, nil
}

func (s *opStorage) loadClient(ctx context.Context, id string) (*client, error) {
	c, err := s.getClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return &client{c: c, issuer: s.issuer}, nil
}

// newAccessToken is the record of an access token for grant g whose audience is aud.
func (s *opStorage) newAccessToken(g tokenGrant, c *client, familyID string, aud []string) *storage.AccessToken {
	now := s.now()
	return &storage.AccessToken{
		ID: secret.NewSortableID(), ClientID: g.clientID, UserID: g.userID, Audience: aud, Scopes: g.scopes,
		AuthTime: g.authTime, AMR: g.amr, ACR: g.acr, SessionID: g.sessionID, FamilyID: familyID,
		CreatedAt: now, ExpiresAt: now.Add(c.accessTokenLifetime()),
	}
}

// tokenGrantFor reads what every token issue needs: the grant of req, its client and the
// access token's audience.
func (s *opStorage) tokenGrantFor(ctx context.Context, req op.TokenRequest) (tokenGrant, *client, []string, error) {
	g, err := s.grantOf(ctx, req)
	if err != nil {
		return tokenGrant{}, nil, nil, err
	}
	c, err := s.loadClient(ctx, g.clientID)
	if err != nil {
		return tokenGrant{}, nil, nil, fmt.Errorf("load client: %w", err)
	}
	aud, err := s.accessAudience(ctx, g)
	if err != nil {
		return tokenGrant{}, nil, nil, err
	}
	return g, c, aud, nil
}

func (s *opStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	g, c, aud, err := s.tokenGrantFor(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	at := s.newAccessToken(g, c, "", aud)
	sign, err := s.mintAccessToken(ctx, c, req.GetSubject(), at)
	if err != nil {
		return "", time.Time{}, err
	}
	w := &storage.TokenIssue{Access: at, WhileWriting: sign, Events: []*storage.AuditEvent{s.audit.Prepare(ctx, storage.AuditEvent{
		Type: audit.EventTokenIssue, UserID: g.userID, ClientID: g.clientID, Result: audit.ResultSuccess,
		TokenID: at.ID, SessionID: g.sessionID,
		Reason: "access token, scopes " + strings.Join(g.scopes, " ") + resourcesNote(aud, g.clientID)})}}
	if ar, isCode := req.(authRequest); isCode {
		w.CodeHash, w.DeleteAuthRequest = ar.r.CodeHash, ar.r.ID
	}
	if err := s.issue(ctx, req, w); err != nil {
		return "", time.Time{}, err
	}
	return at.ID, at.ExpiresAt, nil
}

func (s *opStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	rr, isRefresh := req.(*refreshRequest)
	if isRefresh && rr.grace != nil {
		return s.reissueSuccessor(ctx, rr)
	}
	g, c, aud, err := s.tokenGrantFor(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	now := s.now()
	value := "rt_" + secret.Token(32)
	next := &storage.RefreshToken{
		ID: secret.NewSortableID(), TokenHash: secret.Hash(value), ClientID: g.clientID, UserID: g.userID,
		Audience: g.audience, Scopes: g.scopes, AuthTime: g.authTime, AMR: g.amr, ACR: g.acr,
		SessionID: g.sessionID, Resources: g.resources, CreatedAt: now, ExpiresAt: now.Add(c.refreshTokenLifetime()),
	}
	w := &storage.TokenIssue{Refresh: next}
	event := storage.AuditEvent{Type: audit.EventTokenIssue, UserID: g.userID, ClientID: g.clientID, Result: audit.ResultSuccess,
		SessionID: g.sessionID, Reason: "access and refresh token, scopes " + strings.Join(g.scopes, " ") + resourcesNote(aud, g.clientID)}
	if current == "" || !isRefresh {
		next.FamilyID = secret.NewSortableID()
		if ar, isCode := req.(authRequest); isCode {
			w.CodeHash, w.DeleteAuthRequest = ar.r.CodeHash, ar.r.ID
		}
	} else {
		next.FamilyID = rr.rt.FamilyID
		w.RotateID, w.RotatedAt = rr.rt.ID, now
		if s.refreshGrace > 0 && s.sealer != nil {
			if w.SuccessorSealed, err = s.sealer.Seal([]byte(value), successorAAD(next.ID)); err != nil {
				return "", "", time.Time{}, fmt.Errorf("seal successor: %w", err)
			}
		}
		event.Type, event.Reason = audit.EventTokenRefresh, "refresh token rotated"+resourcesNote(aud, g.clientID)
	}
	at := s.newAccessToken(g, c, next.FamilyID, aud)
	sign, err := s.mintAccessToken(ctx, c, req.GetSubject(), at)
	if err != nil {
		return "", "", time.Time{}, err
	}
	w.Access, w.WhileWriting = at, sign
	event.TokenID, event.FamilyID = at.ID, next.FamilyID
	w.Events = []*storage.AuditEvent{s.audit.Prepare(ctx, event)}
	if err := s.issue(ctx, req, w); err != nil {
		return "", "", time.Time{}, err
	}
	return at.ID, value, at.ExpiresAt, nil
}

// issue stores w — the tokens of req and the audit events that record them — in one
// transaction, and counts the access token. The tokens exist only if their events do:
// when the write fails, the token endpoint answers server_error and nothing was issued.
func (s *opStorage) issue(ctx context.Context, req op.TokenRequest, w *storage.TokenIssue) error {
	start := time.Now()
	err := s.store.IssueTokens(ctx, w)
	if errors.Is(err, errAccessTokenSign) {
		// The write and its events succeeded; only the signature, made after it, failed.
		// The token is recorded as issued but reaches no one, and expires unused.
		s.audit.Observed(ctx, time.Since(start), nil)
		s.logger.ErrorContext(ctx, "access token stored but not signed", "token_id", w.Access.ID, "err", err)
		return oidc.ErrServerError().WithDescription("the access token could not be signed").WithParent(err)
	}
	conflict, missing := errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound)
	if conflict || missing {
		// A decided outcome (the code was replayed, the token rotated by someone else),
		// not a failed write.
		s.audit.Observed(ctx, time.Since(start), nil)
	} else {
		s.audit.Observed(ctx, time.Since(start), err)
	}
	switch {
	case err == nil:
		s.countToken(req)
		if st := reqStateFrom(ctx); st != nil && w.DeleteAuthRequest != "" {
			st.deletedAuthRequest = w.DeleteAuthRequest
		}
		return nil
	case w.CodeHash != "" && conflict:
		ar := req.(authRequest)
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventCodeReplay, UserID: ar.r.Login.UserID, ClientID: ar.r.ClientID,
			Result: audit.ResultFailure, Reason: "authorization code replayed during its exchange; no tokens issued"})
		return oidc.ErrInvalidGrant().WithDescription("code already used")
	case w.CodeHash != "" && missing:
		// The grant expired with the code and was swept between redemption and issue.
		return oidc.ErrInvalidGrant().WithDescription("code expired")
	case w.RotateID != "" && conflict:
		// Lost the race against another redemption of the same token: that is reuse.
		if rr, ok := req.(*refreshRequest); ok {
			s.revokeFamilyForReuse(ctx, rr.rt)
		}
		return oidc.ErrInvalidGrant().WithDescription("refresh token already used")
	case w.RotateID != "" && missing:
		return oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	case w.RequireCurrent != "" && (conflict || missing):
		// A retry within the reuse grace window whose successor was used or revoked in
		// the meantime: this is reuse after all.
		if rr, ok := req.(*refreshRequest); ok && rr.grace != nil {
			s.revokeFamilyForReuse(ctx, rr.grace.rotated)
		}
		return oidc.ErrInvalidGrant().WithDescription("refresh token already used")
	default:
		return oidc.ErrServerError().WithDescription("the token could not be stored").WithParent(err)
	}
}

// countToken counts the access token issued for req by its grant.
func (s *opStorage) countToken(req op.TokenRequest) {
	if s.tokenIssued != nil {
		s.tokenIssued(tokenGrantLabel(req))
	}
}

// revokeFamilyForReuse revokes the family of the reused token rt and records the reuse,
// in one transaction (the event's reason is completed with the count first: the
// revocation and its event commit together or not at all). The request fails with
// invalid_grant either way; a failed write is logged and counted.
func (s *opStorage) revokeFamilyForReuse(ctx context.Context, rt *storage.RefreshToken) {
	if rt.FamilyID == "" {
		return
	}
	ev := s.audit.Prepare(ctx, storage.AuditEvent{Type: audit.EventRefreshReuse, UserID: rt.UserID, ClientID: rt.ClientID,
		Result: audit.ResultFailure, TokenID: rt.ID, FamilyID: rt.FamilyID, SessionID: rt.SessionID,
		Reason: "replayed refresh token; family revoked"})
	w := &storage.TokenIssue{RevokeFamily: rt.FamilyID, RevokedAt: s.now(), Events: []*storage.AuditEvent{ev}}
	start := time.Now()
	err := s.store.IssueTokens(ctx, w)
	s.audit.Observed(ctx, time.Since(start), err)
	if err != nil {
		s.logger.ErrorContext(ctx, "revoke refresh family", "err", err)
	}
}

func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rt, err := s.store.GetRefreshTokenByHash(ctx, secret.Hash(token))
	if err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	}
	switch {
	case !rt.RevokedAt.IsZero():
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventTokenRefresh, UserID: rt.UserID, ClientID: rt.ClientID, Result: audit.ResultFailure,
			TokenID: rt.ID, FamilyID: rt.FamilyID, Reason: "refresh token revoked"})
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token revoked")
	case !rt.RotatedAt.IsZero():
		if retry := s.graceRequest(ctx, rt); retry != nil {
			return retry, nil
		}
		s.revokeFamilyForReuse(ctx, rt)
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
	case s.now().After(rt.ExpiresAt):
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token expired")
	}
	u, err := s.requestUser(ctx, rt.UserID)
	if err != nil || u.Disabled {
		return nil, oidc.ErrInvalidGrant().WithDescription("user not active")
	}
	return &refreshRequest{rt: rt, scopes: rt.Scopes}, nil
}

func (s *opStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := s.store.GetRefreshTokenByHash(ctx, secret.Hash(token))
	if err != nil || rt.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.UserID, rt.ID, nil
}

// RevokeToken revokes a refresh token (its whole family, with the access tokens issued
// from it) or an access token, in one transaction with its token.revoke event (when the
// event cannot be written nothing is revoked: server_error, and the client may retry).
// Tokens of other clients and unknown tokens are ignored, as RFC 7009 asks.
func (s *opStorage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	var w *storage.TokenIssue
	if rt, err := s.store.GetRefreshToken(ctx, tokenOrID); err == nil {
		if rt.ClientID != clientID || rt.FamilyID == "" {
			return nil
		}
		w = &storage.TokenIssue{RevokeFamily: rt.FamilyID, RevokedAt: s.now(), Events: []*storage.AuditEvent{s.audit.Prepare(ctx, storage.AuditEvent{
			Type: audit.EventTokenRevoke, UserID: rt.UserID, ClientID: clientID, Result: audit.ResultSuccess,
			TokenID: rt.ID, FamilyID: rt.FamilyID, Reason: "refresh token family revoked"})}}
	} else if at, err := s.store.GetAccessToken(ctx, tokenOrID); err == nil {
		if at.ClientID != clientID {
			return nil
		}
		w = &storage.TokenIssue{DeleteAccessToken: at.ID, Events: []*storage.AuditEvent{s.audit.Prepare(ctx, storage.AuditEvent{
			Type: audit.EventTokenRevoke, UserID: at.UserID, ClientID: clientID, Result: audit.ResultSuccess,
			TokenID: at.ID, FamilyID: at.FamilyID, Reason: "access token revoked"})}}
	} else {
		return nil
	}
	start := time.Now()
	err := s.store.IssueTokens(ctx, w)
	s.audit.Observed(ctx, time.Since(start), err)
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// --- sessions ---

// TerminateSession is used only when TerminateSessionFromRequest is not; kept for the
// interface.
func (s *opStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	return nil
}

// TerminateSessionFromRequest ends the browser's SSO session when the logout request
// proves who asked (a valid id_token_hint for the session's user); otherwise it sends
// the browser to a confirmation page, so that a cross-site GET cannot log anyone out.
func (s *opStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	ri := requestInfoFrom(ctx)
	var sess *storage.Session
	if ri != nil && ri.SessionTokenHash != "" {
		sess, _ = s.store.GetSessionByTokenHash(ctx, ri.SessionTokenHash)
	}
	redirect := req.RedirectURI
	if sess == nil {
		return redirect, nil
	}
	if req.IDTokenHintClaims == nil || req.IDTokenHintClaims.Subject != sess.UserID {
		return s.issuer + "/logout?" + logoutQuery(s.logoutKey, req.RedirectURI, req.ClientID), nil
	}
	end := s.endSession
	if end == nil {
		// Not wired in New: still end the session, without back-channel logout.
		s.logger.ErrorContext(ctx, "opStorage.endSession is not set; back-channel logout skipped")
		end = func(ctx context.Context, sess *storage.Session, _ string) error {
			return s.store.DeleteSession(ctx, sess.ID)
		}
	}
	if err := end(ctx, sess, "rp-initiated logout"); err != nil {
		return "", fmt.Errorf("end session: %w", err)
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLogout, UserID: sess.UserID, ClientID: req.ClientID, Result: audit.ResultSuccess, Reason: "rp-initiated logout"})
	return redirect, nil
}

// --- keys ---

// signingKey implements op.SigningKey.
type signingKey struct{ k *keys.Key }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.k.Alg }
func (k signingKey) Key() any                                    { return k.k.Private }
func (k signingKey) ID() string                                  { return k.k.ID }

// publicKey implements op.Key with the public half only.
type publicKey struct{ k keys.Key }

func (k publicKey) ID() string                         { return k.k.ID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return k.k.Alg }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.k.Public }

// SigningKey returns the active key of the algorithm the requesting client asked for
// (ES256 unless the client is registered for RS256).
func (s *opStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	alg := keys.AlgES256
	if st := reqStateFrom(ctx); st != nil && st.signingAlg != "" {
		alg = st.signingAlg
	}
	k, err := s.keys.Active(ctx, alg)
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	out := make([]jose.SignatureAlgorithm, 0, len(keys.SupportedAlgs))
	for _, a := range keys.SupportedAlgs {
		out = append(out, jose.SignatureAlgorithm(a))
	}
	return out, nil
}

// KeySet returns the public keys of every published key, active and retired-but-kept.
func (s *opStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	published, err := s.keys.Published(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, 0, len(published))
	for _, k := range published {
		out = append(out, publicKey{k})
	}
	return out, nil
}

// --- clients ---

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.loadClient(ctx, id)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(err)
	}
	if st := reqStateFrom(ctx); st != nil {
		st.signingAlg = c.c.IDTokenSigningAlg
		// op looks the presenting client up before it authenticates it and reads the
		// refresh token: a rotated token retried within the grace window is honoured
		// only for this client (op_refresh_grace.go).
		st.presentingClient = id
	}
	return c, nil
}

func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, clientSecret string) error {
	if clientAuthenticatedByAssertion(ctx, id, clientSecret) { // private_key_jwt (op_client_auth.go)
		return nil
	}
	c, err := s.getClient(ctx, id)
	if err != nil || c.Public || !secret.ClientSecretMatches(clientSecret, c.SecretHash) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventClientAuth, ClientID: id, Result: audit.ResultFailure, Reason: "invalid client credentials"})
		return oidc.ErrInvalidClient().WithDescription("invalid client credentials")
	}
	return nil
}

func (s *opStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	c, err := s.loadClient(ctx, id)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	// op itself answers unauthorized_client when the client lacks the grant.
	if st := reqStateFrom(ctx); st != nil {
		st.signingAlg = c.c.IDTokenSigningAlg
	}
	return c, nil
}

func (s *opStorage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c, err := s.getClient(ctx, clientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	for _, sc := range scopes {
		if sc == oidc.ScopeOpenID || sc == oidc.ScopeOfflineAccess || !slices.Contains(c.Scopes, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for client_credentials", sc)
		}
	}
	return &clientCredentialsRequest{clientID: clientID, scopes: scopes}, nil
}

// --- claims ---

func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // deprecated hook; SetUserinfoFromRequest does the work
}

// setUserClaims fills userinfo for a user according to scopes; sub is always set.
func (s *opStorage) setUserClaims(ctx context.Context, ui *oidc.UserInfo, userID string, scopes []string) error {
	ui.Subject = userID
	u, err := s.requestUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("load user: %w", err)
	}
	if u.Disabled {
		return errors.New("user disabled")
	}
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			ui.Name = u.Name
			ui.PreferredUsername = u.Email
			ui.UpdatedAt = oidc.FromTime(u.UpdatedAt)
		case oidc.ScopeEmail:
			ui.Email = u.Email
			verified, err := s.emailVerified(ctx, u)
			if err != nil {
				return err
			}
			// An extra claim: the field would leave out false (omitempty).
			ui.AppendClaims("email_verified", verified)
		}
	}
	return nil
}

// emailVerified reports whether the person proved the account's address: an operator
// enters it, and only a code sent to it and typed back (a confirmed e-mail factor for
// the same address) proves it.
func (s *opStorage) emailVerified(ctx context.Context, u *storage.User) (bool, error) {
	factors, err := s.store.ListFactors(ctx, u.ID)
	if err != nil {
		return false, fmt.Errorf("load factors: %w", err)
	}
	for _, f := range factors {
		if f.Kind == storage.FactorEmail && f.Confirmed && strings.EqualFold(strings.TrimSpace(f.Target), strings.TrimSpace(u.Email)) {
			return true, nil
		}
	}
	return false, nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.setUserClaims(ctx, ui, req.GetSubject(), scopes); err != nil {
		return err
	}
	// op copies acr only from an AuthRequest; refreshed ID tokens get it (and sid) here.
	switch r := req.(type) {
	case *refreshRequest:
		if r.rt.ACR != "" {
			ui.AppendClaims("acr", r.rt.ACR)
		}
		if r.rt.SessionID != "" {
			ui.AppendClaims("sid", r.rt.SessionID)
		}
	case authRequest:
		if r.r.Login.SessionID != "" {
			ui.AppendClaims("sid", r.r.Login.SessionID)
		}
	case *op.DeviceAuthorizationState:
		// op copies acr only from an AuthRequest: the device grant's comes from the
		// approved authorization (op_device.go).
		if st := reqStateFrom(ctx); st != nil && st.device != nil {
			if st.device.Login.ACR != "" {
				ui.AppendClaims("acr", st.device.Login.ACR)
			}
			if st.device.Login.SessionID != "" {
				ui.AppendClaims("sid", st.device.Login.SessionID)
			}
		}
	}
	return nil
}

// validAccessToken returns the stored record of an unexpired, unrevoked access token.
func (s *opStorage) validAccessToken(ctx context.Context, id string) (*storage.AccessToken, error) {
	at, err := s.store.GetAccessToken(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("access token: %w", err)
	}
	if s.now().After(at.ExpiresAt) {
		return nil, errors.New("access token expired")
	}
	return at, nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	at, err := s.validAccessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	if at.UserID == "" || at.UserID != subject {
		return errors.New("token has no user")
	}
	return s.setUserClaims(ctx, ui, at.UserID, at.Scopes)
}

// SetIntrospectionFromToken answers active only to the client the token was issued to or
// a client named in its audience.
func (s *opStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	at, err := s.validAccessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	if at.ClientID != clientID && !slices.Contains(at.Audience, clientID) {
		return errors.New("token not issued to the introspecting client")
	}
	resp.Scope = at.Scopes
	resp.ClientID = at.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(at.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(at.CreatedAt)
	resp.NotBefore = oidc.FromTime(at.CreatedAt)
	resp.Subject = subject
	resp.Audience = at.Audience
	resp.Issuer = s.issuer
	resp.JWTID = at.ID
	if at.UserID != "" {
		resp.AuthTime = oidc.FromTime(at.AuthTime)
		resp.AuthenticationMethodsReferences = at.AMR
		var ui oidc.UserInfo
		if err := s.setUserClaims(ctx, &ui, at.UserID, at.Scopes); err != nil {
			return err
		}
		resp.SetUserInfo(&ui)
		if at.ACR != "" {
			resp.Claims = map[string]any{"acr": at.ACR}
		}
	}
	return nil
}

// GetPrivateClaimsFromScopes is never called: op builds no JWT access tokens, we do
// (op_access_token.go).
func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt and JWT-bearer grants are not supported")
}

func (s *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT-bearer grant is not supported")
}

func (s *opStorage) Health(ctx context.Context) error { return s.store.Ping(ctx) }

// reqState is per-request scratch space shared between op's calls into storage.
type reqState struct {
	signingAlg string
	claims     string                       // the claims parameter of an authorization request
	resources  []string                     // the resource parameters (RFC 8707) of /authorize or /token
	clients    map[string]*storage.Client   // clients read during this request
	user       *storage.User                // the user requestUser read during this request
	device     *storage.DeviceAuthorization // the device authorization a device_code token request consumed
	// assertedClient authenticated with a client assertion; assertionSecret is the
	// one-request credential that stands for it (op_client_auth.go).
	assertedClient, assertionSecret string
	// presentingClient is the client op looked up for this token request.
	presentingClient string
	// deletedAuthRequest is the auth request deleted with the tokens of its code.
	deletedAuthRequest string
	// created is the auth request CreateAuthRequest made in this request; authRequest
	// is the one an SSO sign-in answered by /authorize finished (op_sso.go), which
	// AuthRequestByID returns without reading it again.
	created, authRequest *storage.AuthRequest
	// deferInsert: CreateAuthRequest leaves created unstored (unsaved is then true) for
	// /authorize to store once it knows how the request ends (op_sso.go): a finished
	// SSO sign-in stores it with its login record and code in one insert.
	deferInsert, unsaved bool
	// finishClient and finishEvents are the session's client and the audit events of an
	// SSO sign-in finished within /authorize, written with its request (SaveAuthCode).
	finishClient string
	finishEvents []*storage.AuditEvent
}

type reqStateKey struct{}

// requestUser returns the user with that id, read once per request: a refresh reads the
// person when it checks the refresh token and again for the ID token's claims, within
// the same request.
func (s *opStorage) requestUser(ctx context.Context, id string) (*storage.User, error) {
	st := reqStateFrom(ctx)
	if st != nil && st.user != nil && st.user.ID == id {
		return st.user, nil
	}
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if st != nil {
		st.user = u
	}
	return u, nil
}

func reqStateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(reqStateKey{}).(*reqState)
	return st
}
