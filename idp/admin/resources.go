package admin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// maxResourceURI bounds the length of a resource URI, registered or requested.
const maxResourceURI = 2048

// NewResource is the input of Admin.CreateResource.
type NewResource struct {
	URI  string
	Name string
	// AllowedClients are the ids of the clients that may obtain tokens for the resource;
	// at least one, each a registered client.
	AllowedClients []string
	// RequiredScopes must all be among the scopes of a token issued for the resource.
	RequiredScopes []string
}

// CheckResourceURI reports whether uri may name a resource (RFC 8707 §2): an absolute
// URI without a fragment. A registered one must also have no query (the RFC's SHOULD
// NOT, enforced at registration; see CreateResource).
func CheckResourceURI(uri string) error {
	if len(uri) > maxResourceURI {
		return invalidf("resource URI exceeds %d bytes", maxResourceURI)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return invalidf("invalid resource URI %q: %v", uri, err)
	}
	if !u.IsAbs() {
		return invalidf("invalid resource URI %q: must be an absolute URI (RFC 8707 §2)", uri)
	}
	if u.Fragment != "" || strings.Contains(uri, "#") {
		return invalidf("invalid resource URI %q: must not contain a fragment (RFC 8707 §2)", uri)
	}
	return nil
}

// CreateResource validates and registers a resource. Its URI is stored as given and
// requests must name it exactly. On a validation error (an *InvalidInputError) nothing
// is written.
func (a *Admin) CreateResource(ctx context.Context, actor string, in NewResource) (*storage.Resource, error) {
	r := &storage.Resource{URI: strings.TrimSpace(in.URI), Name: strings.TrimSpace(in.Name)}
	if r.URI == "" {
		return nil, invalidf("resource URI is required")
	}
	if err := CheckResourceURI(r.URI); err != nil {
		return nil, err
	}
	if strings.Contains(r.URI, "?") {
		return nil, invalidf("invalid resource URI %q: must not contain a query (RFC 8707 §2)", r.URI)
	}
	clients, err := normalizeList(in.AllowedClients, nil, "client", func(id string) error {
		if _, err := a.Store.GetClient(ctx, id); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return invalidf("unknown client %q", id)
			}
			return fmt.Errorf("look up client %q: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(clients) == 0 {
		return nil, invalidf("at least one allowed client is required: a resource no client may use is of no use")
	}
	r.AllowedClients = clients
	scopes, err := normalizeList(in.RequiredScopes, nil, "scope", func(sc string) error {
		if !scopePattern.MatchString(sc) {
			return invalidf("invalid scope %q (allowed: [a-z0-9:._-]+)", sc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.RequiredScopes = scopes
	r.CreatedAt = a.now()
	failed := func(err error) {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminResourceCreate, Result: audit.ResultFailure},
			fmt.Sprintf("uri=%q err=%v", r.URI, err))
	}
	// A taken URI is refused before the success event is written ahead;
	// Store.CreateResource below still refuses one taken meanwhile.
	switch _, err := a.Store.GetResource(ctx, r.URI); {
	case err == nil:
		taken := existsError{fmt.Sprintf("resource %s already exists", r.URI)}
		failed(taken)
		return nil, taken
	case !errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("create resource: look up %s: %w", r.URI, err)
	}
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminResourceCreate, Result: audit.ResultSuccess},
		fmt.Sprintf("uri=%q clients=%s scopes=%s", r.URI, strings.Join(r.AllowedClients, ","), strings.Join(r.RequiredScopes, ","))); err != nil {
		return nil, fmt.Errorf("create resource: %w", err)
	}
	if err := a.Store.CreateResource(ctx, r); err != nil {
		failed(err)
		return nil, fmt.Errorf("create resource: %w", err)
	}
	return r, nil
}

// ListResources returns every registered resource, oldest first.
func (a *Admin) ListResources(ctx context.Context) ([]storage.Resource, error) {
	rs, err := a.Store.ListResources(ctx)
	if err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	return rs, nil
}

// DeleteResource removes the resource with that URI; storage.ErrNotFound when there is
// none. Tokens already issued for it stay valid until they expire; no new ones are issued.
// It only takes access away, so it goes ahead when its audit event cannot be written
// (recordProtective).
func (a *Admin) DeleteResource(ctx context.Context, actor, uri string) error {
	if err := a.Store.DeleteResource(ctx, uri); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminResourceDelete, Result: audit.ResultFailure},
			fmt.Sprintf("uri=%q err=%v", uri, err))
		return fmt.Errorf("delete resource: %w", err)
	}
	a.recordProtective(ctx, actor, storage.AuditEvent{Type: audit.EventAdminResourceDelete, Result: audit.ResultSuccess},
		fmt.Sprintf("uri=%q", uri))
	return nil
}

// ResourceView is a resource as the admin API and the CLI show it.
type ResourceView struct {
	URI            string    `json:"uri"`
	Name           string    `json:"name"`
	AllowedClients []string  `json:"allowed_clients"`
	RequiredScopes []string  `json:"required_scopes"`
	CreatedAt      time.Time `json:"created_at"`
}

// ToResourceView converts a stored resource for display.
func ToResourceView(r *storage.Resource) ResourceView {
	return ResourceView{URI: r.URI, Name: r.Name, AllowedClients: nonNilStrings(r.AllowedClients),
		RequiredScopes: nonNilStrings(r.RequiredScopes), CreatedAt: r.CreatedAt.UTC()}
}
