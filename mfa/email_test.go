package mfa

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestEmailEnrollAddress(t *testing.T) {
	tests := []struct {
		name     string
		req      EnrollRequest
		wantTo   string // accepted: the factor's target
		wantName string
		wantErr  bool // refused with an InputError
	}{
		{name: "account address by default", req: EnrollRequest{}, wantTo: "alice@example.com", wantName: "E-mail a***@example.com"},
		{name: "other address", req: EnrollRequest{Email: " alice.work@example.org "}, wantTo: "alice.work@example.org", wantName: "E-mail a***@example.org"},
		{name: "own name", req: EnrollRequest{Email: "bob@example.net", Name: "Work"}, wantTo: "bob@example.net", wantName: "Work"},
		{name: "display name refused", req: EnrollRequest{Email: "Alice <alice@example.com>"}, wantErr: true},
		{name: "not an address", req: EnrollRequest{Email: "alice"}, wantErr: true},
		{name: "no domain", req: EnrollRequest{Email: "alice@"}, wantErr: true},
		{name: "two addresses", req: EnrollRequest{Email: "a@example.com, b@example.com"}, wantErr: true},
		{name: "header injection", req: EnrollRequest{Email: "a@example.com\r\nBcc: x@example.com"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			s := &codeTestSender{}
			e := &Email{Env: env, Sender: codeTestEmail{s}}
			u := codeTestUser("alice@example.com")
			en, err := e.Enroll(context.Background(), u, tt.req)
			if tt.wantErr {
				var ie *InputError
				if !errors.As(err, &ie) || ie.Message != "That is not a valid e-mail address." {
					t.Fatalf("Enroll = %v, want the invalid-address InputError", err)
				}
				if n := len(s.sent()); n != 0 {
					t.Errorf("%d messages sent for a refused address", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Enroll: %v", err)
			}
			if en.Factor.Target != tt.wantTo || en.Factor.Name != tt.wantName {
				t.Errorf("factor target %q name %q, want %q %q", en.Factor.Target, en.Factor.Name, tt.wantTo, tt.wantName)
			}
			if got := s.last(t).To; got != tt.wantTo {
				t.Errorf("sent to %q, want %q", got, tt.wantTo)
			}
		})
	}
}

func TestEmailMessage(t *testing.T) {
	env := newTestEnv(t)
	s := &codeTestSender{}
	e := &Email{Env: env, Sender: codeTestEmail{s}}
	u := codeTestUser("alice@example.com")
	if _, err := e.Enroll(context.Background(), u, EnrollRequest{}); err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	m := s.last(t)
	code := codeTestFind(t, m.Body)
	for _, want := range []string{"Test IdP", "10 minutes", "did not ask", "ignore", "confirm this e-mail address"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body does not say %q:\n%s", want, m.Body)
		}
	}
	if !strings.Contains(m.Subject, "Test IdP") || strings.Contains(m.Subject, code) {
		t.Errorf("subject %q: want the issuer and not the code", m.Subject)
	}
}

func TestMaskEmail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.com", "a***@example.com"},
		{"a@example.com", "a***@example.com"},
		{"émile@example.fr", "é***@example.fr"},
		{"nope", "***"},
	}
	for _, tt := range tests {
		if got := maskEmail(tt.in); got != tt.want {
			t.Errorf("maskEmail(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// smtpTestMail is one message an smtpTestServer received.
type smtpTestMail struct {
	From string
	To   []string
	Data []byte
}

// smtpTestServer is an in-process SMTP server (emersion/go-smtp) on a loopback port
// that records what it receives.
type smtpTestServer struct {
	Host string
	Port int

	user, pass string // AUTH PLAIN required when user is set

	mu     sync.Mutex
	mails  []smtpTestMail
	logins []string // user:password of every AUTH attempt
}

type smtpTestOptions struct {
	user, pass string      // require AUTH PLAIN with these credentials
	tlsConfig  *tls.Config // offer STARTTLS
	implicit   bool        // TLS from the first byte
}

func newSMTPTestServer(t *testing.T, o smtpTestOptions) *smtpTestServer {
	t.Helper()
	ts := &smtpTestServer{user: o.user, pass: o.pass}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpTestSession{srv: ts}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	var l net.Listener
	var err error
	if o.implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", o.tlsConfig)
	} else {
		srv.TLSConfig = o.tlsConfig
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	ts.Host = "127.0.0.1"
	ts.Port = l.Addr().(*net.TCPAddr).Port
	return ts
}

func (s *smtpTestServer) received() []smtpTestMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpTestMail(nil), s.mails...)
}

func (s *smtpTestServer) attempts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logins...)
}

type smtpTestSession struct {
	srv    *smtpTestServer
	authed bool
	mail   smtpTestMail
}

