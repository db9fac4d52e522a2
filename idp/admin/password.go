package admin

import (
	"context"
	"fmt"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// SetPassword replaces a person's password. Because whoever knew the old one may hold
// sessions or a remembered browser, every session ends (with back-channel logout when
// EndSessions is wired), every remembered device is forgotten and every token revoked.
//
// Its audit event is written ahead, so it cannot carry the counts of what ended (known
// only afterwards); a step that fails after the password was replaced is recorded as a
// failure event with the counts so far.
func (a *Admin) SetPassword(ctx context.Context, actor, user, password string) error {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return err
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	ev := storage.AuditEvent{Type: audit.EventAdminPassword, UserID: u.ID, Result: audit.ResultSuccess}
	if err := a.writeAhead(ctx, actor, ev, "password replaced; sessions ended, devices forgotten, tokens revoked"); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	ev.Result = audit.ResultFailure
	u.PasswordHash, u.UpdatedAt = hash, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, ev, fmt.Sprintf("err=%v", err))
		return fmt.Errorf("set password: %w", err)
	}
	sessions, err := a.endSessions(ctx, u.ID, "password changed")
	if err != nil {
		a.record(ctx, actor, ev, fmt.Sprintf("password replaced, sessions not ended: err=%v", err))
		return fmt.Errorf("end sessions: %w", err)
	}
	devices, err := a.Store.DeleteUserDevices(ctx, u.ID)
	if err != nil {
		a.record(ctx, actor, ev, fmt.Sprintf("password replaced, sessions_ended=%d, devices not forgotten: err=%v", sessions, err))
		return fmt.Errorf("forget devices: %w", err)
	}
	if err := a.Store.RevokeUserTokens(ctx, u.ID, a.now()); err != nil {
		a.record(ctx, actor, ev, fmt.Sprintf("password replaced, sessions_ended=%d devices_forgotten=%d, tokens not revoked: err=%v", sessions, devices, err))
		return fmt.Errorf("revoke tokens: %w", err)
	}
	return nil
}
