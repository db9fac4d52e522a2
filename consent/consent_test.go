package consent

import (
	"slices"
	"testing"

	"github.com/openidp/idp/storage"
)

func TestRequired(t *testing.T) {
	grant := &storage.Consent{Scopes: []string{"email", "openid"}}
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"no grant", Request{Scopes: []string{"openid"}}, true},
		{"granted already", Request{Scopes: []string{"openid", "email"}, Grant: grant}, false},
		{"new scope", Request{Scopes: []string{"openid", "profile"}, Grant: grant}, true},
		{"first party", Request{Scopes: []string{"openid", "profile"}, SkipConsent: true}, false},
		{"prompt consent beats grant", Request{Scopes: []string{"openid"}, Grant: grant, Prompt: []string{"consent"}}, true},
		{"prompt consent beats first party", Request{Scopes: []string{"openid"}, SkipConsent: true, Prompt: []string{"consent"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Required(tt.req); got != tt.want {
				t.Fatalf("Required = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	got := Merge(&storage.Consent{Scopes: []string{"openid", "email"}}, []string{"profile", "openid"})
	if want := []string{"email", "openid", "profile"}; !slices.Equal(got, want) {
		t.Fatalf("Merge = %v, want %v", got, want)
	}
	if got := Merge(nil, []string{"openid"}); !slices.Equal(got, []string{"openid"}) {
		t.Fatalf("Merge(nil) = %v", got)
	}
	if Describe("weird") == "" || Describe("email") == "" {
		t.Fatal("empty description")
	}
}
