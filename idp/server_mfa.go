package idp

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
)

// setupMFA builds the factor registry from the configuration.
func (s *Server) setupMFA(ctx context.Context, hashKey [32]byte) error {
	cfg := &s.cfg.MFA
	if cfg.FreshFor <= 0 {
		cfg.FreshFor = defaultFreshFor
	}
	s.mfaEnv = &mfa.Env{
		Store: s.store, Sealer: s.cfg.Sealer, HashKey: hashKey, Now: s.now, Logger: s.logger,
		Issuer: s.cfg.Issuer, DisplayName: s.cfg.DisplayName,
		Audit:      func(ctx context.Context, e storage.AuditEvent) { s.countCodeEvent(e); s.audit.Record(ctx, e) },
		Confirming: s.confirmingFactor,
	}
	s.mfaEnv.SendGate = s.sendGate
	cfg.Limits.defaults()
	cfg.SendLimits.defaults()
	s.regulator = &regulation.Regulator{Store: s.store, Now: s.now}
	wa := cfg.WebAuthn
	wa.RPID = webAuthnRPID(s.cfg.Issuer, wa)
	if len(wa.RPOrigins) == 0 {
		wa.RPOrigins = []string{s.cfg.Issuer}
	}
	if wa.RPDisplayName == "" {
		wa.RPDisplayName = s.cfg.DisplayName // shown by the browser's passkey dialogs
	}
	var factors []mfa.Factor
	if !webAuthnPossible(wa.RPID) {
		// Browsers refuse WebAuthn for IP addresses: a relying-party ID must be a domain.
		s.logger.Warn("WebAuthn disabled: the issuer host is an IP address; use a domain name (e.g. localhost) or set IDP_WEBAUTHN_RP_ID", "rp_id", wa.RPID)
	} else {
		webauthn, err := mfa.NewWebAuthn(s.mfaEnv, wa)
		if err != nil {
			return fmt.Errorf("webauthn: %w", err)
		}
		factors = append(factors, webauthn)
	}
	factors = append(factors, &mfa.TOTP{Env: s.mfaEnv})
	if cfg.SMSSender != nil {
		factors = append(factors, &mfa.SMS{Env: s.mfaEnv, Sender: cfg.SMSSender, Phones: cfg.Phones})
	}
	if cfg.EmailSender != nil {
		factors = append(factors, &mfa.Email{Env: s.mfaEnv, Sender: cfg.EmailSender})
	}
	factors = append(factors, &mfa.Backup{Env: s.mfaEnv})
	s.factors = mfa.NewRegistry(factors...)
	_ = ctx
	return nil
}

// webAuthnRPID is the relying-party ID: the configured one, else the issuer's host.
func webAuthnRPID(issuer string, wa mfa.WebAuthnConfig) string {
	if wa.RPID != "" {
		return wa.RPID
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// webAuthnPossible: browsers refuse WebAuthn for IP addresses (the RP ID must be a domain).
func webAuthnPossible(rpID string) bool { return rpID != "" && net.ParseIP(rpID) == nil }

// OfferedKinds lists the factor kinds a server with this issuer and configuration
// offers, as setupMFA builds them; `idp policy explain` uses it to judge policies.
func OfferedKinds(issuer string, cfg MFAConfig) []storage.FactorKind {
	var kinds []storage.FactorKind
	if webAuthnPossible(webAuthnRPID(issuer, cfg.WebAuthn)) {
		kinds = append(kinds, storage.FactorWebAuthn)
	}
	kinds = append(kinds, storage.FactorTOTP)
	if cfg.SMSSender != nil {
		kinds = append(kinds, storage.FactorSMS)
	}
	if cfg.EmailSender != nil {
		kinds = append(kinds, storage.FactorEmail)
	}
	return append(kinds, storage.FactorBackup)
}
