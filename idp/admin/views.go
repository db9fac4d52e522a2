package admin

import (
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/storage"
)

// PolicyView is an MFA policy as the admin API and the CLI show it: durations in whole
// seconds, the default mode spelled out.
type PolicyView struct {
	MFA                   string               `json:"mfa"`
	Factors               []storage.FactorKind `json:"factors"`
	PhishingResistant     bool                 `json:"phishing_resistant"`
	MaxAgeSeconds         int64                `json:"max_age_seconds"`
	RememberDeviceSeconds int64                `json:"remember_device_seconds"`
}

// ToPolicyView converts a stored policy for display.
func ToPolicyView(p storage.MFAPolicy) PolicyView {
	m := p.MFA
	if m == "" {
		m = consent.ModeOptional
	}
	return PolicyView{
		MFA: m, Factors: nonNilStrings(p.Factors), PhishingResistant: p.PhishingResistant,
		MaxAgeSeconds: int64(p.MaxAge / time.Second), RememberDeviceSeconds: int64(p.RememberDevice / time.Second),
	}
}

// Policy converts the view back to a stored policy.
func (v PolicyView) Policy() storage.MFAPolicy {
	return storage.MFAPolicy{
		MFA: v.MFA, Factors: v.Factors, PhishingResistant: v.PhishingResistant,
		MaxAge: time.Duration(v.MaxAgeSeconds) * time.Second, RememberDevice: time.Duration(v.RememberDeviceSeconds) * time.Second,
	}
}

// ClientView is a client as the admin API and the CLI show it: never its secret or hash.
type ClientView struct {
	ID                          string     `json:"id"`
	Name                        string     `json:"name"`
	Public                      bool       `json:"public"`
	RedirectURIs                []string   `json:"redirect_uris"`
	PostLogoutRedirectURIs      []string   `json:"post_logout_redirect_uris"`
	GrantTypes                  []string   `json:"grant_types"`
	Scopes                      []string   `json:"scopes"`
	SkipConsent                 bool       `json:"skip_consent"`
	AccessTokenFormat           string     `json:"access_token_format"`
	IDTokenSigningAlg           string     `json:"id_token_signing_alg"`
	AccessTokenLifetimeSeconds  int64      `json:"access_token_lifetime_seconds"`
	IDTokenLifetimeSeconds      int64      `json:"id_token_lifetime_seconds"`
	RefreshTokenLifetimeSeconds int64      `json:"refresh_token_lifetime_seconds"`
	BackchannelLogoutURI        string     `json:"backchannel_logout_uri,omitempty"`
	TokenEndpointAuthMethod     string     `json:"token_endpoint_auth_method,omitempty"`
	JWKSURI                     string     `json:"jwks_uri,omitempty"`
	RequirePAR                  bool       `json:"require_pushed_authorization_requests,omitempty"`
	Policy                      PolicyView `json:"policy"`
	CreatedAt                   time.Time  `json:"created_at"`
}

// ToClientView converts a stored client for display.
func ToClientView(c *storage.Client) ClientView {
	return ClientView{
		ID: c.ID, Name: c.Name, Public: c.Public, RedirectURIs: nonNilStrings(c.RedirectURIs),
		PostLogoutRedirectURIs: nonNilStrings(c.PostLogoutRedirectURIs), GrantTypes: nonNilStrings(c.GrantTypes),
		Scopes: nonNilStrings(c.Scopes), SkipConsent: c.SkipConsent, AccessTokenFormat: c.AccessTokenFormat,
		IDTokenSigningAlg:           c.IDTokenSigningAlg,
		AccessTokenLifetimeSeconds:  int64(c.AccessTokenLifetime / time.Second),
		IDTokenLifetimeSeconds:      int64(c.IDTokenLifetime / time.Second),
		RefreshTokenLifetimeSeconds: int64(c.RefreshTokenLifetime / time.Second),
		BackchannelLogoutURI:        c.BackchannelLogoutURI, Policy: ToPolicyView(c.Policy), CreatedAt: c.CreatedAt.UTC(),
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKSURI: c.JWKSURI, RequirePAR: c.RequirePAR,
	}
}

// nonNilStrings returns s, or an empty slice for nil, so that JSON shows [] rather than null.
func nonNilStrings[T ~string](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
