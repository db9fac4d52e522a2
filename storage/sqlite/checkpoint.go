package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

// writerAutoCheckpoint is the WAL size (pages) past which the writer checkpoints in its
// own commit: only when the background checkpointer has fallen that far behind.
const writerAutoCheckpoint = 20000

// checkpointInterval is how often the checkpointer copies the WAL into the database.
const checkpointInterval = 100 * time.Millisecond

// checkpointer runs PASSIVE checkpoints on a connection of its own, every
// checkpointInterval: it copies the committed pages that no reader still needs from
// the WAL into the database file, without ever waiting for the writer or readers, so
// that the writer can start the WAL over again (its next transaction does, once every
// page is copied).
type checkpointer struct {
	db     *sql.DB
	stop   chan struct{}
	done   chan struct{}
	errors atomic.Int64 // checkpoints that failed (the writer's own autocheckpoint then steps in)
	runs   atomic.Int64
	// last is the last checkpoint's report: WAL frames and frames copied (log<<32 | copied).
	last atomic.Int64
}

func (s *Store) startCheckpointer(db *sql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	s.ckpt = c
	go func() {
		defer close(c.done)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.checkpoint()
			}
		}
	}()
}

// checkpoint runs one PASSIVE checkpoint.
func (c *checkpointer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	var busy, logFrames, copied int
	if err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
		c.errors.Add(1)
		return
	}
	c.last.Store(int64(logFrames)<<32 | int64(uint32(copied)))
	c.runs.Add(1)
}

// stopCheckpointer stops the checkpointer and closes its connection.
func (s *Store) stopCheckpointer() error {
	c := s.ckpt
	if c == nil {
		return nil
	}
	s.ckpt = nil
	close(c.stop)
	<-c.done
	return c.db.Close()
}
