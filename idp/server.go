package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/backchannel"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/metrics"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/web"
)

// Config configures a Server. Zero durations take the documented defaults.
type Config struct {
	// Issuer is the public base URL, e.g. https://id.example.com. http is accepted only
	// for loopback hosts or in DevMode.
	Issuer string
	// Sealer encrypts data at rest; built from IDP_ENCRYPTION_KEY.
	Sealer *seal.Sealer
	// Logger receives structured logs; request id and IP are added per request.
	Logger *slog.Logger
	// DevMode relaxes the https requirement of the issuer.
	DevMode bool
	// Demo, when set, serves the built-in demo relying party at "/".
	Demo *admin.DemoClient
	// DisplayName is what people see the provider called: the TOTP label and issuer,
	// e-mail subjects and SMS texts, page titles. Default: the issuer's host.
	DisplayName string
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	SessionLifetime     time.Duration // absolute SSO session lifetime, default 24h
	SessionIdle         time.Duration // idle timeout, default 2h
	AuthRequestLifetime time.Duration // time to finish a login, default 30m
	CodeLifetime        time.Duration // authorization code lifetime, default 60s
	// KeyRetention is how long a replaced signing key stays in the JWKS after it stopped
	// signing, default 24h: at least the longest ID-token or access-token lifetime of any
	// client (admin.RotateKeys refuses a shorter one).
	KeyRetention time.Duration
	// KeyPublishDelay is how long a key added by a rotation in this process is published
	// before it signs, default keys.DefaultPublishDelay (1h); at least JWKSMaxAge.
	KeyPublishDelay time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the published key set (/keys), default
	// DefaultJWKSMaxAge (10m). Rotations must publish new keys at least this long before
	// they sign (KeyPublishDelay, and `idp keys rotate --key-publish-delay`).
	JWKSMaxAge time.Duration
	// DiscoveryMaxAge is the Cache-Control max-age of the discovery document, default
	// DefaultDiscoveryMaxAge (5m).
	DiscoveryMaxAge time.Duration

	// LoginLimits bounds failed password attempts; zero fields take the defaults.
	LoginLimits LoginLimits

	// MFA configures the second factors.
	MFA MFAConfig

	// MaxSessions is the most SSO sessions a person may have at once; the oldest ends
	// when a new one would exceed it. Default 5.
	MaxSessions int

	// RefreshReuseGrace is how long after a refresh token was rotated the same client
	// may present it again and get the same successor (a retry after a lost answer)
	// instead of a family revocation. Zero: DefaultRefreshReuseGrace (30s); negative:
	// off, any reuse revokes the family.
	RefreshReuseGrace time.Duration

	// AuditRetention, when positive, deletes audit events older than this once a day
	// (recorded in the chain as an audit.retention event). Zero keeps everything.
	AuditRetention time.Duration

	// TrustedProxies are the reverse proxies in front of the provider. A request whose
	// TCP peer is inside one of these prefixes has its client address taken from
	// ProxyHeader (the nearest address that is not itself a trusted proxy); from any
	// other peer the header is ignored and the peer is the client. That address is what
	// per-address login limits count, audit events and sessions record, and the log
	// shows. Empty: headers are never believed. See docs/proxy-and-cookies.md.
	TrustedProxies []netip.Prefix
	// ProxyHeader is the header TrustedProxies write the client into: HeaderXForwardedFor
	// (the default) or HeaderForwarded (RFC 7239). Only this one is read: a proxy passes
	// the other through from the client unchanged.
	ProxyHeader string

	// PasswordHashMemory is the memory budget, in bytes, of the argon2id computations
	// that run at once (pwhash.Params takes 19 MiB each); further password checks wait
	// in line. Default DefaultPasswordHashMemory (64 MiB: three at once). See login_hashgate.go.
	PasswordHashMemory int64
	// PasswordHashQueue is how many password checks may wait for memory; beyond it they
	// fail at once with ErrHashBusy. Default 16 per hash the budget fits; negative: none.
	PasswordHashQueue int
	// PasswordHashWait is the longest a password check waits, default 2s.
	PasswordHashWait time.Duration

	// AuthorizeLimits bounds the authorization requests one address may create.
	AuthorizeLimits AuthorizeLimits

	// Metrics receives the Prometheus metrics (docs/metrics.md); nil: the server makes
	// its own (Server.Metrics).
	Metrics *metrics.Registry
	// NoMetricsEndpoint keeps GET /metrics off this handler (served on its own address,
	// or not at all).
	NoMetricsEndpoint bool

	// Console configures the admin console at /admin (server_console.go).
	Console ConsoleConfig
}

