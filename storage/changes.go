package storage

import "context"

// ChangeKind names a kind of record that a process may cache.
type ChangeKind string

// The kinds of cached record whose changes a ChangeWatcher reports.
const (
	// ChangeClient: a client was created, updated or deleted.
	ChangeClient ChangeKind = "client"
	// ChangeSigningKeys: a signing key was added, retired, re-sealed or deleted.
	ChangeSigningKeys ChangeKind = "signing_keys"
	// ChangeTypePolicy: an account type's policy was set or deleted.
	ChangeTypePolicy ChangeKind = "type_policy"
)

// Change is one committed change to records a process may cache.
type Change struct {
	Kind ChangeKind
	// ID is the id of the changed record (a client id); empty means any record of the
	// kind may have changed.
	ID string
}

// ChangeHandler receives what a ChangeWatcher sees.
type ChangeHandler interface {
	// Watching is called when the watcher starts watching, and again each time it
	// resumes after losing track: changes committed before may have been missed, so
	// everything cached before is to be dropped. Every change committed after it is
	// reported.
	Watching()
	// Lost is called when the watcher lost track of changes (its connection broke),
	// with the reason: until the next Watching, changes may be missed, so nothing may
	// be served from a cache.
	Lost(err error)
	// Changed reports a committed change. A change rolled back is never reported.
	Changed(c Change)
}

// ChangeWatcher is implemented by backends that can tell a process about changes to
// clients, signing keys and type policies committed by any process sharing the
// database (itself included), so that a cache of them stays correct (storage/cache).
type ChangeWatcher interface {
	// WatchChanges reports changes to h until ctx ends, reconnecting with back-off when
	// its connection breaks, and then returns ctx's error. Calls to h come from one
	// goroutine, in order: Watching first, Lost before each reconnection.
	WatchChanges(ctx context.Context, h ChangeHandler) error
}
