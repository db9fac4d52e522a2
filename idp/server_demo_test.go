package idp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDemoHostCookies(t *testing.T) {
	tests := []struct {
		name      string
		secure    bool
		write     bool   // the handler writes a body, rather than nothing
		wantSeen  string // value of "state" the library's handler sees
		wantSetAs string // name the browser is told to store it under
	}{
		{name: "https: prefixed both ways", secure: true, write: true, wantSeen: "good", wantSetAs: "__Host-state"},
		{name: "https: handler writes nothing", secure: true, wantSeen: "good", wantSetAs: "__Host-state"},
		{name: "http: unchanged", secure: false, write: true, wantSeen: "plain", wantSetAs: "state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &demoRP{s: &Server{secure: tt.secure}}
			var seen string
			h := d.hostCookies(func(w http.ResponseWriter, r *http.Request) {
				if c, err := r.Cookie("state"); err == nil {
					seen = c.Value
				}
				http.SetCookie(w, &http.Cookie{Name: "state", Value: "new", Path: "/", Secure: tt.secure})
				if tt.write {
					_, _ = w.Write([]byte("ok"))
				}
			})
			req := httptest.NewRequest(http.MethodGet, "/demo/callback", nil)
			req.Header.Set("Cookie", "state=plain; __Host-state=good; other=x")
			rec := httptest.NewRecorder()
			h(rec, req)
			if seen != tt.wantSeen {
				t.Errorf("handler saw state=%q, want %q", seen, tt.wantSeen)
			}
			cs := rec.Result().Cookies()
			if len(cs) != 1 || cs[0].Name != tt.wantSetAs || cs[0].Value != "new" {
				t.Errorf("cookies set = %v, want %s=new", cs, tt.wantSetAs)
			}
			if req.Header.Get("Cookie") != "state=plain; __Host-state=good; other=x" {
				t.Error("the caller's request was modified")
			}
		})
	}
}
