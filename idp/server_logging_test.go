package idp

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/secret"
)

func TestLogHandlerAddsRequestContext(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "test")
	ctx := withRequestInfo(context.Background(), &requestInfo{ID: "req-1", IP: "192.0.2.7"})
	log.InfoContext(ctx, "hello")
	log.Info("no request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "request_id=req-1") || !strings.Contains(lines[0], "ip=192.0.2.7") ||
		!strings.Contains(lines[0], "component=test") || strings.Contains(lines[1], "request_id") {
		t.Fatalf("log output:\n%s", buf.String())
	}
}

func TestNewIDNeverLooksLikeAFlag(t *testing.T) {
	for i := 0; i < 5000; i++ {
		if id := secret.NewID(); id[0] == '-' || strings.Contains(id, ":") || len(id) != 22 {
			t.Fatalf("bad id %q", id)
		}
	}
}
