package postgres

import "time"

// SetListenIdle changes how long WatchChanges waits before checking its connection,
// and returns a function that restores it. Not for parallel tests.
func SetListenIdle(d time.Duration) (restore func()) {
	old := listenIdle
	listenIdle = d
	return func() { listenIdle = old }
}
