// Package sweep runs a cleanup statement of the storage backends in bounded batches, so
// that a large backlog is cleared in short transactions instead of one long one.
package sweep

// Batch is the most rows one statement of a sweep changes: between two statements the
// other writes go on (the SQLite writer's batches; on PostgreSQL, few row locks are held
// at a time).
const Batch = 1000

// Repeat runs step, which changes at most limit rows and returns how many it changed,
// with limit Batch, until a run changes fewer than Batch or fails, and returns the total.
func Repeat(step func(limit int) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := step(Batch)
		if err != nil {
			return total, err
		}
		total += n
		if n < Batch {
			return total, nil
		}
	}
}
