package mfa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/openidp/idp/storage"
)

const (
	// webauthnTTL is how long a registration or sign-in ceremony stays open.
	webauthnTTL = 5 * time.Minute
	// webauthnMaxAttempts bounds the responses accepted for one ceremony.
	webauthnMaxAttempts = 3
	// webauthnMaxResponse bounds the size of a browser response (JSON) we parse.
	webauthnMaxResponse = 64 << 10
	// defaultKeyName labels a credential the person did not name.
	defaultKeyName = "Security key"
)

// WebAuthnConfig describes the relying party the browser sees.
type WebAuthnConfig struct {
	RPID          string   // the registrable domain, e.g. "login.example.com"
	RPDisplayName string   // shown by the browser; default Env.Issuer
	RPOrigins     []string // accepted origins, e.g. "https://login.example.com"
}

// WebAuthn is the Factor for security keys and passkeys. Each credential is a
// storage.Factor of its own; its Secret holds the webauthn.Credential record (JSON,
// sealed with aad "factor:"+id). A sign-in challenge accepts any of the person's
// confirmed credentials.
type WebAuthn struct {
	env *Env
	wa  *webauthn.WebAuthn
}

var _ Factor = (*WebAuthn)(nil)

// NewWebAuthn returns the WebAuthn factor for the relying party cfg; ErrNotConfigured
// when cfg has no RP ID or origins.
func NewWebAuthn(env *Env, cfg WebAuthnConfig) (*WebAuthn, error) {
	if cfg.RPID == "" || len(cfg.RPOrigins) == 0 {
		return nil, fmt.Errorf("%w: webauthn needs an RP ID and origins", ErrNotConfigured)
	}
	name := cfg.RPDisplayName
	if name == "" && (env.DisplayName != "" || env.Issuer != "") {
		name = issuerName(env)
	}
	if name == "" {
		name = cfg.RPID
	}
	timeout := webauthn.TimeoutConfig{Timeout: webauthnTTL, TimeoutUVD: webauthnTTL}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         name,
		RPOrigins:             cfg.RPOrigins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		// Expiry is enforced by the stored challenge, not by the library.
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn config: %w", err)
	}
	return &WebAuthn{env: env, wa: wa}, nil
}

// Kind returns storage.FactorWebAuthn.
func (w *WebAuthn) Kind() storage.FactorKind { return storage.FactorWebAuthn }

