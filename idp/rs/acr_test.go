package rs_test

import (
	"testing"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/rs"
)

// TestACRLevelsMatchTheProvider keeps rs's copy of the acr values, and their order,
// equal to the consent package's, which the provider issues. (rs cannot import consent
// itself: a client library must not pull in the provider's storage.)
func TestACRLevelsMatchTheProvider(t *testing.T) {
	levels := []struct{ rs, provider string }{
		{rs.ACRPassword, consent.ACRPassword},
		{rs.ACRMFA, consent.ACRMFA},
		{rs.ACRPhishingResistant, consent.ACRPhishingResistant},
	}
	for i, l := range levels {
		if l.rs != l.provider {
			t.Errorf("rs has %q where the provider has %q", l.rs, l.provider)
		}
		if got := rs.OpenIDPLevels(l.rs); got != i {
			t.Errorf("OpenIDPLevels(%q) = %d, want %d (lowest first)", l.rs, got, i)
		}
	}
}
