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
func (a *Admin) SetPassword(ctx context.Context, actor, user, password string) error {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return err
	}
	hash, err := a.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	u.PasswordHash, u.UpdatedAt = hash, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminPassword, UserID: u.ID, Result: audit.ResultFailure}, fmt.Sprintf("err=%v", err))
		return fmt.Errorf("set password: %w", err)
	}
	sessions, err := a.endSessions(ctx, u.ID, "password changed")
	if err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	devices, err := a.Store.DeleteUserDevices(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("forget devices: %w", err)
	}
	if err := a.Store.RevokeUserTokens(ctx, u.ID, a.now()); err != nil {
		return fmt.Errorf("revoke tokens: %w", err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminPassword, UserID: u.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("password replaced; sessions_ended=%d devices_forgotten=%d tokens_revoked=true", sessions, devices))
	return nil
}
