package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
)

// postTokenErr posts a token request like idptest.PostToken, but returns a transport
// error (a killed process) instead of failing the test.
func postTokenErr(hc *http.Client, endpoint string, c idptest.Client, form url.Values) (idptest.TokenResponse, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return idptest.TokenResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := hc.Do(req)
	if err != nil {
		return idptest.TokenResponse{}, err
	}
	defer resp.Body.Close()
	var tr idptest.TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil && !errors.Is(err, io.EOF) {
		return tr, fmt.Errorf("token response: %w", err)
	}
	tr.Status = resp.StatusCode
	return tr, nil
}

// accessTokenID returns the jti of a JWT access token (not verified: the test only
// needs to find it in the database).
func accessTokenID(t *testing.T, token string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Errorf("access token is not a JWT: %v", err)
		return ""
	}
	var c jwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil || c.ID == "" {
		t.Errorf("access token without jti: %v", err)
	}
	return c.ID
}

// crashProxy stands between the clients and process B, as a load balancer would. While
// hold is set it keeps every answer B gives until gate closes and then drops it: the
// test kills B meanwhile, so those answers die with the process after B committed
// what they carry.
type crashProxy struct {
	target string
	hc     *http.Client
	hold   atomic.Bool
	gate   chan struct{}
	// heldRefresh counts the refresh answers (rotations B committed) that were dropped.
	heldRefresh atomic.Int64
}

