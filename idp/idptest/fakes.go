package idptest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one message received by the test SMTP server.
type Mail struct {
	From string
	To   []string
	Data string
}

// SMTPServer is a real SMTP server on 127.0.0.1 for tests (github.com/emersion/go-smtp):
// the provider talks the full SMTP conversation to it.
type SMTPServer struct {
	Addr string
	mu   sync.Mutex
	mail []Mail
	got  chan struct{}
}

// NewSMTPServer starts an SMTP server that accepts every message without
// authentication; it stops when the test ends.
func NewSMTPServer(t testing.TB) *SMTPServer {
	t.Helper()
	s := &SMTPServer{got: make(chan struct{}, 100)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

type smtpSession struct {
	srv *SMTPServer
	cur Mail
}

func (s *smtpSession) Reset()        { s.cur = Mail{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.From = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(b)
	s.srv.mu.Lock()
	s.srv.mail = append(s.srv.mail, s.cur)
	s.srv.mu.Unlock()
	s.srv.got <- struct{}{}
	return nil
}

// Count returns how many messages arrived.
func (s *SMTPServer) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mail)
}

// Last waits up to 10 s for the n-th message (1-based) and returns it.
func (s *SMTPServer) Last(t testing.TB, n int) Mail {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for s.Count() < n {
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("SMTP server received %d messages, want %d", s.Count(), n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mail[n-1]
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// Code extracts the 6-digit code from a message text.
func Code(t testing.TB, text string) string {
	t.Helper()
	m := codeRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no 6-digit code in message:\n%s", text)
	}
	return m[1]
}

// SMSMessage is one message the fake Twilio API received.
type SMSMessage struct {
	AccountSID, User, Password string
	To, From, Body             string
}

// TwilioServer is an HTTP server that speaks Twilio's Messages API
// (POST /2010-04-01/Accounts/{sid}/Messages.json), recording what it is sent.
type TwilioServer struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []SMSMessage
	// FailNext makes the next n requests answer 500 (to exercise retries).
	FailNext int
}

// NewTwilioServer starts the fake; it stops when the test ends.
func NewTwilioServer(t testing.TB) *TwilioServer {
	ts := &TwilioServer{}
	pathRE := regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := pathRE.FindStringSubmatch(r.URL.Path)
		user, pass, _ := r.BasicAuth()
		if r.Method != http.MethodPost || m == nil || user != m[1] {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code":20404,"message":"not found"}`)
			return
		}
		ts.mu.Lock()
		fail := ts.FailNext > 0
		if fail {
			ts.FailNext--
		}
		ts.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"code":20500,"message":"internal error"}`)
			return
		}
		_ = r.ParseForm()
		ts.mu.Lock()
		ts.msgs = append(ts.msgs, SMSMessage{AccountSID: m[1], User: user, Password: pass,
			To: r.PostFormValue("To"), From: r.PostFormValue("From"), Body: r.PostFormValue("Body")})
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"sid":"SM00000000000000000000000000000000","status":"queued"}`)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// Messages returns what the fake received so far.
func (ts *TwilioServer) Messages() []SMSMessage {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]SMSMessage(nil), ts.msgs...)
}
