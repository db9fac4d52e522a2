// Package storage defines the persistence interface of the identity provider and the
// records it stores. It knows nothing of OAuth or OIDC: the idp package maps protocol
// objects onto these records. Backends live in storage/sqlite and storage/postgres and
// must pass the shared suite in storage/conformance.
package storage

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors every backend returns (wrapped or not); check them with errors.Is.
var (
	// ErrNotFound means the record does not exist (or a single-use secret was already
	// consumed or has expired, for the Consume* methods).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists means a unique key (id, email, ...) is taken.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict means a conditional update lost: the row was changed by someone else
	// first (a refresh token already rotated, a code already redeemed).
	ErrConflict = errors.New("storage: conflict")
)

// PoolStats is a snapshot of a backend's connection pool, for monitoring. Open counts
// every connection (acquired or in use plus idle); MaxOpen is the pool's ceiling (0:
// unlimited).
type PoolStats struct {
	Open    int
	InUse   int
	Idle    int
	MaxOpen int
}

// PoolStatser is implemented by backends that can report their connection pool; the
// server exports it as metrics when the store has it.
type PoolStatser interface {
	PoolStats() PoolStats
}

// Storage is everything the provider persists. All methods are safe for concurrent use
// by many goroutines and by several processes sharing one database.
type Storage interface {
	UserStore
	ClientStore
	AuthRequestStore
	SessionStore
	ConsentStore
	TokenStore
	KeyStore
	AuditStore
	RateLimitStore
	AttemptStore
	MFAStore
	SecretStore
	PolicyStore
	DeviceStore
	ResourceStore
	DeviceAuthorizationStore
	PasswordResetStore

	// Migrate applies the embedded migrations not yet applied and returns how many it
	// applied. Safe to run from several processes at once.
	Migrate(ctx context.Context) (applied int, err error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// DeleteExpired removes auth requests, code grants, sessions, tokens, rate-limit
	// windows, signing keys and password-reset links whose expiry is before now, and device authorizations a day
	// after their expiry (a late poll is still answered expired_token). It returns how
	// many rows went.
	DeleteExpired(ctx context.Context, now time.Time) (int64, error)
	// Close releases the database handle.
	Close() error
}

// User is a person who can sign in.
type User struct {
	ID           string
	Email        string // unique, stored lower-cased
	Name         string
	PasswordHash string // argon2id PHC string; never the password
	Disabled     bool
	// Type is the kind of account (e.g. admin, staff, customer); its policy combines
	// with the client's. Empty means the default type.
	Type   string
	Groups []string
	// MFAGraceStarted is when the person was first told to enrol a required factor;
	// MFAGraceLogins counts the logins let through since. Zero when no grace is running.
	MFAGraceStarted time.Time
	MFAGraceLogins  int
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// UserStore persists users.
type UserStore interface {
	// CreateUser inserts u; ErrAlreadyExists when the id or e-mail is taken.
	CreateUser(ctx context.Context, u *User) error
	// GetUser returns the user with that id, or ErrNotFound.
	GetUser(ctx context.Context, id string) (*User, error)
	// GetUserByEmail looks the user up by e-mail (case-insensitive), or ErrNotFound.
	GetUserByEmail(ctx context.Context, email string) (*User, error)
	// ListUsers returns all users ordered by creation time.
	ListUsers(ctx context.Context) ([]User, error)
	// SearchUsers returns at most limit users (limit > 0) whose e-mail or name contains
	// query, ignoring the case of ASCII letters (%, _ and \ in query are plain
	// characters), ordered by e-mail. An empty query matches everyone.
	SearchUsers(ctx context.Context, query string, limit int) ([]User, error)
	// UpdateUser replaces name, e-mail, password hash, disabled flag, type, groups, MFA
	// grace fields and UpdatedAt of the user with u.ID; ErrNotFound when missing,
	// ErrAlreadyExists when the e-mail is taken.
	UpdateUser(ctx context.Context, u *User) error
}

// Client is a relying party registered with the provider.
type Client struct {
	ID                     string
	Name                   string
	SecretHash             []byte // SHA-256 of the secret; empty for public clients
	Public                 bool   // public client: no secret, PKCE S256 mandatory
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string // authorization_code, refresh_token, client_credentials
	Scopes                 []string // scopes the client may request
	SkipConsent            bool     // first-party client: no consent page
	AccessTokenFormat      string   // "jwt" (default) or "opaque"
	IDTokenSigningAlg      string   // "ES256" (default) or "RS256"
	AccessTokenLifetime    time.Duration
	IDTokenLifetime        time.Duration
	RefreshTokenLifetime   time.Duration
	// Policy says what a login to this client must prove.
	Policy MFAPolicy
	// BackchannelLogoutURI receives OIDC Back-Channel Logout tokens; empty for none.
	BackchannelLogoutURI string
	// TokenEndpointAuthMethod is how the client authenticates at the token endpoint:
	// "" (client_secret_basic or client_secret_post for confidential clients, none for
	// public ones) or "private_key_jwt" (RFC 7523), with keys from JWKS or JWKSURI.
	TokenEndpointAuthMethod string
	// JWKS is the client's public key set (JSON), registered by value.
	JWKS string
	// JWKSURI is where the client publishes its public key set.
	JWKSURI string
	// RequirePAR: authorization requests must be pushed first (RFC 9126).
	RequirePAR bool
	CreatedAt  time.Time
}

// AuthMethodPrivateKeyJWT is the TokenEndpointAuthMethod of RFC 7523 client assertions.
const AuthMethodPrivateKeyJWT = "private_key_jwt"

// PushedRequest is a pushed authorization request (RFC 9126).
type PushedRequest struct {
	ID        string // the random part of the request_uri
	ClientID  string
	Params    string // the pushed parameters, form-encoded
	ExpiresAt time.Time
}

// MFAPolicy is what a login must prove, set per client and per account type. The zero
// value is "MFA optional, any factor, no re-check, no remembered devices".
type MFAPolicy struct {
	// MFA is "off" (never ask for a second factor), "optional" (ask when the person has
	// one; the default when empty) or "required".
	MFA string `json:"mfa,omitempty"`
	// Factors lists the factor kinds that count; empty means all.
	Factors []FactorKind `json:"factors,omitempty"`
	// PhishingResistant: only WebAuthn satisfies the second factor.
	PhishingResistant bool `json:"phishing_resistant,omitempty"`
	// MaxAge is the longest time since the last second-factor check; 0 means no limit.
	MaxAge time.Duration `json:"max_age,omitempty"`
	// RememberDevice allows "remember this device" for that long; 0 forbids it.
	RememberDevice time.Duration `json:"remember_device,omitempty"`
}

// ClientStore persists clients.
type ClientStore interface {
	// CreateClient inserts c; ErrAlreadyExists when the id is taken.
	CreateClient(ctx context.Context, c *Client) error
	// GetClient returns the client with that id, or ErrNotFound.
	GetClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns all clients ordered by creation time.
	ListClients(ctx context.Context) ([]Client, error)
	// UpdateClient replaces every field but ID and CreatedAt; ErrNotFound when missing.
	UpdateClient(ctx context.Context, c *Client) error
	// DeleteClient removes the client; ErrNotFound when missing.
	DeleteClient(ctx context.Context, id string) error

	// UseAssertion records that clientID presented the client assertion jti, which
	// expires at expiresAt, atomically across processes: ErrConflict when the same jti
	// of that client is already recorded and not expired at now (a replay).
	UseAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error
	// CreatePushedRequest stores a pushed authorization request; ErrAlreadyExists when
	// the id is taken.
	CreatePushedRequest(ctx context.Context, p *PushedRequest) error
	// ConsumePushedRequest removes and returns the pushed request id of clientID,
	// atomically (a request_uri is used once): ErrNotFound when there is none, it
	// belongs to another client, or it expired before now.
	ConsumePushedRequest(ctx context.Context, id, clientID string, now time.Time) (*PushedRequest, error)
}

// AuthRequest is one /authorize request, from its creation until its code is redeemed.
// The login flow fills the Login part step by step; Login.Done turns true only when
// every step the request needs is complete.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	State               string
	Nonce               string
	Scopes              []string
	ResponseType        string
	ResponseMode        string
	Prompt              []string
	MaxAge              *int64   // seconds; nil when the request had none
	ACRValues           []string // voluntary acr values (acr_values)
	EssentialACR        []string // acr values of an essential acr claim (claims parameter)
	LoginHint           string
	UILocales           []string
	CodeChallenge       string
	CodeChallengeMethod string
	HintUserID          string // sub of a valid id_token_hint
	// Resources are the resource indicators (RFC 8707) the request was authorized for,
	// in the order requested; empty when it named none.
	Resources []string
	CreatedAt time.Time
	ExpiresAt time.Time

	Login AuthLogin

	CodeHash      string // hex SHA-256 of the issued code; empty until a code is issued
	CodeExpiresAt time.Time
}

// AuthLogin is what the login flow has established for an AuthRequest.
type AuthLogin struct {
	UserID    string
	SessionID string
	AuthTime  time.Time
	AMR       []string
	ACR       string
	Done      bool
	// Grace: this sign-in went on without a factor its policy requires, as one of the
	// person's grace logins (counted once per sign-in).
	Grace bool
}

// AuthRequestFinish is what an SSO sign-in answered within its /authorize request
// writes (FinishAuthRequest): one transaction where there were three, and on
// PostgreSQL one batch of round trips instead of four.
type AuthRequestFinish struct {
	// Request is the finished request, with its login record and code.
	Request *AuthRequest
	// SessionClient, when set, is recorded as a client the session Request.Login.SessionID
	// signed in to, as AddSessionClient does; a session that no longer exists records
	// nothing, and is not an error (it was signed out meanwhile).
	SessionClient string
	// Events are appended to the audit chain in the same transaction, in order; each gets
	// its ID, PrevHash and Hash as AppendAudit sets them.
	Events []*AuditEvent
}

// AuthRequestStore persists authorization requests, their codes and what each redeemed
// code issued (CodeGrant).
type AuthRequestStore interface {
	// CreateAuthRequest inserts r.
	CreateAuthRequest(ctx context.Context, r *AuthRequest) error
	// FinishAuthRequest stores the writes of a sign-in finished within one request, in
	// one transaction: the request (inserted as CreateAuthRequest does), the session's
	// client and the audit events. A failure stores none of them.
	FinishAuthRequest(ctx context.Context, f *AuthRequestFinish) error
	// GetAuthRequest returns the request with that id, or ErrNotFound. Expiry is the
	// caller's to check.
	GetAuthRequest(ctx context.Context, id string) (*AuthRequest, error)
	// SetAuthRequestLogin replaces the Login part of request id; ErrNotFound when missing.
	SetAuthRequestLogin(ctx context.Context, id string, l AuthLogin) error
	// SaveAuthCode records the hash of a code issued for request id; a later call
	// replaces the earlier code. ErrNotFound when the request is missing.
	SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error
	// ConsumeAuthCode atomically redeems a code: it returns the request whose code hash
	// matches, is unexpired at now and was not redeemed before, and marks it redeemed so
	// that no other caller (in any process) gets it. In the same atomic step it records a
	// CodeGrant for the code (RedeemedAt now, ExpiresAt the code's expiry); a code hash
	// that has a CodeGrant is never redeemed again. ErrNotFound otherwise.
	ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (*AuthRequest, error)
	// DeleteAuthRequest removes request id; deleting a missing request is not an error.
	// The CodeGrant of its code stays.
	DeleteAuthRequest(ctx context.Context, id string) error
	// IssueCodeTokens stores the tokens issued for the redeemed code codeHash — at and,
	// when rt is not nil, rt as the first member of a new refresh family, at being issued
	// with it — and records them in the code's CodeGrant (whose ExpiresAt grows to the
	// latest of their expiries), in one transaction. If the grant has already been
	// replayed (RevokeCodeGrant) or given tokens, it stores nothing and returns
	// ErrConflict; ErrNotFound when the code has no grant.
	IssueCodeTokens(ctx context.Context, codeHash string, at *AccessToken, rt *RefreshToken) error
	// RevokeCodeGrant handles a replay of the redeemed code codeHash (RFC 6749 §4.1.2): in
	// one transaction it sets the grant's ReplayedAt to now (unless set before), deletes
	// the access token the grant records and revokes its refresh family as
	// RevokeRefreshFamily does, and returns the grant as it now is. Once it has run,
	// IssueCodeTokens for that code fails, so tokens stored before it are revoked and
	// none are stored after it. ErrNotFound when the code has no grant.
	RevokeCodeGrant(ctx context.Context, codeHash string, now time.Time) (*CodeGrant, error)
}

// CodeGrant is what the redemption of one authorization code issued. It outlives the
// AuthRequest, so that a replay of the code can revoke the tokens (RFC 6749 §4.1.2),
// and expires with the code and the tokens first issued with it.
type CodeGrant struct {
	CodeHash      string // hex SHA-256 of the code
	ClientID      string
	UserID        string
	AccessTokenID string // empty until IssueCodeTokens
	FamilyID      string // refresh family issued with the code; empty if none
	RedeemedAt    time.Time
	ReplayedAt    time.Time // zero until the code is presented again
	ExpiresAt     time.Time
}

// Session is an SSO session: a browser that has signed a person in.
type Session struct {
	ID         string // public id, the "sid" claim
	TokenHash  string // hex SHA-256 of the cookie value; the value itself is never stored
	UserID     string
	AuthTime   time.Time    // the latest authentication (password or second factor)
	PasswordAt time.Time    // when the password was last verified
	MFAAt      time.Time    // when a second factor was last verified; zero if never
	Factors    []FactorKind // factor kinds verified in this session
	AMR        []string
	ACR        string
	// SignIn lists what the session's sign-in used, in order: SignInPassword (or
	// SignInPasskey), the kinds of the second factors verified (string(FactorKind)), and
	// SignInRememberedDevice when a remembered device stood in for the second factor. A
	// factor enrolled after signing in is not part of it. Empty for sessions created
	// before it was recorded.
	SignIn     []string
	IP         string
	UserAgent  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute expiry
}

// What a session's sign-in used (Session.SignIn), beside the factor kinds.
const (
	SignInPassword         = "password"
	SignInPasskey          = "passkey"
	SignInRememberedDevice = "remembered_device"
)

// SessionAuth is what an authentication changes in a session.
type SessionAuth struct {
	AuthTime   time.Time
	PasswordAt time.Time
	MFAAt      time.Time
	Factors    []FactorKind
	AMR        []string
	ACR        string
	SignIn     []string // see Session.SignIn
	// TokenHash, when not empty, replaces the session's cookie hash: the cookie is
	// rotated whenever the authentication level changes, so a cookie value from before
	// (fixed or stolen) never carries the new level.
	TokenHash string
}

// SessionStore persists SSO sessions.
type SessionStore interface {
	// CreateSession inserts s.
	CreateSession(ctx context.Context, s *Session) error
	// GetSessionByTokenHash returns the session whose cookie hashes to tokenHash, or
	// ErrNotFound. Expiry is the caller's to check.
	GetSessionByTokenHash(ctx context.Context, tokenHash string) (*Session, error)
	// GetSession returns the session with that id, or ErrNotFound.
	GetSession(ctx context.Context, id string) (*Session, error)
	// UpdateSessionAuth records a new authentication in session id (AuthTime, PasswordAt,
	// MFAAt, Factors, AMR, ACR and SignIn of a, and TokenHash when set); ErrNotFound when
	// missing.
	UpdateSessionAuth(ctx context.Context, id string, a SessionAuth) error
	// AddSessionClient records that session id signed the person in to clientID (for
	// back-channel logout); adding the same pair twice is not an error.
	AddSessionClient(ctx context.Context, id, clientID string) error
	// ListSessionClients returns the clients session id signed in to.
	ListSessionClients(ctx context.Context, id string) ([]string, error)
	// TouchSession sets LastSeenAt of session id.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// ListUserSessions returns the sessions of a user, newest first.
	ListUserSessions(ctx context.Context, userID string) ([]Session, error)
	// ListClientSessions returns the sessions that signed in to clientID, newest first.
	ListClientSessions(ctx context.Context, clientID string) ([]Session, error)
	// DeleteSession removes session id; deleting a missing session is not an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions removes every session of a user and returns how many went.
	DeleteUserSessions(ctx context.Context, userID string) (int64, error)
}

// Consent is the scopes a person has granted a client.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
}

