package idp_test

// Code generated from storage.Storage's method set (every method counted); when the
// interface changes, regenerate it or add the new method by hand. DO NOT put logic here.

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openidp/idp/storage"
)

// callCountingStore counts every call of a storage.Storage method, by name: the store
// calls a request makes (each one SQL statement or one short transaction).
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

func (s *callCountingStore) AddAuditCheckpoint(a0 context.Context, a1 *storage.AuditCheckpoint) error {
	s.count("AddAuditCheckpoint")
	return s.Storage.AddAuditCheckpoint(a0, a1)
}

func (s *callCountingStore) AddSessionClient(a0 context.Context, a1 string, a2 string) error {
	s.count("AddSessionClient")
	return s.Storage.AddSessionClient(a0, a1, a2)
}

func (s *callCountingStore) AddSigningKey(a0 context.Context, a1 *storage.SigningKey, a2 time.Time) error {
	s.count("AddSigningKey")
	return s.Storage.AddSigningKey(a0, a1, a2)
}

func (s *callCountingStore) AdvanceTOTPStep(a0 context.Context, a1 string, a2 int64, a3 time.Time) error {
	s.count("AdvanceTOTPStep")
	return s.Storage.AdvanceTOTPStep(a0, a1, a2, a3)
}

func (s *callCountingStore) AppendAudit(a0 context.Context, a1 *storage.AuditEvent) error {
	s.count("AppendAudit")
	return s.Storage.AppendAudit(a0, a1)
}

func (s *callCountingStore) ApproveDeviceAuthorization(a0 context.Context, a1 string, a2 storage.AuthLogin, a3 time.Time) error {
	s.count("ApproveDeviceAuthorization")
	return s.Storage.ApproveDeviceAuthorization(a0, a1, a2, a3)
}

func (s *callCountingStore) AttemptChallenge(a0 context.Context, a1 string, a2 time.Time, a3 int) (*storage.Challenge, error) {
	s.count("AttemptChallenge")
	return s.Storage.AttemptChallenge(a0, a1, a2, a3)
}

func (s *callCountingStore) AuditHead(a0 context.Context) (storage.AuditHead, error) {
	s.count("AuditHead")
	return s.Storage.AuditHead(a0)
}

func (s *callCountingStore) Close() error {
	s.count("Close")
	return s.Storage.Close()
}

func (s *callCountingStore) ConsumeAuthCode(a0 context.Context, a1 string, a2 time.Time) (*storage.AuthRequest, error) {
	s.count("ConsumeAuthCode")
	return s.Storage.ConsumeAuthCode(a0, a1, a2)
}

func (s *callCountingStore) ConsumeBackupCode(a0 context.Context, a1 string, a2 string, a3 time.Time) error {
	s.count("ConsumeBackupCode")
	return s.Storage.ConsumeBackupCode(a0, a1, a2, a3)
}

func (s *callCountingStore) ConsumeChallenge(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("ConsumeChallenge")
	return s.Storage.ConsumeChallenge(a0, a1, a2)
}

func (s *callCountingStore) ConsumeDeviceAuthorization(a0 context.Context, a1 string, a2 time.Time) (*storage.DeviceAuthorization, error) {
	s.count("ConsumeDeviceAuthorization")
	return s.Storage.ConsumeDeviceAuthorization(a0, a1, a2)
}

func (s *callCountingStore) ConsumePushedRequest(a0 context.Context, a1 string, a2 string, a3 time.Time) (*storage.PushedRequest, error) {
	s.count("ConsumePushedRequest")
	return s.Storage.ConsumePushedRequest(a0, a1, a2, a3)
}

func (s *callCountingStore) CountBackupCodes(a0 context.Context, a1 string) (int, error) {
	s.count("CountBackupCodes")
	return s.Storage.CountBackupCodes(a0, a1)
}

func (s *callCountingStore) CreateAccessToken(a0 context.Context, a1 *storage.AccessToken) error {
	s.count("CreateAccessToken")
	return s.Storage.CreateAccessToken(a0, a1)
}

func (s *callCountingStore) CreateAuthRequest(a0 context.Context, a1 *storage.AuthRequest) error {
	s.count("CreateAuthRequest")
	return s.Storage.CreateAuthRequest(a0, a1)
}

func (s *callCountingStore) CreateChallenge(a0 context.Context, a1 *storage.Challenge) error {
	s.count("CreateChallenge")
	return s.Storage.CreateChallenge(a0, a1)
}

