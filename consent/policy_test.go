package consent

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func i64(v int64) *int64 { return &v }

func TestEvaluate(t *testing.T) {
	all := []storage.FactorKind{"webauthn", "totp", "sms", "email", "backup"}
	admin := &storage.MFAPolicy{MFA: ModeRequired}
	tests := []struct {
		name      string
		in        PolicyInput
		wantErr   bool
		mode      string
		kinds     []storage.FactorKind
		phr       bool
		mfaAge    time.Duration
		remember  time.Duration
		canSkip   bool
		acr       string
		reasonHas string
	}{
		{name: "defaults", in: PolicyInput{}, mode: ModeOptional, acr: ACRPassword},
		{name: "client off", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeOff}}, mode: ModeOff, acr: ACRPassword},
		{name: "admin type beats client off", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeOff}, AccountType: "admin", TypePolicy: admin},
			mode: ModeRequired, acr: ACRMFA, reasonHas: "account type admin: mfa required"},
		{name: "type optional does not weaken client required", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeRequired}, TypePolicy: &storage.MFAPolicy{MFA: ModeOptional}},
			mode: ModeRequired, acr: ACRMFA},
		{name: "factor lists intersect", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeRequired, Factors: []storage.FactorKind{"totp", "webauthn"}}, TypePolicy: &storage.MFAPolicy{Factors: []storage.FactorKind{"webauthn", "sms"}}},
			mode: ModeRequired, kinds: []storage.FactorKind{"webauthn"}, acr: ACRMFA},
		{name: "disjoint factor lists are unsatisfiable", in: PolicyInput{Client: storage.MFAPolicy{Factors: []storage.FactorKind{"totp"}}, TypePolicy: &storage.MFAPolicy{Factors: []storage.FactorKind{"webauthn"}}}, wantErr: true},
		{name: "phishing resistant client", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeOptional, PhishingResistant: true}},
			mode: ModeRequired, kinds: []storage.FactorKind{"webauthn"}, phr: true, acr: ACRPhishingResistant},
		{name: "phishing resistant but only totp allowed", in: PolicyInput{Client: storage.MFAPolicy{PhishingResistant: true, Factors: []storage.FactorKind{"totp"}}}, wantErr: true},
		{name: "shorter re-check wins", in: PolicyInput{Client: storage.MFAPolicy{MaxAge: 12 * time.Hour}, TypePolicy: &storage.MFAPolicy{MaxAge: time.Hour}},
			mode: ModeOptional, mfaAge: time.Hour, acr: ACRPassword},
		{name: "remember device: shorter wins", in: PolicyInput{Client: storage.MFAPolicy{RememberDevice: 720 * time.Hour}, TypePolicy: &storage.MFAPolicy{RememberDevice: 24 * time.Hour}},
			mode: ModeOptional, remember: 24 * time.Hour, canSkip: true, acr: ACRPassword},
		{name: "remember device: type without it forbids", in: PolicyInput{Client: storage.MFAPolicy{RememberDevice: 720 * time.Hour}, TypePolicy: &storage.MFAPolicy{}},
			mode: ModeOptional, remember: 0, acr: ACRPassword},
		{name: "acr_values mfa raises optional", in: PolicyInput{Request: AuthParams{ACRValues: []string{"urn:other", ACRMFA}}},
			mode: ModeRequired, acr: ACRMFA, reasonHas: "acr_values urn:openidp:acr:mfa"},
		{name: "acr_values phr", in: PolicyInput{Request: AuthParams{ACRValues: []string{ACRPhishingResistant}}},
			mode: ModeRequired, kinds: []storage.FactorKind{"webauthn"}, phr: true, acr: ACRPhishingResistant},
		{name: "unknown voluntary acr is ignored", in: PolicyInput{Request: AuthParams{ACRValues: []string{"urn:example:gold"}}}, mode: ModeOptional, acr: ACRPassword},
		{name: "unknown essential acr is unsatisfiable", in: PolicyInput{Request: AuthParams{EssentialACR: []string{"urn:example:gold"}}}, wantErr: true},
		{name: "essential acr takes the lowest acceptable", in: PolicyInput{Request: AuthParams{EssentialACR: []string{ACRPhishingResistant, ACRMFA}}},
			mode: ModeRequired, acr: ACRMFA},
		{name: "acr request disables device skip", in: PolicyInput{Client: storage.MFAPolicy{RememberDevice: time.Hour}, Request: AuthParams{ACRValues: []string{ACRMFA}}},
			mode: ModeRequired, remember: time.Hour, canSkip: false, acr: ACRMFA},
		{name: "max_age bounds both", in: PolicyInput{Client: storage.MFAPolicy{MaxAge: 12 * time.Hour}, Request: AuthParams{MaxAge: i64(300)}},
			mode: ModeOptional, mfaAge: 5 * time.Minute, acr: ACRPassword},
		{name: "required but no offered kind", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeRequired, Factors: []storage.FactorKind{"sms"}}, Available: []storage.FactorKind{"totp"}}, wantErr: true},
		{name: "required with offered kinds", in: PolicyInput{Client: storage.MFAPolicy{MFA: ModeRequired}, Available: all}, mode: ModeRequired, acr: ACRMFA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Evaluate(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnsatisfiable) {
					t.Fatalf("err = %v, want ErrUnsatisfiable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Mode != tt.mode || !slices.Equal(r.Kinds, tt.kinds) && !(len(r.Kinds) == 0 && len(tt.kinds) == 0) ||
				r.PhishingResistant != tt.phr || r.MFAMaxAge != tt.mfaAge || r.RememberDevice != tt.remember ||
				r.DeviceCanSkip != tt.canSkip || r.ACR != tt.acr {
				t.Fatalf("got %+v", r)
			}
			if tt.reasonHas != "" && !strings.Contains(strings.Join(r.Reasons, "\n"), tt.reasonHas) {
				t.Fatalf("reasons %q lack %q", r.Reasons, tt.reasonHas)
			}
		})
	}
	// max_age=0 still applies (it means "authenticate now").
	r, _ := Evaluate(PolicyInput{Request: AuthParams{MaxAge: i64(0)}})
	if !r.HasPasswordMaxAge || r.PasswordMaxAge != 0 || !r.Fresh {
		t.Fatalf("max_age=0 lost: %+v", r)
	}
}