// ConsentStore persists consent grants.
type ConsentStore interface {
	// GetConsent returns the grant of user to client, or ErrNotFound.
	GetConsent(ctx context.Context, userID, clientID string) (*Consent, error)
	// SaveConsent inserts or replaces the grant for (UserID, ClientID).
	SaveConsent(ctx context.Context, c *Consent) error
	// DeleteConsent removes a grant; a missing grant is not an error.
	DeleteConsent(ctx context.Context, userID, clientID string) error
}

// AccessToken is the server-side record of an issued access token (the jti of a JWT
// access token, or the id inside an opaque one). Revoking deletes the record.
type AccessToken struct {
	ID        string
	ClientID  string
	UserID    string // empty for client_credentials
	Audience  []string
	Scopes    []string
	AuthTime  time.Time
	AMR       []string
	ACR       string
	SessionID string
	FamilyID  string // refresh-token family it was issued with; empty if none
	CreatedAt time.Time
	ExpiresAt time.Time
}

// RefreshToken is one member of a refresh-token family. Each redemption rotates it: the
// presented token is marked RotatedAt and a new member is issued. Presenting a rotated
// token again is reuse, and revokes the whole family.
type RefreshToken struct {
	ID        string
	TokenHash string // hex SHA-256 of the token value
	FamilyID  string
	ClientID  string
	UserID    string
	Audience  []string
	Scopes    []string
	AuthTime  time.Time
	AMR       []string
	ACR       string
	SessionID string
	// Resources are the resource indicators (RFC 8707) its grant was authorized for; the
	// access tokens it mints are for some or all of them. Empty when the grant named none.
	Resources []string
	CreatedAt time.Time
	ExpiresAt time.Time
	RotatedAt time.Time // zero while current
	RevokedAt time.Time // zero unless revoked
	// SuccessorID and SuccessorSealed are set when the token is rotated: the id of the
	// token that replaced it and that token's value, sealed by the caller (never
	// plaintext). A client that lost the answer of a rotation and retries within the
	// reuse grace window is given the same successor again.
	SuccessorID     string
	SuccessorSealed []byte
}