func (s *smtpTestSession) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *smtpTestSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.srv.mu.Lock()
		s.srv.logins = append(s.srv.logins, user+":"+pass)
		s.srv.mu.Unlock()
		if user != s.srv.user || pass != s.srv.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpTestSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.mail.From = from
	return nil
}

func (s *smtpTestSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mail.To = append(s.mail.To, to)
	return nil
}

func (s *smtpTestSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mail.Data = b
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.mail)
	s.srv.mu.Unlock()
	s.mail = smtpTestMail{}
	return nil
}

func (s *smtpTestSession) Reset()        { s.mail = smtpTestMail{} }
func (s *smtpTestSession) Logout() error { return nil }

// parseTestMail parses a received message and returns its headers and decoded text.
func parseTestMail(t *testing.T, data []byte) (mail.Header, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Fatalf("Content-Type %q (%v), want text/plain; charset=utf-8", m.Header.Get("Content-Type"), err)
	}
	var body io.Reader = m.Body
	switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(m.Body)
	case "", "7bit", "8bit":
	default:
		t.Fatalf("unexpected Content-Transfer-Encoding %q", m.Header.Get("Content-Transfer-Encoding"))
	}
	text, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return m.Header, string(text)
}

// smtpTestEmail returns an e-mail factor sending through cfg.
func smtpTestEmail(t *testing.T, env *Env, cfg SMTPConfig) *Email {
	t.Helper()
	sender, err := NewSMTPSender(cfg)
	if err != nil {
		t.Fatalf("NewSMTPSender: %v", err)
	}
	return &Email{Env: env, Sender: sender}
}

// TestEmailSMTP enrols and signs in with codes carried by a real SMTP conversation.
func TestEmailSMTP(t *testing.T) {
	ctx := context.Background()
	srv := newSMTPTestServer(t, smtpTestOptions{})
	env := newTestEnv(t)
	e := smtpTestEmail(t, env, SMTPConfig{Host: srv.Host, Port: srv.Port, From: "Test IdP <id@idp.test>", TLS: "none"})
	u := codeTestUser("alice@example.com")

	en, err := e.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	mails := srv.received()
	if len(mails) != 1 {
		t.Fatalf("server received %d messages, want 1", len(mails))
	}
	if mails[0].From != "id@idp.test" || len(mails[0].To) != 1 || mails[0].To[0] != "alice@example.com" {
		t.Errorf("envelope MAIL FROM %q RCPT TO %q", mails[0].From, mails[0].To)
	}
	h, text := parseTestMail(t, mails[0].Data)
	if h.Get("To") != "<alice@example.com>" && h.Get("To") != "alice@example.com" {
		t.Errorf("To: %q", h.Get("To"))
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "id@idp.test" {
		t.Errorf("From: %q (%v)", h.Get("From"), err)
	}
	if subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); !strings.Contains(subj, "Test IdP") {
		t.Errorf("Subject: %q", subj)
	}
	if h.Get("Date") == "" || h.Get("Message-Id") == "" {
		t.Errorf("missing Date or Message-ID: %v", h)
	}
	for _, want := range []string{"Test IdP", "expires in 10 minutes", "did not ask for this code, ignore"} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
			t.Errorf("body does not say %q:\n%s", want, text)
		}
	}
	if err := e.Confirm(ctx, u, en.Factor, en.ChallengeID, codeTestFind(t, text)); err != nil {
		t.Fatalf("Confirm: %v", err)
	}

	ch, err := e.Challenge(ctx, u, en.Factor)
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	mails = srv.received()
	if len(mails) != 2 {
		t.Fatalf("server received %d messages, want 2", len(mails))
	}
	_, text = parseTestMail(t, mails[1].Data)
	amr, err := e.Verify(ctx, u, en.Factor, ch.ID, codeTestFind(t, text))
	if err != nil || len(amr) != 1 || amr[0] != AMROTP {
		t.Fatalf("Verify = %v, %v; want [otp]", amr, err)
	}
}

func TestEmailSMTPAuth(t *testing.T) {
	ctx := context.Background()
	srv := newSMTPTestServer(t, smtpTestOptions{user: "idp", pass: "s3cret"})
	u := codeTestUser("alice@example.com")

	t.Run("credentials sent", func(t *testing.T) {
		env := newTestEnv(t)
		e := smtpTestEmail(t, env, SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "idp", Password: "s3cret", From: "id@idp.test", TLS: "none"})
		if _, err := e.Enroll(ctx, u, EnrollRequest{}); err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		if got := srv.attempts(); len(got) != 1 || got[0] != "idp:s3cret" {
			t.Errorf("AUTH attempts %q, want [idp:s3cret]", got)
		}
		if n := len(srv.received()); n != 1 {
			t.Errorf("server received %d messages, want 1", n)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		env := newTestEnv(t)
		e := smtpTestEmail(t, env, SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "idp", Password: "wrong", From: "id@idp.test", TLS: "none"})
		_, err := e.Enroll(ctx, u, EnrollRequest{})
		if err == nil {
			t.Fatal("Enroll succeeded with a wrong SMTP password")
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error shows the password: %v", err)
		}
		if ev := codeTestAudit(t, env, "mfa.provider.failure"); len(ev) != 1 || !strings.HasPrefix(ev[0].Reason, "email provider: ") {
			t.Errorf("provider failure audit = %+v", ev)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		env := newTestEnv(t)
		e := smtpTestEmail(t, env, SMTPConfig{Host: srv.Host, Port: srv.Port, From: "id@idp.test", TLS: "none"})
		if _, err := e.Enroll(ctx, u, EnrollRequest{}); err == nil {
			t.Fatal("Enroll succeeded without the credentials the server requires")
		}
	})
}