func (s *callCountingStore) CreateClient(a0 context.Context, a1 *storage.Client) error {
	s.count("CreateClient")
	return s.Storage.CreateClient(a0, a1)
}

func (s *callCountingStore) CreateDevice(a0 context.Context, a1 *storage.Device) error {
	s.count("CreateDevice")
	return s.Storage.CreateDevice(a0, a1)
}

func (s *callCountingStore) CreateDeviceAuthorization(a0 context.Context, a1 *storage.DeviceAuthorization) error {
	s.count("CreateDeviceAuthorization")
	return s.Storage.CreateDeviceAuthorization(a0, a1)
}

func (s *callCountingStore) CreateFactor(a0 context.Context, a1 *storage.Factor) error {
	s.count("CreateFactor")
	return s.Storage.CreateFactor(a0, a1)
}

func (s *callCountingStore) CreatePushedRequest(a0 context.Context, a1 *storage.PushedRequest) error {
	s.count("CreatePushedRequest")
	return s.Storage.CreatePushedRequest(a0, a1)
}

func (s *callCountingStore) CreateRefreshToken(a0 context.Context, a1 *storage.RefreshToken, a2 *storage.AccessToken) error {
	s.count("CreateRefreshToken")
	return s.Storage.CreateRefreshToken(a0, a1, a2)
}

func (s *callCountingStore) CreateResource(a0 context.Context, a1 *storage.Resource) error {
	s.count("CreateResource")
	return s.Storage.CreateResource(a0, a1)
}

func (s *callCountingStore) CreateSession(a0 context.Context, a1 *storage.Session) error {
	s.count("CreateSession")
	return s.Storage.CreateSession(a0, a1)
}

func (s *callCountingStore) CreateUser(a0 context.Context, a1 *storage.User) error {
	s.count("CreateUser")
	return s.Storage.CreateUser(a0, a1)
}

func (s *callCountingStore) DeleteAccessToken(a0 context.Context, a1 string) error {
	s.count("DeleteAccessToken")
	return s.Storage.DeleteAccessToken(a0, a1)
}

func (s *callCountingStore) DeleteAuditBefore(a0 context.Context, a1 time.Time) (int64, error) {
	s.count("DeleteAuditBefore")
	return s.Storage.DeleteAuditBefore(a0, a1)
}

func (s *callCountingStore) DeleteAuditCheckpointsBefore(a0 context.Context, a1 int64) (int64, error) {
	s.count("DeleteAuditCheckpointsBefore")
	return s.Storage.DeleteAuditCheckpointsBefore(a0, a1)
}

func (s *callCountingStore) DeleteAuthRequest(a0 context.Context, a1 string) error {
	s.count("DeleteAuthRequest")
	return s.Storage.DeleteAuthRequest(a0, a1)
}

func (s *callCountingStore) DeleteClient(a0 context.Context, a1 string) error {
	s.count("DeleteClient")
	return s.Storage.DeleteClient(a0, a1)
}

func (s *callCountingStore) DeleteConsent(a0 context.Context, a1 string, a2 string) error {
	s.count("DeleteConsent")
	return s.Storage.DeleteConsent(a0, a1, a2)
}

func (s *callCountingStore) DeleteDevice(a0 context.Context, a1 string, a2 string) error {
	s.count("DeleteDevice")
	return s.Storage.DeleteDevice(a0, a1, a2)
}

func (s *callCountingStore) DeleteExpired(a0 context.Context, a1 time.Time) (int64, error) {
	s.count("DeleteExpired")
	return s.Storage.DeleteExpired(a0, a1)
}

func (s *callCountingStore) DeleteFactor(a0 context.Context, a1 string, a2 string) error {
	s.count("DeleteFactor")
	return s.Storage.DeleteFactor(a0, a1, a2)
}

func (s *callCountingStore) DeleteResource(a0 context.Context, a1 string) error {
	s.count("DeleteResource")
	return s.Storage.DeleteResource(a0, a1)
}

func (s *callCountingStore) DeleteSession(a0 context.Context, a1 string) error {
	s.count("DeleteSession")
	return s.Storage.DeleteSession(a0, a1)
}

func (s *callCountingStore) DeleteTypePolicy(a0 context.Context, a1 string) error {
	s.count("DeleteTypePolicy")
	return s.Storage.DeleteTypePolicy(a0, a1)
}

func (s *callCountingStore) DeleteUserDevices(a0 context.Context, a1 string) (int64, error) {
	s.count("DeleteUserDevices")
	return s.Storage.DeleteUserDevices(a0, a1)
}