// TokenIssue is one issue of tokens with the audit events that record it, written by
// IssueTokens all or nothing: a token is never stored without its event, nor an event
// without its token.
type TokenIssue struct {
	// CodeHash, when set, is the redeemed authorization code the tokens are issued for:
	// they are recorded in its CodeGrant as IssueCodeTokens does (ErrConflict when the
	// grant was replayed or already given tokens, ErrNotFound when there is none).
	CodeHash string
	// RotateID, when set, is the refresh token this issue rotates at RotatedAt, as
	// RotateRefreshToken does (ErrConflict when it is no longer current, ErrNotFound when
	// missing); Refresh is its successor, and SuccessorSealed (may be empty) is stored on
	// the rotated token with Refresh.ID.
	RotateID        string
	RotatedAt       time.Time
	SuccessorSealed []byte
	// RequireCurrent, when set, names a refresh token that must still be current (neither
	// rotated nor revoked) for the issue to go ahead: ErrConflict otherwise. A retry within
	// the reuse grace window issues an access token beside a successor issued before.
	RequireCurrent string
	// RevokeFamily, when set, is a refresh family revoked at RevokedAt with the issue, as
	// RevokeRefreshFamily does (a detected reuse, recorded by its event); Revoked is set
	// to how many refresh tokens changed.
	RevokeFamily string
	RevokedAt    time.Time
	Revoked      int64
	// DeleteAccessToken, when set, is an access token deleted (revoked) with the issue; a
	// missing one is not an error.
	DeleteAccessToken string
	// DeleteAuthRequest, when set, is the id of an auth request deleted with the issue (the
	// request whose code the tokens are exchanged for: one transaction fewer per exchange).
	DeleteAuthRequest string
	// Refresh (a new family member) and Access are the tokens; either may be nil.
	Refresh *RefreshToken
	Access  *AccessToken
	// Events are appended to the audit chain in the same transaction, in order; each gets
	// its ID, PrevHash and Hash as AppendAudit sets them.
	Events []*AuditEvent
	// WhileWriting, when set, is work the caller must finish before it answers but that
	// the write does not depend on: signing the access token. The backend runs it where
	// it overlaps the write rather than adding to it — SQLite once the transaction has
	// committed, while the write-ahead log is flushed (not when the issue failed);
	// PostgreSQL once the issue is queued, while its transaction is sent and committed
	// (also when the issue then fails). IssueTokens returns once both are done: the
	// issue's error, else WhileWriting's (the issue then stays written).
	WhileWriting func() error
}

