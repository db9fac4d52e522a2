// Package cache keeps clients, signing keys and account types' policies in process
// memory in front of a storage.Storage, and drops them when any process sharing the
// database changes them.
//
// The store under the cache must implement storage.ChangeWatcher; its changes arrive
// through Run. Until Run has started watching, and whenever the watcher has lost track
// of changes (a broken connection), the cache serves nothing from memory: every read
// goes to the database, so a change is never missed, only the speed-up is.
package cache

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openidp/idp/storage"
)

// Defaults of Options.
const (
	DefaultMaxClients = 10_000
	// DefaultMaxTypePolicies bounds the account types whose policy (or its absence) is
	// kept.
	DefaultMaxTypePolicies = 1_000
	DefaultTTL             = time.Minute
)

// Options tune a Store. The zero value uses the defaults.
type Options struct {
	// MaxClients bounds how many clients are kept; when full, an arbitrary one is
	// dropped for each new one. Only clients that exist are kept, so lookups of random
	// client ids cannot grow the cache.
	MaxClients int
	// MaxTypePolicies bounds how many account types' policies are kept, the types
	// without one included (their absence is what most sign-ins read); when full, an
	// arbitrary one is dropped for each new one.
	MaxTypePolicies int
	// TTL is how long an entry is served at most, a safety net behind the change
	// notifications.
	TTL time.Duration
	// Logger receives the watcher's state changes; nil logs nothing.
	Logger *slog.Logger
	// Now is the clock (for tests); nil means time.Now.
	Now func() time.Time
}

// Store is a storage.Storage that serves GetClient, ListSigningKeys and GetTypePolicy
// from memory when it can. Every other method goes straight to the store beneath.
// Writes made through the Store drop the entries they touch at once; writes by other
// processes arrive through Run.
type Store struct {
	storage.Storage
	watcher storage.ChangeWatcher
	opts    Options
	logger  *slog.Logger

	mu sync.RWMutex
	// watching: Run is watching changes, so entries may be served and filled.
	watching bool
	// epoch counts invalidations. A read from the database fills the cache only if no
	// invalidation happened since it began, so a value read before a change cannot
	// land in the cache after the change's invalidation.
	epoch    uint64
	clients  map[string]entry[*storage.Client]
	keys     *keysEntry
	policies map[string]entry[*storage.MFAPolicy] // nil: the type has no policy

	hits, misses atomic.Uint64
}

// entry is a cached record and when it stops being served.
type entry[T any] struct {
	v       T
	expires time.Time
}

type keysEntry struct {
	keys    []storage.SigningKey
	expires time.Time
}

var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.ChangeHandler = (*handler)(nil)
)

// New returns a cache in front of store. It caches nothing until Run watches changes
// (and never, if store is not a storage.ChangeWatcher).
func New(store storage.Storage, opts Options) *Store {
	if opts.MaxClients <= 0 {
		opts.MaxClients = DefaultMaxClients
	}
	if opts.MaxTypePolicies <= 0 {
		opts.MaxTypePolicies = DefaultMaxTypePolicies
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w, _ := store.(storage.ChangeWatcher)
	return &Store{Storage: store, watcher: w, opts: opts, logger: logger,
		clients: map[string]entry[*storage.Client]{}, policies: map[string]entry[*storage.MFAPolicy]{}}
}

// Unwrap returns the store beneath the cache.
func (s *Store) Unwrap() storage.Storage { return s.Storage }

// SetAuditChainKey passes k to the store beneath (storage.AuditChainKeyer), which keys
// the audit chain; the cache holds no audit events.
func (s *Store) SetAuditChainKey(k *storage.AuditChainKey) {
	if ak, ok := s.Storage.(storage.AuditChainKeyer); ok {
		ak.SetAuditChainKey(k)
	}
}

// Commits reports the write transactions of the store beneath (storage.CommitCounter),
// or 0 when it has no group-commit writer.
func (s *Store) Commits() int64 {
	if cc, ok := s.Storage.(storage.CommitCounter); ok {
		return cc.Commits()
	}
	return 0
}

// Flushes reports the flushes of the store beneath (storage.FlushCounter), or zeros
// when it makes no flushes of its own (PostgreSQL's are the database server's).
func (s *Store) Flushes() (int64, time.Duration) {
	if fc, ok := s.Storage.(storage.FlushCounter); ok {
		return fc.Flushes()
	}
	return 0, 0
}

// PoolStats reports the connection pool of the store beneath, or zeros when it cannot.
func (s *Store) PoolStats() storage.PoolStats {
	if ps, ok := s.Storage.(storage.PoolStatser); ok {
		return ps.PoolStats()
	}
	return storage.PoolStats{}
}

// Run watches the changes of the store beneath until ctx ends, and returns ctx's
// error. Without a storage.ChangeWatcher beneath it returns at once (nil), and the
// cache stays off.
func (s *Store) Run(ctx context.Context) error {
	if s.watcher == nil {
		s.logger.WarnContext(ctx, "cache: the store cannot report changes; clients and keys are not cached")
		return nil
	}
	defer s.stop()
	return s.watcher.WatchChanges(ctx, &handler{s: s})
}

// Stats returns how many lookups were served from memory and how many went to the
// database since the start.
func (s *Store) Stats() (hits, misses uint64) {
	return s.hits.Load(), s.misses.Load()
}

// Len returns how many clients are cached.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.clients)
}

