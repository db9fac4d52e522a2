package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testAudit(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	events := []*storage.AuditEvent{
		{Type: "login.password", UserID: "user-a", IP: "192.0.2.1", UserAgent: "ua", Result: "success"},
		{Type: "token.issue", UserID: "user-a", ClientID: "client-1", Result: "success"},
		{Type: "token.issue", UserID: "user-b", ClientID: "client-1", Result: "success"},
		{Type: "login.password", UserID: "user-b", IP: "198.51.100.7", Result: "failure", Reason: "bad password"},
		{Type: "token.refresh.reuse", UserID: "user-a", ClientID: "client-2", Result: "failure", Reason: "reuse"},
	}
	var lastID int64
	for i, e := range events {
		e.Time = now.Add(time.Duration(i) * time.Second)
		must(t, s.AppendAudit(ctx, e))
		if e.ID <= lastID {
			t.Fatalf("event %d got ID %d, want > %d", i, e.ID, lastID)
		}
		lastID = e.ID
	}
	pick := func(idx ...int) []storage.AuditEvent {
		var out []storage.AuditEvent
		for _, i := range idx {
			out = append(out, *events[i])
		}
		return out
	}
	tests := []struct {
		name   string
		filter storage.AuditFilter
		want   []storage.AuditEvent
	}{
		{"all", storage.AuditFilter{}, pick(0, 1, 2, 3, 4)},
		{"by user", storage.AuditFilter{UserID: "user-a"}, pick(0, 1, 4)},
		{"by client", storage.AuditFilter{ClientID: "client-1"}, pick(1, 2)},
		{"by type", storage.AuditFilter{Type: "login.password"}, pick(0, 3)},
		{"since", storage.AuditFilter{Since: events[2].Time.Add(-time.Second / 2)}, pick(2, 3, 4)},
		{"limit keeps the newest", storage.AuditFilter{Limit: 2}, pick(3, 4)},
		{"limit above count", storage.AuditFilter{Limit: 10}, pick(0, 1, 2, 3, 4)},
		{"user and limit", storage.AuditFilter{UserID: "user-a", Limit: 2}, pick(1, 4)},
		{"user and type", storage.AuditFilter{UserID: "user-a", Type: "token.issue"}, pick(1)},
		{"no match", storage.AuditFilter{ClientID: "client-none"}, nil},
		{"until", storage.AuditFilter{Until: events[2].Time}, pick(0, 1)},
		{"since and until", storage.AuditFilter{Since: events[1].Time, Until: events[3].Time}, pick(1, 2)},
		{"before id (next page)", storage.AuditFilter{BeforeID: events[3].ID, Limit: 2}, pick(1, 2)},
		{"before id, user", storage.AuditFilter{BeforeID: events[4].ID, UserID: "user-a"}, pick(0, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.filter)
			must(t, err)
			equal(t, "ListAudit", got, tc.want)
		})
	}
}
