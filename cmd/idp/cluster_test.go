package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
)

// buildBinary compiles the idp command once for tests that need real processes.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "idp")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running `idp serve` process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *idptest.LockedBuffer
}

// startServeProcess starts `idp serve` (binary bin, environment env, more flags args) on
// addr, a freeAddr address, answering for issuer, waits until it is ready, and kills it
// at cleanup.
func startServeProcess(t *testing.T, bin string, env []string, addr, issuer string, args ...string) *proc {
	t.Helper()
	p := &proc{addr: addr, stderr: &idptest.LockedBuffer{}}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--issuer", issuer}, args...)...)
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	startActivated(t, p.cmd, addr)
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			// What the process logged says why a request it answered failed.
			t.Logf("stderr of the process at %s:\n%s", addr, p.stderr.String())
		}
	})
	waitReady(t, addr, p.stderr)
	return p
}

// TestClusterOnPostgres runs two `idp serve` processes on one PostgreSQL database behind
// one issuer URL: a login on one is finished on the other, refresh-token reuse is
// detected across them, and a key rotation made by a third process is seen by both.
func TestClusterOnPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin := buildBinary(t)
	env := append(os.Environ(),
		"IDP_DATABASE="+dsn,
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_DATA_DIR="+t.TempDir(),
		"IDP_LOG_LEVEL=warn",
		// Short enough that a rotated key starts signing during the test.
		"IDP_JWKS_MAX_AGE=1s",
	)
	runCLI := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("idp %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	runCLI("", "migrate")
	runCLI("correct horse battery", "users", "create", "--email", "alice@example.com", "--password-stdin")
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(runCLI("", "clients", "create", "--json", "--name", "App",
		"--redirect-uri", "https://app.example.com/cb", "--skip-consent")), &created); err != nil {
		t.Fatal(err)
	}
	client := idptest.Client{ID: created.ClientID, Secret: created.ClientSecret, RedirectURI: "https://app.example.com/cb"}

	addrA, addrB := freeAddr(t), freeAddr(t)
	issuer := "http://" + addrA // the "load balancer" address both processes answer for
	start := func(addr string) *proc { return startServeProcess(t, bin, env, addr, issuer) }
	a, b := start(addrA), start(addrB)

	// Log in on A; redeem the code on B.
	br := idptest.NewBrowser(t, issuer)
	verifier, challenge := idptest.PKCE()
	pg := br.Get(idptest.AuthURL(issuer, client, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
	pg = br.Login(pg, "alice@example.com", "correct horse battery")
	code := pg.RedirectParams(t).Get("code")
	tokenB := "http://" + b.addr + "/oauth/token"
	tr := idptest.PostToken(t, tokenB, client, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {client.RedirectURI}, "code_verifier": {verifier}})
	if tr.IDToken == "" || tr.RefreshToken == "" {
		t.Fatalf("code exchange on B: %+v", tr)
	}
	// The same code is refused on A: single use holds across processes.
	if again := idptest.PostToken(t, issuer+"/oauth/token", client, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {client.RedirectURI}, "code_verifier": {verifier}}); again.Error != "invalid_grant" {
		t.Fatalf("code reused on A: %+v", again)
	}
	// ... and the replay revoked what the code issued, in every process (RFC 6749 §4.1.2).
	if dead := idptest.PostToken(t, tokenB, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); dead.Error != "invalid_grant" {
		t.Fatalf("refresh token of a replayed code still works on B: %+v", dead)
	}
	// A new sign-in (SSO on A) for the refresh checks.
	verifier, challenge = idptest.PKCE()
	pg = br.Get(idptest.AuthURL(issuer, client, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
	tr = idptest.PostToken(t, tokenB, client, url.Values{"grant_type": {"authorization_code"}, "code": {pg.RedirectParams(t).Get("code")},
		"redirect_uri": {client.RedirectURI}, "code_verifier": {verifier}})
	if tr.RefreshToken == "" {
		t.Fatalf("second code exchange on B: %+v", tr)
	}
	// Refresh on B, replay the old token on A: reuse detected, family revoked.
	rotated := idptest.PostToken(t, tokenB, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	if rotated.RefreshToken == "" {
		t.Fatalf("refresh on B: %+v", rotated)
	}
	// Within the reuse grace window, A answers a retry of the rotated token with the
	// successor B issued.
	if retry := idptest.PostToken(t, issuer+"/oauth/token", client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); retry.RefreshToken != rotated.RefreshToken {
		t.Fatalf("retry on A within the grace window: %+v, want the successor B issued", retry)
	}
	// Once the successor is used, replaying the old token is reuse.
	rotated = idptest.PostToken(t, tokenB, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rotated.RefreshToken}})
	if rotated.RefreshToken == "" {
		t.Fatalf("second refresh on B: %+v", rotated)
	}
	if replay := idptest.PostToken(t, issuer+"/oauth/token", client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); replay.Error != "invalid_grant" {
		t.Fatalf("replay on A: %+v", replay)
	}
	if after := idptest.PostToken(t, tokenB, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rotated.RefreshToken}}); after.Error != "invalid_grant" {
		t.Fatalf("family survived reuse: %+v", after)
	}
	// SSO: the session made on A is honoured by B.
	pg = br.Get(strings.Replace(idptest.AuthURL(issuer, client, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}), addrA, addrB, 1))
	if pg.IsLogin() || pg.RedirectParams(t).Get("code") == "" {
		t.Fatalf("SSO through B did not return a code without a password (status %d)", pg.Status)
	}

	// Rotate keys with a third process; both servers publish the new keys at once (with
	// the same ETag: it hashes the shared state), keep signing with the old ones during
	// the publish delay, and sign with the new ones after it.
	const publishDelay = 3 * time.Second
	var rotatedKeys struct {
		KeyIDs []string `json:"key_ids"`
		Keys   []struct {
			State       string    `json:"state"`
			ActivatesAt time.Time `json:"activates_at"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(runCLI("", "keys", "rotate", "--json", "--key-publish-delay", publishDelay.String())), &rotatedKeys); err != nil ||
		len(rotatedKeys.KeyIDs) != 2 || len(rotatedKeys.Keys) != 2 || rotatedKeys.Keys[0].State != "pending" {
		t.Fatalf("keys rotate: %+v %v", rotatedKeys, err)
	}
	activatesAt := rotatedKeys.Keys[0].ActivatesAt
	var etags []string
	for _, p := range []*proc{a, b} {
		// The other processes learn of the rotation through the change feed
		// (LISTEN/NOTIFY), which arrives a moment after the CLI's commit: wait for it.
		set, resp := waitPublished(t, p.addr, rotatedKeys.KeyIDs)
		if len(set.Keys) != 4 {
			t.Fatalf("process at %s publishes %d keys, want 4 (2 signing + 2 pending)", p.addr, len(set.Keys))
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=1" {
			t.Fatalf("process at %s: /keys Cache-Control %q", p.addr, cc)
		}
		etags = append(etags, resp.Header.Get("ETag"))
	}
	if etags[0] == "" || etags[0] != etags[1] {
		t.Fatalf("the two processes tag the same key set differently: %q", etags)
	}
	svcOut := runCLI("", "clients", "create", "--json", "--name", "Svc", "--grants", "client_credentials", "--scopes", "api")
	var svc struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(svcOut), &svc); err != nil {
		t.Fatal(err)
	}
	signingKid := func(p *proc) string {
		t.Helper()
		cc := idptest.PostToken(t, "http://"+p.addr+"/oauth/token", idptest.Client{ID: svc.ClientID, Secret: svc.ClientSecret},
			url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}})
		parsed, err := jwt.ParseSigned(cc.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("client_credentials on %s: %+v (%v)", p.addr, cc, err)
		}
		return parsed.Headers[0].KeyID
	}
	if time.Now().Before(activatesAt) {
		if kid := signingKid(b); slices.Contains(rotatedKeys.KeyIDs, kid) && time.Now().Before(activatesAt) {
			t.Fatalf("B signed with the pending key %s before %v", kid, activatesAt)
		}
	}
	time.Sleep(time.Until(activatesAt) + 100*time.Millisecond)
	for _, p := range []*proc{a, b} {
		if kid := signingKid(p); !slices.Contains(rotatedKeys.KeyIDs, kid) {
			t.Fatalf("after the publish delay %s signed with %s, not a rotated key %v", p.addr, kid, rotatedKeys.KeyIDs)
		}
	}

	// Graceful shutdown on SIGTERM: both exit 0.
	for _, p := range []*proc{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("process at %s after SIGTERM: %v\n%s", p.addr, err, p.stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("process at %s did not stop after SIGTERM", p.addr)
		}
	}
}

// waitReady polls /readyz at addr until the process answers.
func waitReady(t *testing.T, addr string, stderr *idptest.LockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready; stderr:\n%s", addr, stderr.String())
}

// waitPublished polls the JSON Web Key Set at addr until it publishes every key in ids,
// and returns it with its response (body read). It fails the test when the keys have
// not appeared after 10 s: the change feed that tells a process of a key rotation
// committed elsewhere normally arrives within milliseconds.
func waitPublished(t *testing.T, addr string, ids []string) (jose.JSONWebKeySet, *http.Response) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		var set jose.JSONWebKeySet
		err = json.NewDecoder(resp.Body).Decode(&set)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return len(set.Key(id)) > 0 })
		if len(missing) == 0 {
			return set, resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("process at %s does not publish rotated keys %v", addr, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
