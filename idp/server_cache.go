package idp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Cache lifetimes of the public documents; see Config.
const (
	DefaultJWKSMaxAge      = 10 * time.Minute
	DefaultDiscoveryMaxAge = 5 * time.Minute
)

// handleJWKS serves the published key set (pending, active and retired-but-kept keys,
// keys.Manager), cacheable for JWKSMaxAge. A rotation publishes a key at least that long
// before it signs (Config.KeyPublishDelay), so a verifier holding a fresh copy never
// meets an unknown kid.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	published, err := s.ops.KeySet(r.Context())
	if err != nil {
		s.logger.ErrorContext(r.Context(), "load published keys", "err", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "key set unavailable", http.StatusInternalServerError)
		return
	}
	// The same document op's /keys handler writes.
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(published))}
	for _, k := range published {
		set.Keys = append(set.Keys, jose.JSONWebKey{KeyID: k.ID(), Algorithm: string(k.Algorithm()), Use: k.Use(), Key: k.Key()})
	}
	s.serveCacheableJSON(w, r, set, s.cfg.JWKSMaxAge)
}

// serveCacheableJSON writes v as JSON that any cache may keep for maxAge, with a strong
// ETag (a hash of the body, so every process serving the same state gives the same tag),
// and answers a matching If-None-Match with 304 Not Modified (RFC 9110 §13.1.2). These
// documents are public and carry no tokens, unlike op's other responses (no-store,
// opInterceptor). Any origin may read them.
func (s *Server) serveCacheableJSON(w http.ResponseWriter, r *http.Request, v any, maxAge time.Duration) {
	body, err := json.Marshal(v)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "encode cacheable document", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(maxAge/time.Second), 10))
	h.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// etagMatch reports whether the If-None-Match header value matches etag: "*", or a
// listed tag equal to it under the weak comparison RFC 9110 §13.1.2 prescribes for
// If-None-Match (a W/ prefix does not count).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