// handler turns the watcher's reports into invalidations.
type handler struct{ s *Store }

func (h *handler) Watching() {
	h.s.logger.Info("cache: watching changes; cache on")
	h.s.reset(true)
}

func (h *handler) Lost(err error) {
	if errors.Is(err, context.Canceled) {
		h.s.logger.Debug("cache: stopped watching changes; cache off")
	} else {
		h.s.logger.Warn("cache: lost track of changes; cache off until watching again", "err", err)
	}
	h.s.reset(false)
}

func (h *handler) Changed(c storage.Change) {
	switch c.Kind {
	case storage.ChangeClient:
		h.s.invalidateClient(c.ID)
	case storage.ChangeSigningKeys:
		h.s.invalidateKeys()
	case storage.ChangeTypePolicy:
		h.s.invalidatePolicies()
	default: // a kind this version does not know: drop everything
		h.s.reset(h.s.Watching())
	}
}

// Watching reports whether the cache is on: Run is watching the changes.
func (s *Store) Watching() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.watching
}

// stop turns the cache off when Run returns.
func (s *Store) stop() { s.reset(false) }

// reset drops every entry and sets whether the cache is on.
func (s *Store) reset(watching bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	s.watching = watching
	clear(s.clients)
	s.keys = nil
	clear(s.policies)
}

// invalidateClient drops client id, or every client when id is empty.
func (s *Store) invalidateClient(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	if id == "" {
		clear(s.clients)
		return
	}
	delete(s.clients, id)
}

func (s *Store) invalidateKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	s.keys = nil
}

// invalidatePolicies drops every account type's policy.
func (s *Store) invalidatePolicies() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	clear(s.policies)
}

// GetTypePolicy returns the policy of accountType, or storage.ErrNotFound, from memory
// when it is there. That a type has no policy is kept too: it is what a sign-in of a
// person whose type has none reads.
func (s *Store) GetTypePolicy(ctx context.Context, accountType string) (*storage.MFAPolicy, error) {
	e, hit, fill := lookup(s, s.policies, accountType)
	if hit {
		if e.v == nil {
			return nil, storage.ErrNotFound
		}
		return clonePolicy(e.v), nil
	}
	p, err := s.Storage.GetTypePolicy(ctx, accountType)
	switch {
	case err == nil:
		fill.put(s.policies, clonePolicy(p), s.opts.MaxTypePolicies)
	case errors.Is(err, storage.ErrNotFound):
		fill.put(s.policies, nil, s.opts.MaxTypePolicies)
	}
	return p, err
}

// GetClient returns the client with that id, from memory when it is there. A missing
// client is not remembered.
func (s *Store) GetClient(ctx context.Context, id string) (*storage.Client, error) {
	e, hit, fill := lookup(s, s.clients, id)
	if hit {
		return cloneClient(e.v), nil
	}
	c, err := s.Storage.GetClient(ctx, id)
	if err != nil {
		return c, err
	}
	fill.put(s.clients, cloneClient(c), s.opts.MaxClients)
	return c, nil
}

// filler stores what a lookup that missed read from the database, unless the cache was
// off at the lookup or has dropped entries since (a value read before a change must not
// land in the cache after the change's invalidation).
type filler[T any] struct {
	s       *Store
	key     string
	on      bool
	epoch   uint64
	expires time.Time
}

// lookup returns key's entry of m when the cache is on and the entry fresh (hit), and
// counts the lookup; on a miss, fill stores what the caller reads instead.
func lookup[T any](s *Store, m map[string]entry[T], key string) (e entry[T], hit bool, fill filler[T]) {
	now := s.opts.Now()
	s.mu.RLock()
	e, ok := m[key]
	on, epoch := s.watching, s.epoch
	s.mu.RUnlock()
	hit = on && ok && now.Before(e.expires)
	s.count(hit)
	return e, hit, filler[T]{s: s, key: key, on: on, epoch: epoch, expires: now.Add(s.opts.TTL)}
}

// put stores v under the lookup's key in m, which holds at most limit entries: when full,
// an arbitrary one is dropped for it.
func (f filler[T]) put(m map[string]entry[T], v T, limit int) {
	if !f.on {
		return
	}
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.watching || s.epoch != f.epoch {
		return
	}
	if _, present := m[f.key]; !present && len(m) >= limit {
		for k := range m { // drop an arbitrary entry: map order is random
			delete(m, k)
			break
		}
	}
	m[f.key] = entry[T]{v: v, expires: f.expires}
}

