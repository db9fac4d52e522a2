package postgres

import (
	"context"
	"time"

	"github.com/openidp/idp/storage"
)

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
