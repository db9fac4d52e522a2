package rs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxIntrospectionCache bounds the number of cached introspection answers.
const maxIntrospectionCache = 1024

// introspectionCache holds active introspection answers, keyed by a hash of the token,
// until min(exp, now+TTL). Inactive answers are not cached.
type introspectionCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedAnswer
}

type cachedAnswer struct {
	claims *Claims
	until  time.Time
}

func (c *introspectionCache) get(key [sha256.Size]byte, now time.Time) (*Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return e.claims.clone(), true
}

func (c *introspectionCache) put(key [sha256.Size]byte, claims *Claims, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[[sha256.Size]byte]cachedAnswer)
	}
	if len(c.entries) >= maxIntrospectionCache {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
	}
	if len(c.entries) >= maxIntrospectionCache {
		for k := range c.entries { // still full of live answers: drop any one
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = cachedAnswer{claims: claims.clone(), until: until}
}

// introspect verifies an opaque token by asking the provider (RFC 7662), then applies
// the same issuer, audience and expiry checks as to a JWT.
func (v *Verifier) introspect(ctx context.Context, token string) (*Claims, error) {
	if v.clientID == "" {
		return nil, invalid("opaque tokens are not accepted")
	}
	key := sha256.Sum256([]byte(token))
	if c, ok := v.introspection.get(key, v.now()); ok {
		return c, nil
	}
	endpoint, err := v.introspectionEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := v.postIntrospection(ctx, endpoint, token)
	if err != nil {
		v.log.WarnContext(ctx, "rs: introspection failed", "issuer", v.issuer, "err", err)
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var w wireClaims
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: decode introspection answer: %w", ErrUnavailable, err)
	}
	// RFC 7662 §2.2: only an answer with "active": true describes a usable token.
	if w.Active == nil || !*w.Active {
		return nil, invalid("the token is not active")
	}
	claims, err := v.check(&w, raw, false)
	if err != nil {
		return nil, err
	}
	if v.introspectionTTL > 0 {
		now := v.now()
		until := now.Add(v.introspectionTTL)
		if claims.Expiry.Before(until) {
			until = claims.Expiry
		}
		v.introspection.put(key, claims, until, now)
	}
	return claims, nil
}

// postIntrospection POSTs the token to the introspection endpoint with the API's client
// credentials (client_secret_basic, RFC 6749 §2.3.1: form-encoded, then Basic) and
// returns the answer.
func (v *Verifier) postIntrospection(ctx context.Context, endpoint, token string) ([]byte, error) {
	ctx, cancel := fetchContext(ctx)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(v.clientID), url.QueryEscape(v.clientSecret))
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// 401 here means the API's own credentials are wrong: a configuration error,
		// not the client's.
		return nil, fmt.Errorf("introspect: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize))
	if err != nil {
		return nil, fmt.Errorf("read introspection answer: %w", err)
	}
	return b, nil
}
