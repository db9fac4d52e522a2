package idp

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// Resource indicators (RFC 8707). A client names the protected resources it wants a
// token for with the resource parameter, at /authorize and at /token; op parses neither,
// so opInterceptor keeps them in the request's reqState. Every resource must be
// registered (storage.Resource), list the client among its allowed clients, and have
// its required scopes among the token's scopes; otherwise the answer is invalid_target.
// The access token's aud is then the resources; the ID token's stays the client.

// maxResources is the most resource parameters one request may carry.
const maxResources = 10

// errInvalidTarget is RFC 8707 §2's error for a resource that is malformed, unknown or
// not for this client.
func errInvalidTarget(format string, args ...any) *oidc.Error {
	return oidc.ErrInvalidTarget().WithDescription(format, args...)
}

// requestedResources returns the resource parameters of the current request.
func requestedResources(ctx context.Context) []string {
	if st := reqStateFrom(ctx); st != nil {
		return st.resources
	}
	return nil
}

// checkResources validates the resources a request names for clientID with scopes
// (RFC 8707 §2) and returns them without duplicates, in the order named.
func (s *opStorage) checkResources(ctx context.Context, clientID string, resources, scopes []string) ([]string, error) {
	var out []string
	for _, uri := range resources {
		if slices.Contains(out, uri) {
			continue
		}
		if len(out) == maxResources {
			return nil, errInvalidTarget("at most %d resources per request", maxResources)
		}
		if err := admin.CheckResourceURI(uri); err != nil {
			return nil, errInvalidTarget("%s", err.Error())
		}
		r, err := s.store.GetResource(ctx, uri)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, errInvalidTarget("unknown resource %q", uri)
		case err != nil:
			return nil, oidc.ErrServerError().WithParent(err)
		case !slices.Contains(r.AllowedClients, clientID):
			return nil, errInvalidTarget("resource %q is not available to this client", uri)
		}
		for _, sc := range r.RequiredScopes {
			if !slices.Contains(scopes, sc) {
				return nil, errInvalidTarget("resource %q requires scope %q", uri, sc)
			}
		}
		out = append(out, uri)
	}
	return out, nil
}

// accessAudience decides the audience of the access token minted for grant g (RFC 8707
// §2.2). Without a resource parameter it is the grant's resources, or the client when
// the grant has none (as without resource indicators). With one, each resource must be
// among the grant's resources (when the grant has any: a refresh or code exchange may
// narrow, never widen) and be valid for the client now.
func (s *opStorage) accessAudience(ctx context.Context, g tokenGrant) ([]string, error) {
	requested := requestedResources(ctx)
	switch {
	case len(requested) == 0 && len(g.resources) == 0:
		return []string{g.clientID}, nil
	case len(requested) == 0:
		requested = g.resources
	case len(g.resources) > 0:
		for _, uri := range requested {
			if !slices.Contains(g.resources, uri) {
				return nil, errInvalidTarget("resource %q was not authorized for this grant", uri)
			}
		}
	}
	return s.checkResources(ctx, g.clientID, requested, g.scopes)
}

// resourcesNote is the part of an audit reason that names the resources of a token.
func resourcesNote(aud []string, clientID string) string {
	if slices.Equal(aud, []string{clientID}) {
		return ""
	}
	return ", resources " + strings.Join(aud, " ")
}