// ListSigningKeys returns every stored key, newest first, from memory when it is there.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	keys, shared, err := s.listSigningKeys(ctx)
	if shared {
		keys = cloneKeys(keys)
	}
	return keys, err
}

// ListSigningKeysShared is ListSigningKeys without the copy: the keys may be the
// cache's own, which the caller must only read, and not keep. keys.Manager uses it for
// every token it signs. A cached entry is never modified, only replaced or dropped, so
// a list handed out stays as it was.
func (s *Store) ListSigningKeysShared(ctx context.Context) ([]storage.SigningKey, error) {
	keys, _, err := s.listSigningKeys(ctx)
	return keys, err
}

// listSigningKeys returns the keys, and whether they are the cache's own (shared).
func (s *Store) listSigningKeys(ctx context.Context) ([]storage.SigningKey, bool, error) {
	now := s.opts.Now()
	s.mu.RLock()
	e := s.keys
	on, epoch := s.watching, s.epoch
	s.mu.RUnlock()
	if on && e != nil && now.Before(e.expires) {
		s.count(true)
		return e.keys, true, nil
	}
	s.count(false)
	keys, err := s.Storage.ListSigningKeys(ctx)
	if err != nil || !on {
		return keys, false, err
	}
	s.mu.Lock()
	if s.watching && s.epoch == epoch {
		s.keys = &keysEntry{keys: cloneKeys(keys), expires: now.Add(s.opts.TTL)}
	}
	s.mu.Unlock()
	return keys, false, nil
}

func (s *Store) count(hit bool) {
	if hit {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
}

// CreateClient inserts c and drops any cached entry of its id.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	defer s.invalidateClient(c.ID)
	return s.Storage.CreateClient(ctx, c)
}

// UpdateClient updates c and drops its cached entry.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client) error {
	defer s.invalidateClient(c.ID)
	return s.Storage.UpdateClient(ctx, c)
}

// DeleteClient deletes client id and drops its cached entry.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	defer s.invalidateClient(id)
	return s.Storage.DeleteClient(ctx, id)
}

// AddSigningKey adds k (retiring the keys it replaces) and drops the cached keys.
func (s *Store) AddSigningKey(ctx context.Context, k *storage.SigningKey, retiredExpiry time.Time) error {
	defer s.invalidateKeys()
	return s.Storage.AddSigningKey(ctx, k, retiredExpiry)
}

// UpdateSigningKeySealed re-seals key id and drops the cached keys.
func (s *Store) UpdateSigningKeySealed(ctx context.Context, id string, sealed []byte) error {
	defer s.invalidateKeys()
	return s.Storage.UpdateSigningKeySealed(ctx, id, sealed)
}

// DeleteExpired removes expired rows (signing keys among them) and drops the cached keys.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	defer s.invalidateKeys()
	return s.Storage.DeleteExpired(ctx, now)
}

// Migrate migrates the store beneath and drops everything cached.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	defer func() { s.reset(s.Watching()) }()
	return s.Storage.Migrate(ctx)
}

// SetTypePolicy stores the policy of accountType and drops the cached policies.
func (s *Store) SetTypePolicy(ctx context.Context, accountType string, p storage.MFAPolicy) error {
	defer s.invalidatePolicies()
	return s.Storage.SetTypePolicy(ctx, accountType, p)
}

// DeleteTypePolicy removes the policy of accountType and drops the cached policies.
func (s *Store) DeleteTypePolicy(ctx context.Context, accountType string) error {
	defer s.invalidatePolicies()
	return s.Storage.DeleteTypePolicy(ctx, accountType)
}

// clonePolicy copies p deeply enough that the caller may change the copy.
func clonePolicy(p *storage.MFAPolicy) *storage.MFAPolicy {
	c := *p
	c.Factors = slices.Clone(p.Factors)
	return &c
}

// cloneClient copies c deeply enough that the caller may change the copy.
func cloneClient(c *storage.Client) *storage.Client {
	cp := *c
	cp.SecretHash = slices.Clone(c.SecretHash)
	cp.RedirectURIs = slices.Clone(c.RedirectURIs)
	cp.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	cp.GrantTypes = slices.Clone(c.GrantTypes)
	cp.Scopes = slices.Clone(c.Scopes)
	cp.Policy.Factors = slices.Clone(c.Policy.Factors)
	return &cp
}

func cloneKeys(keys []storage.SigningKey) []storage.SigningKey {
	out := slices.Clone(keys)
	for i := range out {
		out[i].PrivateSealed = slices.Clone(out[i].PrivateSealed)
		out[i].PublicJWK = slices.Clone(out[i].PublicJWK)
	}
	return out
}
