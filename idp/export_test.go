package idp

import "context"

// ApplyAuditRetentionForTest runs the daily retention job now.
func (s *Server) ApplyAuditRetentionForTest(ctx context.Context) { s.applyAuditRetention(ctx) }
