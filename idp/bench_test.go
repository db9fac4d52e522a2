package idp_test

import (
	"net/url"
	"testing"

	"github.com/openidp/idp/idp"
)

// BenchmarkTokenEndpoint measures the token endpoint over HTTP on loopback, per grant
// and backend: go test -run '^$' -bench TokenEndpoint ./idp
func BenchmarkTokenEndpoint(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			e := newEnv(b, be.open(b))
			e.createUser("alice@example.com", password)
			app := e.createClient(idp.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
			svc := e.createClient(idp.NewClient{Name: "Svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})
			br := e.newBrowser()

			b.Run("client_credentials", func(b *testing.B) {
				form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
				for b.Loop() {
					if tr := e.tokenRequest(svc, form); tr.AccessToken == "" {
						b.Fatalf("client_credentials: %+v", tr)
					}
				}
			})

			// Concurrent callers, as a fleet of services would hit it; report req/s.
			b.Run("client_credentials_parallel", func(b *testing.B) {
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
					for pb.Next() {
						if tr := e.tokenRequest(svc, form); tr.AccessToken == "" {
							b.Errorf("client_credentials: %+v", tr)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})

			b.Run("refresh", func(b *testing.B) {
				rt := loginCode(b, e, br, app, nil).RefreshToken
				for b.Loop() {
					tr := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
					if tr.RefreshToken == "" {
						b.Fatalf("refresh: %+v", tr)
					}
					rt = tr.RefreshToken
				}
			})

			b.Run("code_exchange", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					verifier, challenge := pkce()
					p := br.Get(e.authURL(app, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
					code := p.RedirectParams(b).Get("code")
					b.StartTimer()
					tr := e.tokenRequest(app, url.Values{"grant_type": {"authorization_code"}, "code": {code},
						"redirect_uri": {app.RedirectURI}, "code_verifier": {verifier}})
					if tr.IDToken == "" {
						b.Fatalf("code exchange: %+v", tr)
					}
				}
			})

			b.Run("sso_authorize_and_exchange", func(b *testing.B) {
				for b.Loop() {
					loginCode(b, e, br, app, nil)
				}
			})
		})
	}
}
