package idp

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// The device authorization grant (RFC 8628) for TVs and CLIs. op serves
// /device_authorization and calls StoreDeviceAuthorization with the codes it made; the
// person enters the user code on /device (login_device.go) and signs in through the same
// flow as a browser sign-in; the device polls the token endpoint, which deviceToken
// answers (opInterceptor routes the grant there): op's own polling maps every storage
// error to access_denied, authenticates the client only after looking at the code, and
// cannot carry acr into the ID token.

// Device flow settings.
const (
	// DeviceCodeLifetime is how long a device authorization waits for the person.
	DeviceCodeLifetime = 10 * time.Minute
	// DevicePollInterval is the least time between two polls of one device code; a
	// faster poll is answered slow_down.
	DevicePollInterval = 5 * time.Second
	// UserFormPath is the device page (the verification_uri).
	deviceFormPath = "/device"
	// deviceResponseType marks the auth request of a device sign-in (it has no redirect
	// URI); its State holds the id of the device authorization.
	deviceResponseType = admin.GrantDeviceCode
)

// deviceUserCode is the user-code format: 8 letters of a 20-consonant alphabet
// (BCDFGHJKLMNPQRSTVWXZ), shown as XXXX-XXXX: 20^8 ≈ 2.56·10^10 codes (34.6 bits).
var deviceUserCode = op.UserCodeBase20

var _ op.DeviceAuthorizationStorage = (*opStorage)(nil)

// normalizeUserCode is the user code as it is hashed: upper case, letters only (people
// type dashes, spaces and lower case).
func normalizeUserCode(code string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(code) {
		if r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// userCodeMAC is how a user code is stored: a keyed MAC, since a code of 35 bits could
// be found from a plain hash by brute force.
func userCodeMAC(key [32]byte, code string) string {
	return secret.MAC(key, "device-user-code", normalizeUserCode(code))
}

// StoreDeviceAuthorization stores a new device authorization with its codes hashed.
// opInterceptor has authenticated the client and checked its scopes before op calls it.
func (s *opStorage) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	now := s.now()
	return s.store.CreateDeviceAuthorization(ctx, &storage.DeviceAuthorization{
		ID: secret.NewID(), DeviceCodeHash: secret.Hash(deviceCode), UserCodeHash: userCodeMAC(s.deviceKey, userCode),
		ClientID: clientID, Scopes: scopes, State: storage.DeviceAuthPending, CreatedAt: now,
		// op computed expires with time.Now; every other decision uses s.now.
		ExpiresAt: now.Add(time.Until(expires)),
	})
}

// GetDeviceAuthorizatonState is never called: opInterceptor answers every device_code
// token request with Server.deviceToken.
func (s *opStorage) GetDeviceAuthorizatonState(context.Context, string, string) (*op.DeviceAuthorizationState, error) {
	return nil, errors.New("device_code token requests are answered by Server.deviceToken")
}

// deviceClient authenticates the client of a device authorization or device token
// request: a confidential client with its secret (Basic or in the body), a public one by
// its client_id alone. The client must be registered for the device grant.
func (s *Server) deviceClient(r *http.Request) (*client, error) {
	id, authenticated, err := op.ClientIDFromRequest(r, s.provider)
	if err != nil {
		return nil, err
	}
	c, err := s.ops.loadClient(r.Context(), id)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if !c.c.Public && !authenticated {
		sec := r.PostForm.Get("client_secret")
		if sec == "" {
			return nil, oidc.ErrInvalidClient().WithDescription("confidential client requires authentication")
		}
		if err := s.ops.AuthorizeClientIDSecret(r.Context(), id, sec); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(c.c.GrantTypes, admin.GrantDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the device authorization grant")
	}
	if st := reqStateFrom(r.Context()); st != nil {
		st.signingAlg = c.c.IDTokenSigningAlg
	}
	return c, nil
}

// checkDeviceAuthorization runs before op's /device_authorization: it bounds device
// authorizations per address, authenticates the client and checks the scopes. It
// reports whether op may go on; when not, it has answered.
func (s *Server) checkDeviceAuthorization(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if r.Method != http.MethodPost {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("use POST"), s.logger)
		return false
	}
	ctx := r.Context()
	if _, err := s.regulator.Reserve(ctx, deviceAuthorizationLimits(requestIP(ctx))...); err != nil {
		var locked *regulation.LockedError
		if errors.As(err, &locked) {
			op.RequestError(w, r, oidc.ErrSlowDown().WithDescription("too many device authorizations from this address"), s.logger)
			return false
		}
		op.RequestError(w, r, oidc.ErrServerError().WithParent(err), s.logger)
		return false
	}
	c, err := s.deviceClient(r)
	if err != nil {
		op.RequestError(w, r, err, s.logger)
		return false
	}
	for _, sc := range strings.Fields(r.PostForm.Get("scope")) {
		if !slices.Contains(c.c.Scopes, sc) {
			op.RequestError(w, r, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc), s.logger)
			return false
		}
	}
	return true
}

