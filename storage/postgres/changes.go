package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/openidp/idp/storage"
)

// ChangeChannel is the NOTIFY channel of changes to cached records. Triggers
// (migrations 0014 and 0020) notify it in the same transaction as every change to
// clients, signing keys and type policies, so a listener hears of a change only once
// it is committed, and never of one rolled back.
const ChangeChannel = "openidp_cache"

// listenIdle is how long the listener waits for a notification before it checks that
// its connection is still alive (a network that drops packets silently would otherwise
// leave it waiting for ever, deaf to changes). A variable for tests.
var listenIdle = 10 * time.Second

// Timing of WatchChanges.
const (
	// listenPingTimeout bounds that check.
	listenPingTimeout = 5 * time.Second
	// Back-off between reconnections: doubling from the first to the last.
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// WatchChanges listens on ChangeChannel on a connection of its own (outside the pool)
// and reports each notification to h, until ctx ends. When the connection breaks it
// reports Lost, reconnects with back-off, and reports Watching again once it listens:
// notifications sent while it was away are lost, so the handler drops everything.
func (s *Store) WatchChanges(ctx context.Context, h storage.ChangeHandler) error {
	backoff := listenBackoffMin
	for {
		listened, err := s.listen(ctx, h)
		if ctx.Err() != nil {
			if listened {
				h.Lost(ctx.Err())
			}
			return ctx.Err()
		}
		if listened {
			h.Lost(err)
			backoff = listenBackoffMin
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, listenBackoffMax)
	}
}

// listen connects, listens and reports notifications until the connection fails or
// ctx ends. listened says whether it got as far as reporting Watching.
func (s *Store) listen(ctx context.Context, h storage.ChangeHandler) (listened bool, err error) {
	cfg := s.listenConfig.Copy()
	// A wait that times out only sets a deadline on the socket (the connection stays
	// usable), instead of sending PostgreSQL a cancel request.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("postgres: listen: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ChangeChannel}.Sanitize()); err != nil {
		return false, fmt.Errorf("postgres: listen: %w", err)
	}
	h.Watching()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			h.Changed(parseChange(n.Payload))
			continue
		case ctx.Err() != nil:
			return true, ctx.Err()
		case conn.IsClosed() || !isTimeout(err):
			return true, fmt.Errorf("postgres: listen: %w", err)
		}
		// Idle: check the connection answers.
		pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return true, fmt.Errorf("postgres: listen: ping: %w", err)
		}
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseChange reads a notification payload: "client:<id>" ("client:" for any client)
// or "signing_keys". Anything else is reported as its kind with no id.
func parseChange(payload string) storage.Change {
	kind, id, _ := strings.Cut(payload, ":")
	return storage.Change{Kind: storage.ChangeKind(kind), ID: id}
}
