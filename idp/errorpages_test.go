package idp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// downStore is a store whose database cannot be reached.
type downStore struct{ storage.Storage }

func (downStore) Ping(context.Context) error { return errors.New("connection refused") }

// TestErrorPagesAreHTML checks that what a person sees when something goes wrong is the
// HTML error page, in the site's layout, not a library's plain text.
func TestErrorPagesAreHTML(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	down := newEnv(t, downStore{openSQLite(t)})
	app := e.createClient(admin.NewClient{Name: "App"})
	unknown := app
	unknown.ID = "no-such-client"

	for _, tc := range []struct {
		name     string
		url      string
		status   int
		want     []string
		oldPlain string
	}{
		{
			name: "unknown client at /authorize", url: e.authURL(unknown, url.Values{}), status: http.StatusBadRequest,
			want:     []string{"not known to this sign-in service", "invalid_request"},
			oldPlain: "unable to retrieve client by id",
		},
		{
			name: "unregistered redirect_uri", url: e.authURL(app, url.Values{"redirect_uri": {"https://evil.example/cb"}}), status: http.StatusBadRequest,
			want: []string{"invalid_request"},
		},
		{
			name: "unknown path", url: e.issuer + "/no/such/page", status: http.StatusNotFound,
			want: []string{"Page not found"}, oldPlain: "404 page not found",
		},
		{
			name: "database down", url: down.issuer + "/readyz", status: http.StatusServiceUnavailable,
			want: []string{"Service unavailable"}, oldPlain: "database unavailable",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body := string(b)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want text/html", ct)
			}
			for _, w := range append([]string{"<main", `<html lang="`, "<title>"}, tc.want...) {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			if tc.oldPlain != "" && strings.Contains(body, tc.oldPlain) {
				t.Errorf("body still shows %q:\n%s", tc.oldPlain, body)
			}
		})
	}

	// Programs keep their plain answers.
	resp, err := http.Get(down.issuer + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("readyz without Accept: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