// Server is the identity provider's HTTP handler.
type Server struct {
	cfg       Config
	store     storage.Storage
	logger    *slog.Logger
	now       func() time.Time
	keys      *keys.Manager
	audit     *audit.Auditor
	pages     *web.Renderer
	provider  *op.Provider
	ops       *opStorage
	csrfKey   [32]byte
	secure    bool // https issuer: cookies are Secure and __Host- prefixed, HSTS is sent
	clients   clientResolver
	handler   http.Handler
	demo      *demoRP
	factors   *mfa.Registry
	regulator *regulation.Regulator
	mfaEnv    *mfa.Env

	jwks        *jwksCache // client key sets by URL, for private_key_jwt
	backchannel *backchannel.Notifier
	hashes      *hashGate // bounds the memory of concurrent argon2id computations
	metrics     *metrics.Registry
	resets      resetWork // background sending of password-reset links (login_reset.go)
}

func withDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Validate checks cfg as New does, without a store: `idp serve` calls it before it
// opens and migrates the database.
func (cfg Config) Validate() error {
	_, err := cfg.normalized()
	return err
}

// normalized checks cfg and returns it with its defaults filled in.
func (cfg Config) normalized() (Config, error) {
	if cfg.Sealer == nil {
		return cfg, errors.New("config: Sealer (encryption key) is required")
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || iss.Host == "" || (iss.Scheme != "https" && iss.Scheme != "http") {
		return cfg, fmt.Errorf("config: issuer %q must be an absolute http(s) URL", cfg.Issuer)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if iss.Scheme == "http" && !cfg.DevMode && !isLoopback(iss.Hostname()) {
		return cfg, fmt.Errorf("config: issuer %q must use https (http only for localhost or with --dev)", cfg.Issuer)
	}
	cfg.DisplayName = strings.TrimSpace(cfg.DisplayName)
	if cfg.DisplayName == "" {
		cfg.DisplayName = iss.Host
	}
	if iss.Path != "" && iss.Path != "/" {
		return cfg, fmt.Errorf("config: issuer %q must not have a path", cfg.Issuer)
	}
	withDefault(&cfg.SessionLifetime, 24*time.Hour)
	if cfg.RefreshReuseGrace == 0 {
		cfg.RefreshReuseGrace = DefaultRefreshReuseGrace
	}
	withDefault(&cfg.SessionIdle, 2*time.Hour)
	withDefault(&cfg.AuthRequestLifetime, 30*time.Minute)
	withDefault(&cfg.CodeLifetime, time.Minute)
	withDefault(&cfg.KeyRetention, keys.DefaultRetention)
	withDefault(&cfg.KeyPublishDelay, keys.DefaultPublishDelay)
	withDefault(&cfg.JWKSMaxAge, DefaultJWKSMaxAge)
	withDefault(&cfg.DiscoveryMaxAge, DefaultDiscoveryMaxAge)
	if cfg.KeyPublishDelay < cfg.JWKSMaxAge {
		return cfg, fmt.Errorf("config: key publish delay %s is shorter than the JWKS max-age %s: a verifier with a cached key set could meet a key it does not know",
			cfg.KeyPublishDelay, cfg.JWKSMaxAge)
	}
	if _, err := newClientResolver(cfg.TrustedProxies, cfg.ProxyHeader); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// New builds the provider: it makes sure signing keys exist and assembles the routes.
func New(ctx context.Context, store storage.Storage, cfg Config) (*Server, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	insecure := strings.HasPrefix(cfg.Issuer, "http:")
	cfg.LoginLimits.defaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	clients, err := newClientResolver(cfg.TrustedProxies, cfg.ProxyHeader)
	if err != nil {
		return nil, err
	}
	if clients.trustsEveryone() {
		cfg.Logger.WarnContext(ctx, "trusted proxies include every address: any client can choose the address it is limited and audited under")
	}
	pages, err := web.New()
	if err != nil {
		return nil, err
	}
	pages.SiteName = cfg.DisplayName
	s := &Server{cfg: cfg, store: store, logger: cfg.Logger, now: cfg.Now, pages: pages, secure: !insecure, clients: clients}
	s.jwks = newJWKSCache(cfg.Now)
	s.hashes = newHashGate(cfg.PasswordHashMemory, cfg.PasswordHashQueue, cfg.PasswordHashWait)
	s.keys = &keys.Manager{Store: store, Sealer: cfg.Sealer, Retention: cfg.KeyRetention, PublishDelay: cfg.KeyPublishDelay, Now: cfg.Now}
	s.audit = &audit.Auditor{Store: store, Logger: cfg.Logger, Now: cfg.Now, Request: auditRequest}
	// The audit chain is keyed (HMAC) with a key derived from the encryption key, never
	// stored; a trail of unkeyed events (before the upgrade) gets its audit.chain_keyed
	// marker before this process appends anything else.
	if audit.KeyStore(store, cfg.Sealer) {
		now := time.Now()
		if cfg.Now != nil {
			now = cfg.Now()
		}
		if err := audit.StartKeyedChain(ctx, store, now); err != nil {
			return nil, err
		}
	}
	s.setupMetrics()
	if err := s.keys.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	// Symmetric keys live sealed in the database: every process shares them, and an
	// encryption-key rotation re-seals them without changing them.
	var oidcKey, mfaHashKey [32]byte
	for name, dst := range map[string]*[32]byte{"csrf": &s.csrfKey, "oidc-crypto": &oidcKey, "mfa-hash": &mfaHashKey} {
		if *dst, err = secret.ServerKey(ctx, store, cfg.Sealer, name); err != nil {
			return nil, err
		}
	}
	if err := s.setupMFA(ctx, mfaHashKey); err != nil {
		return nil, err
	}
	if err := s.ensureAccountClient(ctx); err != nil {
		return nil, fmt.Errorf("account client: %w", err)
	}
	if err := s.ensureConsoleClient(ctx); err != nil {
		return nil, fmt.Errorf("console client: %w", err)
	}
	s.setupSessions()
	minted := &accessTokenJWTs{}
	s.ops = &opStorage{
		store: store, keys: s.keys, audit: s.audit, logger: cfg.Logger, issuer: cfg.Issuer, now: cfg.Now,
		authReqTTL: cfg.AuthRequestLifetime, codeTTL: cfg.CodeLifetime, logoutKey: s.csrfKey, deviceKey: s.csrfKey,
		endSession: s.endSession, minted: minted, tokenIssued: s.metrics.TokenIssued,
		sealer: cfg.Sealer, refreshGrace: max(cfg.RefreshReuseGrace, 0),
	}
	opConfig := &op.Config{
		CryptoKey:                oidcKey,
		DefaultLogoutRedirectURI: cfg.Issuer + "/logged-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       web.Languages(),
		// Sessions are announced to relying parties through back-channel logout tokens.
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		// RFC 8628 (op_device.go, login_device.go).
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime: DeviceCodeLifetime, PollInterval: DevicePollInterval, UserFormPath: deviceFormPath, UserCode: deviceUserCode,
		},
	}
	opts := []op.Option{
		op.WithHttpInterceptors(s.opInterceptor),
		// Hands op the RFC 9068 access tokens opStorage mints (op_access_token.go).
		op.WithCrypto(newTokenCrypto(oidcKey, minted)),
		// Access tokens are verified against the published keys with a memo of the
		// signatures already verified (op_keyset.go).
		op.WithAccessTokenKeySet(newVerifiedKeySet(s.ops)),
		// Token, userinfo, JWKS and discovery are called with bearer tokens or client
		// credentials, never cookies: any origin may call them, without credentials.
		op.WithCORSOptions(&cors.Options{
			AllowedOrigins: []string{"*"},
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			AllowedHeaders: []string{"Authorization", "Content-Type"},
		}),
	}
	if insecure {
		opts = append(opts, op.WithAllowInsecure())
	}
	s.provider, err = op.NewProvider(opConfig, s.ops, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidc provider: %w", err)
	}
	if cfg.Demo != nil {
		s.demo, err = newDemoRP(s, *cfg.Demo)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	s.handler = s.routes()
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Keys returns the signing-key manager.
func (s *Server) Keys() *keys.Manager { return s.keys }

// Auditor returns the audit recorder.
func (s *Server) Auditor() *audit.Auditor { return s.audit }

// ServeHTTP serves every route of the provider.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.handleLogin)
	mux.HandleFunc("POST /login", s.handleLoginPost)
	mux.HandleFunc("POST /login/passkey", s.handlePasskeyLogin)
	mux.HandleFunc("POST /login/mfa", s.handleMFAVerify)
	mux.HandleFunc("POST /login/mfa/send", s.handleMFASend)
	mux.HandleFunc("POST /consent", s.handleConsentPost)
	mux.HandleFunc("GET "+deviceFormPath, s.handleDevice)
	mux.HandleFunc("POST "+deviceFormPath, s.handleDevicePost)
	// The self-service API is called by browser applications with bearer tokens: CORS
	// without credentials, preflight included.
	me := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, apiCORS(h)) }
	me("GET /api/v1/me/mfa", s.handleAPIStatus)
	me("POST /api/v1/me/mfa/backup-codes", s.handleAPIBackupCodes)
	me("POST /api/v1/me/mfa/{kind}", s.handleAPIEnroll)
	me("POST /api/v1/me/mfa/{kind}/verify", s.handleAPIConfirm)
	me("POST /api/v1/me/mfa/{id}/challenge", s.handleAPIChallenge)
	me("DELETE /api/v1/me/mfa/{id}", s.handleAPIRemove)
	me("OPTIONS /api/v1/me/{path...}", func(http.ResponseWriter, *http.Request) {})
	s.sessionRoutes(mux)
	s.enrolmentRoutes(mux)
	s.adminRoutes(mux)    // /api/v1/admin/* and GET /api/v1/openapi.yaml
	s.recoveryRoutes(mux) // GET and POST /recovery
	s.consoleRoutes(mux)  // the admin console under /admin (idp/console)
	s.resetRoutes(mux)    // /password/forgot and /password/reset (login_reset.go)
	mux.HandleFunc("GET /account/security", s.handleAccount)
	mux.HandleFunc("POST /account/security/enroll", s.handleAccountEnroll)
	mux.HandleFunc("POST /account/security/confirm", s.handleAccountConfirm)
	mux.HandleFunc("POST /account/security/remove", s.handleAccountRemove)
	mux.HandleFunc("POST /account/security/password/remove", s.handleAccountPasswordRemove)
	mux.HandleFunc("POST /account/security/backup-codes", s.handleAccountBackup)
	mux.HandleFunc("GET /logout", s.handleLogoutPage)
	mux.HandleFunc("POST /logout", s.handleLogoutPost)
	mux.HandleFunc("GET /logged-out", s.handleLoggedOut)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("POST "+parPath, s.handlePAR) // RFC 9126 (op_par.go)
	mux.Handle("GET /.well-known/openid-configuration", op.NewIssuerInterceptor(s.provider.IssuerFromRequest).HandlerFunc(s.handleDiscovery))
	// Served here rather than by op, whose routes are no-store: the key set is cacheable.
	mux.HandleFunc("GET "+s.provider.KeysEndpoint().Relative(), s.handleJWKS)
	mux.Handle("GET /static/", web.Static())
	if s.demo != nil {
		mux.HandleFunc("GET /{$}", s.demo.home)
		mux.HandleFunc("GET /demo/login", s.demo.login)
		mux.HandleFunc("GET /demo/callback", s.demo.callback)
		mux.HandleFunc("GET /demo/logout", s.demo.logout)
		mux.HandleFunc("GET /demo/api", s.demo.callAPI)
		mux.Handle("GET /demo/api/report", s.demo.report())
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/.well-known/openid-configuration", http.StatusFound)
		})
	}
	if !s.cfg.NoMetricsEndpoint {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	// Unknown paths get the HTML 404 page rather than op's text/plain one.
	mux.Handle("/", s.notFoundPages(s.provider))
	return s.withMetrics(mux, s.withRequestContext(s.withKnownDevice(s.withAuthResponseIssuer(mux))))
}