// TokenStore persists access and refresh tokens.
type TokenStore interface {
	// CreateAccessToken inserts at.
	CreateAccessToken(ctx context.Context, at *AccessToken) error
	// GetAccessToken returns the access token with that id, or ErrNotFound (also once
	// revoked). Expiry is the caller's to check.
	GetAccessToken(ctx context.Context, id string) (*AccessToken, error)
	// DeleteAccessToken revokes an access token; a missing one is not an error.
	DeleteAccessToken(ctx context.Context, id string) error
	// CreateRefreshToken inserts the first member of a new family together with the
	// access token issued beside it, in one transaction.
	CreateRefreshToken(ctx context.Context, rt *RefreshToken, at *AccessToken) error
	// RotateRefreshToken atomically marks refresh token oldID rotated at now — only if it
	// is neither rotated nor revoked — and inserts next and its access token, in one
	// transaction. If oldID was already rotated or revoked it changes nothing and
	// returns ErrConflict; ErrNotFound when oldID does not exist.
	RotateRefreshToken(ctx context.Context, oldID string, now time.Time, next *RefreshToken, at *AccessToken) error
	// GetRefreshToken returns the refresh token with that id, or ErrNotFound.
	GetRefreshToken(ctx context.Context, id string) (*RefreshToken, error)
	// GetRefreshTokenByHash returns the refresh token whose value hashes to tokenHash,
	// rotated and revoked ones included, or ErrNotFound.
	GetRefreshTokenByHash(ctx context.Context, tokenHash string) (*RefreshToken, error)
	// RevokeRefreshFamily marks every member of the family revoked at now and deletes the
	// access tokens issued with the family. Returns how many refresh tokens changed.
	RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (int64, error)
	// RevokeUserTokens revokes every refresh family and deletes every access token of a user.
	RevokeUserTokens(ctx context.Context, userID string, now time.Time) error
	// ClearRefreshSuccessors forgets the sealed successor value (SuccessorSealed) of every
	// refresh token rotated before rotatedBefore, keeping its SuccessorID, and returns how
	// many it cleared. The value serves only retries within the reuse grace window; the
	// cleanup clears it once the window is over, so that the value of a token that may
	// still be current does not stay at rest, sealed under a key that may since have been
	// rotated out.
	ClearRefreshSuccessors(ctx context.Context, rotatedBefore time.Time) (int64, error)
	// IssueTokens stores w — its tokens, the rotation or code grant it claims, and its
	// audit events — in one transaction: all of it or, with an error, none of it. Backends
	// may commit the issues of concurrent callers together (group commit); one caller's
	// failed issue never fails another's, and IssueTokens returns only once w is durable.
	IssueTokens(ctx context.Context, w *TokenIssue) error
}