// Enroll starts registering a new credential for u: it stores an unconfirmed factor and
// the ceremony, and returns the creation options (the publicKey object for
// navigator.credentials.create).
func (w *WebAuthn) Enroll(ctx context.Context, u *storage.User, req EnrollRequest) (*Enrollment, error) {
	user, err := w.loadUser(ctx, u)
	if err != nil {
		return nil, err
	}
	// A passkey: a discoverable credential (resident key), so that it can sign in alone;
	// credProps tells whether the authenticator made one. Keys that cannot still work
	// as a second factor.
	residentKey := protocol.ResidentKeyRequirementPreferred
	if req.Passkey {
		residentKey = protocol.ResidentKeyRequirementRequired
	}
	creation, session, err := w.wa.BeginRegistration(user,
		webauthn.WithExclusions(webauthn.Credentials(user.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(residentKey),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	)
	if err != nil {
		return nil, fmt.Errorf("begin webauthn registration: %w", err)
	}
	// An unnamed credential is named at Confirm, from its authenticator (AAGUID) or the
	// browser it was added in.
	name := strings.TrimSpace(req.Name)
	now := w.env.now()
	f := &storage.Factor{
		ID:        newID(),
		UserID:    u.ID,
		Kind:      storage.FactorWebAuthn,
		Name:      name,
		Secret:    []byte{}, // the credential arrives with Confirm
		CreatedAt: now,
	}
	if err := w.env.Store.CreateFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("create webauthn factor: %w", err)
	}
	chID, err := w.saveSession(ctx, u, f, session, registrationExtras{Device: strings.TrimSpace(req.Device), Passkey: req.Passkey})
	if err != nil {
		return nil, err
	}
	opts, err := json.Marshal(creation.Response)
	if err != nil {
		return nil, fmt.Errorf("encode webauthn creation options: %w", err)
	}
	return &Enrollment{Factor: f, ChallengeID: chID, Options: opts}, nil
}

// Confirm finishes registering f with the browser's attestation (JSON).
func (w *WebAuthn) Confirm(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) error {
	if err := w.checkFactor(u, f); err != nil {
		return err
	}
	if f.Confirmed {
		return fmt.Errorf("%w: webauthn factor %s is already registered", ErrInvalidCode, f.ID)
	}
	ch, session, err := w.attempt(ctx, u, challengeID)
	if err != nil {
		return err
	}
	var extras registrationExtras
	_ = json.Unmarshal(ch.Data, &extras)
	if ch.FactorID != f.ID {
		return fmt.Errorf("%w: challenge %s is not for factor %s", ErrInvalidCode, challengeID, f.ID)
	}
	if len(response) > webauthnMaxResponse {
		return fmt.Errorf("%w: webauthn response too large", ErrInvalidCode)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(strings.NewReader(response))
	if err != nil {
		return fmt.Errorf("%w: parse attestation: %w", ErrInvalidCode, err)
	}
	user, err := w.loadUser(ctx, u)
	if err != nil {
		return err
	}
	cred, err := w.wa.CreateCredential(user, *session, parsed)
	if err != nil {
		return fmt.Errorf("%w: verify attestation: %w", ErrInvalidCode, err)
	}
	if user.index(cred.ID) >= 0 {
		return fmt.Errorf("%w: credential already registered", ErrInvalidCode)
	}
	if err := w.consume(ctx, challengeID); err != nil {
		return err
	}
	if f.Secret, err = w.sealCredential(f.ID, cred); err != nil {
		return err
	}
	props := parsed.ClientExtensionResults.CredProps
	if extras.Passkey && props != nil && props.RK != nil && !*props.RK {
		_ = w.consume(ctx, challengeID)
		return &InputError{Message: "This security key cannot keep a passkey. Use your phone, your computer or a newer security key."}
	}
	if f.Name == "" {
		f.Name = credentialName(cred.Authenticator.AAGUID, props, extras.Device)
	}
	if err := w.env.confirming(ctx, f); err != nil {
		return err
	}
	f.Confirmed = true
	if err := w.env.Store.UpdateFactor(ctx, f); err != nil {
		return fmt.Errorf("save webauthn credential: %w", err)
	}
	return nil
}

// Challenge starts a sign-in: it returns the request options (the publicKey object for
// navigator.credentials.get) allowing every confirmed credential of u.
func (w *WebAuthn) Challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error) {
	if err := w.checkFactor(u, f); err != nil {
		return nil, err
	}
	user, err := w.loadUser(ctx, u)
	if err != nil {
		return nil, err
	}
	if len(user.creds) == 0 {
		return nil, fmt.Errorf("%w: no registered webauthn credential", ErrInvalidCode)
	}
	assertion, session, err := w.wa.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("begin webauthn login: %w", err)
	}
	chID, err := w.saveSession(ctx, u, f, session, registrationExtras{})
	if err != nil {
		return nil, err
	}
	opts, err := json.Marshal(assertion.Response)
	if err != nil {
		return nil, fmt.Errorf("encode webauthn request options: %w", err)
	}
	return &Challenge{ID: chID, Options: opts}, nil
}