func (s *callCountingStore) DeleteUserFactors(a0 context.Context, a1 string) (int64, error) {
	s.count("DeleteUserFactors")
	return s.Storage.DeleteUserFactors(a0, a1)
}

func (s *callCountingStore) DeleteUserSessions(a0 context.Context, a1 string) (int64, error) {
	s.count("DeleteUserSessions")
	return s.Storage.DeleteUserSessions(a0, a1)
}

func (s *callCountingStore) DenyDeviceAuthorization(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("DenyDeviceAuthorization")
	return s.Storage.DenyDeviceAuthorization(a0, a1, a2)
}

func (s *callCountingStore) GetAccessToken(a0 context.Context, a1 string) (*storage.AccessToken, error) {
	s.count("GetAccessToken")
	return s.Storage.GetAccessToken(a0, a1)
}

func (s *callCountingStore) GetAuthRequest(a0 context.Context, a1 string) (*storage.AuthRequest, error) {
	s.count("GetAuthRequest")
	return s.Storage.GetAuthRequest(a0, a1)
}

func (s *callCountingStore) GetClient(a0 context.Context, a1 string) (*storage.Client, error) {
	s.count("GetClient")
	return s.Storage.GetClient(a0, a1)
}

func (s *callCountingStore) GetConsent(a0 context.Context, a1 string, a2 string) (*storage.Consent, error) {
	s.count("GetConsent")
	return s.Storage.GetConsent(a0, a1, a2)
}

func (s *callCountingStore) GetDeviceAuthorizationByUserCode(a0 context.Context, a1 string) (*storage.DeviceAuthorization, error) {
	s.count("GetDeviceAuthorizationByUserCode")
	return s.Storage.GetDeviceAuthorizationByUserCode(a0, a1)
}

func (s *callCountingStore) GetDeviceByTokenHash(a0 context.Context, a1 string) (*storage.Device, error) {
	s.count("GetDeviceByTokenHash")
	return s.Storage.GetDeviceByTokenHash(a0, a1)
}

func (s *callCountingStore) GetFactor(a0 context.Context, a1 string) (*storage.Factor, error) {
	s.count("GetFactor")
	return s.Storage.GetFactor(a0, a1)
}

func (s *callCountingStore) GetFailures(a0 context.Context, a1 string) (int, time.Time, error) {
	s.count("GetFailures")
	return s.Storage.GetFailures(a0, a1)
}

func (s *callCountingStore) GetOrCreateSecret(a0 context.Context, a1 string, a2 []byte) ([]byte, error) {
	s.count("GetOrCreateSecret")
	return s.Storage.GetOrCreateSecret(a0, a1, a2)
}

func (s *callCountingStore) GetRefreshToken(a0 context.Context, a1 string) (*storage.RefreshToken, error) {
	s.count("GetRefreshToken")
	return s.Storage.GetRefreshToken(a0, a1)
}

func (s *callCountingStore) GetRefreshTokenByHash(a0 context.Context, a1 string) (*storage.RefreshToken, error) {
	s.count("GetRefreshTokenByHash")
	return s.Storage.GetRefreshTokenByHash(a0, a1)
}

func (s *callCountingStore) GetResource(a0 context.Context, a1 string) (*storage.Resource, error) {
	s.count("GetResource")
	return s.Storage.GetResource(a0, a1)
}

