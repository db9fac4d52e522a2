package postgres

import (
	"context"

	"github.com/openidp/idp/storage"
)

// RunIssueBatch runs ws as one batch of the writer (fast path, then with savepoints
// when a job fails), for tests.
func (s *Store) RunIssueBatch(ctx context.Context, ws []*storage.TokenIssue) []error {
	jobs := make([]writeJob, len(ws))
	for i, w := range ws {
		jobs[i] = issueJob(w)
	}
	return s.runBatch(ctx, jobs)
}
