package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openidp/idp/storage"
)

// OpenTraced is Open with tracer on the pool's connections (not the change listener's).
func OpenTraced(ctx context.Context, url string, tracer pgx.QueryTracer) (*Store, error) {
	return open(ctx, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = tracer })
}

// SetListenIdle changes how long WatchChanges waits before checking its connection,
// and returns a function that restores it. Not for parallel tests.
func SetListenIdle(d time.Duration) (restore func()) {
	old := listenIdle
	listenIdle = d
	return func() { listenIdle = old }
}

// RunIssueBatch runs ws as one batch of the writer (fast path, then with savepoints
// when a job fails), for tests.
func (s *Store) RunIssueBatch(ctx context.Context, ws []*storage.TokenIssue) []error {
	jobs := make([]writeJob, len(ws))
	for i, w := range ws {
		jobs[i] = issueJob(w)
	}
	return s.runBatch(ctx, jobs)
}
