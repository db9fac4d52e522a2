package mfa

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// SMTP transport security modes of SMTPConfig.TLS.
const (
	SMTPStartTLS = "starttls" // plain connection upgraded with STARTTLS, which is required
	SMTPTLS      = "tls"      // implicit TLS from the first byte (usually port 465)
	SMTPNoTLS    = "none"     // no encryption; only for test servers on a loopback address
)

// defaultSMTPTimeout bounds connecting to the server and each command.
const defaultSMTPTimeout = 15 * time.Second

// SMTPConfig configures an SMTPSender.
type SMTPConfig struct {
	Host string
	// Port defaults to 587 for "starttls", 465 for "tls" and 25 for "none".
	Port int
	// Username and Password authenticate to the server; no authentication when Username
	// is empty.
	Username, Password string
	// From is the sender address, e.g. "Example ID <id@example.com>".
	From string
	// TLS is "starttls" (default; the server must offer it), "tls" (implicit TLS) or
	// "none" (refused unless Host is a loopback address: for local test servers only).
	TLS string
	// TLSConfig optionally replaces the TLS settings (e.g. to trust a private CA); its
	// ServerName defaults to Host.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each SMTP command; default 15s.
	Timeout time.Duration
}

// SMTPSender sends e-mail through an SMTP server (go-mail). Each Send uses its own
// connection, so it is safe for concurrent use.
type SMTPSender struct {
	cfg SMTPConfig
}

var _ EmailSender = (*SMTPSender)(nil)

// NewSMTPSender checks cfg and returns a sender.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	if cfg.Host == "" {
		return nil, errors.New("smtp: no host")
	}
	if _, err := netmail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("smtp: from address %q: %w", cfg.From, err)
	}
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	if cfg.TLS == "" {
		cfg.TLS = SMTPStartTLS
	}
	defaultPort := 0
	switch cfg.TLS {
	case SMTPStartTLS:
		defaultPort = mail.DefaultPortTLS
	case SMTPTLS:
		defaultPort = mail.DefaultPortSSL
	case SMTPNoTLS:
		if !isLoopbackHost(cfg.Host) {
			return nil, fmt.Errorf("smtp: TLS %q is only allowed for a loopback host, not %q", SMTPNoTLS, cfg.Host)
		}
		defaultPort = mail.DefaultPort
	default:
		return nil, fmt.Errorf("smtp: TLS must be %q, %q or %q, not %q", SMTPStartTLS, SMTPTLS, SMTPNoTLS, cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp: invalid port %d", cfg.Port)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultSMTPTimeout
	}
	if cfg.TLSConfig != nil {
		cfg.TLSConfig = cfg.TLSConfig.Clone()
	} else {
		cfg.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.TLSConfig.ServerName == "" {
		cfg.TLSConfig.ServerName = cfg.Host
	}
	return &SMTPSender{cfg: cfg}, nil
}

// Send delivers a plain-text message to one recipient.
func (s *SMTPSender) Send(ctx context.Context, to, subject, textBody string) error {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return fmt.Errorf("smtp: from: %w", err)
	}
	if err := m.To(to); err != nil {
		return fmt.Errorf("smtp: recipient: %w", err)
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(mail.TypeTextPlain, textBody)

	c, err := mail.NewClient(s.cfg.Host, s.options()...)
	if err != nil {
		return fmt.Errorf("smtp: client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return nil
}

func (s *SMTPSender) options() []mail.Option {
	opts := []mail.Option{
		mail.WithPort(s.cfg.Port),
		mail.WithTimeout(s.cfg.Timeout),
		mail.WithTLSConfig(s.cfg.TLSConfig),
	}
	switch s.cfg.TLS {
	case SMTPTLS:
		opts = append(opts, mail.WithSSL())
	case SMTPNoTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		// Over TLS, pick the strongest mechanism the server offers. Without TLS (loopback
		// test servers only) go-mail's discovery skips PLAIN, so ask for it; its PLAIN
		// still refuses to run unencrypted to any host but a loopback one.
		auth := mail.SMTPAuthAutoDiscover
		if s.cfg.TLS == SMTPNoTLS {
			auth = mail.SMTPAuthPlain
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	return opts
}

// isLoopbackHost reports whether host names this machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
