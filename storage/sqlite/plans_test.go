package sqlite

import (
	"strings"
	"testing"
)

// The statements that find tokens and events by person or refresh family use the
// partial indexes of migration 0019 (which hold only rows with a person or a family):
// none of them reads a whole table.
func TestPartialIndexesUsed(t *testing.T) {
	s := newMigrated(t)
	tests := []struct {
		name, query, index string
	}{
		{"access tokens of a family", `DELETE FROM access_tokens WHERE family_id = ? AND family_id <> ''`, "access_tokens_family_id"},
		{"access tokens of a person", `DELETE FROM access_tokens WHERE (user_id = ? AND user_id <> '') OR
			(family_id <> '' AND family_id IN (SELECT family_id FROM refresh_tokens WHERE user_id = ?))`, "access_tokens_user_id"},
		{"events of a person", `SELECT id FROM audit_events WHERE user_id = ? AND user_id <> '' ORDER BY id DESC LIMIT 50`, "audit_events_user_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+tc.query, "x", "x")
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
			if !strings.Contains(joined, tc.index) || strings.Contains(joined, "SCAN access_tokens") || strings.Contains(joined, "SCAN audit_events") {
				t.Fatalf("plan %q: want a search of %s, no full scan", joined, tc.index)
			}
		})
	}
}