// ACRValuesSupported lists the acr values the provider can reach, lowest first.
var ACRValuesSupported = []string{consent.ACRPassword, consent.ACRMFA, consent.ACRPhishingResistant}

// ClaimsSupported lists the claims the provider issues in ID tokens and userinfo.
var ClaimsSupported = []string{
	"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "client_id", "sid",
	"at_hash", "c_hash", "name", "preferred_username", "updated_at", "email", "email_verified",
}

// discoveryDocument is op's discovery document with the fields op does not know.
type discoveryDocument struct {
	*oidc.DiscoveryConfiguration
	// RFC 9207: every authorization response carries iss (withAuthResponseIssuer).
	AuthorizationResponseISSParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// RFC 9126: pushed authorization requests (op_par.go); PAR is required per client,
	// never for all.
	PushedAuthorizationRequestEndpoint string `json:"pushed_authorization_request_endpoint,omitempty"`
	RequirePushedAuthorizationRequests bool   `json:"require_pushed_authorization_requests"`
}

// handleDiscovery serves op's discovery document corrected to advertise only what
// works (a test, TestDiscoveryAdvertisesOnlyWhatWorks, makes a request for each), with
// what op leaves out: acr_values_supported, the sid claim, RFC 9207. A feature that
// starts to work adds its field here, one line each. It is cacheable for DiscoveryMaxAge.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	doc := op.CreateDiscoveryConfig(r.Context(), s.provider, s.ops)
	// op always lists the implicit and hybrid response types, the implicit and
	// JWT-bearer grants, a device endpoint and JWT client authentication; none works here.
	doc.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	doc.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials}
	doc.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
	doc.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
	doc.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
	doc.ResponseModesSupported = []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFragment)}
	// op lists phone and address (no client may ask for them) and claims never issued.
	// (A new slice: op's may be shared between requests.)
	doc.ScopesSupported = slices.DeleteFunc(slices.Clone(doc.ScopesSupported), func(s string) bool { return s == oidc.ScopePhone || s == oidc.ScopeAddress })
	doc.ClaimsSupported = ClaimsSupported
	doc.ACRValuesSupported = ACRValuesSupported
	// RFC 8628 device grant (op_device.go, login_device.go).
	doc.DeviceAuthorizationEndpoint = s.provider.DeviceAuthorizationEndpoint().Absolute(s.cfg.Issuer)
	doc.GrantTypesSupported = withGrant(doc.GrantTypesSupported, oidc.GrantTypeDeviceCode)
	// private_key_jwt (RFC 7523, op_client_auth.go) at every endpoint that authenticates
	// clients.
	assertionAlgs := make([]string, 0, len(ClientAssertionSigningAlgs))
	for _, a := range ClientAssertionSigningAlgs {
		assertionAlgs = append(assertionAlgs, string(a))
	}
	doc.TokenEndpointAuthMethodsSupported = appendAuthMethod(doc.TokenEndpointAuthMethodsSupported, oidc.AuthMethodPrivateKeyJWT)
	doc.TokenEndpointAuthSigningAlgValuesSupported = assertionAlgs
	doc.IntrospectionEndpointAuthMethodsSupported = appendAuthMethod(doc.IntrospectionEndpointAuthMethodsSupported, oidc.AuthMethodPrivateKeyJWT)
	doc.IntrospectionEndpointAuthSigningAlgValuesSupported = assertionAlgs
	doc.RevocationEndpointAuthMethodsSupported = appendAuthMethod(doc.RevocationEndpointAuthMethodsSupported, oidc.AuthMethodPrivateKeyJWT)
	doc.RevocationEndpointAuthSigningAlgValuesSupported = assertionAlgs
	s.serveCacheableJSON(w, r, discoveryDocument{
		DiscoveryConfiguration:                     doc,
		AuthorizationResponseISSParameterSupported: true,
		// PAR (RFC 9126, op_par.go).
		PushedAuthorizationRequestEndpoint: s.cfg.Issuer + parPath,
	}, s.cfg.DiscoveryMaxAge)
}