// FlushCounter is implemented by backends that make their commits durable themselves
// (SQLite flushes its write-ahead log after committing): how many flushes they have run
// and the time spent in them, for the openidp_store_flushes_total and
// openidp_store_flush_seconds_total metrics and the load tool. The disk's flush time
// bounds how fast such a backend writes.
type FlushCounter interface {
	Flushes() (n int64, spent time.Duration)
}

// CommitCounter is implemented by backends that group writes into shared transactions:
// Commits is how many write transactions the store's writer has committed, for the
// openidp_store_commits_total metric and the load tool.
type CommitCounter interface {
	Commits() int64
}

// SigningKey is a token-signing key pair. The private key is sealed (encrypted) by the
// caller before it reaches storage.
type SigningKey struct {
	ID            string
	Algorithm     string // ES256, RS256
	PrivateSealed []byte // encrypted private key
	PublicJWK     []byte // public key as JWK JSON
	CreatedAt     time.Time
	// ActivatesAt is when the key starts signing; until then it is only published, so
	// that verifiers holding a cached key set know it before they meet a token it signed.
	// Zero means CreatedAt.
	ActivatesAt time.Time
	RetiredAt   time.Time // zero while it signs or waits to; from then on a newer key signs
	ExpiresAt   time.Time // zero until retired; after it, the key leaves the JWKS
}

// Activation returns when k starts signing: ActivatesAt, or CreatedAt when that is zero.
func (k *SigningKey) Activation() time.Time {
	if k.ActivatesAt.IsZero() {
		return k.CreatedAt
	}
	return k.ActivatesAt
}

// KeyStore persists signing keys.
type KeyStore interface {
	// ListSigningKeys returns every stored key, newest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// UpdateSigningKeySealed replaces the sealed private key of key id (re-encryption
	// under a new encryption key); ErrNotFound when missing.
	UpdateSigningKeySealed(ctx context.Context, id string, sealed []byte) error
	// AddSigningKey inserts k and, in the same transaction, retires every other key with
	// k's algorithm that is not retired by k.Activation(): RetiredAt = k.Activation(),
	// ExpiresAt = retiredExpiry. So the key k replaces signs until k does, and a key
	// still waiting to sign is replaced before it ever does.
	AddSigningKey(ctx context.Context, k *SigningKey, retiredExpiry time.Time) error
}

// AuditEvent is one entry of the audit trail.
type AuditEvent struct {
	ID        int64 // assigned by storage, increasing
	Time      time.Time
	Type      string // e.g. login.password, token.issue, token.refresh.reuse
	UserID    string
	ClientID  string
	IP        string
	UserAgent string
	Result    string // success | failure
	Reason    string
	// The ids the event concerns; empty when none. TokenID is an access or refresh
	// token id, FamilyID a refresh family, SessionID an SSO session, FactorID a second
	// factor.
	TokenID   string
	FamilyID  string
	SessionID string
	FactorID  string
	// PrevHash and Hash chain the events (set by storage, see LinkAudit): Hash is
	// KeyedChainHash(key, PrevHash, e) under the audit chain key named by ChainKey, or
	// ChainHash(PrevHash, e) for the events written before the chain was keyed (ChainKey
	// ""); PrevHash is the Hash of the event before. Editing or deleting a row breaks the
	// chain, and without the key it cannot be recomputed.
	PrevHash string
	Hash     string
	// ChainKey is the id of the audit chain key that keyed Hash ("" for unkeyed events).
	ChainKey string
}

// AuditHead is the newest audit event, as a checkpoint signs it.
type AuditHead struct {
	EventID  int64
	Hash     string
	ChainKey string
	// Count is how many events the trail holds up to and including EventID.
	Count int64
}

// AuditCheckpoint is a signed statement that the audit chain contained event EventID
// with hash Hash (see idp/audit.Checkpoint). JWS is the compact JWS the provider signed;
// EventID and Hash repeat its claims for lookups.
type AuditCheckpoint struct {
	ID        int64 // assigned by storage, increasing
	EventID   int64
	Hash      string
	CreatedAt time.Time
	JWS       string
}

// AuditFilter selects audit events; zero fields do not filter.
type AuditFilter struct {
	UserID   string
	ClientID string
	Type     string
	TokenID  string
	Since    time.Time
	// Until, when set, keeps events that happened before it.
	Until time.Time
	// BeforeID, when positive, keeps events with a smaller id: the next page of a
	// newest-first listing starts before the oldest id of the page shown.
	BeforeID int64
	Limit    int // 0 means no limit
}

// AuditStore persists the audit trail. Events are append-only.
type AuditStore interface {
	// AppendAudit inserts e, setting e.ID, e.PrevHash (the Hash of the newest event, or
	// "" for the first), e.ChainKey and e.Hash with LinkAudit under the store's audit
	// chain key (AuditChainKeyer). Appends are serialised across processes, so the chain
	// never forks. Without a key after a keyed event it fails with ErrAuditKeyRequired.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// DeleteAuditBefore removes events older than t (retention) and returns how many.
	DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error)
	// ListAudit returns matching events, oldest first (the newest Limit when Limit > 0);
	// TokenID, when set in f, matches events of that token.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// AuditHead returns the newest event and how many events the trail holds up to it,
	// read consistently; ErrNotFound when the trail is empty.
	AuditHead(ctx context.Context) (AuditHead, error)
	// AddAuditCheckpoint stores c and sets c.ID.
	AddAuditCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	// ListAuditCheckpoints returns every checkpoint, oldest (lowest id) first.
	ListAuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error)
	// DeleteAuditCheckpointsBefore removes the checkpoints of events with an id below
	// eventID (their events were removed by retention) and returns how many went.
	DeleteAuditCheckpointsBefore(ctx context.Context, eventID int64) (int64, error)
}

