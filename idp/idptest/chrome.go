package idptest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// ChromeTimeout bounds the whole life of a browser started by NewChrome (capped by the
// test's own deadline). Give each step a shorter deadline of its own
// (context.WithTimeout on the returned context).
const ChromeTimeout = 2 * time.Minute

// chromePaths are the browsers NewChrome tries, in order, after $CHROME_PATH.
var chromePaths = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}

// NewChrome starts a headless Chromium for the test and returns a chromedp context
// whose tab is open and ready. Without a browser the test is skipped, or fails when
// CI=true. The browser, its profile (in t.TempDir) and its tab go away when the test
// ends; if the test failed, the page's console and the browser's output are logged.
func NewChrome(t testing.TB) context.Context {
	t.Helper()
	path := findChrome()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found (install the chromium package or set CHROME_PATH)")
		}
		t.Skip("chromium not found; set CI=true to make this a failure")
	}

	deadline := time.Now().Add(ChromeTimeout)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if td, ok := d.Deadline(); ok && td.Add(-5*time.Second).Before(deadline) {
			deadline = td.Add(-5 * time.Second)
		}
	}
	base, cancelBase := context.WithDeadline(context.Background(), deadline)

	output := &LockedBuffer{}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)

	// The first Run starts the browser and opens the tab.
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		cancelBase()
		t.Fatalf("start chromium: %v\n%s", err, output.String())
	}
	t.Logf("chromium ready in %v", time.Since(start).Round(time.Millisecond))

	console := &LockedBuffer{}
	consoleCtx, stopConsole := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			fmt.Fprintf(console, "%s %s:%d\n", m, m.URL, m.Line)
		}
	})

	t.Cleanup(func() {
		stopConsole()
		wg.Wait()
		cancelTab()
		cancelAlloc()
		cancelBase()
		if t.Failed() {
			t.Logf("browser console:\n%s", console.String())
			t.Logf("chromium output (tail):\n%s", tail(output.String(), 4000))
		}
	})
	return ctx
}

// VirtualAuthenticator describes a CDP virtual WebAuthn authenticator (CTAP2, with
// resident keys and automatic user presence).
type VirtualAuthenticator struct {
	// Transport is "usb" (a security key; the default) or "internal" (a platform
	// authenticator, i.e. a passkey on this device).
	Transport string
	// NoUserVerification makes an authenticator without PIN or biometrics; by default
	// it verifies the user successfully.
	NoUserVerification bool
	// NoResidentKey makes an authenticator that cannot store discoverable credentials.
	NoResidentKey bool
	// BackupEligible and BackupState set the BE and BS flags of the credentials it
	// creates, as a synced passkey provider does.
	BackupEligible, BackupState bool
}

// AddVirtualAuthenticator enables the WebAuthn domain on the tab of ctx and adds a
// virtual authenticator, returning its id. It survives navigation, so add it before
// loading the page that runs the ceremony.
func AddVirtualAuthenticator(t testing.TB, ctx context.Context, opts VirtualAuthenticator) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	transport := webauthn.AuthenticatorTransportUsb
	if opts.Transport != "" {
		transport = webauthn.AuthenticatorTransport(opts.Transport)
	}
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("enable webauthn domain: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   transport,
			HasResidentKey:              !opts.NoResidentKey,
			HasUserVerification:         !opts.NoUserVerification,
			IsUserVerified:              !opts.NoUserVerification,
			AutomaticPresenceSimulation: true,
			DefaultBackupEligibility:    opts.BackupEligible,
			DefaultBackupState:          opts.BackupState,
		},
	})
	if err != nil {
		t.Fatalf("add virtual authenticator: %v", err)
	}
	return string(res.AuthenticatorID)
}

// SetUserPresence turns the automatic user presence of virtual authenticator id on or
// off. With several authenticators, leave it on for the one the next ceremony should
// use: the others then wait for a touch that never comes.
func SetUserPresence(t testing.TB, ctx context.Context, id string, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := chromedp.Call(ctx, webauthn.SetAutomaticPresenceSimulation,
		webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: webauthn.AuthenticatorID(id), Enabled: on})
	if err != nil {
		t.Fatalf("set user presence: %v", err)
	}
}

// VirtualCredentials returns the credentials stored in virtual authenticator id.
func VirtualCredentials(t testing.TB, ctx context.Context, id string) []*webauthn.Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials,
		webauthn.GetCredentialsParams{AuthenticatorID: webauthn.AuthenticatorID(id)})
	if err != nil {
		t.Fatalf("get virtual credentials: %v", err)
	}
	return res.Credentials
}

func findChrome() string {
	candidates := chromePaths
	if p := os.Getenv("CHROME_PATH"); p != "" {
		candidates = append([]string{p}, candidates...)
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// LockedBuffer is a bytes.Buffer safe for concurrent writers and readers: a server's log
// that a test reads while the server writes.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