// withGrant returns grants with g in it.
func withGrant(grants []oidc.GrantType, g oidc.GrantType) []oidc.GrantType {
	if slices.Contains(grants, g) {
		return grants
	}
	return append(grants, g)
}

// appendAuthMethod appends m to ms unless it is there.
func appendAuthMethod(ms []oidc.AuthMethod, m oidc.AuthMethod) []oidc.AuthMethod {
	if slices.Contains(ms, m) {
		return ms
	}
	return append(ms, m)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger.WarnContext(ctx, "readiness check failed", "err", err)
		if wantsHTML(r) {
			s.renderError(w, r, http.StatusServiceUnavailable, "Service unavailable",
				"The sign-in service cannot reach its database just now. Try again in a few minutes.")
			return
		}
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// statusRecorder remembers the status code for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// hstsValue is the Strict-Transport-Security header (RFC 6797) of https issuers: two
// years, as hstspreload.org and OWASP recommend, and includeSubDomains, which covers only
// the hosts under the issuer's own host name (x.id.example.com for id.example.com: on an
// apex issuer, example.com, that is every subdomain). No preload: entering the browsers'
// preload list is the domain owner's decision, for the whole domain.
const hstsValue = "max-age=63072000; includeSubDomains"

// withRequestContext gives every request an id, puts the client's IP (see clientIP), user
// agent and session-cookie hash in the context, logs the request, and sets baseline
// headers (HSTS on https issuers).
func (s *Server) withRequestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{ID: secret.Token(9), IP: s.clientIP(r), UserAgent: audit.CapString(r.UserAgent(), audit.MaxUserAgent)}
		if c, err := s.cookie(r, sessionCookie); err == nil && c.Value != "" {
			ri.SessionTokenHash = secret.Hash(c.Value)
		}
		ctx := withRequestInfo(r.Context(), ri)
		w.Header().Set("X-Request-Id", ri.ID)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if s.secure {
			w.Header().Set("Strict-Transport-Security", hstsValue)
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(ctx))
		// Only the path is logged: query strings can carry codes and tokens.
		s.logger.LogAttrs(ctx, slog.LevelInfo, "http request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}

// opInterceptor wraps op's routes: responses carrying tokens are never cached, the
// per-request scratch space is added, /authorize requests are bounded in size and number
// per address, and /authorize/callback is only honoured in the browser that completed
// the login.
func (s *Server) opInterceptor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		st := &reqState{}
		r = r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st))
		if strings.HasSuffix(r.URL.Path, "/authorize") {
			// A request op cannot answer to the relying party is shown to the person as
			// the HTML error page rather than op's text/plain (server_errorpages.go).
			hw := &htmlErrorWriter{ResponseWriter: w}
			defer s.finishHTMLErrors(hw, w, r)
			w = hw
			// Size, parameter and per-address limits (op_authorize_limits.go); r.Form is
			// parsed from here on.
			if !s.checkAuthorize(w, r) {
				return
			}
			// RFC 9126: a request_uri of a pushed request becomes its parameters
			// (op_par.go); they were checked against the same limits when pushed.
			if !s.resolvePushedRequest(w, r) {
				return
			}
			// op parses neither the claims nor the resource parameter (RFC 8707); keep
			// them for CreateAuthRequest.
			st.claims = r.Form.Get("claims")
			st.resources = r.Form["resource"]
		}
		if strings.HasSuffix(r.URL.Path, s.provider.TokenEndpoint().Relative()) && r.Method == http.MethodPost {
			// RFC 8707 §2.2: the resource parameters of a token request, for storage's
			// Create*Token. op parses the same form again (a no-op once parsed).
			if err := r.ParseForm(); err != nil {
				op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("the request could not be parsed"), s.logger)
				return
			}
			st.resources = r.Form["resource"]
			if r.Form.Get("grant_type") == string(oidc.GrantTypeDeviceCode) {
				// RFC 8628 §3.4 polling (op_device.go).
				s.deviceToken(w, r)
				return
			}
		}
		if strings.HasSuffix(r.URL.Path, s.provider.DeviceAuthorizationEndpoint().Relative()) && !s.checkDeviceAuthorization(w, r) {
			return
		}
		if r.Method == http.MethodPost && s.clientAuthEndpoint(r.URL.Path) {
			// private_key_jwt (op_client_auth.go).
			if err := r.ParseForm(); err != nil {
				op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("the request could not be parsed"), s.logger)
				return
			}
			if !s.interceptClientAssertion(w, r, st) {
				return
			}
		}
		if strings.HasSuffix(r.URL.Path, "/authorize/callback") && !s.callbackBound(r) {
			s.renderError(w, r, http.StatusForbidden, "Sign-in not completed",
				"This sign-in was not completed in this browser. Go back to the application and start again.")
			return
		}
		if strings.HasSuffix(r.URL.Path, "/authorize/callback") {
			s.serveWithFormPostIssuer(next, w, r)
			return
		}
		if kind := s.apiEndpointOf(r); kind != endpointOther {
			s.serveAPI(kind, next, w, r)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/authorize") {
			// An SSO sign-in that needs no page is answered here (op_sso.go).
			s.serveAuthorize(next, w, r, st)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// callbackBound reports whether the auth request in ?id= was completed by the session
// whose cookie this browser holds.
func (s *Server) callbackBound(r *http.Request) bool {
	ar, err := s.store.GetAuthRequest(r.Context(), r.URL.Query().Get("id"))
	if err != nil || !ar.Login.Done {
		return false
	}
	sess := s.currentSession(r)
	return sess != nil && sess.ID == ar.Login.SessionID
}

// renderError shows the error page; title and msg are English message ids (the page
// translates them).
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	if err := s.pages.Render(w, s.lang(r), status, web.PageError, web.ErrorPage{Title: title, Message: msg}); err != nil {
		s.logger.ErrorContext(r.Context(), "render error page", "err", err)
	}
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	if err := s.pages.Render(w, s.lang(r), status, page, data); err != nil {
		s.logger.ErrorContext(r.Context(), "render page", "page", page, "err", err)
	}
}

