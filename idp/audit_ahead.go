package idp

import (
	"context"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// An action whose audit event cannot be written does not happen. Sign-ins, tokens and
// second-factor checks write their events with what they store (storage.TokenIssue,
// storage.AuthRequestFinish) or before they take effect. The other changes a person
// makes (consent, factors, the password, remembered devices, device approvals, reset
// links, grace sign-ins) go through audited: their success event is written ahead and
// the change made only once it is stored; when the change then fails, notDone follows
// the event with a failure of the same type. A crash between the two leaves an event
// for a change that was not made, never a change without its event.
//
// Changes that only take access away (signing out, ending sessions, forgetting
// remembered devices) go ahead when their event cannot be written: refusing them would
// keep access the person or an operator wants gone. Their events are recorded with
// audit.Auditor.Record, which logs and counts a failed write.

// audited writes e, the success event of a change, and then makes the change. When e
// cannot be written it returns that error (wrapping audit.ErrNotRecorded) and change is
// not called; when change fails, notDone records it and audited returns its error.
func (s *Server) audited(ctx context.Context, e storage.AuditEvent, change func() error) error {
	if err := s.audit.Write(ctx, e); err != nil {
		return err
	}
	if err := change(); err != nil {
		s.notDone(ctx, e, err)
		return err
	}
	return nil
}

// notDone records that the change e was written ahead for was not made: a failure event
// of e's type and ids, whose reason says so and why.
func (s *Server) notDone(ctx context.Context, e storage.AuditEvent, err error) {
	e.Time = time.Time{}
	e.Result = audit.ResultFailure
	reason := "not saved: " + err.Error()
	if e.Reason != "" {
		reason += "; " + e.Reason
	}
	e.Reason = reason
	s.audit.Record(ctx, e)
}
