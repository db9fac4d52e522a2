package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage/seal"
)

// Seeder creates the people and clients a run needs in the provider's own database,
// through the operator actions (idp/admin) and the TOTP factor (mfa), as `idp users
// create` and an enrolment would.
type Seeder struct {
	Admin *admin.Admin
	// Factors stores the TOTP factors; Sealer seals their seeds as the server does
	// (the server's encryption key).
	Factors mfa.Store
	Sealer  *seal.Sealer
	// Issuer names the provider in the TOTP factor (as its enrolment would).
	Issuer string
	// AccessTokenFormat is the access-token format of both seeded clients:
	// admin.AccessTokenJWT (signed JWTs, RFC 9068) or admin.AccessTokenOpaque
	// (encrypted references); "" leaves the provider's default (JWT).
	AccessTokenFormat string
}

// seedActor is the actor of the audit events seeding writes.
const seedActor = "bench-seed"

// Seed creates people people with a password, people more with a password and a
// confirmed TOTP factor, a confidential client for client_credentials (scope "api") and
// a first-party confidential web client (code and refresh grants, redirecting to
// redirectURI), both with AccessTokenFormat. Every name carries a run id, so seeding
// again never clashes. All people share one random password, hashed once (the bench
// measures sign-ins, not seeding).
func (s *Seeder) Seed(ctx context.Context, people int, redirectURI string) (*Credentials, error) {
	if s.Admin == nil || s.Factors == nil || s.Sealer == nil {
		return nil, errors.New("seed: Admin, Factors and Sealer are required")
	}
	if people < 1 {
		return nil, fmt.Errorf("seed: people must be at least 1, not %d", people)
	}
	run := secret.Token(4) // 6 base64url characters
	password := secret.Token(12)
	hash, err := pwhash.Hash(password)
	if err != nil {
		return nil, fmt.Errorf("seed: hash password: %w", err)
	}
	adm := *s.Admin
	adm.Hash = func(context.Context, string) (string, error) { return hash, nil }

	creds := &Credentials{Scope: "api", IntrospectWith: IntrospectService}
	svc, svcSecret, err := adm.CreateClient(ctx, seedActor, admin.NewClient{
		Name: "bench service " + run, GrantTypes: []string{admin.GrantClientCredentials}, Scopes: []string{"api"},
		AccessTokenFormat: s.AccessTokenFormat,
	})
	if err != nil {
		return nil, fmt.Errorf("seed service client: %w", err)
	}
	creds.Service = ClientCredentials{ID: svc.ID, Secret: svcSecret}
	app, appSecret, err := adm.CreateClient(ctx, seedActor, admin.NewClient{
		Name: "bench app " + run, RedirectURIs: []string{redirectURI}, SkipConsent: true,
		GrantTypes:        []string{admin.GrantAuthorizationCode, admin.GrantRefreshToken},
		Scopes:            []string{"openid", "profile", "email", "offline_access"},
		AccessTokenFormat: s.AccessTokenFormat,
	})
	if err != nil {
		return nil, fmt.Errorf("seed app client: %w", err)
	}
	creds.App = ClientCredentials{ID: app.ID, Secret: appSecret}
	creds.RedirectURI = redirectURI

	totp := &mfa.TOTP{Env: &mfa.Env{Store: s.Factors, Sealer: s.Sealer, Issuer: s.Issuer}}
	for i := range 2 * people {
		email := fmt.Sprintf("bench-%s-%d@bench.example.com", run, i)
		u, err := adm.CreateUser(ctx, seedActor, admin.NewUser{Email: email, Name: fmt.Sprintf("Bench %d", i), Password: password})
		if err != nil {
			return nil, fmt.Errorf("seed person %d: %w", i, err)
		}
		p := Person{Email: u.Email, Password: password}
		if i < people {
			creds.People = append(creds.People, p)
			continue
		}
		enr, err := totp.Enroll(ctx, u, mfa.EnrollRequest{Name: "bench"})
		if err != nil {
			return nil, fmt.Errorf("seed totp of person %d: %w", i, err)
		}
		// Confirmed without a code, so that no time step is used up: the first sign-in
		// may use the current one.
		enr.Factor.Confirmed = true
		if err := s.Factors.UpdateFactor(ctx, enr.Factor); err != nil {
			return nil, fmt.Errorf("seed totp of person %d: confirm: %w", i, err)
		}
		p.TOTPSecret = enr.Secret
		creds.TOTPPeople = append(creds.TOTPPeople, p)
	}
	return creds, nil
}

// Credentials are what the scenarios sign in with: seeded, or given on the command line
// for another issuer.
type Credentials struct {
	// Service is the client of client_credentials, asking for Scope.
	Service ClientCredentials `json:"service"`
	Scope   string            `json:"scope,omitempty"`
	// App is the web client of the sign-in and refresh scenarios, redirecting to
	// RedirectURI (never followed: the bench reads the code from the redirect).
	App         ClientCredentials `json:"app"`
	RedirectURI string            `json:"redirect_uri"`
	// IntrospectWith says which client introspects, and so whose token: the service
	// client's client_credentials token, or the app's token from a sign-in (for
	// providers that answer introspection only to an audience other than the service).
	IntrospectWith string `json:"introspect_with"`
	// People sign in with a password only; TOTPPeople have a TOTP factor as well.
	People     []Person `json:"people,omitempty"`
	TOTPPeople []Person `json:"totp_people,omitempty"`
}

// Which client introspects (Credentials.IntrospectWith).
const (
	IntrospectService = "service"
	IntrospectApp     = "app"
)

// ClientCredentials identify a client at the token endpoint (HTTP Basic).
type ClientCredentials struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// Person is someone who signs in: the e-mail address (or user name) typed into the
// password form, the password and, for the TOTP scenario, the base32 TOTP seed.
type Person struct {
	Email      string `json:"email"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totp_secret,omitempty"`
}

// totpPeriod is the TOTP time step the bench computes codes for (RFC 6238 default, as
// the provider uses).
const totpPeriod = 30 * time.Second
