package mfa

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// twilioTestRequest is what a twilioTestServer received.
type twilioTestRequest struct {
	Method, Path, ContentType string
	User, Pass                string
	BasicAuth                 bool
	Form                      url.Values
}

// twilioTestServer speaks Twilio's Messages API: it answers each request with the next
// of its responses (the last one repeats) and records the requests.
type twilioTestServer struct {
	*httptest.Server
	mu        sync.Mutex
	reqs      []twilioTestRequest
	responses []twilioTestResponse
}

type twilioTestResponse struct {
	status int
	body   string
}

var twilioCreated = twilioTestResponse{http.StatusCreated, `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}`}

func newTwilioTestServer(t *testing.T, responses ...twilioTestResponse) *twilioTestServer {
	t.Helper()
	ts := &twilioTestServer{responses: responses}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec twilioTestRequest
		rec.Method, rec.Path, rec.ContentType = r.Method, r.URL.Path, r.Header.Get("Content-Type")
		rec.User, rec.Pass, rec.BasicAuth = r.BasicAuth()
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.Form = r.PostForm
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, rec)
		resp := ts.responses[min(len(ts.reqs), len(ts.responses))-1]
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.status)
		_, _ = io.WriteString(w, resp.body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *twilioTestServer) requests() []twilioTestRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]twilioTestRequest(nil), ts.reqs...)
}

func (ts *twilioTestServer) sender() *TwilioSender {
	return NewTwilioSender(TwilioConfig{
		BaseURL:    ts.URL,
		AccountSID: "AC0123456789abcdef0123456789abcdef",
		AuthToken:  "twilio-token",
		From:       "+15005550006",
		HTTPClient: ts.Client(),
	})
}