func (p *crashProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	req.Header = r.Header.Clone()
	resp, err := p.hc.Do(req)
	if err != nil {
		panic(http.ErrAbortHandler) // B is down: the connection drops
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if p.hold.Load() {
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "grant_type=refresh_token") {
			p.heldRefresh.Add(1)
		}
		<-p.gate
		panic(http.ErrAbortHandler) // the answer is lost with the process
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// TestKill9UnderLoad runs two `idp serve` processes on one PostgreSQL database, drives
// client_credentials and refresh-token chains at both, kills one with SIGKILL mid-load
// and restarts it. Answers B had committed but not delivered when it died are lost
// (crashProxy), as are requests in flight; a client whose request died retries it at
// the other process, with the same refresh token. Afterwards every token a client
// received exists in the database, every stored token has its audit event (by token
// id), the chain verifies, and no refresh chain was revoked because of the crash.
func TestKill9UnderLoad(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin := buildBinary(t)
	env := append(os.Environ(),
		"IDP_DATABASE="+dsn,
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_DATA_DIR="+t.TempDir(),
		"IDP_LOG_LEVEL=error",
		"IDP_REFRESH_REUSE_GRACE=", // the default window (30s)
	)
	runCLI := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		return string(out), err
	}
	mustCLI := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runCLI(stdin, args...)
		if err != nil {
			t.Fatalf("idp %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	mustCLI("", "migrate")
	mustCLI("correct horse battery", "users", "create", "--email", "alice@example.com", "--password-stdin")
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(mustCLI("", "clients", "create", "--json", "--name", "App",
		"--redirect-uri", "https://app.example.com/cb", "--skip-consent")), &created); err != nil {
		t.Fatal(err)
	}
	app := idptest.Client{ID: created.ClientID, Secret: created.ClientSecret, RedirectURI: "https://app.example.com/cb"}
	if err := json.Unmarshal([]byte(mustCLI("", "clients", "create", "--json", "--name", "Svc",
		"--grants", "client_credentials", "--scopes", "api")), &created); err != nil {
		t.Fatal(err)
	}
	svc := idptest.Client{ID: created.ClientID, Secret: created.ClientSecret}

	addrs := [2]string{freeAddr(t), freeAddr(t)}
	issuer := "http://" + addrs[0]
	start := func(addr string) *proc { return startServeProcess(t, bin, env, addr, issuer) }
	start(addrs[0])
	b := start(addrs[1])
	proxy := &crashProxy{target: "http://" + addrs[1], hc: &http.Client{Timeout: 30 * time.Second}, gate: make(chan struct{})}
	front := httptest.NewServer(proxy)
	defer front.Close()
	endpoint := func(i int) string {
		if i == 1 {
			return front.URL + "/oauth/token"
		}
		return "http://" + addrs[0] + "/oauth/token"
	}

	// Refresh chains: one sign-in, then one code per chain, redeemed alternately at A and B.
	const chains = 6
	br := idptest.NewBrowser(t, issuer)
	rts := make([]string, chains)
	for i := range rts {
		verifier, challenge := idptest.PKCE()
		pg := br.Get(idptest.AuthURL(issuer, app, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
		if pg.IsLogin() {
			pg = br.Login(pg, "alice@example.com", "correct horse battery")
		}
		tr := idptest.PostToken(t, endpoint(i%2), app, url.Values{"grant_type": {"authorization_code"}, "code": {pg.RedirectParams(t).Get("code")},
			"redirect_uri": {app.RedirectURI}, "code_verifier": {verifier}})
		if tr.RefreshToken == "" {
			t.Fatalf("code exchange for chain %d: %+v", i, tr)
		}
		rts[i] = tr.RefreshToken
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	var (
		mu       sync.Mutex
		received []string // jti of every access token a client received
		issued   [2]atomic.Int64
		retries  atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	got := func(proc int, accessToken string) {
		jti := accessTokenID(t, accessToken)
		mu.Lock()
		received = append(received, jti)
		mu.Unlock()
		issued[proc].Add(1)
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// client_credentials: two callers per process; a request that dies goes to the other.
	for w := range 4 {
		wg.Go(func() {
			target := w % 2
			for !stopped() {
				tr, err := postTokenErr(hc, endpoint(target), svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}})
				if err != nil {
					retries.Add(1)
					target = 1 - target
					continue
				}
				if tr.AccessToken == "" {
					t.Errorf("client_credentials at %s: %+v", addrs[target], tr)
					return
				}
				got(target, tr.AccessToken)
			}
		})
	}
	// Refresh chains, alternating between the processes; a request that dies is retried
	// with the same refresh token at the other process (its answer may have been lost
	// after the rotation committed).
	for i := range chains {
		wg.Go(func() {
			target := i % 2
			for !stopped() {
				tr, err := postTokenErr(hc, endpoint(target), app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rts[i]}})
				if err != nil {
					retries.Add(1)
					target = 1 - target
					continue
				}
				if tr.RefreshToken == "" {
					t.Errorf("refresh chain %d at %s: %+v", i, addrs[target], tr)
					return
				}
				got(target, tr.AccessToken)
				rts[i] = tr.RefreshToken
				target = 1 - target
			}
		})
	}
	// waitIssued waits until process p has issued n more tokens than before.
	waitIssued := func(p int, n int64) {
		t.Helper()
		want := issued[p].Load() + n
		deadline := time.Now().Add(2 * time.Minute)
		for issued[p].Load() < want {
			if time.Now().After(deadline) || t.Failed() {
				close(stop)
				wg.Wait()
				t.Fatalf("process %s issued %d tokens, waited for %d", addrs[p], issued[p].Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitIssued(1, 100)
	// Hold B's answers until at least two refresh rotations it committed are held, then
	// kill B: those answers never reach their clients.
	proxy.hold.Store(true)
	for deadline := time.Now().Add(2 * time.Minute); proxy.heldRefresh.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refresh answer of B held")
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
	proxy.hold.Store(false)
	close(proxy.gate)
	waitIssued(0, 100)
	reserveAddr(t, addrs[1]) // free since B died
	start(addrs[1])
	waitIssued(1, 100)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d tokens received (A %d, B %d), %d requests retried at the other process after the kill",
		len(received), issued[0].Load(), issued[1].Load(), retries.Load())

	// Every chain is alive.
	for i, rt := range rts {
		if tr := idptest.PostToken(t, endpoint(i%2), app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); tr.RefreshToken == "" {
			t.Errorf("refresh chain %d after the crash: %+v", i, tr)
		}
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM access_tokens WHERE id = ANY($1)`, received); n != len(received) {
		t.Errorf("%d of the %d access tokens clients received are not in the database", len(received)-n, len(received))
	}
	if n := count(`SELECT count(*) FROM access_tokens a
		WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.token_id = a.id)`); n != 0 {
		t.Errorf("%d stored access tokens have no audit event", n)
	}
	if n := count(`SELECT count(*) FROM refresh_tokens r
		WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.family_id = r.family_id)`); n != 0 {
		t.Errorf("%d stored refresh tokens have no audit event of their family", n)
	}
	if n := count(`SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL`); n != 0 {
		t.Errorf("%d refresh tokens revoked: the crash killed chains", n)
	}
	if n := count(`SELECT count(*) FROM audit_events WHERE type = 'token.refresh.reuse'`); n != 0 {
		t.Errorf("%d refresh-token reuses detected: a retry after the crash counted as reuse", n)
	}
	// Each refresh answer lost with B was retried at A with the rotated token, and A
	// answered with the successor B had issued.
	graced := count(`SELECT count(*) FROM audit_events WHERE type = 'token.refresh' AND reason LIKE '%reuse grace window%'`)
	if held := proxy.heldRefresh.Load(); int64(graced) < held {
		t.Errorf("%d refresh answers lost with the process, %d retries answered with the same successor", held, graced)
	}
	t.Logf("%d refresh answers lost with the process; %d retries answered with the successor issued before the crash", proxy.heldRefresh.Load(), graced)
	if out, err := runCLI("", "audit", "verify"); err != nil || !strings.Contains(out, "audit chain intact") {
		t.Errorf("audit verify after the crash: %v\n%s", err, out)
	}
}
