package idp

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/storage"
)

// TestDecide walks the sign-in decision through every step, without HTTP or storage.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	created := now.Add(-time.Minute)
	pwdSession := func() *storage.Session {
		return &storage.Session{ID: "s1", UserID: "u1", AuthTime: now.Add(-time.Hour), PasswordAt: now.Add(-time.Hour),
			AMR: []string{"pwd"}, ACR: consent.ACRPassword}
	}
	mfaSession := func() *storage.Session {
		s := pwdSession()
		s.MFAAt, s.Factors, s.AMR, s.ACR = now.Add(-time.Hour), []storage.FactorKind{"totp"}, []string{"mfa", "otp", "pwd"}, consent.ACRMFA
		return s
	}
	// A passkey sign-in a minute ago: both factors at once, phishing-resistant.
	passkeySession := func() *storage.Session {
		return &storage.Session{ID: "s1", UserID: "u1", AuthTime: now.Add(-time.Minute), PasswordAt: now.Add(-time.Minute),
			MFAAt: now.Add(-time.Minute), Factors: []storage.FactorKind{storage.FactorWebAuthn},
			AMR: []string{"mfa", "swk", "user"}, ACR: consent.ACRPhishingResistant}
	}
	passkey := storage.Factor{ID: "f3", UserID: "u1", Kind: storage.FactorWebAuthn, Confirmed: true}
	phr := consent.Requirement{Mode: consent.ModeRequired, PhishingResistant: true, Kinds: []storage.FactorKind{storage.FactorWebAuthn}, ACR: consent.ACRPhishingResistant}
	totp := storage.Factor{ID: "f1", UserID: "u1", Kind: "totp", Confirmed: true}
	backup := storage.Factor{ID: "f2", UserID: "u1", Kind: "backup", Confirmed: true, CreatedAt: now.Add(-48 * time.Hour)}
	optional := consent.Requirement{Mode: consent.ModeOptional}
	required := consent.Requirement{Mode: consent.ModeRequired}
	granted := &storage.Consent{UserID: "u1", ClientID: "c1", Scopes: []string{"openid"}}

	// base is a sign-in to a first-party client by a person with a password-only
	// session and no factor; each case changes what it is about.
	base := func() *flowFacts {
		return &flowFacts{
			now:    now,
			ar:     &storage.AuthRequest{ID: "ar1", ClientID: "c1", Scopes: []string{"openid"}, CreatedAt: created},
			client: &storage.Client{ID: "c1", SkipConsent: true},
			sess:   pwdSession(),
			user:   &storage.User{ID: "u1"},
			req:    optional,
		}
	}
	attached := func(f *flowFacts) {
		f.ar.Login = storage.AuthLogin{UserID: "u1", SessionID: "s1", AuthTime: f.sess.AuthTime, AMR: f.sess.AMR, ACR: f.sess.ACR}
	}
	withTOTP := func(f *flowFacts) { f.confirmed, f.usable = []storage.Factor{totp}, []storage.Factor{totp} }
	tests := []struct {
		name  string
		facts func(f *flowFacts)
		want  step
		err   string // the OAuth error with stepFail
		check func(t *testing.T, d decision)
	}{
		{name: "no session: password", facts: func(f *flowFacts) { f.sess, f.user = nil, nil }, want: stepPassword},
		{name: "no session, prompt=none: login_required", facts: func(f *flowFacts) { f.sess, f.ar.Prompt = nil, []string{"none"} },
			want: stepFail, err: "login_required"},
		{name: "prompt=login with an older session: password", facts: func(f *flowFacts) { f.ar.Prompt = []string{"login"} }, want: stepPassword},
		{name: "prompt=login, password entered for this request: on", facts: func(f *flowFacts) {
			f.ar.Prompt = []string{"login"}
			f.sess.PasswordAt, f.sess.AuthTime = now, now
			attached(f)
		}, want: stepIssue},
		{name: "max_age exceeded: password", facts: func(f *flowFacts) { f.ar.MaxAge = new(int64(60)) }, want: stepPassword},
		{name: "max_age met: on", facts: func(f *flowFacts) { f.ar.MaxAge = new(int64(7200)) }, want: stepIssue},
		{name: "id_token_hint of another person: password", facts: func(f *flowFacts) { f.ar.HintUserID = "u2" }, want: stepPassword},
		{name: "SSO session attaches and is recorded", want: stepIssue, check: func(t *testing.T, d decision) {
			if !d.attached || d.login.SessionID != "s1" || d.login.UserID != "u1" || !slices.Equal(d.login.AMR, []string{"pwd"}) {
				t.Errorf("attached %v, login %+v", d.attached, d.login)
			}
		}},
		{name: "optional, no factor: on", facts: attached, want: stepIssue},
		{name: "optional with a factor: second factor", facts: func(f *flowFacts) { attached(f); withTOTP(f) }, want: stepSecondFactor,
			check: func(t *testing.T, d decision) {
				if d.mfa == nil || len(d.mfa.factors) != 1 {
					t.Errorf("mfa state %+v", d.mfa)
				}
			}},
		{name: "second factor needed, prompt=none: interaction_required", facts: func(f *flowFacts) { withTOTP(f); f.ar.Prompt = []string{"none"} },
			want: stepFail, err: "interaction_required"},
		{name: "session already has the factor: on, and the request reports it", facts: func(f *flowFacts) {
			f.sess = mfaSession()
			f.ar.Login = storage.AuthLogin{UserID: "u1", SessionID: "s1", AMR: []string{"pwd"}, ACR: consent.ACRPassword}
			withTOTP(f)
		}, want: stepIssue, check: func(t *testing.T, d decision) {
			if d.login.ACR != consent.ACRMFA || !slices.Equal(d.login.AMR, []string{"mfa", "otp", "pwd"}) {
				t.Errorf("login %+v, want the session's mfa", d.login)
			}
		}},
		{name: "session's factor older than the policy's re-check age: second factor", facts: func(f *flowFacts) {
			f.sess = mfaSession()
			withTOTP(f)
			f.req.MFAMaxAge = 10 * time.Minute
		}, want: stepSecondFactor},
		{name: "passkey session, phishing resistance required: on, and the request reports it", facts: func(f *flowFacts) {
			f.sess, f.req = passkeySession(), phr
			f.confirmed, f.usable = []storage.Factor{passkey}, []storage.Factor{passkey}
		}, want: stepIssue, check: func(t *testing.T, d decision) {
			if d.login.ACR != consent.ACRPhishingResistant || !slices.Equal(d.login.AMR, []string{"mfa", "swk", "user"}) {
				t.Errorf("login %+v, want the passkey's amr and phr", d.login)
			}
		}},
		{name: "passkey session, MFA re-checked every 10m, within it: on", facts: func(f *flowFacts) {
			f.sess, f.req = passkeySession(), required
			f.req.MFAMaxAge = 10 * time.Minute
			f.confirmed, f.usable = []storage.Factor{passkey}, []storage.Factor{passkey}
		}, want: stepIssue},
		{name: "passkey session older than the re-check age: the passkey again", facts: func(f *flowFacts) {
			f.sess, f.req = passkeySession(), required
			f.sess.MFAAt = now.Add(-time.Hour)
			f.req.MFAMaxAge = 10 * time.Minute
			f.confirmed, f.usable = []storage.Factor{passkey}, []storage.Factor{passkey}
		}, want: stepSecondFactor},
		{name: "remembered device within the allowed age: on", facts: func(f *flowFacts) {
			withTOTP(f)
			f.req.DeviceCanSkip, f.req.RememberDevice = true, 30*24*time.Hour
			f.device = &storage.Device{ID: "d1", UserID: "u1", CreatedAt: now.Add(-24 * time.Hour)}
		}, want: stepIssue, check: func(t *testing.T, d decision) {
			if !d.viaDevice {
				t.Error("viaDevice not set")
			}
		}},
		{name: "remembered device older than allowed: second factor", facts: func(f *flowFacts) {
			withTOTP(f)
			f.req.DeviceCanSkip, f.req.RememberDevice = true, time.Hour
			f.device = &storage.Device{ID: "d1", UserID: "u1", CreatedAt: now.Add(-24 * time.Hour)}
		}, want: stepSecondFactor},
		{name: "required, no factor, no grace: enrol", facts: func(f *flowFacts) { attached(f); f.req = required; f.policyOnly = true },
			want: stepEnrol, check: func(t *testing.T, d decision) {
				if d.recovery || slices.Contains(d.login.AMR, "mfa") {
					t.Errorf("recovery %v, login %+v", d.recovery, d.login)
				}
			}},
		{name: "required, no factor, grace left: on, one grace login", facts: func(f *flowFacts) {
			attached(f)
			f.req, f.policyOnly, f.grace = required, true, GracePeriod{Logins: 3}
		}, want: stepIssue, check: func(t *testing.T, d decision) {
			if !d.graceNew || !d.login.Grace {
				t.Errorf("graceNew %v, login.Grace %v", d.graceNew, d.login.Grace)
			}
		}},
		{name: "grace already counted for this sign-in: not counted again", facts: func(f *flowFacts) {
			attached(f)
			f.ar.Login.Grace = true
			f.req, f.policyOnly, f.grace = required, true, GracePeriod{Logins: 3}
			f.user.MFAGraceStarted, f.user.MFAGraceLogins = now.Add(-time.Minute), 3
		}, want: stepIssue, check: func(t *testing.T, d decision) {
			if d.graceNew || !d.login.Grace {
				t.Errorf("graceNew %v, login.Grace %v", d.graceNew, d.login.Grace)
			}
		}},
		{name: "grace used up: enrol", facts: func(f *flowFacts) {
			attached(f)
			f.req, f.policyOnly, f.grace = required, true, GracePeriod{Logins: 3}
			f.user.MFAGraceStarted, f.user.MFAGraceLogins = now.Add(-time.Minute), 3
		}, want: stepEnrol},
		{name: "grace period over: enrol", facts: func(f *flowFacts) {
			attached(f)
			f.req, f.policyOnly, f.grace = required, true, GracePeriod{Period: time.Hour}
			f.user.MFAGraceStarted = now.Add(-2 * time.Hour)
		}, want: stepEnrol},
		{name: "the request itself asks for MFA: no grace", facts: func(f *flowFacts) {
			attached(f)
			f.req, f.policyOnly, f.grace = required, false, GracePeriod{Logins: 3}
		}, want: stepEnrol},
		{name: "signed in with a backup code: enrol to recover", facts: func(f *flowFacts) {
			f.sess.MFAAt, f.sess.Factors = now.Add(-time.Minute), []storage.FactorKind{"backup"}
			f.confirmed, f.usable = []storage.Factor{totp, backup}, []storage.Factor{totp, backup}
		}, want: stepEnrol, check: func(t *testing.T, d decision) {
			if !d.recovery {
				t.Error("recovery not set")
			}
		}},
		{name: "unsatisfiable requirement: unmet_authentication_requirements",
			facts: func(f *flowFacts) { f.reqErr = fmt.Errorf("%w: none offered", consent.ErrUnsatisfiable) },
			want:  stepFail, err: "unmet_authentication_requirements"},
		{name: "factors switched off on this server: unavailable", facts: func(f *flowFacts) { f.reqErr = errFactorUnavailable }, want: stepUnavailable},
		{name: "third-party client without a grant: consent", facts: func(f *flowFacts) { f.client.SkipConsent = false }, want: stepConsent},
		{name: "third-party client, prompt=none without a grant: consent_required",
			facts: func(f *flowFacts) { f.client.SkipConsent, f.ar.Prompt = false, []string{"none"} },
			want:  stepFail, err: "consent_required"},
		{name: "third-party client with a grant: on", facts: func(f *flowFacts) { f.client.SkipConsent, f.grant = false, granted }, want: stepIssue},
		{name: "prompt=consent with a grant: consent", facts: func(f *flowFacts) {
			f.client.SkipConsent, f.grant, f.ar.Prompt = false, granted, []string{"consent"}
		}, want: stepConsent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.facts != nil {
				tc.facts(f)
			}
			d := decide(f)
			if d.step != tc.want {
				t.Fatalf("step %v, want %v (err %v)", d.step, tc.want, d.err)
			}
			if tc.err != "" && (d.err == nil || string(d.err.ErrorType) != tc.err) {
				t.Fatalf("error %v, want %s", d.err, tc.err)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestCombineAMRKeepsPasskeyMFA: a passkey's own "mfa" survives a later check (step-up)
// that adds no new kind; "mfa" still needs two kinds otherwise.
func TestCombineAMRKeepsPasskeyMFA(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets [][]string
		want []string
	}{
		{"passkey, then the passkey again", [][]string{{"mfa", "swk", "user"}, {"swk", "user"}}, []string{"mfa", "swk", "user"}},
		{"password, then a key", [][]string{{"pwd"}, {"hwk", "user"}}, []string{"hwk", "mfa", "pwd", "user"}},
		{"password alone", [][]string{{"pwd"}}, []string{"pwd"}},
		{"a key without the password", [][]string{{"hwk", "user"}}, []string{"hwk", "user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := combineAMR(tc.sets...)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("combineAMR = %v, want %v", got, tc.want)
			}
			if acr := acrFor(got); slices.Contains(tc.want, "mfa") && (slices.Contains(tc.want, "hwk") || slices.Contains(tc.want, "swk")) && acr != consent.ACRPhishingResistant {
				t.Fatalf("acr %s, want phr", acr)
			}
		})
	}
}
