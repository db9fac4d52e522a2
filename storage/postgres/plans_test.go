package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres/pgtest"
)

// The statements that find rows through a partial index — a code's request, the tokens
// of a refresh family or of a person, the events of a person or a client — state the
// index's condition. The pool prepares its statements, and after five runs PostgreSQL
// may plan a statement once for every value of its parameters (a generic plan), which
// can use a partial index only when the query implies the index's condition. Each case
// plans the statement the store runs, as a generic plan; without its not-empty term, the
// plan is a sequential scan.
func TestPartialIndexesUsed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET plan_cache_mode`) //nolint:errcheck // the connection goes back to the pool

	userEvents, userArgs := auditQuery(storage.AuditFilter{UserID: "u"})
	userPage, userPageArgs := auditQuery(storage.AuditFilter{UserID: "u", Limit: 50, BeforeID: 1000})
	clientEvents, clientArgs := auditQuery(storage.AuditFilter{ClientID: "c"})
	tests := []struct {
		name, query string
		params      int
		table       string
		index       string
	}{
		{"a code's request (code exchange)", consumeAuthCodeSQL, 2, "auth_requests", "auth_requests_code_hash_key"},
		{"access tokens of a family", deleteFamilyAccessSQL, 1, "access_tokens", "access_tokens_family_id_idx"},
		{"access tokens of a person", deleteUserAccessSQL, 1, "access_tokens", "access_tokens_user_id_idx"},
		{"access tokens of a person's families", deleteUserFamilyAccessSQL, 1, "access_tokens", "access_tokens_family_id_idx"},
		{"events of a person", userEvents, len(userArgs), "audit_events", "audit_events_user_id_idx"},
		{"events of a person, newest page", userPage, len(userPageArgs), "audit_events", "audit_events_user_id_idx"},
		{"events of a client", clientEvents, len(clientArgs), "audit_events", "audit_events_client_id_idx"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("partial_index_plan_%d", i)
			if _, err := conn.Exec(ctx, `PREPARE `+name+` AS `+tc.query); err != nil {
				t.Fatal(err)
			}
			defer conn.Exec(ctx, `DEALLOCATE `+name) //nolint:errcheck // the session ends with the test
			nulls := strings.TrimSuffix(strings.Repeat("NULL, ", tc.params), ", ")
			rows, err := conn.Query(ctx, `EXPLAIN EXECUTE `+name+`(`+nulls+`)`)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, strings.TrimSpace(line))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(plan, "\n")
			if !strings.Contains(joined, " "+tc.index+" ") && !strings.HasSuffix(joined, " "+tc.index) ||
				strings.Contains(joined, "Seq Scan on "+tc.table) {
				t.Fatalf("generic plan:\n%s\nwant a scan of %s, no sequential scan of %s", joined, tc.index, tc.table)
			}
		})
	}
}