// smtpTestCert returns a server TLS config with a self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func smtpTestCert(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func TestEmailSMTPTLS(t *testing.T) {
	ctx := context.Background()
	serverTLS, clientTLS := smtpTestCert(t)
	u := codeTestUser("alice@example.com")
	tests := []struct {
		name    string
		server  smtpTestOptions
		mode    string
		trust   bool
		wantErr string // in the error when refused
	}{
		{name: "starttls", server: smtpTestOptions{tlsConfig: serverTLS, user: "idp", pass: "pw"}, mode: "starttls", trust: true},
		{name: "starttls is the default", server: smtpTestOptions{tlsConfig: serverTLS}, mode: "", trust: true},
		{name: "starttls required", server: smtpTestOptions{}, mode: "starttls", trust: true, wantErr: "STARTTLS"},
		{name: "starttls checks the certificate", server: smtpTestOptions{tlsConfig: serverTLS}, mode: "starttls", wantErr: "certificate"},
		{name: "implicit tls", server: smtpTestOptions{tlsConfig: serverTLS, implicit: true, user: "idp", pass: "pw"}, mode: "tls", trust: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSMTPTestServer(t, tt.server)
			cfg := SMTPConfig{Host: srv.Host, Port: srv.Port, From: "id@idp.test", TLS: tt.mode, Username: tt.server.user, Password: tt.server.pass}
			if tt.trust {
				cfg.TLSConfig = clientTLS
			}
			env := newTestEnv(t)
			e := smtpTestEmail(t, env, cfg)
			en, err := e.Enroll(ctx, u, EnrollRequest{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Enroll = %v, want an error about %s", err, tt.wantErr)
				}
				if n := len(srv.received()); n != 0 {
					t.Errorf("server received %d messages", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Enroll: %v", err)
			}
			mails := srv.received()
			if len(mails) != 1 {
				t.Fatalf("server received %d messages, want 1", len(mails))
			}
			_, text := parseTestMail(t, mails[0].Data)
			if err := e.Confirm(ctx, u, en.Factor, en.ChallengeID, codeTestFind(t, text)); err != nil {
				t.Fatalf("Confirm: %v", err)
			}
		})
	}
}

func TestNewSMTPSender(t *testing.T) {
	tests := []struct {
		name     string
		cfg      SMTPConfig
		wantPort int
		wantErr  bool
	}{
		{name: "starttls default port", cfg: SMTPConfig{Host: "smtp.example.com", From: "id@example.com"}, wantPort: 587},
		{name: "implicit tls default port", cfg: SMTPConfig{Host: "smtp.example.com", From: "id@example.com", TLS: "TLS"}, wantPort: 465},
		{name: "explicit port", cfg: SMTPConfig{Host: "smtp.example.com", Port: 2525, From: "id@example.com"}, wantPort: 2525},
		{name: "none on loopback", cfg: SMTPConfig{Host: "127.0.0.1", From: "id@example.com", TLS: "none"}, wantPort: 25},
		{name: "none on localhost", cfg: SMTPConfig{Host: "localhost", Port: 1025, From: "id@example.com", TLS: "none"}, wantPort: 1025},
		{name: "none refused on a remote host", cfg: SMTPConfig{Host: "smtp.example.com", From: "id@example.com", TLS: "none"}, wantErr: true},
		{name: "unknown mode", cfg: SMTPConfig{Host: "smtp.example.com", From: "id@example.com", TLS: "ssl3"}, wantErr: true},
		{name: "no host", cfg: SMTPConfig{From: "id@example.com"}, wantErr: true},
		{name: "bad from", cfg: SMTPConfig{Host: "smtp.example.com", From: "not an address"}, wantErr: true},
		{name: "bad port", cfg: SMTPConfig{Host: "smtp.example.com", Port: 70000, From: "id@example.com"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSMTPSender(tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewSMTPSender(%+v) succeeded", tt.cfg)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSMTPSender: %v", err)
			}
			if s.cfg.Port != tt.wantPort {
				t.Errorf("port %d, want %d", s.cfg.Port, tt.wantPort)
			}
		})
	}
}
