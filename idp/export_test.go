package idp

import "context"

// ApplyAuditRetentionForTest runs the daily retention job now.
func (s *Server) ApplyAuditRetentionForTest(ctx context.Context) { s.applyAuditRetention(ctx) }

// CleanupForTest runs one pass of the periodic cleanup now.
func (s *Server) CleanupForTest(ctx context.Context) { s.cleanup(ctx) }
