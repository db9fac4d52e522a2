package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// BenchmarkIssueTokensParallel issues client_credentials-shaped tokens (an access token
// and its audit event) from 8 goroutines per P through the group-commit writer: the
// store's share of the token endpoint's cost. Token ids are time-ordered, as the
// provider's are (secret.NewSortableID): random ones would write to random pages of
// the token table and the audit event's token index, which the provider never does.
// Run it pinned to one CPU (taskset -c 0 go test -bench IssueTokens -cpu 1) to compare
// with idp bench.
func BenchmarkIssueTokensParallel(b *testing.B) {
	s := newMigrated(b)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	c0 := s.Commits()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			at := &storage.AccessToken{ID: secret.NewSortableID(), ClientID: "bench-client", Audience: []string{"bench-client"},
				Scopes: []string{"api"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			w := &storage.TokenIssue{Access: at, Events: []*storage.AuditEvent{{Type: "token.issue",
				ClientID: "bench-client", Result: "success", TokenID: at.ID, IP: "127.0.0.1", UserAgent: "bench/1.0",
				Reason: "access token, scopes api"}}}
			if err := s.IssueTokens(ctx, w); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(s.Commits()-c0)*1000/float64(b.N), "commits/1000")
}
