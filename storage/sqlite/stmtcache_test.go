package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// A connection keeps one prepared statement per query text and runs it again; a query
// whose kept statement still has rows open runs uncached beside it, with correct
// results; scripts are not kept.
func TestStatementCache(t *testing.T) {
	db, err := sql.Open(driverName, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (n INTEGER); CREATE TABLE u (n INTEGER);`); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (n) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT n FROM t WHERE n >= ? ORDER BY n`
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var n int
		if err := outer.Scan(&n); err != nil {
			t.Fatal(err)
		}
		// The same text while outer's rows are open: its kept statement is busy.
		var inner int
		if err := tx.QueryRowContext(ctx, q, n).Scan(&inner); err != nil || inner != n {
			t.Fatalf("inner query for %d: %d, %v", n, inner, err)
		}
		got = append(got, n)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("outer rows %v, want 0..4", got)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*cachingConn)
		if !ok {
			t.Fatalf("connection is %T, want *cachingConn", dc)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.stmts) != 2 {
			t.Errorf("%d statements kept, want 2 (the insert and the select; not the script)", len(c.stmts))
		}
		for query, st := range c.stmts {
			if st.busy {
				t.Errorf("statement %q still busy after its rows closed", query)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