func (s *callCountingStore) GetSession(a0 context.Context, a1 string) (*storage.Session, error) {
	s.count("GetSession")
	return s.Storage.GetSession(a0, a1)
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

func (s *callCountingStore) GetUserByEmail(a0 context.Context, a1 string) (*storage.User, error) {
	s.count("GetUserByEmail")
	return s.Storage.GetUserByEmail(a0, a1)
}

func (s *callCountingStore) HitRateLimit(a0 context.Context, a1 string, a2 time.Duration, a3 time.Time) (int, error) {
	s.count("HitRateLimit")
	return s.Storage.HitRateLimit(a0, a1, a2, a3)
}

func (s *callCountingStore) IncrementFailures(a0 context.Context, a1 string, a2 time.Time) (int, error) {
	s.count("IncrementFailures")
	return s.Storage.IncrementFailures(a0, a1, a2)
}

func (s *callCountingStore) IssueCodeTokens(a0 context.Context, a1 string, a2 *storage.AccessToken, a3 *storage.RefreshToken) error {
	s.count("IssueCodeTokens")
	return s.Storage.IssueCodeTokens(a0, a1, a2, a3)
}

func (s *callCountingStore) ListAllFactors(a0 context.Context) ([]storage.Factor, error) {
	s.count("ListAllFactors")
	return s.Storage.ListAllFactors(a0)
}

func (s *callCountingStore) ListAudit(a0 context.Context, a1 storage.AuditFilter) ([]storage.AuditEvent, error) {
	s.count("ListAudit")
	return s.Storage.ListAudit(a0, a1)
}

func (s *callCountingStore) ListAuditCheckpoints(a0 context.Context) ([]storage.AuditCheckpoint, error) {
	s.count("ListAuditCheckpoints")
	return s.Storage.ListAuditCheckpoints(a0)
}

func (s *callCountingStore) ListClients(a0 context.Context) ([]storage.Client, error) {
	s.count("ListClients")
	return s.Storage.ListClients(a0)
}

func (s *callCountingStore) ListFactors(a0 context.Context, a1 string) ([]storage.Factor, error) {
	s.count("ListFactors")
	return s.Storage.ListFactors(a0, a1)
}

func (s *callCountingStore) ListResources(a0 context.Context) ([]storage.Resource, error) {
	s.count("ListResources")
	return s.Storage.ListResources(a0)
}

func (s *callCountingStore) ListSecrets(a0 context.Context) (map[string][]byte, error) {
	s.count("ListSecrets")
	return s.Storage.ListSecrets(a0)
}

func (s *callCountingStore) ListSessionClients(a0 context.Context, a1 string) ([]string, error) {
	s.count("ListSessionClients")
	return s.Storage.ListSessionClients(a0, a1)
}

func (s *callCountingStore) ListSigningKeys(a0 context.Context) ([]storage.SigningKey, error) {
	s.count("ListSigningKeys")
	return s.Storage.ListSigningKeys(a0)
}

func (s *callCountingStore) ListTypePolicies(a0 context.Context) (map[string]storage.MFAPolicy, error) {
	s.count("ListTypePolicies")
	return s.Storage.ListTypePolicies(a0)
}

func (s *callCountingStore) ListUserDevices(a0 context.Context, a1 string) ([]storage.Device, error) {
	s.count("ListUserDevices")
	return s.Storage.ListUserDevices(a0, a1)
}

func (s *callCountingStore) ListUserSessions(a0 context.Context, a1 string) ([]storage.Session, error) {
	s.count("ListUserSessions")
	return s.Storage.ListUserSessions(a0, a1)
}

func (s *callCountingStore) ListUsers(a0 context.Context) ([]storage.User, error) {
	s.count("ListUsers")
	return s.Storage.ListUsers(a0)
}

func (s *callCountingStore) Migrate(a0 context.Context) (int, error) {
	s.count("Migrate")
	return s.Storage.Migrate(a0)
}

func (s *callCountingStore) Ping(a0 context.Context) error {
	s.count("Ping")
	return s.Storage.Ping(a0)
}

func (s *callCountingStore) PollDeviceAuthorization(a0 context.Context, a1 string, a2 time.Time, a3 time.Duration) (*storage.DeviceAuthorization, error) {
	s.count("PollDeviceAuthorization")
	return s.Storage.PollDeviceAuthorization(a0, a1, a2, a3)
}

func (s *callCountingStore) RateLimitCount(a0 context.Context, a1 string, a2 time.Duration, a3 time.Time) (int, error) {
	s.count("RateLimitCount")
	return s.Storage.RateLimitCount(a0, a1, a2, a3)
}

func (s *callCountingStore) ReleaseAttempt(a0 context.Context, a1 string, a2 storage.AttemptRule) error {
	s.count("ReleaseAttempt")
	return s.Storage.ReleaseAttempt(a0, a1, a2)
}

func (s *callCountingStore) ReplaceBackupCodes(a0 context.Context, a1 string, a2 []string, a3 time.Time) error {
	s.count("ReplaceBackupCodes")
	return s.Storage.ReplaceBackupCodes(a0, a1, a2, a3)
}

func (s *callCountingStore) ReserveAttempt(a0 context.Context, a1 string, a2 storage.AttemptRule, a3 time.Time) (storage.AttemptResult, error) {
	s.count("ReserveAttempt")
	return s.Storage.ReserveAttempt(a0, a1, a2, a3)
}

func (s *callCountingStore) ResetAttempts(a0 context.Context, a1 string) error {
	s.count("ResetAttempts")
	return s.Storage.ResetAttempts(a0, a1)
}

func (s *callCountingStore) ResetAttemptsPrefix(a0 context.Context, a1 string) (int64, error) {
	s.count("ResetAttemptsPrefix")
	return s.Storage.ResetAttemptsPrefix(a0, a1)
}

func (s *callCountingStore) ResetFailures(a0 context.Context, a1 string) error {
	s.count("ResetFailures")
	return s.Storage.ResetFailures(a0, a1)
}

func (s *callCountingStore) ResetRateLimit(a0 context.Context, a1 string) error {
	s.count("ResetRateLimit")
	return s.Storage.ResetRateLimit(a0, a1)
}

func (s *callCountingStore) RevokeCodeGrant(a0 context.Context, a1 string, a2 time.Time) (*storage.CodeGrant, error) {
	s.count("RevokeCodeGrant")
	return s.Storage.RevokeCodeGrant(a0, a1, a2)
}

func (s *callCountingStore) RevokeRefreshFamily(a0 context.Context, a1 string, a2 time.Time) (int64, error) {
	s.count("RevokeRefreshFamily")
	return s.Storage.RevokeRefreshFamily(a0, a1, a2)
}

func (s *callCountingStore) RevokeUserTokens(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("RevokeUserTokens")
	return s.Storage.RevokeUserTokens(a0, a1, a2)
}

func (s *callCountingStore) RotateRefreshToken(a0 context.Context, a1 string, a2 time.Time, a3 *storage.RefreshToken, a4 *storage.AccessToken) error {
	s.count("RotateRefreshToken")
	return s.Storage.RotateRefreshToken(a0, a1, a2, a3, a4)
}

func (s *callCountingStore) SaveAuthCode(a0 context.Context, a1 string, a2 string, a3 time.Time) error {
	s.count("SaveAuthCode")
	return s.Storage.SaveAuthCode(a0, a1, a2, a3)
}

func (s *callCountingStore) SaveConsent(a0 context.Context, a1 *storage.Consent) error {
	s.count("SaveConsent")
	return s.Storage.SaveConsent(a0, a1)
}

func (s *callCountingStore) SetAuthRequestLogin(a0 context.Context, a1 string, a2 storage.AuthLogin) error {
	s.count("SetAuthRequestLogin")
	return s.Storage.SetAuthRequestLogin(a0, a1, a2)
}

func (s *callCountingStore) SetLockedUntil(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("SetLockedUntil")
	return s.Storage.SetLockedUntil(a0, a1, a2)
}

func (s *callCountingStore) SetTypePolicy(a0 context.Context, a1 string, a2 storage.MFAPolicy) error {
	s.count("SetTypePolicy")
	return s.Storage.SetTypePolicy(a0, a1, a2)
}

func (s *callCountingStore) TouchDevice(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("TouchDevice")
	return s.Storage.TouchDevice(a0, a1, a2)
}

func (s *callCountingStore) TouchSession(a0 context.Context, a1 string, a2 time.Time) error {
	s.count("TouchSession")
	return s.Storage.TouchSession(a0, a1, a2)
}

func (s *callCountingStore) UpdateClient(a0 context.Context, a1 *storage.Client) error {
	s.count("UpdateClient")
	return s.Storage.UpdateClient(a0, a1)
}

func (s *callCountingStore) UpdateFactor(a0 context.Context, a1 *storage.Factor) error {
	s.count("UpdateFactor")
	return s.Storage.UpdateFactor(a0, a1)
}

func (s *callCountingStore) UpdateSecret(a0 context.Context, a1 string, a2 []byte) error {
	s.count("UpdateSecret")
	return s.Storage.UpdateSecret(a0, a1, a2)
}

func (s *callCountingStore) UpdateSessionAuth(a0 context.Context, a1 string, a2 storage.SessionAuth) error {
	s.count("UpdateSessionAuth")
	return s.Storage.UpdateSessionAuth(a0, a1, a2)
}

func (s *callCountingStore) UpdateSigningKeySealed(a0 context.Context, a1 string, a2 []byte) error {
	s.count("UpdateSigningKeySealed")
	return s.Storage.UpdateSigningKeySealed(a0, a1, a2)
}

func (s *callCountingStore) UpdateUser(a0 context.Context, a1 *storage.User) error {
	s.count("UpdateUser")
	return s.Storage.UpdateUser(a0, a1)
}

func (s *callCountingStore) UseAssertion(a0 context.Context, a1 string, a2 string, a3 time.Time, a4 time.Time) error {
	s.count("UseAssertion")
	return s.Storage.UseAssertion(a0, a1, a2, a3, a4)
}