// TestTwilioSMS enrols and signs in with codes read from the requests the Twilio client
// sent.
func TestTwilioSMS(t *testing.T) {
	ctx := context.Background()
	ts := newTwilioTestServer(t, twilioCreated)
	env := newTestEnv(t)
	f := &SMS{Env: env, Sender: ts.sender(), Phones: PhonePolicy{DefaultRegion: "GB"}}
	u := codeTestUser("alice@example.com")

	en, err := f.Enroll(ctx, u, EnrollRequest{Phone: "07400 123456"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	reqs := ts.requests()
	if len(reqs) != 1 {
		t.Fatalf("Twilio got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if !r.BasicAuth || r.User != "AC0123456789abcdef0123456789abcdef" || r.Pass != "twilio-token" {
		t.Errorf("basic auth %v %q %q", r.BasicAuth, r.User, r.Pass)
	}
	if r.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", r.ContentType)
	}
	if r.Form.Get("To") != "+447400123456" || r.Form.Get("From") != "+15005550006" {
		t.Errorf("form To %q From %q", r.Form.Get("To"), r.Form.Get("From"))
	}
	if err := f.Confirm(ctx, u, en.Factor, en.ChallengeID, codeTestFind(t, r.Form.Get("Body"))); err != nil {
		t.Fatalf("Confirm with the code Twilio was asked to send: %v", err)
	}

	ch, err := f.Challenge(ctx, u, en.Factor)
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	reqs = ts.requests()
	amr, err := f.Verify(ctx, u, en.Factor, ch.ID, codeTestFind(t, reqs[len(reqs)-1].Form.Get("Body")))
	if err != nil || len(amr) != 1 || amr[0] != AMRSMS {
		t.Fatalf("Verify = %v, %v; want [sms]", amr, err)
	}
}

func TestTwilioRetry(t *testing.T) {
	ctx := context.Background()
	down := twilioTestResponse{http.StatusInternalServerError, `{"code":20500,"message":"Internal Server Error","status":500}`}
	ts := newTwilioTestServer(t, down, down, twilioCreated)
	env := newTestEnv(t)
	var attempts []int
	rs := &RetrySender{
		Next:      ts.sender(),
		Backoff:   time.Millisecond,
		OnFailure: func(_ context.Context, attempt int, _ error) { attempts = append(attempts, attempt) },
	}
	f := &SMS{Env: env, Sender: rs, Phones: PhonePolicy{}}
	u := codeTestUser("alice@example.com")

	en, err := f.Enroll(ctx, u, EnrollRequest{Phone: "+44 7400 123456"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	reqs := ts.requests()
	if len(reqs) != 3 {
		t.Fatalf("Twilio got %d requests, want 3", len(reqs))
	}
	if len(attempts) != 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Errorf("OnFailure attempts %v, want [1 2]", attempts)
	}
	fails := codeTestAudit(t, env, "mfa.provider.failure")
	if len(fails) != 2 {
		t.Fatalf("%d mfa.provider.failure events, want 2", len(fails))
	}
	for _, ev := range fails {
		if ev.UserID != u.ID || ev.Result != "failure" || ev.Reason != "sms provider: twilio: HTTP 500, error 20500: Internal Server Error" {
			t.Errorf("audit %+v", ev)
		}
	}
	if n := len(codeTestAudit(t, env, "mfa.code.sent")); n != 1 {
		t.Errorf("%d mfa.code.sent events, want 1", n)
	}
	// Every attempt carried the same code; the delivered one works.
	code := codeTestFind(t, reqs[2].Form.Get("Body"))
	if reqs[0].Form.Get("Body") != reqs[2].Form.Get("Body") {
		t.Error("retries sent different messages")
	}
	if err := f.Confirm(ctx, u, en.Factor, en.ChallengeID, code); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	codeTestNoCodeInAudit(t, env, code)
}

func TestTwilioRefusal(t *testing.T) {
	ctx := context.Background()
	ts := newTwilioTestServer(t, twilioTestResponse{http.StatusBadRequest,
		`{"code":21211,"message":"The 'To' number +447400123456 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`})
	env := newTestEnv(t)
	f := &SMS{Env: env, Sender: &RetrySender{Next: ts.sender(), Backoff: time.Millisecond}}
	u := codeTestUser("alice@example.com")

	_, err := f.Enroll(ctx, u, EnrollRequest{Phone: "+44 7400 123456"})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Code != 21211 || pe.Retryable || pe.Provider != "twilio" {
		t.Fatalf("Enroll = %v, want Twilio's 400 refusal", err)
	}
	reqs := ts.requests()
	if len(reqs) != 1 {
		t.Fatalf("Twilio got %d requests, want 1 (no retry after a 4xx)", len(reqs))
	}
	body := reqs[0].Form.Get("Body")
	if strings.Contains(err.Error(), codeTestFind(t, body)) || strings.Contains(err.Error(), body) {
		t.Errorf("error shows the message: %v", err)
	}
	fails := codeTestAudit(t, env, "mfa.provider.failure")
	if len(fails) != 1 || !strings.HasPrefix(fails[0].Reason, "sms provider: twilio: HTTP 400, error 21211: ") {
		t.Errorf("audit %+v", fails)
	}
	codeTestNoCodeInAudit(t, env, codeTestFind(t, body))
}

func TestTwilioResponses(t *testing.T) {
	tests := []struct {
		name          string
		resp          twilioTestResponse
		wantErr       bool
		wantRetryable bool
	}{
		{name: "201", resp: twilioCreated},
		{name: "200 with sid", resp: twilioTestResponse{200, `{"sid":"SM1"}`}},
		{name: "2xx without sid", resp: twilioTestResponse{201, `{}`}, wantErr: true},
		{name: "2xx not json", resp: twilioTestResponse{201, `<html>`}, wantErr: true},
		{name: "429", resp: twilioTestResponse{429, `{"code":20429,"message":"Too Many Requests"}`}, wantErr: true, wantRetryable: true},
		{name: "503 not json", resp: twilioTestResponse{503, `upstream down`}, wantErr: true, wantRetryable: true},
		{name: "401", resp: twilioTestResponse{401, `{"code":20003,"message":"Authenticate"}`}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTwilioTestServer(t, tt.resp)
			err := ts.sender().Send(context.Background(), "+447400123456", "Your code is 123456.")
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := retryableSendError(err); got != tt.wantRetryable {
				t.Errorf("retryable = %v, want %v (%v)", got, tt.wantRetryable, err)
			}
			if strings.Contains(err.Error(), "123456") {
				t.Errorf("error shows the message: %v", err)
			}
		})
	}
	if err := NewTwilioSender(TwilioConfig{}).Send(context.Background(), "+447400123456", "x"); err == nil {
		t.Error("Send without credentials succeeded")
	}
}

func TestWebhookSender(t *testing.T) {
	const secret = "webhook-secret"
	now := time.Unix(1_750_000_000, 0)
	var status = http.StatusNoContent
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		sig, err := hex.DecodeString(r.Header.Get("X-Signature"))
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		if ts, err := strconv.ParseInt(r.Header.Get("X-Timestamp"), 10, 64); err != nil || ts != now.Unix() || m["timestamp"] != float64(ts) {
			http.Error(w, "bad timestamp", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, m)
		s := status
		mu.Unlock()
		// A gateway that echoes the message in its errors.
		w.WriteHeader(s)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	sender := func(secret string) *WebhookSender {
		return NewWebhookSender(WebhookConfig{URL: srv.URL, Secret: secret, HTTPClient: srv.Client(), Now: func() time.Time { return now }})
	}

	ctx := context.Background()
	env := newTestEnv(t)
	f := &SMS{Env: env, Sender: sender(secret)}
	u := codeTestUser("alice@example.com")
	en, err := f.Enroll(ctx, u, EnrollRequest{Phone: "+49 1512 3456789"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if len(got) != 1 || got[0]["to"] != "+4915123456789" {
		t.Fatalf("webhook received %v", got)
	}
	if err := f.Confirm(ctx, u, en.Factor, en.ChallengeID, codeTestFind(t, got[0]["body"].(string))); err != nil {
		t.Fatalf("Confirm with the code the webhook received: %v", err)
	}

	var pe *ProviderError
	if err := sender("wrong-secret").Send(ctx, "+4915123456789", "code 654321"); !errors.As(err, &pe) || pe.Status != 401 || pe.Retryable {
		t.Errorf("wrongly signed request: %v, want a 401 ProviderError", err)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	err = sender(secret).Send(ctx, "+4915123456789", "code 654321")
	if !errors.As(err, &pe) || pe.Status != 503 || !pe.Retryable {
		t.Errorf("503: %v, want a retryable ProviderError", err)
	}
	if strings.Contains(err.Error(), "654321") {
		t.Errorf("error shows the echoed message: %v", err)
	}
	if err := NewWebhookSender(WebhookConfig{URL: srv.URL}).Send(ctx, "+4915123456789", "x"); err == nil {
		t.Error("Send without a secret succeeded")
	}
}

// codeTestFlaky fails with the errors in errs, in turn, then succeeds.
type codeTestFlaky struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (s *codeTestFlaky) Send(context.Context, string, string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= len(s.errs) {
		return s.errs[s.calls-1]
	}
	return nil
}

func TestRetrySender(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	e500 := &ProviderError{Provider: "x", Status: 500, Retryable: true}
	e400 := &ProviderError{Provider: "x", Status: 400}
	tests := []struct {
		name      string
		attempts  int
		errs      []error
		wantCalls int
		wantErr   error
	}{
		{name: "first try", errs: nil, wantCalls: 1},
		{name: "network error retried", errs: []error{netErr}, wantCalls: 2},
		{name: "5xx retried twice", errs: []error{e500, e500}, wantCalls: 3},
		{name: "gives up after 3", errs: []error{e500, e500, e500, e500}, wantCalls: 3, wantErr: e500},
		{name: "more attempts", attempts: 5, errs: []error{e500, e500, e500, e500}, wantCalls: 5},
		{name: "4xx not retried", errs: []error{e400}, wantCalls: 1, wantErr: e400},
		{name: "other errors not retried", errs: []error{errCodeTestProvider}, wantCalls: 1, wantErr: errCodeTestProvider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &codeTestFlaky{errs: tt.errs}
			var failures []int
			rs := &RetrySender{Next: next, Attempts: tt.attempts, Backoff: time.Microsecond,
				OnFailure: func(_ context.Context, n int, _ error) { failures = append(failures, n) }}
			err := rs.Send(context.Background(), "+447400123456", "body")
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Send = %v, want %v", err, tt.wantErr)
			}
			if next.calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", next.calls, tt.wantCalls)
			}
			wantFailures := min(len(tt.errs), tt.wantCalls)
			if len(failures) != wantFailures {
				t.Errorf("OnFailure called %v, want %d times", failures, wantFailures)
			}
		})
	}
}

func TestRetrySenderHonoursContext(t *testing.T) {
	next := &codeTestFlaky{errs: []error{&ProviderError{Status: 503, Retryable: true}}}
	rs := &RetrySender{Next: next, Backoff: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := rs.Send(ctx, "+447400123456", "body")
	if !errors.Is(err, context.DeadlineExceeded) || next.calls != 1 {
		t.Errorf("Send = %v after %d calls, want the deadline after 1", err, next.calls)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send waited %v", d)
	}
}

func TestRetrySenderNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more
	tw := NewTwilioSender(TwilioConfig{BaseURL: base, AccountSID: "AC1", AuthToken: "tok", From: "+15005550006"})
	next := &codeTestCounting{next: tw}
	err := (&RetrySender{Next: next, Backoff: time.Millisecond}).Send(context.Background(), "+447400123456", "body")
	if err == nil || next.calls != 3 {
		t.Errorf("Send to a closed server = %v after %d calls, want an error after 3", err, next.calls)
	}
}

// codeTestCounting counts the sends it passes on.
type codeTestCounting struct {
	next  SMSSender
	calls int
}

func (s *codeTestCounting) Send(ctx context.Context, to, body string) error {
	s.calls++
	return s.next.Send(ctx, to, body)
}

func TestLogSender(t *testing.T) {
	var buf bytes.Buffer
	s := LogSender{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if err := s.Send(context.Background(), "+447400123456", "Your code is 123456."); err != nil {
		t.Fatalf("Send: %v", err)
	}
	out := buf.String()
	for _, want := range []string{"level=WARN", "development SMS provider", "+447400123456", "123456"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not contain %q:\n%s", want, out)
		}
	}
	if err := (LogSender{}).Send(context.Background(), "+447400123456", "x"); err == nil {
		t.Error("LogSender without a logger succeeded")
	}
}