// Verify checks the browser's assertion (JSON) for challenge challengeID. The
// credential used may be any of u's, not only f. It returns AMRSoftware for a
// backup-eligible (syncable) credential, AMRHardware otherwise, and AMRUser when the
// authenticator verified the user.
func (w *WebAuthn) Verify(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) ([]string, error) {
	if err := w.checkFactor(u, f); err != nil {
		return nil, err
	}
	_, session, err := w.attempt(ctx, u, challengeID)
	if err != nil {
		return nil, err
	}
	if len(response) > webauthnMaxResponse {
		return nil, fmt.Errorf("%w: webauthn response too large", ErrInvalidCode)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(strings.NewReader(response))
	if err != nil {
		return nil, fmt.Errorf("%w: parse assertion: %w", ErrInvalidCode, err)
	}
	user, err := w.loadUser(ctx, u)
	if err != nil {
		return nil, err
	}
	cred, err := w.wa.ValidateLogin(user, *session, parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: verify assertion: %w", ErrInvalidCode, err)
	}
	return w.finishAssertion(ctx, u, user, cred, parsed, challengeID)
}

// finishAssertion settles a verified assertion: it refuses a signature counter that went
// back (a cloned authenticator), spends the challenge, stores the credential's new state
// and returns the AMR values of the credential used.
func (w *WebAuthn) finishAssertion(ctx context.Context, u *storage.User, user *webauthnUser, cred *webauthn.Credential,
	parsed *protocol.ParsedCredentialAssertionData, challengeID string) ([]string, error) {
	i := user.index(cred.ID)
	if i < 0 {
		return nil, fmt.Errorf("%w: credential not registered", ErrInvalidCode)
	}
	used := user.factors[i]
	var err error
	stored := user.creds[i].Authenticator.SignCount
	got := parsed.Response.AuthenticatorData.Counter
	if cred.Authenticator.CloneWarning || (stored != 0 && got <= stored) {
		// The assertion is spent either way.
		_ = w.consume(ctx, challengeID)
		reason := fmt.Sprintf("factor %s: signature counter %d after %d", used.ID, got, stored)
		w.env.audit(ctx, storage.AuditEvent{
			Time: w.env.now(), Type: "mfa.webauthn.signcount", UserID: u.ID,
			Result: "failure", Reason: reason,
		})
		return nil, fmt.Errorf("%w: %s", ErrSignCount, reason)
	}
	if err := w.consume(ctx, challengeID); err != nil {
		return nil, err
	}
	if used.Secret, err = w.sealCredential(used.ID, cred); err != nil {
		return nil, err
	}
	used.LastUsedAt = w.env.now()
	if err := w.env.Store.UpdateFactor(ctx, &used); err != nil {
		return nil, fmt.Errorf("save webauthn credential: %w", err)
	}
	amr := []string{AMRHardware}
	if cred.Flags.BackupEligible {
		amr[0] = AMRSoftware
	}
	if parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		amr = append(amr, AMRUser)
	}
	return amr, nil
}

// checkFactor refuses a factor that is not u's WebAuthn factor.
func (w *WebAuthn) checkFactor(u *storage.User, f *storage.Factor) error {
	if f == nil || f.UserID != u.ID || f.Kind != storage.FactorWebAuthn {
		return fmt.Errorf("%w: not a webauthn factor of this user", ErrInvalidCode)
	}
	return nil
}

// registrationExtras is what a registration keeps beside the library's session data
// (which ignores these fields when decoded).
type registrationExtras struct {
	Device  string `json:"openidp_device,omitempty"`  // the browser, to name the credential
	Passkey bool   `json:"openidp_passkey,omitempty"` // a discoverable credential is required
}

// saveSession stores a ceremony's session data, with the registration's extras, as a
// challenge for factor f.
func (w *WebAuthn) saveSession(ctx context.Context, u *storage.User, f *storage.Factor, session *webauthn.SessionData, extras registrationExtras) (string, error) {
	data, err := json.Marshal(session)
	if err != nil {
		return "", fmt.Errorf("encode webauthn session: %w", err)
	}
	if extras != (registrationExtras{}) {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return "", fmt.Errorf("encode webauthn session: %w", err)
		}
		if extras.Device != "" {
			m["openidp_device"] = extras.Device
		}
		if extras.Passkey {
			m["openidp_passkey"] = true
		}
		if data, err = json.Marshal(m); err != nil {
			return "", fmt.Errorf("encode webauthn session: %w", err)
		}
	}
	now := w.env.now()
	ch := &storage.Challenge{
		ID:        newID(),
		UserID:    u.ID,
		FactorID:  f.ID,
		Kind:      string(storage.FactorWebAuthn),
		Data:      data,
		CreatedAt: now,
		ExpiresAt: now.Add(webauthnTTL),
	}
	if err := w.env.Store.CreateChallenge(ctx, ch); err != nil {
		return "", fmt.Errorf("save webauthn challenge: %w", err)
	}
	return ch.ID, nil
}