// RateLimitStore keeps fixed-window counters shared by every process.
type RateLimitStore interface {
	// HitRateLimit adds one to the counter of key for the window that contains now (a
	// window starts at the first hit and lasts window) and returns the new count.
	HitRateLimit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// RateLimitCount returns the counter of key if its window is still open at now, else 0.
	RateLimitCount(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// ResetRateLimit deletes the counter of key.
	ResetRateLimit(ctx context.Context, key string) error
}

// AttemptRule says how many attempts one key of the regulator allows.
type AttemptRule struct {
	// Limit is the most attempts reserved within one window (without a window: until
	// the key is reset). It must be at least 1.
	Limit int
	// Window is how long a count lasts from its first attempt; 0 means the count runs
	// until the key is reset (consecutive failures).
	Window time.Duration
	// Back-off: the attempt that brings the count to BackoffAfter blocks the key for
	// BackoffBase, each further one for twice as long as the one before, at most
	// BackoffMax. BackoffAfter 0 means no back-off.
	BackoffAfter int
	BackoffBase  time.Duration
	BackoffMax   time.Duration
}

// Backoff returns how long the key stays blocked after the attempt that brought its count
// to n.
func (r AttemptRule) Backoff(n int) time.Duration {
	if r.BackoffAfter <= 0 || n < r.BackoffAfter || r.BackoffBase <= 0 {
		return 0
	}
	d := r.BackoffBase
	for i := r.BackoffAfter; i < n && (r.BackoffMax <= 0 || d < r.BackoffMax) && d < time.Duration(1)<<61; i++ {
		d *= 2
	}
	if r.BackoffMax > 0 && d > r.BackoffMax {
		d = r.BackoffMax
	}
	return d
}

// AttemptResult is the outcome of ReserveAttempt.
type AttemptResult struct {
	// Reserved: the attempt may go ahead. False: the key refused it.
	Reserved bool
	// Count is the number of attempts in the key's window, this one included when it
	// was reserved.
	Count int
	// BlockedUntil is when the key accepts the next attempt (the back-off), or, when it
	// refused because its Limit is used up, when its window ends. Zero when the key is
	// not blocked, or is blocked until it is reset (a rule without a window).
	BlockedUntil time.Time
	// WindowEnd is when the key's current window ends; zero for a rule without one.
	WindowEnd time.Time
}

// AttemptStore keeps the regulator's attempt counters, shared by every process. A
// guess at a secret reserves its attempt here before the secret is checked, so that
// concurrent guesses — in one process or many — can never check more than a rule
// allows.
type AttemptStore interface {
	// ReserveAttempt atomically, in one conditional statement, adds one attempt to key if
	// rule allows it at now: the key is not blocked by its back-off, and its window has
	// ended or holds fewer than rule.Limit attempts. A reserved attempt sets the back-off
	// for the count it reached (rule.Backoff). A refused one changes nothing.
	ReserveAttempt(ctx context.Context, key string, rule AttemptRule, now time.Time) (AttemptResult, error)
	// ReleaseAttempt gives one reserved attempt of key, reserved under rule, back (it was
	// not a failure); when the count drops below rule.BackoffAfter, the back-off that
	// attempt set is lifted. Releasing a missing key is not an error.
	ReleaseAttempt(ctx context.Context, key string, rule AttemptRule) error
	// ResetAttempts deletes the counter of key (a success ends consecutive failures, or
	// an administrator unlocks). Resetting a missing key is not an error.
	ResetAttempts(ctx context.Context, key string) error
	// ResetAttemptsPrefix deletes every counter whose key starts with prefix and returns
	// how many went (an administrator unlocks every counter of an account).
	ResetAttemptsPrefix(ctx context.Context, prefix string) (int64, error)
}

// FactorKind names a kind of second factor. The package mfa implements each kind, and
// the package consent decides which kinds count for a sign-in.
type FactorKind string

// The kinds of second factor, as stored.
const (
	FactorTOTP     FactorKind = "totp"
	FactorBackup   FactorKind = "backup"
	FactorEmail    FactorKind = "email"
	FactorSMS      FactorKind = "sms"
	FactorWebAuthn FactorKind = "webauthn"
)

// JoinFactorKinds joins kinds with sep, as strings.Join joins strings.
func JoinFactorKinds(kinds []FactorKind, sep string) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, sep)
}

// Factor is a second factor a person has enrolled (or is enrolling). Backup codes are a
// Factor of kind FactorBackup whose codes live in BackupCode rows.
type Factor struct {
	ID        string
	UserID    string
	Kind      FactorKind
	Name      string // the person's label, e.g. "YubiKey 5" or "Work phone"
	Target    string // e-mail address or E.164 phone number for email/sms
	Secret    []byte // sealed: the TOTP seed; WebAuthn: the credential record (JSON)
	Confirmed bool   // enrolment finished (code typed, address verified, key registered)
	// LastStep is the last TOTP time step accepted (replay protection); 0 if none.
	LastStep   int64
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used to sign in
}

// Challenge is a pending check: an e-mail or SMS code that was sent, or a WebAuthn
// ceremony's session data. It is single-use and allows a bounded number of attempts.
type Challenge struct {
	ID         string
	UserID     string
	FactorID   string
	Kind       string // a FactorKind (email, sms, webauthn), or a kind of the caller's such as a recovery link
	CodeHash   string // keyed hash of the code sent (email/sms); empty otherwise
	Data       []byte // kind-specific state, e.g. WebAuthn session data (JSON)
	Attempts   int
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ConsumedAt time.Time // zero until used
}

