package idp_test

// The store calls of the sign-in path, counted (TestSSOSignInCost). Only the methods of
// that path are wrapped; every other call goes straight through, uncounted.

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openidp/idp/storage"
)

// callCountingStore counts the calls of the sign-in path's storage.Storage methods, by
// name (each one SQL statement or one short transaction).
type callCountingStore struct {
	storage.Storage
	mu    sync.Mutex
	calls map[string]int
}

func newCallCountingStore(st storage.Storage) *callCountingStore {
	return &callCountingStore{Storage: st, calls: map[string]int{}}
}

func (s *callCountingStore) count(name string) {
	s.mu.Lock()
	s.calls[name]++
	s.mu.Unlock()
}

// reset forgets the calls counted so far.
func (s *callCountingStore) reset() {
	s.mu.Lock()
	s.calls = map[string]int{}
	s.mu.Unlock()
}

// snapshot returns the calls counted since the last reset and their total.
func (s *callCountingStore) snapshot() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, total := make(map[string]int, len(s.calls)), 0
	for k, v := range s.calls {
		out[k] = v
		total += v
	}
	return out, total
}

// String lists the counted calls, sorted by name.
func (s *callCountingStore) String() string {
	calls, total := s.snapshot()
	names := make([]string, 0, len(calls))
	for k := range calls {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteString("×")
		b.WriteString(strconv.Itoa(calls[n]))
		b.WriteString(" ")
	}
	b.WriteString("total ")
	b.WriteString(strconv.Itoa(total))
	return b.String()
}

func (s *callCountingStore) AddSessionClient(a0 context.Context, a1 string, a2 string) error {
	s.count("AddSessionClient")
	return s.Storage.AddSessionClient(a0, a1, a2)
}

func (s *callCountingStore) ConsumeAuthCode(a0 context.Context, a1 string, a2 time.Time) (*storage.AuthRequest, error) {
	s.count("ConsumeAuthCode")
	return s.Storage.ConsumeAuthCode(a0, a1, a2)
}

func (s *callCountingStore) CreateAuthRequest(a0 context.Context, a1 *storage.AuthRequest) error {
	s.count("CreateAuthRequest")
	return s.Storage.CreateAuthRequest(a0, a1)
}

func (s *callCountingStore) FinishAuthRequest(a0 context.Context, a1 *storage.AuthRequestFinish) error {
	s.count("FinishAuthRequest")
	return s.Storage.FinishAuthRequest(a0, a1)
}

func (s *callCountingStore) DeleteAuthRequest(a0 context.Context, a1 string) error {
	s.count("DeleteAuthRequest")
	return s.Storage.DeleteAuthRequest(a0, a1)
}

func (s *callCountingStore) GetAuthRequest(a0 context.Context, a1 string) (*storage.AuthRequest, error) {
	s.count("GetAuthRequest")
	return s.Storage.GetAuthRequest(a0, a1)
}

func (s *callCountingStore) GetConsent(a0 context.Context, a1 string, a2 string) (*storage.Consent, error) {
	s.count("GetConsent")
	return s.Storage.GetConsent(a0, a1, a2)
}

func (s *callCountingStore) GetSessionByTokenHash(a0 context.Context, a1 string) (*storage.Session, error) {
	s.count("GetSessionByTokenHash")
	return s.Storage.GetSessionByTokenHash(a0, a1)
}

func (s *callCountingStore) GetTypePolicy(a0 context.Context, a1 string) (*storage.MFAPolicy, error) {
	s.count("GetTypePolicy")
	return s.Storage.GetTypePolicy(a0, a1)
}

func (s *callCountingStore) GetUser(a0 context.Context, a1 string) (*storage.User, error) {
	s.count("GetUser")
	return s.Storage.GetUser(a0, a1)
}

func (s *callCountingStore) HitRateLimit(a0 context.Context, a1 string, a2 time.Duration, a3 time.Time) (int, error) {
	s.count("HitRateLimit")
	return s.Storage.HitRateLimit(a0, a1, a2, a3)
}

func (s *callCountingStore) ListFactors(a0 context.Context, a1 string) ([]storage.Factor, error) {
	s.count("ListFactors")
	return s.Storage.ListFactors(a0, a1)
}

func (s *callCountingStore) SaveAuthCode(a0 context.Context, a1 string, a2 string, a3 time.Time) error {
	s.count("SaveAuthCode")
	return s.Storage.SaveAuthCode(a0, a1, a2, a3)
}

func (s *callCountingStore) SetAuthRequestLogin(a0 context.Context, a1 string, a2 storage.AuthLogin) error {
	s.count("SetAuthRequestLogin")
	return s.Storage.SetAuthRequestLogin(a0, a1, a2)
}

func (s *callCountingStore) TouchSession(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("TouchSession")
	return s.Storage.TouchSession(a0, a1, a2)
}
