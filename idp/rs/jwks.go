package rs

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key set freshness when the provider says nothing (no Cache-Control max-age), and the
// longest it is trusted without asking again, whatever the provider says.
const (
	defaultKeySetTTL = 5 * time.Minute
	maxKeySetTTL     = 24 * time.Hour
)

// keySet is the cached JWKS. It is refetched when its max-age runs out (revalidated with
// If-None-Match when the provider sent an ETag) and when a token names a key it lacks,
// but never more often than Verifier.refetchInterval. When a fetch fails the cached set
// keeps serving.
type keySet struct {
	fetchMu sync.Mutex // held while fetching: one fetch at a time

	mu      sync.Mutex // guards the fields below
	keys    []jose.JSONWebKey
	etag    string
	expires time.Time // fresh until
	lastTry time.Time // the last fetch attempt, successful or not
	lastErr error     // why the last attempt failed; nil after a success
}

func (s *keySet) snapshot(now time.Time) (keys []jose.JSONWebKey, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, now.Before(s.expires)
}

// signingKeys returns the keys that may have signed a token with this kid and alg.
func (v *Verifier) signingKeys(ctx context.Context, kid string, alg jose.SignatureAlgorithm) ([]jose.JSONWebKey, error) {
	s := &v.keys
	keys, fresh := s.snapshot(v.now())
	found := matchKeys(keys, kid, alg)
	if len(found) > 0 && fresh {
		return found, nil
	}
	var err error
	if len(found) > 0 {
		// Known key, stale set: revalidate, unless another request already is; the
		// stale set serves meanwhile.
		if s.fetchMu.TryLock() {
			err = v.refreshKeys(ctx)
			s.fetchMu.Unlock()
		}
	} else {
		// No set yet, or a key it lacks (a rotation): fetch now, rate-limited.
		s.fetchMu.Lock()
		err = v.refreshKeys(ctx)
		s.fetchMu.Unlock()
	}
	keys, _ = s.snapshot(v.now())
	if len(keys) == 0 {
		if err == nil {
			s.mu.Lock()
			err = s.lastErr
			s.mu.Unlock()
		}
		if err == nil {
			err = errors.New("no key set yet")
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if found = matchKeys(keys, kid, alg); len(found) == 0 {
		return nil, invalid("unknown signing key")
	}
	return found, nil
}

// refreshKeys fetches the key set unless one was tried less than refetchInterval ago.
// The caller holds fetchMu. A failed fetch keeps the cached set.
func (v *Verifier) refreshKeys(ctx context.Context) error {
	s := &v.keys
	now := v.now()
	s.mu.Lock()
	if !s.lastTry.IsZero() && now.Sub(s.lastTry) < v.refetchInterval {
		s.mu.Unlock()
		return nil
	}
	s.lastTry = now
	etag := ""
	if len(s.keys) > 0 {
		etag = s.etag
	}
	s.mu.Unlock()

	ans, err := v.fetchKeys(ctx, etag)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
		v.log.WarnContext(ctx, "rs: cannot fetch the provider's key set; the cached set keeps serving",
			"issuer", v.issuer, "cached_keys", len(s.keys), "err", err)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !ans.notModified {
		s.keys, s.etag = ans.keys, ans.etag
	}
	s.expires = now.Add(max(ans.ttl, v.refetchInterval))
	s.lastErr = nil
	return nil
}

type keysAnswer struct {
	keys        []jose.JSONWebKey
	etag        string
	ttl         time.Duration
	notModified bool
}

// fetchKeys GETs the key set, conditionally when etag is set.
func (v *Verifier) fetchKeys(ctx context.Context, etag string) (keysAnswer, error) {
	u, err := v.jwksURI(ctx)
	if err != nil {
		return keysAnswer{}, err
	}
	ctx, cancel := fetchContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return keysAnswer{}, fmt.Errorf("key set request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return keysAnswer{}, fmt.Errorf("fetch key set: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return keysAnswer{notModified: true, ttl: cacheTTL(resp.Header)}, nil
	case resp.StatusCode != http.StatusOK:
		return keysAnswer{}, fmt.Errorf("fetch key set: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize))
	if err != nil {
		return keysAnswer{}, fmt.Errorf("read key set: %w", err)
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return keysAnswer{}, err
	}
	return keysAnswer{keys: keys, etag: resp.Header.Get("ETag"), ttl: cacheTTL(resp.Header)}, nil
}

// parseKeySet keeps the public signing keys of a JWKS, skipping keys it cannot use
// (encryption keys, symmetric or private keys, unknown types) rather than failing on them.
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Key.(type) {
		case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no usable signing key")
	}
	return keys, nil
}

// matchKeys returns the keys with this kid (any, when the token names none) that can
// verify alg.
func matchKeys(keys []jose.JSONWebKey, kid string, alg jose.SignatureAlgorithm) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != string(alg) {
			continue
		}
		if keyFits(k.Key, alg) {
			out = append(out, k)
		}
	}
	return out
}

// keyFits reports whether key is the kind alg verifies with.
func keyFits(key any, alg jose.SignatureAlgorithm) bool {
	switch key := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return key.Curve == elliptic.P256()
		case jose.ES384:
			return key.Curve == elliptic.P384()
		case jose.ES512:
			return key.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// cacheTTL is how long a key set answer stays fresh: its Cache-Control max-age less its
// Age (RFC 9111 §4.2), zero for no-cache or no-store, defaultKeySetTTL without either,
// and never more than maxKeySetTTL. The caller raises it to the refetch interval.
func cacheTTL(h http.Header) time.Duration {
	ttl, noCache := defaultKeySetTTL, false
	for _, dir := range strings.Split(strings.Join(h.Values("Cache-Control"), ","), ",") {
		dir = strings.ToLower(strings.TrimSpace(dir))
		switch {
		case dir == "no-cache", dir == "no-store":
			noCache = true
		case strings.HasPrefix(dir, "max-age="):
			if n, err := strconv.ParseInt(strings.Trim(dir[len("max-age="):], `"`), 10, 64); err == nil && n >= 0 {
				ttl = time.Duration(min(n, int64(maxKeySetTTL/time.Second))) * time.Second
			}
		}
	}
	if noCache {
		return 0
	}
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
		ttl -= time.Duration(min(age, int64(maxKeySetTTL/time.Second))) * time.Second
	}
	return min(max(ttl, 0), maxKeySetTTL)
}