// attempt counts one attempt at challenge id and returns it with its session data;
// ErrExpired when it is gone, used or out of attempts.
func (w *WebAuthn) attempt(ctx context.Context, u *storage.User, id string) (*storage.Challenge, *webauthn.SessionData, error) {
	ch, err := w.env.Store.AttemptChallenge(ctx, id, w.env.now(), webauthnMaxAttempts)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: webauthn challenge %s", ErrExpired, id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load webauthn challenge: %w", err)
	}
	if ch.UserID != u.ID || ch.Kind != string(storage.FactorWebAuthn) {
		return nil, nil, fmt.Errorf("%w: challenge %s is not this user's webauthn challenge", ErrInvalidCode, id)
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(ch.Data, &session); err != nil {
		return nil, nil, fmt.Errorf("decode webauthn session: %w", err)
	}
	return ch, &session, nil
}

// consume marks challenge id used; ErrExpired when someone else used it first.
func (w *WebAuthn) consume(ctx context.Context, id string) error {
	err := w.env.Store.ConsumeChallenge(ctx, id, w.env.now())
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: webauthn challenge %s", ErrExpired, id)
	}
	if err != nil {
		return fmt.Errorf("consume webauthn challenge: %w", err)
	}
	return nil
}

func (w *WebAuthn) sealCredential(factorID string, cred *webauthn.Credential) ([]byte, error) {
	raw, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("encode webauthn credential: %w", err)
	}
	sealed, err := w.env.Sealer.Seal(raw, []byte("factor:"+factorID))
	if err != nil {
		return nil, fmt.Errorf("seal webauthn credential: %w", err)
	}
	return sealed, nil
}

// loadUser returns u with the credentials of their confirmed WebAuthn factors.
func (w *WebAuthn) loadUser(ctx context.Context, u *storage.User) (*webauthnUser, error) {
	factors, err := w.env.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("list factors: %w", err)
	}
	user := &webauthnUser{u: u}
	for _, f := range factors {
		if f.Kind != storage.FactorWebAuthn || !f.Confirmed {
			continue
		}
		raw, err := w.env.Sealer.Open(f.Secret, []byte("factor:"+f.ID))
		if err != nil {
			return nil, fmt.Errorf("open webauthn credential %s: %w", f.ID, err)
		}
		var cred webauthn.Credential
		if err := json.Unmarshal(raw, &cred); err != nil {
			return nil, fmt.Errorf("decode webauthn credential %s: %w", f.ID, err)
		}
		// The warning is per ceremony; Verify never stores one, but do not trust it.
		cred.Authenticator.CloneWarning = false
		user.factors = append(user.factors, f)
		user.creds = append(user.creds, cred)
	}
	return user, nil
}

// webauthnUser adapts a storage.User and their credentials to webauthn.User.
// factors[i] holds creds[i].
type webauthnUser struct {
	u       *storage.User
	factors []storage.Factor
	creds   []webauthn.Credential
}

func (x *webauthnUser) WebAuthnID() []byte   { return []byte(x.u.ID) }
func (x *webauthnUser) WebAuthnName() string { return x.u.Email }
func (x *webauthnUser) WebAuthnDisplayName() string {
	if x.u.Name != "" {
		return x.u.Name
	}
	return x.u.Email
}
func (x *webauthnUser) WebAuthnCredentials() []webauthn.Credential { return x.creds }

// index returns the position of the credential with that id, or -1.
func (x *webauthnUser) index(id []byte) int {
	for i, c := range x.creds {
		if bytes.Equal(c.ID, id) {
			return i
		}
	}
	return -1
}