// deviceToken answers a device_code token request (RFC 8628 §3.4, §3.5):
// authorization_pending while the person has not finished, slow_down when polled sooner
// than DevicePollInterval after the last poll, access_denied when denied, expired_token
// after expiry, and the tokens exactly once: the approved authorization is consumed by
// one conditional update, any later poll gets invalid_grant.
func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fail := func(e *oidc.Error) { op.RequestError(w, r, e, s.logger) }
	c, err := s.deviceClient(r)
	if err != nil {
		op.RequestError(w, r, err, s.logger)
		return
	}
	code := r.PostForm.Get("device_code")
	if code == "" {
		fail(oidc.ErrInvalidRequest().WithDescription("device_code is required"))
		return
	}
	hash, now := secret.Hash(code), s.now()
	da, err := s.store.PollDeviceAuthorization(ctx, hash, now, DevicePollInterval)
	switch {
	case errors.Is(err, storage.ErrConflict):
		fail(oidc.ErrSlowDown().WithDescription("polled faster than every %d seconds", int(DevicePollInterval/time.Second)))
		return
	case errors.Is(err, storage.ErrNotFound):
		fail(oidc.ErrInvalidGrant().WithDescription("unknown device code"))
		return
	case err != nil:
		fail(oidc.ErrServerError().WithParent(err))
		return
	}
	if da.ClientID != c.c.ID {
		fail(oidc.ErrInvalidGrant().WithDescription("device code issued to another client"))
		return
	}
	expired := !now.Before(da.ExpiresAt)
	switch {
	case da.State == storage.DeviceAuthConsumed:
		fail(oidc.ErrInvalidGrant().WithDescription("device code already used"))
		return
	case da.State == storage.DeviceAuthDenied:
		fail(oidc.ErrAccessDenied().WithDescription("the person denied the request"))
		return
	case expired:
		fail(oidc.ErrExpiredDeviceCode().WithDescription("the device code expired"))
		return
	case da.State == storage.DeviceAuthPending:
		fail(oidc.ErrAuthorizationPending())
		return
	}
	da, err = s.store.ConsumeDeviceAuthorization(ctx, hash, now)
	if errors.Is(err, storage.ErrNotFound) {
		fail(oidc.ErrInvalidGrant().WithDescription("device code already used"))
		return
	}
	if err != nil {
		fail(oidc.ErrServerError().WithParent(err))
		return
	}
	if u, err := s.store.GetUser(ctx, da.Login.UserID); err != nil || u.Disabled {
		fail(oidc.ErrInvalidGrant().WithDescription("user not active"))
		return
	}
	if st := reqStateFrom(ctx); st != nil {
		st.device = da
	}
	req := &op.DeviceAuthorizationState{
		ClientID: da.ClientID, Audience: []string{da.ClientID}, Scopes: da.Scopes, Expires: da.ExpiresAt, Done: true,
		Subject: da.Login.UserID, AMR: da.Login.AMR, AuthTime: da.Login.AuthTime,
	}
	resp, err := op.CreateDeviceTokenResponse(ctx, req, s.provider, c)
	if err != nil {
		op.RequestError(w, r, err, s.logger)
		return
	}
	httphelper.MarshalJSON(w, resp)
}

// deviceGrant is the token grant of a consumed device authorization (grantOf).
func deviceGrant(ctx context.Context) (tokenGrant, error) {
	st := reqStateFrom(ctx)
	if st == nil || st.device == nil {
		return tokenGrant{}, errors.New("device token request without its authorization")
	}
	d := st.device
	return tokenGrant{clientID: d.ClientID, userID: d.Login.UserID, sessionID: d.Login.SessionID, audience: []string{d.ClientID},
		scopes: d.Scopes, amr: d.Login.AMR, authTime: d.Login.AuthTime, acr: d.Login.ACR}, nil
}

// deviceAuthorizationLimits bound the device authorizations one address may start.
func deviceAuthorizationLimits(ip string) []regulation.Limit {
	return []regulation.Limit{{Key: "ip:" + regulation.KeyPart(ip) + ":devauth",
		Rule: storage.AttemptRule{Limit: DeviceAuthorizationsPerAddress, Window: DeviceCodeWindow}}}
}
