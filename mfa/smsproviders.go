package mfa

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// defaultSMSHTTPTimeout bounds one request to an SMS provider.
const defaultSMSHTTPTimeout = 10 * time.Second

// maxProviderResponse bounds how much of a provider's response is read.
const maxProviderResponse = 64 << 10

// ProviderError is an SMS provider's refusal, as returned by TwilioSender and
// WebhookSender. It never contains the message that was sent.
type ProviderError struct {
	Provider string // "twilio", "webhook"
	Status   int    // HTTP status
	Code     int    // the provider's error code, if it gave one
	Message  string // the provider's error message, if it gave one
	// Retryable: the failure may be temporary (HTTP 429 or 5xx), so RetrySender tries
	// again; other 4xx refusals are final.
	Retryable bool
}

func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d", e.Provider, e.Status)
	if e.Code != 0 {
		fmt.Fprintf(&b, ", error %d", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

func newProviderError(provider string, status int) *ProviderError {
	return &ProviderError{
		Provider:  provider,
		Status:    status,
		Retryable: status == http.StatusTooManyRequests || status >= 500,
	}
}

func httpClientOrDefault(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: defaultSMSHTTPTimeout}
}

// TwilioConfig configures a TwilioSender.
type TwilioConfig struct {
	// BaseURL defaults to https://api.twilio.com.
	BaseURL    string
	AccountSID string
	AuthToken  string
	// From is the sending number (E.164) or alphanumeric sender id.
	From string
	// HTTPClient defaults to a client with a 10-second timeout.
	HTTPClient *http.Client
}

// TwilioSender sends text messages with Twilio's Programmable Messaging API.
type TwilioSender struct {
	cfg TwilioConfig
}

var _ SMSSender = (*TwilioSender)(nil)

// NewTwilioSender returns a sender for cfg.
func NewTwilioSender(cfg TwilioConfig) *TwilioSender {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.twilio.com"
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	cfg.HTTPClient = httpClientOrDefault(cfg.HTTPClient)
	return &TwilioSender{cfg: cfg}
}

// Send creates a message resource (POST .../Accounts/{SID}/Messages.json).
func (s *TwilioSender) Send(ctx context.Context, to, body string) error {
	if s.cfg.AccountSID == "" || s.cfg.AuthToken == "" || s.cfg.From == "" {
		return errors.New("twilio: account SID, auth token and from number are required")
	}
	endpoint := s.cfg.BaseURL + "/2010-04-01/Accounts/" + url.PathEscape(s.cfg.AccountSID) + "/Messages.json"
	form := url.Values{"To": {to}, "From": {s.cfg.From}, "Body": {body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("twilio: request: %w", err)
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("twilio: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderResponse))
	if err != nil {
		return fmt.Errorf("twilio: read response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		pe := newProviderError("twilio", resp.StatusCode)
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) == nil {
			pe.Code, pe.Message = e.Code, e.Message
		}
		return pe
	}
	var m struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.SID == "" {
		// Not retryable: the message may have been accepted.
		return &ProviderError{Provider: "twilio", Status: resp.StatusCode, Message: "response without a message sid"}
	}
	return nil
}

// WebhookConfig configures a WebhookSender.
type WebhookConfig struct {
	URL string
	// Secret keys the HMAC-SHA256 signature of every request; required.
	Secret string
	// HTTPClient defaults to a client with a 10-second timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time
}

// WebhookSender hands text messages to a gateway of your own: it POSTs the JSON
// {"to": "+447400123456", "body": "...", "timestamp": 1700000000} to URL with the headers
// X-Timestamp (the same unix seconds) and X-Signature (hex HMAC-SHA256 of the request
// body under Secret). The receiver must check the signature in constant time and refuse
// stale timestamps; the timestamp is signed as part of the body. Any 2xx means sent.
type WebhookSender struct {
	cfg WebhookConfig
}

var _ SMSSender = (*WebhookSender)(nil)

// NewWebhookSender returns a sender for cfg.
func NewWebhookSender(cfg WebhookConfig) *WebhookSender {
	cfg.HTTPClient = httpClientOrDefault(cfg.HTTPClient)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &WebhookSender{cfg: cfg}
}

// Send POSTs the signed message to the webhook.
func (s *WebhookSender) Send(ctx context.Context, to, body string) error {
	if s.cfg.URL == "" || s.cfg.Secret == "" {
		return errors.New("sms webhook: URL and secret are required")
	}
	ts := s.cfg.Now().Unix()
	payload, err := json.Marshal(struct {
		To        string `json:"to"`
		Body      string `json:"body"`
		Timestamp int64  `json:"timestamp"`
	}{to, body, ts})
	if err != nil {
		return fmt.Errorf("sms webhook: encode: %w", err)
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.Secret))
	mac.Write(payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("sms webhook: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("sms webhook: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	// The response body is not reported: a gateway might echo the message back.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProviderResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newProviderError("webhook", resp.StatusCode)
	}
	return nil
}

// LogSender is an SMSSender for development only: it sends nothing and writes every
// message to Logger at WARN instead. By design this is the one place where a code
// appears in a log — never configure it in production.
type LogSender struct {
	Logger *slog.Logger
}

var _ SMSSender = LogSender{}

// Send logs the message, code included.
func (s LogSender) Send(ctx context.Context, to, body string) error {
	if s.Logger == nil {
		return errors.New("log sms sender: no logger")
	}
	s.Logger.WarnContext(ctx, "development SMS provider: message NOT sent, logged instead (never use in production)",
		"to", to, "body", body)
	return nil
}

// Defaults of RetrySender.
const (
	defaultRetryAttempts = 3
	defaultRetryBackoff  = 200 * time.Millisecond
	maxRetryBackoff      = 5 * time.Second
)

// RetrySender retries a failed send on network errors and on retryable provider errors
// (HTTP 429 and 5xx), not on other refusals, waiting Backoff, then twice as long, and
// so on. Waits end early when ctx is done.
type RetrySender struct {
	Next SMSSender
	// Attempts is the number of tries in all, default 3.
	Attempts int
	// Backoff is the first wait, default 200ms; it doubles after each retry.
	Backoff time.Duration
	// OnFailure, if set, is called after every failed attempt (numbered from 1).
	OnFailure func(ctx context.Context, attempt int, err error)
}

var _ SMSSender = (*RetrySender)(nil)

// Send sends through Next, retrying as configured.
func (r *RetrySender) Send(ctx context.Context, to, body string) error {
	return r.SendReporting(ctx, to, body, nil)
}

// SendReporting is Send that also calls report (if not nil) after every failed attempt;
// the SMS factor uses it to audit each one.
func (r *RetrySender) SendReporting(ctx context.Context, to, body string, report func(attempt int, err error)) error {
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = defaultRetryAttempts
	}
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = defaultRetryBackoff
	}
	for attempt := 1; ; attempt++ {
		err := r.Next.Send(ctx, to, body)
		if err == nil {
			return nil
		}
		if r.OnFailure != nil {
			r.OnFailure(ctx, attempt, err)
		}
		if report != nil {
			report(attempt, err)
		}
		if attempt >= attempts || !retryableSendError(err) || ctx.Err() != nil {
			return fmt.Errorf("after %d attempt(s): %w", attempt, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("after %d attempt(s): %w", attempt, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

// retryableSendError reports whether a failed send may succeed when tried again: a
// network error (an HTTP client timeout included) or a retryable ProviderError. The
// caller's own context ending is checked separately.
func retryableSendError(err error) bool {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Retryable
	}
	var ne net.Error
	return errors.As(err, &ne)
}
