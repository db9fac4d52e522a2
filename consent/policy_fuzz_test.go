package consent

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// fuzzPolicy builds an MFA policy from fuzzed fields the way the admin API would store
// one: durations are never negative (normalizeMFAPolicy refuses those).
func fuzzPolicy(mode, factors string, phr bool, maxAge, remember int64) storage.MFAPolicy {
	abs := func(v int64) time.Duration {
		if v < 0 {
			v = -(v + 1)
		}
		return time.Duration(v)
	}
	return storage.MFAPolicy{MFA: mode, Factors: kindFields(factors), PhishingResistant: phr, MaxAge: abs(maxAge), RememberDevice: abs(remember)}
}

// kindFields splits s around white space into factor kinds.
func kindFields(s string) []storage.FactorKind {
	var out []storage.FactorKind
	for _, f := range strings.Fields(s) {
		out = append(out, storage.FactorKind(f))
	}
	return out
}

var fuzzACRRank = map[string]int{"": -1, ACRPassword: 0, ACRMFA: 1, ACRPhishingResistant: 2}

// FuzzEvaluate feeds Evaluate what an authorization request controls (acr_values, the
// acr values of an essential acr claim, max_age, prompt=login) on top of fuzzed client and
// account-type policies, and checks the rule the package promises: policies combine to
// the stricter, and the request can only raise the result, never lower it.
func FuzzEvaluate(f *testing.F) {
	type seed struct {
		cMode, cFactors string
		cPHR            bool
		cMaxAge, cRemem int64
		hasType         bool
		tMode, tFactors string
		tPHR            bool
		tMaxAge, tRemem int64
		acrValues       string
		essential       string
		hasMaxAge       bool
		maxAge          int64
		promptLogin     bool
		available       string
	}
	all := "webauthn totp sms email backup"
	seeds := []seed{
		{},
		{cMode: ModeRequired, available: all},
		{cMode: ModeOff, hasType: true, tMode: ModeRequired, available: all},
		{cMode: ModeOptional, cMaxAge: int64(12 * time.Hour), acrValues: ACRMFA, hasMaxAge: true, maxAge: 300},
		{cRemem: int64(720 * time.Hour), hasType: true, tRemem: int64(24 * time.Hour), acrValues: "urn:other " + ACRPhishingResistant},
		{cFactors: "totp webauthn", hasType: true, tFactors: "webauthn sms", essential: ACRMFA + " " + ACRPhishingResistant, available: "totp"},
		{cPHR: true, cFactors: "totp"},
		{essential: "urn:example:gold"},
		{cMaxAge: int64(time.Hour), hasMaxAge: true, maxAge: 0, promptLogin: true},
		// max_age arrives from op as an unsigned number: the largest ones overflow int64
		// and time.Duration.
		{cMaxAge: int64(time.Hour), hasMaxAge: true, maxAge: 9_300_000_000},
		{cMaxAge: int64(time.Hour), hasMaxAge: true, maxAge: -1},
		{cMode: "bogus", hasType: true, tMode: "", acrValues: "  " + ACRPassword + "  "},
	}
	for _, s := range seeds {
		f.Add(s.cMode, s.cFactors, s.cPHR, s.cMaxAge, s.cRemem, s.hasType, s.tMode, s.tFactors, s.tPHR, s.tMaxAge, s.tRemem,
			s.acrValues, s.essential, s.hasMaxAge, s.maxAge, s.promptLogin, s.available)
	}
	f.Fuzz(func(t *testing.T, cMode, cFactors string, cPHR bool, cMaxAge, cRemem int64, hasType bool, tMode, tFactors string, tPHR bool, tMaxAge, tRemem int64,
		acrValues, essential string, hasMaxAge bool, maxAge int64, promptLogin bool, available string) {
		client := PolicyInput{ClientID: "c", Client: fuzzPolicy(cMode, cFactors, cPHR, cMaxAge, cRemem), AccountType: "t"}
		if available != "" {
			client.Available = kindFields(available)
		}
		policies := client
		if hasType {
			tp := fuzzPolicy(tMode, tFactors, tPHR, tMaxAge, tRemem)
			policies.TypePolicy = &tp
		}
		full := policies
		full.Request = AuthParams{ACRValues: strings.Fields(acrValues), EssentialACR: strings.Fields(essential), PromptLogin: promptLogin}
		if hasMaxAge {
			full.Request.MaxAge = &maxAge
		}

		for _, in := range []PolicyInput{client, policies, full} {
			r, err := Evaluate(in)
			if err != nil {
				if !errors.Is(err, ErrUnsatisfiable) {
					t.Fatalf("Evaluate(%+v): error %v is not ErrUnsatisfiable", in, err)
				}
				continue
			}
			if _, ok := modeRank[r.Mode]; !ok {
				t.Fatalf("Evaluate(%+v): mode %q", in, r.Mode)
			}
			if r.MFAMaxAge < 0 || r.PasswordMaxAge < 0 || r.RememberDevice < 0 {
				t.Fatalf("Evaluate(%+v): negative duration: mfa max age %v, password max age %v, remember %v",
					in, r.MFAMaxAge, r.PasswordMaxAge, r.RememberDevice)
			}
			if r.PhishingResistant && (r.Mode != ModeRequired || r.ACR != ACRPhishingResistant || len(r.Kinds) == 0 ||
				slices.ContainsFunc(r.Kinds, func(k storage.FactorKind) bool { return !slices.Contains(PhishingResistantKinds, k) })) {
				t.Fatalf("Evaluate(%+v): phishing resistance without its consequences: %+v", in, r)
			}
			if r.DeviceCanSkip && (r.RememberDevice <= 0 || r.Fresh || r.PhishingResistant) {
				t.Fatalf("Evaluate(%+v): device may skip in %+v", in, r)
			}
		}

		// Stricter wins: the account type's policy never weakens the client's, and the
		// request never weakens either.
		raises := func(what string, lower, upper PolicyInput) {
			lo, errLo := Evaluate(lower)
			hi, errHi := Evaluate(upper)
			if errLo != nil {
				if errHi == nil {
					t.Fatalf("%s made an unsatisfiable requirement satisfiable:\nwithout: %+v (%v)\nwith:    %+v", what, lower, errLo, hi)
				}
				return
			}
			if errHi != nil {
				return // stricter than anything can meet: still not weaker
			}
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("%s weakened the requirement: "+format+"\nwithout: %+v\nwith:    %+v\ninput:   %+v", append(args, lo, hi, upper)...)
			}
			if modeRank[hi.Mode] < modeRank[lo.Mode] {
				fail("mode %s < %s", hi.Mode, lo.Mode)
			}
			if lo.PhishingResistant && !hi.PhishingResistant {
				fail("phishing resistance dropped")
			}
			if fuzzACRRank[hi.ACR] < fuzzACRRank[lo.ACR] {
				fail("acr %s < %s", hi.ACR, lo.ACR)
			}
			if len(lo.Kinds) > 0 && (len(hi.Kinds) == 0 || slices.ContainsFunc(hi.Kinds, func(k storage.FactorKind) bool { return !slices.Contains(lo.Kinds, k) })) {
				fail("kinds %v not within %v", hi.Kinds, lo.Kinds)
			}
			// 0 means "any age"; a fresh login re-checks everything anyway.
			if lo.MFAMaxAge > 0 && !hi.Fresh && (hi.MFAMaxAge <= 0 || hi.MFAMaxAge > lo.MFAMaxAge) {
				fail("second-factor max age %v, was %v", hi.MFAMaxAge, lo.MFAMaxAge)
			}
			if lo.Fresh && !hi.Fresh {
				fail("fresh login dropped")
			}
			if hi.DeviceCanSkip && !lo.DeviceCanSkip {
				fail("remembered device may now skip")
			}
			if hi.RememberDevice > lo.RememberDevice {
				fail("remember-device period %v > %v", hi.RememberDevice, lo.RememberDevice)
			}
		}
		raises("the account type's policy", client, policies)
		raises("the request", policies, full)

		// What the request asked for is what a satisfiable requirement reaches.
		r, err := Evaluate(full)
		if err != nil {
			return
		}
		lowest := -1
		for _, v := range full.Request.EssentialACR {
			if rank, ok := acrRank[v]; ok && (lowest < 0 || rank < lowest) {
				lowest = rank
			}
		}
		if lowest >= 0 && fuzzACRRank[r.ACR] < lowest {
			t.Fatalf("essential acr %v, but the requirement reaches only %s", full.Request.EssentialACR, r.ACR)
		}
		if hasMaxAge && maxAge >= 0 && maxAge <= int64(time.Duration(1<<63-1)/time.Second) {
			if !r.HasPasswordMaxAge || r.PasswordMaxAge != time.Duration(maxAge)*time.Second {
				t.Fatalf("max_age %d gave password max age %v (%v)", maxAge, r.PasswordMaxAge, r.HasPasswordMaxAge)
			}
		}
	})
}
