package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testResources(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	api := &storage.Resource{
		URI: "https://api.example/", Name: "API",
		AllowedClients: []string{"client-1", "client-2"}, RequiredScopes: []string{"api:read"},
		CreatedAt: now,
	}
	// Neither list set: no client is allowed and no scope is required.
	closed := &storage.Resource{URI: "urn:example:billing", CreatedAt: now.Add(-time.Minute)}
	for _, r := range []*storage.Resource{api, closed} {
		must(t, s.CreateResource(ctx, r))
		got, err := s.GetResource(ctx, r.URI)
		must(t, err)
		equal(t, "GetResource("+r.URI+")", got, r)
	}
	list, err := s.ListResources(ctx)
	must(t, err)
	equal(t, "ListResources", list, []storage.Resource{*closed, *api})

	runErrCases(t, []errCase{
		{"CreateResource duplicate URI", func() error {
			return s.CreateResource(ctx, &storage.Resource{URI: api.URI, CreatedAt: now})
		}, storage.ErrAlreadyExists},
		{"GetResource missing", func() error {
			_, err := s.GetResource(ctx, "https://missing.example/")
			return err
		}, storage.ErrNotFound},
		{"GetResource is exact (no trailing-slash normalisation)", func() error {
			_, err := s.GetResource(ctx, "https://api.example")
			return err
		}, storage.ErrNotFound},
		{"DeleteResource missing", func() error {
			return s.DeleteResource(ctx, "https://missing.example/")
		}, storage.ErrNotFound},
	})

	must(t, s.DeleteResource(ctx, closed.URI))
	_, err = s.GetResource(ctx, closed.URI)
	wantErr(t, err, storage.ErrNotFound)
	list, err = s.ListResources(ctx)
	must(t, err)
	equal(t, "ListResources after delete", list, []storage.Resource{*api})
}
