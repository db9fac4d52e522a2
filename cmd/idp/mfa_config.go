package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/mfa"
)

// mfaEnv lists the environment variables that configure second factors. They are
// environment-only because several hold credentials.
var mfaEnv = []struct{ name, help string }{
	{"IDP_SMTP_HOST", "SMTP server for e-mail codes; e-mail codes are off without it (dev mode logs them instead)"},
	{"IDP_SMTP_PORT", "SMTP port (default 587 for starttls, 465 for tls)"},
	{"IDP_SMTP_USERNAME", "SMTP user (no authentication when empty)"},
	{"IDP_SMTP_PASSWORD", "SMTP password"},
	{"IDP_SMTP_FROM", "sender address, e.g. \"Example ID <id@example.com>\""},
	{"IDP_SMTP_TLS", "starttls (default), tls, or none (loopback servers only)"},
	{"IDP_SMS_PROVIDER", "twilio, webhook or log (development); SMS is off when empty (dev mode: log)"},
	{"IDP_TWILIO_ACCOUNT_SID", "Twilio account SID"},
	{"IDP_TWILIO_AUTH_TOKEN", "Twilio auth token"},
	{"IDP_TWILIO_FROM", "Twilio sending number (E.164) or sender id"},
	{"IDP_TWILIO_BASE_URL", "Twilio-compatible API base URL (default https://api.twilio.com)"},
	{"IDP_SMS_WEBHOOK_URL", "webhook URL receiving {\"to\",\"body\",\"timestamp\"} as JSON"},
	{"IDP_SMS_WEBHOOK_SECRET", "HMAC-SHA256 key for the webhook's X-Signature header"},
	{"IDP_SMS_DEFAULT_REGION", "region for numbers typed without +country code, e.g. GB"},
	{"IDP_SMS_ALLOWED_COUNTRIES", "comma-separated calling codes accepted, e.g. 44,49,1 (default: all)"},
	{"IDP_WEBAUTHN_RP_ID", "WebAuthn relying-party ID (default: the issuer's host)"},
	{"IDP_WEBAUTHN_ORIGINS", "comma-separated allowed WebAuthn origins (default: the issuer)"},
	{"IDP_WEBAUTHN_RP_NAME", "name shown by authenticators (default openidp)"},
}

// mfaEnvHelp documents mfaEnv for serve --help.
func mfaEnvHelp() string {
	var b strings.Builder
	b.WriteString("\n\nSecond factors are configured with environment variables only:\n")
	for _, e := range mfaEnv {
		fmt.Fprintf(&b, "  %-26s %s\n", e.name, e.help)
	}
	return strings.TrimRight(b.String(), "\n")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// devEmailSender logs e-mails instead of sending them: development only, so that the
// e-mail factor can be tried without an SMTP server. It is the one place besides the
// development SMS provider where a code appears in a log, by design.
type devEmailSender struct{ logger *slog.Logger }

func (d devEmailSender) Send(ctx context.Context, to, subject, body string) error {
	d.logger.WarnContext(ctx, "development e-mail provider: message NOT sent, logged instead (never use in production)",
		"to", to, "subject", subject, "body", body)
	return nil
}

// mfaConfigFromEnv builds the second-factor configuration from IDP_* variables.
func mfaConfigFromEnv(logger *slog.Logger, dev bool) (idp.MFAConfig, error) {
	var cfg idp.MFAConfig
	get := os.Getenv
	if host := get("IDP_SMTP_HOST"); host != "" {
		port := 0
		if p := get("IDP_SMTP_PORT"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return cfg, fmt.Errorf("IDP_SMTP_PORT: %w", err)
			}
			port = n
		}
		sender, err := mfa.NewSMTPSender(mfa.SMTPConfig{
			Host: host, Port: port, Username: get("IDP_SMTP_USERNAME"), Password: get("IDP_SMTP_PASSWORD"),
			From: get("IDP_SMTP_FROM"), TLS: get("IDP_SMTP_TLS"),
		})
		if err != nil {
			return cfg, fmt.Errorf("SMTP settings: %w", err)
		}
		cfg.EmailSender = sender
	} else if dev {
		cfg.EmailSender = devEmailSender{logger: logger}
	}

	provider := get("IDP_SMS_PROVIDER")
	if provider == "" && dev {
		provider = "log"
	}
	var sms mfa.SMSSender
	switch provider {
	case "":
	case "twilio":
		if get("IDP_TWILIO_ACCOUNT_SID") == "" || get("IDP_TWILIO_AUTH_TOKEN") == "" || get("IDP_TWILIO_FROM") == "" {
			return cfg, fmt.Errorf("IDP_SMS_PROVIDER=twilio needs IDP_TWILIO_ACCOUNT_SID, IDP_TWILIO_AUTH_TOKEN and IDP_TWILIO_FROM")
		}
		sms = mfa.NewTwilioSender(mfa.TwilioConfig{
			BaseURL: get("IDP_TWILIO_BASE_URL"), AccountSID: get("IDP_TWILIO_ACCOUNT_SID"),
			AuthToken: get("IDP_TWILIO_AUTH_TOKEN"), From: get("IDP_TWILIO_FROM"),
		})
	case "webhook":
		if get("IDP_SMS_WEBHOOK_URL") == "" || get("IDP_SMS_WEBHOOK_SECRET") == "" {
			return cfg, fmt.Errorf("IDP_SMS_PROVIDER=webhook needs IDP_SMS_WEBHOOK_URL and IDP_SMS_WEBHOOK_SECRET")
		}
		sms = mfa.NewWebhookSender(mfa.WebhookConfig{URL: get("IDP_SMS_WEBHOOK_URL"), Secret: get("IDP_SMS_WEBHOOK_SECRET")})
	case "log":
		if !dev {
			logger.Warn("IDP_SMS_PROVIDER=log writes text messages, codes included, to the log instead of sending them: development only")
		}
		sms = mfa.LogSender{Logger: logger}
	default:
		return cfg, fmt.Errorf("IDP_SMS_PROVIDER %q: use twilio, webhook or log", provider)
	}
	if sms != nil {
		cfg.SMSSender = &mfa.RetrySender{Next: sms}
	}
	cfg.Phones.DefaultRegion = strings.ToUpper(get("IDP_SMS_DEFAULT_REGION"))
	for _, c := range splitList(get("IDP_SMS_ALLOWED_COUNTRIES")) {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "+"))
		if err != nil {
			return cfg, fmt.Errorf("IDP_SMS_ALLOWED_COUNTRIES: %q is not a calling code", c)
		}
		cfg.Phones.AllowedCountryCodes = append(cfg.Phones.AllowedCountryCodes, n)
	}
	cfg.WebAuthn = mfa.WebAuthnConfig{RPID: get("IDP_WEBAUTHN_RP_ID"), RPOrigins: splitList(get("IDP_WEBAUTHN_ORIGINS")), RPDisplayName: get("IDP_WEBAUTHN_RP_NAME")}
	return cfg, nil
}
