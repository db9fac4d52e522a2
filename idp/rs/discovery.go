package rs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxDocumentSize bounds the discovery document, key set and introspection answers read
// from the provider.
const maxDocumentSize = 1 << 20

// discovery holds the endpoints read from the provider's discovery document (OpenID
// Connect Discovery 1.0 §4), fetched once, when first needed.
type discovery struct {
	mu                    sync.Mutex
	jwksURI               string
	introspectionEndpoint string
	done                  bool      // the document was read (or both endpoints configured)
	lastTry               time.Time // the last failed fetch, to rate-limit retries
	lastErr               error
}

// jwksURI returns the provider's key set URL.
func (v *Verifier) jwksURI(ctx context.Context) (string, error) {
	return v.endpoint(ctx, "jwks_uri", func(d *discovery) string { return d.jwksURI })
}

// introspectionEndpoint returns the provider's introspection endpoint.
func (v *Verifier) introspectionEndpoint(ctx context.Context) (string, error) {
	return v.endpoint(ctx, "introspection_endpoint", func(d *discovery) string { return d.introspectionEndpoint })
}

func (v *Verifier) endpoint(ctx context.Context, name string, pick func(*discovery) string) (string, error) {
	d := &v.discovery
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := pick(d); s != "" {
		return s, nil
	}
	if d.done {
		return "", fmt.Errorf("%w: the discovery document has no %s", ErrUnavailable, name)
	}
	now := v.now()
	if !d.lastTry.IsZero() && now.Sub(d.lastTry) < v.refetchInterval {
		return "", d.lastErr
	}
	if err := v.fetchDiscovery(ctx, d); err != nil {
		d.lastTry, d.lastErr = now, fmt.Errorf("%w: %w", ErrUnavailable, err)
		v.log.WarnContext(ctx, "rs: cannot read the provider's discovery document", "issuer", v.issuer, "err", err)
		return "", d.lastErr
	}
	d.done = true
	if s := pick(d); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("%w: the discovery document has no %s", ErrUnavailable, name)
}

// fetchDiscovery reads the discovery document into the endpoints not configured.
func (v *Verifier) fetchDiscovery(ctx context.Context, d *discovery) error {
	ctx, cancel := fetchContext(ctx)
	defer cancel()
	u := strings.TrimSuffix(v.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch discovery: %s", resp.Status)
	}
	var doc struct {
		Issuer                string `json:"issuer"`
		JWKSURI               string `json:"jwks_uri"`
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentSize)).Decode(&doc); err != nil {
		return fmt.Errorf("decode discovery: %w", err)
	}
	// OpenID Connect Discovery 1.0 §4.3: the issuer in the document must be the one the
	// document was fetched for.
	if doc.Issuer != v.issuer {
		return fmt.Errorf("discovery names issuer %q, want %q", doc.Issuer, v.issuer)
	}
	if d.jwksURI == "" {
		d.jwksURI = doc.JWKSURI
	}
	if d.introspectionEndpoint == "" {
		d.introspectionEndpoint = doc.IntrospectionEndpoint
	}
	return nil
}
