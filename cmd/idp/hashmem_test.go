package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
)

// Issue 7, finding 5a: 100 concurrent anonymous login POSTs (unknown accounts, so the
// dummy argon2id hash) took one process from 48 MB to 1.3–1.9 GB. The password-hash gate
// must keep the peak resident set of the real binary under peakRSSLimit, and answer the
// requests it cannot hash in time with 503 and Retry-After instead of an error or a hang.

const (
	anonLoginPOSTs = 100
	peakRSSLimit   = 256 << 20 // bytes
)

// hashLoad is what a burst of anonymous login POSTs did to one `idp serve` process.
type hashLoad struct {
	baseRSS, peakRSS int64 // VmHWM before and after the burst, bytes
	statuses         map[int]int
	busyNoRetryAfter int // 503 answers without a Retry-After header
	busyNotHTML      int // 503 answers without a readable page
	slowest          time.Duration
}

// TestAnonymousLoginMemory starts the real binary on each backend with the default
// settings, fires anonLoginPOSTs concurrent POST /login for unknown accounts and reports
// the process's peak RSS (VmHWM).
func TestAnonymousLoginMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the process's peak RSS")
	}
	bin := buildBinary(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			database := ""
			if backend == "postgres" {
				database = pgtest.NewDatabase(t)
			}
			got := anonymousLoginBurst(t, bin, database, anonLoginPOSTs)
			t.Logf("%s: %d concurrent anonymous POST /login: peak RSS %.1f MiB (%.1f MiB before the burst); statuses %v; slowest answer %v",
				backend, anonLoginPOSTs, mib(got.peakRSS), mib(got.baseRSS), got.statuses, got.slowest.Round(time.Millisecond))
			if got.peakRSS >= peakRSSLimit {
				t.Errorf("peak RSS %.1f MiB, want under %.0f MiB", mib(got.peakRSS), mib(peakRSSLimit))
			}
			for code, n := range got.statuses {
				switch code {
				case http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable:
				default:
					t.Errorf("%d answers with status %d, want only 401 (wrong password), 429 (rate limited) or 503 (busy)", n, code)
				}
			}
			// How many are turned away depends on how fast this machine hashes and sends;
			// TestLoginBusy checks the 503 itself deterministically.
			if got.statuses[http.StatusServiceUnavailable] == 0 {
				t.Logf("no request was turned away with 503 this time")
			}
			if got.busyNoRetryAfter > 0 || got.busyNotHTML > 0 {
				t.Errorf("of the 503 answers, %d lack Retry-After and %d lack an HTML page", got.busyNoRetryAfter, got.busyNotHTML)
			}
		})
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// anonymousLoginBurst starts `idp serve` on database (SQLite in a temporary data
// directory when empty), opens one login page and posts n wrong logins from it at once.
func anonymousLoginBurst(t *testing.T, bin, database string, n int, serveArgs ...string) hashLoad {
	t.Helper()
	env := append(os.Environ(),
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_DATA_DIR="+t.TempDir(),
		"IDP_LOG_LEVEL=error",
		"IDP_DATABASE="+database,
	)
	runCLI := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("idp %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	runCLI("migrate")
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(runCLI("clients", "create", "--json", "--name", "App",
		"--redirect-uri", "https://app.example.com/cb", "--skip-consent")), &created); err != nil {
		t.Fatal(err)
	}
	client := idptest.Client{ID: created.ClientID, Secret: created.ClientSecret, RedirectURI: "https://app.example.com/cb"}

	addr := freeAddr(t)
	issuer := "http://" + addr
	cmd := startServeProcess(t, bin, env, addr, issuer, serveArgs...).cmd

	br := idptest.NewBrowser(t, issuer)
	pg := br.Get(idptest.AuthURL(issuer, client, nil))
	if !pg.IsLogin() {
		t.Fatalf("expected the login form, got status %d:\n%.600s", pg.Status, pg.Body)
	}
	form := pg.Hidden()
	form.Set("password", "not the password")
	// One connection per request, all opened at once, each from its own loopback address
	// (127.0.0.2, .3, ...) like a distributed attack: no pooling hides the concurrency
	// and the per-address login limit does not turn the burst away before it hashes.
	newClient := func(i int) *http.Client {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/250), byte(2+i%250))}
		return &http.Client{Jar: br.Client.Jar, Timeout: 60 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true,
				DialContext: (&net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}).DialContext},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}

	res := hashLoad{statuses: map[int]int{}, baseRSS: vmHWM(t, cmd.Process.Pid)}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set("email", fmt.Sprintf("nobody-%d@example.com", i))
		c := newClient(i)
		wg.Go(func() {
			<-start
			t0 := time.Now()
			resp, err := c.Post(issuer+"/login", "application/x-www-form-urlencoded", strings.NewReader(f.Encode()))
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			res.slowest = max(res.slowest, d)
			if err != nil {
				res.statuses[-1]++
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			res.statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusServiceUnavailable {
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s <= 0 {
					res.busyNoRetryAfter++
				}
				if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<html") {
					res.busyNotHTML++
				}
			}
		})
	}
	close(start)
	wg.Wait()
	res.peakRSS = vmHWM(t, cmd.Process.Pid)
	return res
}

// vmHWM returns the peak resident set size of process pid ("VmHWM" in
// /proc/<pid>/status), in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
		str     string
	}{
		{in: "67108864", want: 64 << 20, str: "64MiB"},
		{in: "64MiB", want: 64 << 20, str: "64MiB"},
		{in: "96 mib", want: 96 << 20, str: "96MiB"},
		{in: "1GiB", want: 1 << 30, str: "1GiB"},
		{in: "512K", want: 512 << 10, str: "512KiB"},
		{in: "1000", want: 1000, str: "1000"},
		{in: "0", want: 0, str: "0"},
		{in: "-1MiB", wantErr: true},
		{in: "64 megabytes", wantErr: true},
		{in: "", wantErr: true},
		{in: "99999999999GiB", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var b byteSize
			err := b.Set(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Set(%q): %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && (int64(b) != tt.want || b.String() != tt.str) {
				t.Fatalf("Set(%q) = %d (%s), want %d (%s)", tt.in, int64(b), b.String(), tt.want, tt.str)
			}
		})
	}
}

// TestPasswordHashMemoryFlag: a size that cannot be read is a usage error, from the flag
// or from IDP_PASSWORD_HASH_MEMORY.
func TestPasswordHashMemoryFlag(t *testing.T) {
	c := newCLI(t)
	if r := c.run("", "serve", "--password-hash-memory", "lots"); r.code != 2 || !strings.Contains(r.stderr, "is not a size") {
		t.Fatalf("flag: exit %d\n%s", r.code, r.stderr)
	}
	t.Setenv("IDP_PASSWORD_HASH_MEMORY", "lots")
	if r := c.run("", "serve"); r.code == 0 || !strings.Contains(r.stderr, "IDP_PASSWORD_HASH_MEMORY") {
		t.Fatalf("env: exit %d\n%s", r.code, r.stderr)
	}
}
