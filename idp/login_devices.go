package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Trusted devices ("remember this device"): after a full sign-in, a person may ask the
// browser to be remembered. The browser gets a random cookie; the database keeps its hash.
// While the cookie is valid, the login flow may skip the second factor for that person
// (never for anyone else using the same browser), where the client's policy allows it.

// deviceCookie holds the trusted-device token.
const deviceCookie = "idp_device"

// rememberDevice remembers this browser for userID for ttl: it stores the device and sets
// its cookie. A device cookie the browser already had is replaced, and its record deleted.
func (s *Server) rememberDevice(w http.ResponseWriter, r *http.Request, userID string, ttl time.Duration) error {
	ctx := r.Context()
	if ttl <= 0 {
		return errors.New("remember device: no lifetime")
	}
	if old := s.deviceFromCookie(r); old != nil {
		if err := s.store.DeleteDevice(ctx, old.UserID, old.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.logger.WarnContext(ctx, "replaced device not deleted", "err", err)
		}
	}
	now := s.now()
	value := secret.Token(32)
	d := &storage.Device{
		ID: secret.NewID(), UserID: userID, TokenHash: secret.Hash(value), Name: deviceName(r.UserAgent()), IP: s.clientIP(r),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(ttl),
	}
	// Written ahead: a device whose event cannot be written is not remembered.
	ev := storage.AuditEvent{Type: audit.EventDeviceRemember, UserID: userID, Result: audit.ResultSuccess,
		Reason: fmt.Sprintf("device=%s name=%q until %s", d.ID, d.Name, d.ExpiresAt.UTC().Format(time.RFC3339))}
	if err := s.audited(ctx, ev, func() error { return s.store.CreateDevice(ctx, d) }); err != nil {
		return fmt.Errorf("remember device: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(deviceCookie), Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(ttl.Seconds()),
	})
	return nil
}

// deviceFromCookie returns the device record the browser's cookie names, of any user,
// expired or not; nil without one.
func (s *Server) deviceFromCookie(r *http.Request) *storage.Device {
	c, err := s.cookie(r, deviceCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	d, err := s.store.GetDeviceByTokenHash(r.Context(), secret.Hash(c.Value))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.logger.WarnContext(r.Context(), "trusted device lookup", "err", err)
		}
		return nil
	}
	return d
}

// rememberedDevice returns the browser's remembered device if it belongs to userID and
// has not expired, else nil. It only reads.
func (s *Server) rememberedDevice(r *http.Request, userID string) *storage.Device {
	d := s.deviceFromCookie(r)
	if d == nil || d.UserID != userID || !s.now().Before(d.ExpiresAt) {
		return nil
	}
	return d
}

// touchDevice records that the remembered device d stood in for a second factor.
func (s *Server) touchDevice(r *http.Request, d *storage.Device) {
	now := s.now()
	if err := s.store.TouchDevice(r.Context(), d.ID, now); err != nil {
		s.logger.WarnContext(r.Context(), "trusted device not touched", "err", err)
	}
	d.LastUsedAt = now
}

// RevokeDevices forgets every remembered device of a user (after a password change, a
// lost laptop, by an administrator) and returns how many went.
func (s *Server) RevokeDevices(ctx context.Context, userID, reason string) (int64, error) {
	n, err := s.store.DeleteUserDevices(ctx, userID)
	if err != nil {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceRevoke, UserID: userID, Result: audit.ResultFailure, Reason: reason + ": " + err.Error()})
		return 0, fmt.Errorf("revoke devices: %w", err)
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceRevoke, UserID: userID, Result: audit.ResultSuccess, Reason: fmt.Sprintf("%s (%d devices)", reason, n)})
	return n, nil
}

// forgetDevice forgets one remembered device of a user; storage.ErrNotFound when the user
// has no such device.
func (s *Server) forgetDevice(ctx context.Context, userID, deviceID, reason string) error {
	if err := s.store.DeleteDevice(ctx, userID, deviceID); err != nil {
		return err
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceRevoke, UserID: userID, Result: audit.ResultSuccess, Reason: reason + " device=" + deviceID})
	return nil
}

// deviceName makes a short "Browser on OS" label from a User-Agent header. It is a guess
// for people to recognise their devices by, never used for a security decision.
func deviceName(ua string) string {
	browser := ""
	for _, b := range []struct{ token, name string }{
		// Order matters: Edge and Opera claim to be Chrome, Chrome claims to be Safari.
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"Opera", "Opera"},
		{"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chromium/", "Chromium"}, {"Chrome/", "Chrome"},
		{"Safari/", "Safari"},
		{"curl/", "curl"}, {"Go-http-client/", "Go HTTP client"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	os := ""
	for _, o := range []struct{ token, name string }{
		// iOS and Android before macOS and Linux: their user agents mention both.
		{"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"},
		{"CrOS", "ChromeOS"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Macintosh", "macOS"},
		{"Linux", "Linux"}, {"FreeBSD", "FreeBSD"},
	} {
		if strings.Contains(ua, o.token) {
			os = o.name
			break
		}
	}
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "Browser on " + os
	default:
		return "Unknown browser"
	}
}
