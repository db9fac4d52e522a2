package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// scenario returns the set-up of the named scenario.
func (r *runner) scenario(ctx context.Context, name string) (*scenario, error) {
	c := r.o.Credentials
	switch name {
	case ScenarioClientCredentials:
		if c.Service.ID == "" {
			return nil, errors.New("no service client (--client-id)")
		}
		form := url.Values{"grant_type": {"client_credentials"}}
		if c.Scope != "" {
			form.Set("scope", c.Scope)
		}
		return &scenario{setup: func(context.Context, int) (op, error) {
			return func(ctx context.Context) error {
				_, err := r.token(ctx, c.Service, form)
				return err
			}, nil
		}}, nil

	case ScenarioIntrospection:
		if r.ep.Introspection == "" {
			return nil, errors.New("the issuer publishes no introspection endpoint")
		}
		return &scenario{setup: func(ctx context.Context, w int) (op, error) {
			who, token, err := r.introspectionToken(ctx, w)
			if err != nil {
				return nil, err
			}
			form := url.Values{"token": {token}}
			return func(ctx context.Context) error {
				var resp struct {
					Active bool `json:"active"`
				}
				if err := r.postForm(ctx, r.ep.Introspection, who, form, &resp); err != nil {
					return err
				}
				if !resp.Active {
					return errors.New("introspection: token not active")
				}
				return nil
			}, nil
		}}, nil

	case ScenarioRefresh:
		if err := r.needSignIn(c.People); err != nil {
			return nil, err
		}
		return &scenario{setup: func(ctx context.Context, w int) (op, error) {
			// Each worker its own chain: a sign-in of its own person gives the first token.
			tr, _, err := r.newBrowser().signInFlow(ctx, &c.People[w%len(c.People)], nil)
			if err != nil {
				return nil, err
			}
			rt := tr.RefreshToken
			if rt == "" {
				return nil, errors.New("the sign-in gave no refresh token (scope offline_access)")
			}
			return func(ctx context.Context) error {
				tr, err := r.token(ctx, c.App, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
				if err != nil {
					return err
				}
				if tr.RefreshToken != "" {
					rt = tr.RefreshToken
				}
				return nil
			}, nil
		}}, nil

	case ScenarioPassword:
		if err := r.needSignIn(c.People); err != nil {
			return nil, err
		}
		var next atomic.Uint64
		return &scenario{setup: func(context.Context, int) (op, error) {
			return func(ctx context.Context) error {
				p := &c.People[int(next.Add(1)-1)%len(c.People)]
				_, seen, err := r.newBrowser().signInFlow(ctx, p, nil)
				if err == nil && seen.passwordForms != 1 {
					err = fmt.Errorf("password sign-in passed %d password forms", seen.passwordForms)
				}
				return err
			}, nil
		}}, nil

	case ScenarioPasswordTOTP:
		if err := r.needSignIn(c.TOTPPeople); err != nil {
			return nil, err
		}
		// One pool for every round: a person who signed in during one round must not be
		// handed out again within the same time step by the next.
		if r.totp == nil {
			r.totp = newTOTPPool(c.TOTPPeople)
		}
		pool := r.totp
		pool.mu.Lock()
		waitsBefore := pool.waits
		pool.mu.Unlock()
		sc := &scenario{after: func() string {
			pool.mu.Lock()
			defer pool.mu.Unlock()
			if pool.waits == waitsBefore {
				return ""
			}
			return fmt.Sprintf("workers waited %d times for a person whose TOTP code was not yet used: seed more people", pool.waits-waitsBefore)
		}}
		sc.setup = func(context.Context, int) (op, error) {
			return func(ctx context.Context) error {
				p, step, err := pool.take(ctx)
				if err != nil {
					return err
				}
				defer pool.give(p, step)
				code := func() (string, error) {
					return totp.GenerateCodeCustom(p.TOTPSecret, time.Unix(step*int64(totpPeriod/time.Second), 0),
						totp.ValidateOpts{Period: uint(totpPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
				}
				_, seen, err := r.newBrowser().signInFlow(ctx, p, code)
				if err == nil && (seen.passwordForms != 1 || seen.codeForms != 1) {
					err = fmt.Errorf("password + TOTP sign-in passed %d password and %d code forms", seen.passwordForms, seen.codeForms)
				}
				return err
			}, nil
		}
		return sc, nil

	case ScenarioSSO:
		if err := r.needSignIn(c.People); err != nil {
			return nil, err
		}
		sc := &scenario{}
		var mu sync.Mutex
		sc.setup = func(ctx context.Context, w int) (op, error) {
			p := &c.People[w%len(c.People)]
			b := r.newBrowser()
			if _, _, err := b.signInFlow(ctx, p, nil); err != nil {
				return nil, err
			}
			// A provider that keeps no session (the zitadel/oidc example) asks for the
			// password again: then each sign-in is a full one, and the report says so.
			full := false
			if _, _, err := b.signInFlow(ctx, nil, nil); err != nil {
				if !strings.Contains(err.Error(), "asked for a password") {
					return nil, err
				}
				full = true
				mu.Lock()
				sc.note = "the provider keeps no SSO session: each is a full password sign-in"
				mu.Unlock()
			}
			return func(ctx context.Context) error {
				b.addr = r.nextAddr()
				if full {
					_, _, err := b.signInFlow(ctx, p, nil)
					return err
				}
				_, seen, err := b.signInFlow(ctx, nil, nil)
				if err == nil && seen.passwordForms+seen.codeForms+seen.consentForms != 0 {
					err = errors.New("SSO sign-in showed a form")
				}
				return err
			}, nil
		}
		return sc, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

func (r *runner) needSignIn(people []Person) error {
	c := r.o.Credentials
	if c.App.ID == "" || c.RedirectURI == "" {
		return errors.New("no web client (--app-client-id, --redirect-uri)")
	}
	if len(people) == 0 {
		return errors.New("no people to sign in (seed them, or --username/--password)")
	}
	return nil
}

// introspectionToken returns the client that introspects and the token it introspects
// for worker w: the service client's client_credentials token, or (IntrospectApp) the
// app's access token from a password sign-in.
func (r *runner) introspectionToken(ctx context.Context, w int) (ClientCredentials, string, error) {
	c := r.o.Credentials
	if c.IntrospectWith == IntrospectApp {
		if err := r.needSignIn(c.People); err != nil {
			return ClientCredentials{}, "", err
		}
		tr, _, err := r.newBrowser().signInFlow(ctx, &c.People[w%len(c.People)], nil)
		if err != nil {
			return ClientCredentials{}, "", err
		}
		return c.App, tr.AccessToken, nil
	}
	if c.Service.ID == "" {
		return ClientCredentials{}, "", errors.New("no service client (--client-id)")
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.Scope != "" {
		form.Set("scope", c.Scope)
	}
	tr, err := r.token(ctx, c.Service, form)
	if err != nil {
		return ClientCredentials{}, "", err
	}
	return c.Service, tr.AccessToken, nil
}

// totpPool hands out people with a TOTP factor so that no code is used twice: a person
// who signed in at time step s is next handed out at step s+1 (the provider accepts a
// step only once, and only a newer one after it). People queue in order, so with
// enough of them nobody waits.
type totpPool struct {
	mu    sync.Mutex
	queue []totpSlot
	waits int // times a worker found nobody ready and waited for the next step
	now   func() time.Time
}

type totpSlot struct {
	p    *Person
	next int64 // first time step this person may use
}

func newTOTPPool(people []Person) *totpPool {
	pool := &totpPool{now: time.Now}
	for i := range people {
		pool.queue = append(pool.queue, totpSlot{p: &people[i]})
	}
	return pool
}

func currentStep(t time.Time) int64 { return t.Unix() / int64(totpPeriod/time.Second) }

// take returns a person ready at the current step, and that step; it waits for the next
// step when nobody is ready.
func (pool *totpPool) take(ctx context.Context) (*Person, int64, error) {
	for {
		now := pool.now()
		step := currentStep(now)
		pool.mu.Lock()
		if len(pool.queue) > 0 && pool.queue[0].next <= step {
			s := pool.queue[0]
			pool.queue = pool.queue[1:]
			pool.mu.Unlock()
			return s.p, step, nil
		}
		pool.waits++
		wait := time.Unix((step+1)*int64(totpPeriod/time.Second), 0).Sub(now)
		if len(pool.queue) == 0 {
			wait = 10 * time.Millisecond // every person is in use: one comes back soon
		}
		pool.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// give puts p back, usable from the step after step.
func (pool *totpPool) give(p *Person, step int64) {
	pool.mu.Lock()
	pool.queue = append(pool.queue, totpSlot{p: p, next: step + 1})
	pool.mu.Unlock()
}
