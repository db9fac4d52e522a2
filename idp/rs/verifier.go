package rs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for Config fields left zero.
const (
	// DefaultRefetchInterval is the least time between two fetches of the key set (or of
	// discovery), so a flood of tokens with unknown key ids cannot hammer the provider.
	DefaultRefetchInterval = 10 * time.Second
	// DefaultIntrospectionCacheTTL bounds how long an active introspection answer is
	// reused; it is never reused past the token's exp.
	DefaultIntrospectionCacheTTL = 30 * time.Second

	defaultHTTPTimeout = 10 * time.Second
	// maxTokenSize bounds what Verify parses; the provider's tokens are a few hundred
	// bytes.
	maxTokenSize = 16 << 10
)

// Config configures a Verifier. Issuer and Audience are required.
type Config struct {
	// Issuer is the provider's issuer URL, exactly as tokens carry it in iss, e.g.
	// https://id.example.com. Discovery is read from
	// <Issuer>/.well-known/openid-configuration when first needed.
	Issuer string
	// Audience is this API's identifier, which a token must name in aud: its resource
	// URI when clients ask for it as a resource indicator (RFC 8707), otherwise the
	// client id tokens are issued to.
	Audience string

	// HTTPClient fetches discovery and keys and calls introspection; nil means a client
	// with a 10 s timeout.
	HTTPClient *http.Client
	// ClientID and ClientSecret are the API's own confidential-client credentials, sent
	// to the introspection endpoint (client_secret_basic) to verify opaque tokens.
	// Without them opaque tokens are refused.
	ClientID     string
	ClientSecret string

	// Leeway is the clock skew allowed on exp, nbf, iat and max-age checks; zero allows
	// none. 30 seconds is a sensible value.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Realm is the realm of the WWW-Authenticate challenges; empty means Audience.
	Realm string
	// ACRRank ranks acr values so that RequireACR accepts a stronger level than it names.
	// It returns -1 for values it does not know; those are only matched exactly. nil
	// means OpenIDPLevels, the provider's own order.
	ACRRank func(acr string) int

	// RefetchInterval is the least time between two fetches of the key set; zero means
	// DefaultRefetchInterval. The key set is also refetched when its Cache-Control
	// max-age runs out, but never sooner than this.
	RefetchInterval time.Duration
	// IntrospectionCacheTTL bounds how long an active introspection answer is reused;
	// zero means DefaultIntrospectionCacheTTL, negative turns the cache off (every
	// request then sees a revocation at once).
	IntrospectionCacheTTL time.Duration

	// JWKSURL and IntrospectionURL override the endpoints read from discovery.
	JWKSURL          string
	IntrospectionURL string

	// Logger records why the provider could not be reached; nil discards.
	Logger *slog.Logger
}

// Verifier verifies the provider's access tokens. It is safe for concurrent use, and
// meant to live as long as the API: it caches discovery, the key set and introspection
// answers.
type Verifier struct {
	issuer, audience, realm string
	client                  *http.Client
	clientID, clientSecret  string
	leeway                  time.Duration
	now                     func() time.Time
	rank                    func(string) int
	refetchInterval         time.Duration
	introspectionTTL        time.Duration
	log                     *slog.Logger

	discovery     discovery
	keys          keySet
	introspection introspectionCache
}

// NewVerifier checks cfg and returns a Verifier. It does no I/O: discovery and keys are
// fetched when the first token arrives.
func NewVerifier(cfg Config) (*Verifier, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("rs: issuer %q is not an absolute URL", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("rs: an audience is required")
	}
	v := &Verifier{
		issuer:           cfg.Issuer,
		audience:         cfg.Audience,
		realm:            cfg.Realm,
		client:           cfg.HTTPClient,
		clientID:         cfg.ClientID,
		clientSecret:     cfg.ClientSecret,
		leeway:           cfg.Leeway,
		now:              cfg.Now,
		rank:             cfg.ACRRank,
		refetchInterval:  cfg.RefetchInterval,
		introspectionTTL: cfg.IntrospectionCacheTTL,
		log:              cfg.Logger,
	}
	if v.realm == "" {
		v.realm = v.audience
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.rank == nil {
		v.rank = OpenIDPLevels
	}
	if v.refetchInterval <= 0 {
		v.refetchInterval = DefaultRefetchInterval
	}
	if v.introspectionTTL == 0 {
		v.introspectionTTL = DefaultIntrospectionCacheTTL
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.discovery.jwksURI = cfg.JWKSURL
	v.discovery.introspectionEndpoint = cfg.IntrospectionURL
	v.discovery.done = cfg.JWKSURL != "" && cfg.IntrospectionURL != ""
	return v, nil
}

// ErrInvalidToken is matched (errors.Is) by every error that means the token is not
// acceptable: malformed, badly signed, expired, for another audience, inactive. The
// error is a *TokenError carrying a description for the client.
var ErrInvalidToken = errors.New("rs: invalid token")

// ErrUnavailable means the token could not be checked: the provider's key set or
// introspection endpoint could not be reached and nothing usable was cached. It is the
// API's problem, not the client's: the middleware answers 503.
var ErrUnavailable = errors.New("rs: provider unavailable")

// TokenError is an invalid token, with a short description safe to send to the client
// as the error_description of an RFC 6750 invalid_token challenge.
type TokenError struct {
	Description string
}

func (e *TokenError) Error() string        { return "rs: invalid token: " + e.Description }
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

func invalid(description string) error { return &TokenError{Description: description} }

// Verify checks an access token and returns its claims. A JWS (three dot-separated
// parts) is verified offline as an RFC 9068 JWT access token; anything else is treated
// as opaque and sent to the introspection endpoint (RFC 7662). The error matches
// ErrInvalidToken when the token is unacceptable and ErrUnavailable when it could not
// be checked.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	switch {
	case token == "":
		return nil, invalid("no token")
	case len(token) > maxTokenSize:
		return nil, invalid("the token is too large")
	}
	switch strings.Count(token, ".") {
	case 2:
		return v.verifyJWT(ctx, token)
	case 4:
		return nil, invalid("encrypted tokens are not accepted")
	default:
		return v.introspect(ctx, token)
	}
}

// fetchContext detaches a fetch from the request that triggered it, so a client that
// hangs up does not cancel a fetch every other request is waiting on, and bounds it.
func fetchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), defaultHTTPTimeout)
}
