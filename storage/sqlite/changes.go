package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
)

// ChangePollInterval is how often WatchChanges reads the change counters. A change
// committed by another process (the `idp` CLI on the same file) reaches a watcher
// within about this long.
const ChangePollInterval = 500 * time.Millisecond

// WatchChanges reports changes to clients, signing keys and type policies until ctx
// ends. Triggers (migrations 0014 and 0020) bump a counter per kind in the same
// transaction as every change, by any process; WatchChanges reads the counters every
// ChangePollInterval and reports a kind whose counter moved as a change to any record
// of it (Change.ID empty). Reading the counters is one indexed read on a reader
// connection.
func (s *Store) WatchChanges(ctx context.Context, h storage.ChangeHandler) error {
	return s.watchChanges(ctx, h, ChangePollInterval)
}

func (s *Store) watchChanges(ctx context.Context, h storage.ChangeHandler, every time.Duration) error {
	var seen map[storage.ChangeKind]int64 // nil while not watching
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		cur, err := s.changeCounters(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			if seen != nil {
				h.Lost(err)
				seen = nil
			}
		case seen == nil:
			seen = cur
			h.Watching()
		default:
			for kind, v := range cur {
				if seen[kind] != v {
					h.Changed(storage.Change{Kind: kind})
				}
			}
			seen = cur
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// changeCounters reads the change counter of every kind.
func (s *Store) changeCounters(ctx context.Context) (map[storage.ChangeKind]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, version FROM cache_versions`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read change counters: %w", err)
	}
	defer rows.Close()
	out := map[storage.ChangeKind]int64{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("sqlite: read change counters: %w", err)
		}
		out[storage.ChangeKind(name)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read change counters: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("sqlite: no change counters (database not migrated?)")
	}
	return out, nil
}
