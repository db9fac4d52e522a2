package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/openidp/idp/storage"
)

// Passkey sign-in: a discoverable credential signs a person in on its own, without a
// password. The browser offers the person's passkeys for this relying party (through
// the autofill of the e-mail field, "conditional mediation", or a button); the
// assertion's user handle names the person, and the signature, made after the
// authenticator verified the user (PIN or biometric), proves both possession and the
// person. The ceremony's state lives in a challenge whose id the caller chooses and
// binds to its sign-in (one per sign-in, overwritten by each new page).

// ChallengeKindPasskey is the Kind of a passkey sign-in challenge.
const ChallengeKindPasskey = "passkey"

// PasskeyOptions starts a passkey sign-in ceremony stored under challengeID (replacing
// any earlier one there) and returns the request options (the publicKey object for
// navigator.credentials.get): no allowed credentials (discoverable ones only), user
// verification required.
func (w *WebAuthn) PasskeyOptions(ctx context.Context, challengeID string) ([]byte, error) {
	assertion, session, err := w.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin passkey login: %w", err)
	}
	data, err := json.Marshal(session)
	if err != nil {
		return nil, fmt.Errorf("encode passkey session: %w", err)
	}
	now := w.env.now()
	ch := &storage.Challenge{ID: challengeID, Kind: ChallengeKindPasskey, Data: data, CreatedAt: now, ExpiresAt: now.Add(webauthnTTL)}
	if err := w.env.Store.ReplaceChallenge(ctx, ch); err != nil {
		return nil, fmt.Errorf("save passkey challenge: %w", err)
	}
	opts, err := json.Marshal(assertion.Response)
	if err != nil {
		return nil, fmt.Errorf("encode passkey request options: %w", err)
	}
	return opts, nil
}

// PasskeyUserID returns the user id a passkey assertion (JSON) claims, unverified: the
// caller reserves the attempt under that account's guessing limits before
// VerifyPasskey checks it. ErrInvalidCode when the response cannot be read.
func PasskeyUserID(response string) (string, error) {
	if len(response) > webauthnMaxResponse {
		return "", fmt.Errorf("%w: webauthn response too large", ErrInvalidCode)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(strings.NewReader(response))
	if err != nil {
		return "", fmt.Errorf("%w: parse assertion: %w", ErrInvalidCode, err)
	}
	return string(parsed.Response.UserHandle), nil
}

// UserLookup returns the person with that id, or storage.ErrNotFound.
type UserLookup func(ctx context.Context, id string) (*storage.User, error)

// VerifyPasskey checks a passkey assertion (JSON) for the ceremony challengeID. It
// returns the person the credential belongs to and the AMR values earned: hwk (device
// bound) or swk (backup eligible, i.e. synced), user, and mfa, since a passkey with user
// verification is something the person has and something they are or know. Refusals
// are ErrInvalidCode (including an authenticator that did not verify the user),
// ErrExpired (challenge unknown, expired, used or out of attempts) or ErrSignCount.
// getUser looks a person up by id (storage.ErrNotFound when there is none).
func (w *WebAuthn) VerifyPasskey(ctx context.Context, challengeID, response string, getUser UserLookup) (*storage.User, []string, error) {
	if len(response) > webauthnMaxResponse {
		return nil, nil, fmt.Errorf("%w: webauthn response too large", ErrInvalidCode)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(strings.NewReader(response))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: parse assertion: %w", ErrInvalidCode, err)
	}
	ch, err := w.env.Store.AttemptChallenge(ctx, challengeID, w.env.now(), webauthnMaxAttempts)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: passkey challenge", ErrExpired)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load passkey challenge: %w", err)
	}
	if ch.Kind != ChallengeKindPasskey {
		return nil, nil, fmt.Errorf("%w: not a passkey challenge", ErrInvalidCode)
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(ch.Data, &session); err != nil {
		return nil, nil, fmt.Errorf("decode passkey session: %w", err)
	}
	if session.UserVerification != protocol.VerificationRequired {
		return nil, nil, fmt.Errorf("%w: passkey ceremony without required user verification", ErrInvalidCode)
	}
	var found *webauthnUser
	var lookupErr error
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		u, err := getUser(ctx, string(userHandle))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("no such user")
		}
		if err != nil {
			lookupErr = err
			return nil, err
		}
		if found, err = w.loadUser(ctx, u); err != nil {
			lookupErr = err
			return nil, err
		}
		return found, nil
	}
	_, cred, err := w.wa.ValidatePasskeyLogin(handler, session, parsed)
	if lookupErr != nil {
		return nil, nil, fmt.Errorf("look up passkey owner: %w", lookupErr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: verify passkey assertion: %w", ErrInvalidCode, err)
	}
	// The library checked it (the session requires it); a passkey sign-in without user
	// verification would be one factor only, so check again here.
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return nil, nil, fmt.Errorf("%w: the authenticator did not verify the user", ErrInvalidCode)
	}
	amr, err := w.finishAssertion(ctx, found.u, found, cred, parsed, challengeID)
	if err != nil {
		return nil, nil, err
	}
	return found.u, append(amr, AMRMFA), nil
}

// Synced reports whether the confirmed WebAuthn factor f is a synced passkey: its
// authenticator said it is backup eligible (BE), so the credential may leave the device
// (a sign-in with it reports AMRSoftware). Otherwise it is bound to one device or key.
func (w *WebAuthn) Synced(f *storage.Factor) (bool, error) {
	if f == nil || f.Kind != storage.FactorWebAuthn || !f.Confirmed {
		return false, fmt.Errorf("%w: not a registered webauthn factor", ErrInvalidCode)
	}
	raw, err := w.env.Sealer.Open(f.Secret, []byte("factor:"+f.ID))
	if err != nil {
		return false, fmt.Errorf("open webauthn credential %s: %w", f.ID, err)
	}
	var cred webauthn.Credential
	if err := json.Unmarshal(raw, &cred); err != nil {
		return false, fmt.Errorf("decode webauthn credential %s: %w", f.ID, err)
	}
	return cred.Flags.BackupEligible, nil
}
