package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"sync"

	"modernc.org/sqlite"
)

// driverName is the database/sql driver the store opens its pools with: modernc's
// SQLite driver, whose connections keep the statements they run prepared.
const driverName = "sqlite-openidp"

// stmtCacheSize bounds the statements a connection keeps prepared.
const stmtCacheSize = 64

func init() {
	sql.Register(driverName, cachingDriver{&sqlite.Driver{}})
}

// cachingDriver opens SQLite connections that prepare each statement they are given
// once and keep it: database/sql hands a connection the query text of every
// db.ExecContext, tx.QueryRowContext and the like, and SQLite would otherwise parse
// and plan it anew each time (in a profile of the SSO sign-in, 13% of the CPU went to
// the SQL parser). A statement is compiled against the schema; SQLite recompiles it by
// itself when a migration changes the schema.
type cachingDriver struct{ d driver.Driver }

// conn is what cachingDriver needs of the connections it wraps; modernc's have it all.
type conn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// Open opens a connection of the wrapped driver, keeping its statements.
func (d cachingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.d.Open(name)
	if err != nil {
		return nil, err
	}
	inner, ok := c.(conn)
	if !ok {
		return c, nil
	}
	return &cachingConn{conn: inner, stmts: make(map[string]*cachedStmt)}, nil
}

// cachingConn is a connection that runs single statements through statements it
// prepared earlier for the same text.
type cachingConn struct {
	conn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

// cachedStmt is a statement a connection keeps, and whether rows of it are open (it
// cannot run again until they are closed).
type cachedStmt struct {
	s    driver.Stmt
	busy bool
}

// cacheable reports whether query is one statement (a script is left to the driver,
// which runs it statement by statement).
func cacheable(query string) bool {
	return !strings.Contains(strings.TrimRight(query, " \t\r\n;"), ";")
}

// take returns the kept statement for query, prepared now if it is not kept yet,
// marked busy; nil when query is not kept (a script, or its statement is busy).
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	if !cacheable(query) {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		if st.busy {
			return nil, nil
		}
		st.busy = true
		return st, nil
	}
	s, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if len(c.stmts) >= stmtCacheSize {
		for q, old := range c.stmts {
			if !old.busy {
				_ = old.s.Close()
				delete(c.stmts, q)
				break
			}
		}
	}
	st := &cachedStmt{s: s, busy: true}
	c.stmts[query] = st
	return st, nil
}

func (c *cachingConn) release(st *cachedStmt) {
	c.mu.Lock()
	st.busy = false
	c.mu.Unlock()
}

// ExecContext runs query through its kept statement.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	st, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.conn.ExecContext(ctx, query, args)
	}
	defer c.release(st)
	return st.s.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext runs query through its kept statement, which stays busy until the rows
// are closed.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	st, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.conn.QueryContext(ctx, query, args)
	}
	rows, err := st.s.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(st)
		return nil, err
	}
	return &cachedRows{Rows: rows, release: func() { c.release(st) }}, nil
}

// Close closes the kept statements and the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	for q, st := range c.stmts {
		_ = st.s.Close()
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return c.conn.Close()
}

// cachedRows are the rows of a kept statement; closing them frees the statement.
type cachedRows struct {
	driver.Rows
	release func()
	once    sync.Once
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}