// MFAStore persists second factors, backup codes, challenges and failure counters.
type MFAStore interface {
	// CreateFactor inserts f; ErrAlreadyExists when the id is taken.
	CreateFactor(ctx context.Context, f *Factor) error
	// GetFactor returns the factor with that id, or ErrNotFound.
	GetFactor(ctx context.Context, id string) (*Factor, error)
	// ListFactors returns the factors of a user (confirmed or not), most recently used
	// first (never-used ones after, newest first).
	ListFactors(ctx context.Context, userID string) ([]Factor, error)
	// ListAllFactors returns every factor of every user (for re-encryption).
	ListAllFactors(ctx context.Context) ([]Factor, error)
	// UpdateFactor replaces Name, Target, Secret, Confirmed and LastUsedAt of f.ID;
	// ErrNotFound when missing. It never changes LastStep (see AdvanceTOTPStep).
	UpdateFactor(ctx context.Context, f *Factor) error
	// DeleteFactor removes factor id of user userID (and, for kind backup, its codes);
	// ErrNotFound when no such factor belongs to that user.
	DeleteFactor(ctx context.Context, userID, id string) error
	// DeleteUserFactors removes every factor and backup code of a user; returns how many
	// factors went.
	DeleteUserFactors(ctx context.Context, userID string) (int64, error)
	// AdvanceTOTPStep atomically records step as the last accepted time step of factor
	// id, only if step is greater than the one stored. ErrConflict when it is not (a
	// replayed or older code), ErrNotFound when the factor does not exist.
	AdvanceTOTPStep(ctx context.Context, id string, step int64, usedAt time.Time) error

	// ReplaceBackupCodes deletes every backup code of the user and inserts hashes, in
	// one transaction.
	ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error
	// ConsumeBackupCode atomically marks the user's unused code with that hash used;
	// ErrNotFound when there is none (wrong or already used).
	ConsumeBackupCode(ctx context.Context, userID, hash string, now time.Time) error
	// CountBackupCodes returns how many unused backup codes the user has.
	CountBackupCodes(ctx context.Context, userID string) (int, error)

	// CreateChallenge inserts c.
	CreateChallenge(ctx context.Context, c *Challenge) error
	// ReplaceChallenge inserts c, or when a challenge with c.ID exists replaces every
	// field of it with c's (its attempts and consumption included): one challenge per
	// id, overwritten, so that a caller that names challenges after something bounded
	// (a passkey sign-in's auth request) stores a bounded number of rows.
	ReplaceChallenge(ctx context.Context, c *Challenge) error
	// AttemptChallenge atomically counts one attempt at challenge id and returns it
	// (with Attempts including this one), only while it is unconsumed, unexpired at now
	// and has had fewer than maxAttempts attempts; ErrNotFound otherwise.
	AttemptChallenge(ctx context.Context, id string, now time.Time, maxAttempts int) (*Challenge, error)
	// ConsumeChallenge atomically marks challenge id consumed; ErrNotFound when it is
	// missing or was consumed already.
	ConsumeChallenge(ctx context.Context, id string, now time.Time) error

	// IncrementFailures adds one to the consecutive-failure counter of key and returns
	// the new count.
	IncrementFailures(ctx context.Context, key string, now time.Time) (int, error)
	// GetFailures returns the counter of key and until when it is locked (zero values
	// when there is no counter).
	GetFailures(ctx context.Context, key string) (failures int, lockedUntil time.Time, err error)
	// SetLockedUntil records until when key is locked; ErrNotFound without a counter.
	SetLockedUntil(ctx context.Context, key string, until time.Time) error
	// ResetFailures deletes the counter of key.
	ResetFailures(ctx context.Context, key string) error
}

// SecretStore keeps named server secrets (sealed random keys, e.g. the key that hashes
// backup codes), so that every process uses the same ones and re-encryption under a new
// encryption key does not change them.
type SecretStore interface {
	// GetOrCreateSecret returns the sealed secret called name; if there is none it stores
	// sealed and returns it. Concurrent callers all get the same value.
	GetOrCreateSecret(ctx context.Context, name string, sealed []byte) ([]byte, error)
	// ListSecrets returns every sealed secret by name (for re-encryption).
	ListSecrets(ctx context.Context) (map[string][]byte, error)
	// UpdateSecret replaces the sealed value of name; ErrNotFound when missing.
	UpdateSecret(ctx context.Context, name string, sealed []byte) error
}

// PolicyStore persists per-account-type MFA policies.
type PolicyStore interface {
	// SetTypePolicy inserts or replaces the policy of accountType.
	SetTypePolicy(ctx context.Context, accountType string, p MFAPolicy) error
	// GetTypePolicy returns the policy of accountType, or ErrNotFound.
	GetTypePolicy(ctx context.Context, accountType string) (*MFAPolicy, error)
	// ListTypePolicies returns every account-type policy by type.
	ListTypePolicies(ctx context.Context) (map[string]MFAPolicy, error)
	// DeleteTypePolicy removes the policy of accountType; a missing one is not an error.
	DeleteTypePolicy(ctx context.Context, accountType string) error
}

// Device is a browser a person asked to remember: its cookie skips the second factor
// (where the client's policy allows) for that person only, until it expires or is revoked.
type Device struct {
	ID         string
	UserID     string
	TokenHash  string // hex SHA-256 of the cookie value
	Name       string // from the user agent, e.g. "Chrome on Linux"
	IP         string // where it was remembered
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
}

// DeviceStore persists trusted devices.
type DeviceStore interface {
	// CreateDevice inserts d.
	CreateDevice(ctx context.Context, d *Device) error
	// GetDeviceByTokenHash returns the device whose cookie hashes to tokenHash, or
	// ErrNotFound. Expiry is the caller's to check.
	GetDeviceByTokenHash(ctx context.Context, tokenHash string) (*Device, error)
	// TouchDevice sets LastUsedAt of device id.
	TouchDevice(ctx context.Context, id string, at time.Time) error
	// ListUserDevices returns a user's devices, newest first.
	ListUserDevices(ctx context.Context, userID string) ([]Device, error)
	// DeleteDevice removes device id of user userID; ErrNotFound when no such device
	// belongs to that user.
	DeleteDevice(ctx context.Context, userID, id string) error
	// DeleteUserDevices removes every device of a user and returns how many went.
	DeleteUserDevices(ctx context.Context, userID string) (int64, error)
}

