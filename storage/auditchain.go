package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// AuditChainKeyPurpose is the purpose under which the audit chain key is derived from
// the encryption key (seal.Sealer.DeriveKey / DeriveKeys, HKDF-SHA256).
const AuditChainKeyPurpose = "audit-chain"

// AuditChainKey is a secret key of the audit chain. It is never stored: every process
// derives it from the encryption key. ID is public and recorded on every event it keys
// (AuditEvent.ChainKey): the id of the encryption key it was derived from, so events
// keyed before an encryption-key rotation still verify with the old key.
type AuditChainKey struct {
	ID  string
	Key [32]byte
}

// AuditChainKeyer is implemented by the stores: SetAuditChainKey makes every later
// AppendAudit key its link hash with k (KeyedChainHash). Call it once, before the store
// is used; nil leaves appends unkeyed, which LinkAudit refuses after a keyed event.
type AuditChainKeyer interface {
	SetAuditChainKey(k *AuditChainKey)
}

// ErrAuditKeyRequired is returned by AppendAudit when the newest event is keyed but the
// store has no audit chain key: an unkeyed event after a keyed one would be a downgrade
// that `idp audit verify` reports as tampering, so it is not written.
var ErrAuditKeyRequired = errors.New("the audit chain is keyed but this process has no audit chain key: set IDP_ENCRYPTION_KEY")

// chainInput is the fixed JSON encoding of an event that both link hashes cover. The
// unkeyed form (version 1) has no "v" and "key" members and must stay byte-identical, so
// that events written before keying still verify.
func chainInput(prevHash string, e *AuditEvent, keyed bool) []byte {
	type v1 struct {
		Prev      string `json:"prev"`
		Time      string `json:"time"`
		Type      string `json:"type"`
		UserID    string `json:"user"`
		ClientID  string `json:"client"`
		IP        string `json:"ip"`
		UserAgent string `json:"ua"`
		Result    string `json:"result"`
		Reason    string `json:"reason"`
	}
	base := v1{prevHash, e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), e.Type, e.UserID,
		e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason}
	if !keyed {
		b, _ := json.Marshal(base)
		return b
	}
	b, _ := json.Marshal(struct {
		V   int    `json:"v"`
		Key string `json:"key"`
		v1
	}{2, e.ChainKey, base})
	return b
}

// ChainHash is the unkeyed link hash of the events written before the chain was keyed
// (ChainKey ""): SHA-256 over the previous hash and every field of the event except ID
// and the hashes, in a fixed JSON encoding. Anyone can compute it, so it only detects
// accidents; `idp audit verify` still checks it for those old events.
func ChainHash(prevHash string, e *AuditEvent) string {
	sum := sha256.Sum256(chainInput(prevHash, e, false))
	return hex.EncodeToString(sum[:])
}

// KeyedChainHash is the link hash of a keyed event: HMAC-SHA256 under key over the
// previous hash, a version marker, e.ChainKey (the key's id) and every field ChainHash
// covers. Without the key nobody can compute it, so an event cannot be deleted,
// inserted or edited and the chain recomputed by someone who only has the database.
func KeyedChainHash(key []byte, prevHash string, e *AuditEvent) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(chainInput(prevHash, e, true))
	return hex.EncodeToString(mac.Sum(nil))
}

// LinkAudit makes e the successor of the newest event, whose hash is prevHash ("" for
// the first) and whose chain key id is prevKey: it sets e.PrevHash, e.ChainKey and
// e.Hash. With key, the link is keyed (KeyedChainHash); without, it is unkeyed
// (ChainHash), which is refused with ErrAuditKeyRequired after a keyed event. Backends
// call it in AppendAudit, inside the transaction that read the newest event.
func LinkAudit(key *AuditChainKey, prevHash, prevKey string, e *AuditEvent) error {
	e.PrevHash = prevHash
	if key == nil {
		if prevKey != "" {
			return ErrAuditKeyRequired
		}
		e.ChainKey = ""
		e.Hash = ChainHash(prevHash, e)
		return nil
	}
	e.ChainKey = key.ID
	e.Hash = KeyedChainHash(key.Key[:], prevHash, e)
	return nil
}
