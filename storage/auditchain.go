package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// ChainHash is the hash that links an audit event to the one before it: SHA-256 over
// the previous hash and every field of the event except ID and Hash, in a fixed JSON
// encoding. Backends call it in AppendAudit; `idp audit verify` recomputes it.
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
	}{prevHash, e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