// RunCleanup deletes expired rows and clears the sealed successors of refresh tokens
// rotated longer ago than the reuse grace window every interval, and applies audit
// retention once a day, until ctx ends.
func (s *Server) RunCleanup(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	daily := time.NewTicker(24 * time.Hour)
	defer daily.Stop()
	s.applyAuditRetention(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-daily.C:
			s.applyAuditRetention(ctx)
		case <-t.C:
			s.cleanup(ctx)
		}
	}
}

// cleanup deletes expired rows and clears the sealed successors of refresh tokens
// rotated before the reuse grace window (all of them when the window is off): past the
// window they serve no retry, and each is the sealed value of a token that may still be
// current.
func (s *Server) cleanup(ctx context.Context) {
	now := s.now()
	n, err := s.store.DeleteExpired(ctx, now)
	if err != nil {
		s.logger.WarnContext(ctx, "cleanup failed", "err", err)
	} else if n > 0 {
		s.logger.DebugContext(ctx, "cleanup", "deleted", n)
	}
	cleared, err := s.store.ClearRefreshSuccessors(ctx, now.Add(-max(s.cfg.RefreshReuseGrace, 0)))
	if err != nil {
		s.logger.WarnContext(ctx, "clear sealed refresh successors failed", "err", err)
	} else if cleared > 0 {
		s.logger.DebugContext(ctx, "cleanup", "refresh_successors_cleared", cleared)
	}
}

// applyAuditRetention deletes audit events older than Config.AuditRetention.
func (s *Server) applyAuditRetention(ctx context.Context) {
	if s.cfg.AuditRetention <= 0 {
		return
	}
	now := s.now()
	res, err := audit.Prune(ctx, s.store, "retention", now.Add(-s.cfg.AuditRetention), now)
	if err != nil {
		s.logger.WarnContext(ctx, "audit retention failed", "err", err)
		return
	}
	s.logger.InfoContext(ctx, "audit retention applied", "removed", res.Removed)
}
