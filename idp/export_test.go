package idp

import "context"

// ApplyAuditRetentionForTest runs the daily retention job now.
func (s *Server) ApplyAuditRetentionForTest(ctx context.Context) { s.applyAuditRetention(ctx) }

// WaitPasswordResets waits until the background work of every password-reset request
// made so far has finished (links stored and mailed, or refused).
func (s *Server) WaitPasswordResets() { s.resets.wg.Wait() }