// Resource is a protected resource registered for resource indicators (RFC 8707): a
// client that names its URI when it asks for a token gets an access token whose
// audience is that resource.
type Resource struct {
	// URI identifies the resource: an absolute URI without a fragment (RFC 8707 §2),
	// compared exactly.
	URI  string
	Name string
	// AllowedClients are the client ids that may obtain tokens for the resource. The
	// list is explicit: empty means no client may.
	AllowedClients []string
	// RequiredScopes must all be among the scopes of a token issued for the resource.
	RequiredScopes []string
	CreatedAt      time.Time
}

// ResourceStore persists registered resources.
type ResourceStore interface {
	// CreateResource inserts r; ErrAlreadyExists when the URI is taken.
	CreateResource(ctx context.Context, r *Resource) error
	// GetResource returns the resource with that URI, or ErrNotFound.
	GetResource(ctx context.Context, uri string) (*Resource, error)
	// ListResources returns every resource ordered by creation time.
	ListResources(ctx context.Context) ([]Resource, error)
	// DeleteResource removes the resource; ErrNotFound when missing.
	DeleteResource(ctx context.Context, uri string) error
}

// DeviceAuthorizationState is where a device authorization (RFC 8628) stands.
type DeviceAuthorizationState string

const (
	DeviceAuthPending  DeviceAuthorizationState = "pending"  // waiting for the person
	DeviceAuthApproved DeviceAuthorizationState = "approved" // signed in and consented; tokens not yet issued
	DeviceAuthDenied   DeviceAuthorizationState = "denied"   // the person (or the policy) refused
	DeviceAuthConsumed DeviceAuthorizationState = "consumed" // tokens were issued once
)

// DeviceAuthorization is one device authorization request (RFC 8628): a device code the
// device polls with and a user code the person types on the device page. Both are stored
// only as hashes (the user code as a keyed MAC: it is short).
type DeviceAuthorization struct {
	ID             string
	DeviceCodeHash string
	UserCodeHash   string
	ClientID       string
	Scopes         []string
	State          DeviceAuthorizationState
	// Login is the sign-in that approved it (UserID, SessionID, AuthTime, AMR, ACR).
	Login      AuthLogin
	LastPollAt time.Time // zero before the first poll
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// DeviceAuthorizationStore keeps device authorizations (RFC 8628).
type DeviceAuthorizationStore interface {
	// CreateDeviceAuthorization inserts d; ErrAlreadyExists when its id or either hash is taken.
	CreateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization) error
	// GetDeviceAuthorizationByUserCode returns the authorization whose user code hashes
	// to userCodeHash, or ErrNotFound.
	GetDeviceAuthorizationByUserCode(ctx context.Context, userCodeHash string) (*DeviceAuthorization, error)
	// PollDeviceAuthorization records a poll with the device code at now and returns the
	// authorization. ErrConflict (and nothing recorded) when the previous recorded poll
	// was less than interval before now; ErrNotFound when the code is unknown.
	PollDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time, interval time.Duration) (*DeviceAuthorization, error)
	// ConsumeDeviceAuthorization moves an approved, unexpired authorization to consumed in
	// one conditional statement and returns it: of any number of concurrent callers (in
	// any process) exactly one gets it, everyone else ErrNotFound.
	ConsumeDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time) (*DeviceAuthorization, error)
	// ApproveDeviceAuthorization records l and moves a pending, unexpired authorization
	// to approved; DenyDeviceAuthorization moves a pending one to denied. Both return
	// ErrNotFound when id is unknown, or not pending (or expired) any more.
	ApproveDeviceAuthorization(ctx context.Context, id string, l AuthLogin, now time.Time) error
	DenyDeviceAuthorization(ctx context.Context, id string, now time.Time) error
}

// EscapeLike escapes the wildcards of a SQL LIKE pattern (%, _) and the escape
// character itself with a backslash, for a LIKE ... ESCAPE '\' that matches s literally.
func EscapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// PasswordReset is a password-reset link sent by e-mail ("Forgot your password?"). The
// link's token is stored only as a hash. A new password posted with the link waits here
// (PendingHash, an argon2id hash) until the person has passed their second factor;
// CompletePasswordReset then makes it the account's password.
type PasswordReset struct {
	ID        string
	UserID    string
	TokenHash string // hex SHA-256 of the link's token
	// AuthRequestID is the sign-in the person came from, to resume afterwards; may be empty.
	AuthRequestID string
	// PendingID names the pending password (a random id, new at every
	// SetPasswordResetPending); PendingHash is its argon2id hash. Empty until a new
	// password is posted.
	PendingID   string
	PendingHash string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	ConsumedAt  time.Time // zero until used (or invalidated by another link's use)
}

// PasswordResetStore keeps password-reset links.
type PasswordResetStore interface {
	// CreatePasswordReset inserts r; ErrAlreadyExists when its id or token hash is taken.
	CreatePasswordReset(ctx context.Context, r *PasswordReset) error
	// GetPasswordReset returns the link whose token hashes to tokenHash, or ErrNotFound.
	// Expiry and ConsumedAt are the caller's to check.
	GetPasswordReset(ctx context.Context, tokenHash string) (*PasswordReset, error)
	// SetPasswordResetPending records a pending new password (pendingID, hash) on link
	// id, replacing an earlier one, only while the link is unconsumed and unexpired at
	// now; ErrNotFound otherwise.
	SetPasswordResetPending(ctx context.Context, id, pendingID, hash string, now time.Time) error
	// CompletePasswordReset uses link id, in one transaction: a conditional update marks
	// it consumed only while it is unconsumed, unexpired at now and its pending password
	// is pendingID (so that of any number of concurrent callers, in any process, exactly
	// one succeeds); the user's password hash becomes the pending one (and UpdatedAt
	// now); and every other unconsumed link of the user is marked consumed. It returns
	// the link as it was before; ErrNotFound (and nothing changed) otherwise.
	CompletePasswordReset(ctx context.Context, id, pendingID string, now time.Time) (*PasswordReset, error)
}
