package sqlite

import (
	"strings"
	"testing"

	"github.com/openidp/idp/storage"
)

// The statements that find rows through a partial index — a code's request, the tokens
// of a refresh family or of a person, a person's events — state the index's condition,
// so that SQLite searches the index instead of reading the whole table. Each case runs
// the statement the store runs; without its not-empty term, the plan is a full scan.
func TestPartialIndexesUsed(t *testing.T) {
	s := newMigrated(t)
	userEvents, userArgs := auditQuery(storage.AuditFilter{UserID: "u"})
	userEventsPage, userPageArgs := auditQuery(storage.AuditFilter{UserID: "u", Limit: 50, BeforeID: 1000})
	tests := []struct {
		name, query string
		args        []any
		table       string
		index       string
	}{
		{"a code's request (code exchange)", consumeAuthCodeSQL, []any{"h", int64(1)}, "auth_requests", "auth_requests_code_hash"},
		{"access tokens of a family", deleteFamilyAccessSQL, []any{"f"}, "access_tokens", "access_tokens_family_id"},
		{"access tokens of a person", deleteUserAccessSQL, []any{"u", "u"}, "access_tokens", "access_tokens_user_id"},
		{"events of a person", userEvents, userArgs, "audit_events", "audit_events_user_id"},
		{"events of a person, newest page", userEventsPage, userPageArgs, "audit_events", "audit_events_user_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(plan, "; ")
			if !strings.Contains(joined, "USING INDEX "+tc.index) && !strings.Contains(joined, "USING COVERING INDEX "+tc.index) ||
				strings.Contains(joined, "SCAN "+tc.table) {
				t.Fatalf("plan %q: want a search of %s, no full scan of %s", joined, tc.index, tc.table)
			}
		})
	}
}
