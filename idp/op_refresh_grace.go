package idp

import (
	"context"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// DefaultRefreshReuseGrace is how long after a rotation the same client may present
// the rotated refresh token again and get the same successor (Config.RefreshReuseGrace).
const DefaultRefreshReuseGrace = 30 * time.Second

// A refresh token is rotated in one transaction, and the answer carrying its successor
// can still be lost: the process is killed after the commit, or the connection drops.
// The client then holds only the rotated token, and presenting it again would count as
// reuse and revoke the whole family. Within the grace window, the same client presenting
// the token it just rotated gets the same successor again (and a new access token), as
// long as that successor is still current: nothing new enters the family. Outside the
// window, from another client, or once the successor was itself used, it is reuse.
//
// The successor's value is stored on the rotated row sealed under the encryption key,
// bound to the successor's id; it is never stored in plaintext.

// graceRetry is a refresh request answered with the successor issued before.
type graceRetry struct {
	rotated *storage.RefreshToken // the token presented again
	value   string                // the successor's value, unsealed
}

// successorAAD binds a sealed successor value to the successor's id.
func successorAAD(successorID string) []byte {
	return []byte("refresh-successor:" + successorID)
}

// graceRequest returns the request that re-issues the successor of the rotated token
// rt, when the retry is one the grace window allows: the presenting client is rt's
// client, rt was rotated at most refreshGrace ago and its successor is still current.
// Otherwise nil: the caller treats the presentation as reuse.
func (s *opStorage) graceRequest(ctx context.Context, rt *storage.RefreshToken) *refreshRequest {
	if s.refreshGrace <= 0 || s.sealer == nil || rt.SuccessorID == "" || len(rt.SuccessorSealed) == 0 {
		return nil
	}
	if s.now().Sub(rt.RotatedAt) > s.refreshGrace {
		return nil
	}
	st := reqStateFrom(ctx)
	if st == nil {
		return nil
	}
	presenting := st.presentingClient
	if presenting == "" {
		presenting = st.assertedClient // private_key_jwt (op_client_auth.go)
	}
	if presenting != rt.ClientID {
		return nil
	}
	next, err := s.store.GetRefreshToken(ctx, rt.SuccessorID)
	if err != nil || !next.RotatedAt.IsZero() || !next.RevokedAt.IsZero() || s.now().After(next.ExpiresAt) {
		return nil
	}
	value, err := s.sealer.Open(rt.SuccessorSealed, successorAAD(next.ID))
	if err != nil {
		s.logger.ErrorContext(ctx, "open the sealed successor of a refresh token", "err", err)
		return nil
	}
	return &refreshRequest{rt: next, scopes: next.Scopes, grace: &graceRetry{rotated: rt, value: string(value)}}
}

// reissueSuccessor answers a retry within the grace window: the successor issued before
// and a new access token beside it, stored with its audit event only while the
// successor is still current.
func (s *opStorage) reissueSuccessor(ctx context.Context, rr *refreshRequest) (string, string, time.Time, error) {
	g, c, aud, err := s.tokenGrantFor(ctx, rr)
	if err != nil {
		return "", "", time.Time{}, err
	}
	at := s.newAccessToken(g, c, rr.rt.FamilyID, aud)
	sign, err := s.mintAccessToken(ctx, c, rr.GetSubject(), at)
	if err != nil {
		return "", "", time.Time{}, err
	}
	w := &storage.TokenIssue{RequireCurrent: rr.rt.ID, Access: at, WhileWriting: sign, Events: []*storage.AuditEvent{s.audit.Prepare(ctx, storage.AuditEvent{
		Type: audit.EventTokenRefresh, UserID: g.userID, ClientID: g.clientID, Result: audit.ResultSuccess,
		TokenID: at.ID, FamilyID: rr.rt.FamilyID, SessionID: g.sessionID,
		Reason: "rotated refresh token presented again within the reuse grace window; same successor returned" + resourcesNote(aud, g.clientID)})}}
	if err := s.issue(ctx, rr, w); err != nil { // a used or revoked successor is reuse after all
		return "", "", time.Time{}, err
	}
	return at.ID, rr.grace.value, at.ExpiresAt, nil
}
