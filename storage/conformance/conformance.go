package conformance

import (
	"testing"

	"github.com/openidp/idp/storage"
)

// RunTests runs the conformance suite against the backend made by newStore. newStore
// must return a fresh, empty, already migrated store for every call and register its
// Close with t.Cleanup. Every subtest gets its own store.
//
// Times in the suite are truncated to microseconds, so a backend that keeps microsecond
// precision (PostgreSQL) passes. Nil and empty slices are treated as equal.
func RunTests(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Storage)
	}{
		{"Users", testUsers},
		{"Clients", testClients},
		{"UsedAssertions", testUsedAssertions},
		{"PushedRequests", testPushedRequests},
		{"AuthRequests", testAuthRequests},
		{"FinishAuthRequest", testFinishAuthRequest},
		{"AuthCodes", testAuthCodes},
		{"AuthCodeConcurrentConsume", testAuthCodeConcurrentConsume},
		{"CodeReplay", testCodeReplay},
		{"Sessions", testSessions},
		{"SessionTokenRotation", testSessionTokenRotation},
		{"Consents", testConsents},
		{"AccessTokens", testAccessTokens},
		{"RefreshTokens", testRefreshTokens},
		{"RefreshConcurrentRotate", testRefreshConcurrentRotate},
		{"RevokeRefreshFamily", testRevokeRefreshFamily},
		{"ClearRefreshSuccessors", testClearRefreshSuccessors},
		{"IssueTokens", testIssueTokens},
		{"IssueTokensConcurrent", testIssueTokensConcurrent},
		{"IssueTokensWhileWriting", testIssueTokensWhileWriting},
		{"RevokeUserTokens", testRevokeUserTokens},
		{"SigningKeys", testSigningKeys},
		{"SigningKeyActivation", testSigningKeyActivation},
		{"Audit", testAudit},
		{"AuditChain", testAuditChain},
		{"AuditChainKeyed", testAuditChainKeyed},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"RateLimits", testRateLimits},
		{"Attempts", testAttempts},
		{"AttemptsConcurrent", testAttemptsConcurrent},
		{"DeleteExpired", testDeleteExpired},
		{"MigrateAndPing", testMigrateAndPing},
		{"Factors", testFactors},
		{"ListFactorsOrder", testListFactorsOrder},
		{"DeleteFactor", testDeleteFactor},
		{"AdvanceTOTPStep", testAdvanceTOTPStep},
		{"AdvanceTOTPStepConcurrent", testAdvanceTOTPStepConcurrent},
		{"BackupCodes", testBackupCodes},
		{"BackupCodeConcurrentConsume", testBackupCodeConcurrentConsume},
		{"Challenges", testChallenges},
		{"ReplaceChallenge", testReplaceChallenge},
		{"ChallengeConcurrentAttempts", testChallengeConcurrentAttempts},
		{"FailureCounters", testFailureCounters},
		{"Secrets", testSecrets},
		{"SecretConcurrentCreate", testSecretConcurrentCreate},
		{"UpdateSigningKeySealed", testUpdateSigningKeySealed},
		{"DeleteExpiredMFA", testDeleteExpiredMFA},
		{"SessionClients", testSessionClients},
		{"TypePolicies", testTypePolicies},
		{"MFAPolicyRoundTrip", testMFAPolicyRoundTrip},
		{"Devices", testDevices},
		{"DeleteExpiredDevices", testDeleteExpiredDevices},
		{"Resources", testResources},
		{"DeviceAuthorizations", testDeviceAuthorizations},
		{"DeviceAuthorizationConcurrentConsume", testDeviceAuthorizationConcurrentConsume},
		{"PasswordResets", testPasswordResets},
		{"PasswordResetConcurrentComplete", testPasswordResetConcurrentComplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}
