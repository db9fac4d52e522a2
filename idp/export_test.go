package idp

import (
	"context"
	"errors"

	"github.com/go-jose/go-jose/v4"
)

// ApplyAuditRetentionForTest runs the daily retention job now.
func (s *Server) ApplyAuditRetentionForTest(ctx context.Context) { s.applyAuditRetention(ctx) }

// CleanupForTest runs one pass of the periodic cleanup now.
func (s *Server) CleanupForTest(ctx context.Context) { s.cleanup(ctx) }

// BreakAccessTokenSigningForTest makes every JWT access token signed with the key keyID
// fail its signature.
func (s *Server) BreakAccessTokenSigningForTest(keyID string) {
	s.ops.signers.Store(keyID, failingSigner{})
}

// failingSigner is a jose.Signer whose every signature fails.
type failingSigner struct{}

func (failingSigner) Sign([]byte) (*jose.JSONWebSignature, error) {
	return nil, errors.New("signer broken for the test")
}

func (failingSigner) Options() jose.SignerOptions { return jose.SignerOptions{} }
