package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// ChainHash is the hash that links an audit event to the one before it: SHA-256 over
// the previous hash and every field of the event except ID and Hash, in a fixed JSON
// encoding. The ids an event concerns (TokenID, FamilyID, SessionID, FactorID) are
// covered only when set, so events written before they existed still verify. Backends call it in AppendAudit; `idp audit verify` recomputes it.
func ChainHash(prevHash string, e *AuditEvent) string {
	b, _ := json.Marshal(struct {
		Prev      string `json:"prev"`
		Time      string `json:"time"`
		Type      string `json:"type"`
		UserID    string `json:"user"`
		ClientID  string `json:"client"`
		IP        string `json:"ip"`
		UserAgent string `json:"ua"`
		Result    string `json:"result"`
		Reason    string `json:"reason"`
		TokenID   string `json:"token,omitempty"`
		FamilyID  string `json:"family,omitempty"`
		SessionID string `json:"session,omitempty"`
		FactorID  string `json:"factor,omitempty"`
	}{prevHash, e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason,
		e.TokenID, e.FamilyID, e.SessionID, e.FactorID})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
