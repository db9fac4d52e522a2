package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/seal"
)

// TestServeSocketActivation: `idp serve` serves on the socket passed by socket activation
// instead of binding --addr, ignores activation variables meant for another process, and
// refuses more than one socket.
func TestServeSocketActivation(t *testing.T) {
	bin := buildBinary(t)
	env := append(os.Environ(),
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_DATA_DIR="+filepath.Join(t.TempDir(), "data"),
		"IDP_LOG_LEVEL=info",
	)
	// serve returns an `idp serve` command for addr and issuer, killed at the end of the
	// test unless it was waited for (waited).
	serve := func(t *testing.T, addr, issuer string, env []string) (cmd *exec.Cmd, stderr *idptest.LockedBuffer, waited *bool) {
		t.Helper()
		stderr, waited = &idptest.LockedBuffer{}, new(bool)
		cmd = exec.Command(bin, "serve", "--addr", addr, "--issuer", issuer)
		cmd.Env, cmd.Stderr = env, stderr
		t.Cleanup(func() {
			if cmd.Process != nil && !*waited {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			if t.Failed() {
				t.Logf("stderr of serve:\n%s", stderr.String())
			}
		})
		return cmd, stderr, waited
	}

	t.Run("passed socket", func(t *testing.T) {
		// --addr names a port the test keeps bound: binding it would fail.
		activated, held := freeAddr(t), freeAddr(t)
		cmd, stderr, _ := serve(t, held, "http://"+activated, env)
		startActivated(t, cmd, activated)
		waitReady(t, activated, stderr)
		waitOutput(t, stderr, regexp.MustCompile(`serving on the socket passed by socket activation.* addr=`+regexp.QuoteMeta(activated)+`\b`),
			"a log line naming the activated socket "+activated)
	})

	t.Run("variables of another process", func(t *testing.T) {
		// The process binds --addr itself: port 0, the one it got is on its banner.
		cmd, stderr, _ := serve(t, "127.0.0.1:0", "http://127.0.0.1", append(env, "LISTEN_PID=1", "LISTEN_FDS=1"))
		stdout := &idptest.LockedBuffer{}
		cmd.Stdout = stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr := waitOutput(t, stdout, regexp.MustCompile(`Listening: +(\S+)`), "the address serve bound on its banner")[1]
		waitReady(t, addr, stderr)
		if strings.Contains(stderr.String(), "socket activation") {
			t.Errorf("activation variables of another process were taken:\n%s", stderr.String())
		}
	})

	t.Run("two sockets", func(t *testing.T) {
		addr := freeAddr(t)
		cmd, stderr, waited := serve(t, addr, "http://"+addr, env)
		ln := takeReserved(addr)
		defer ln.Close()
		f, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		activate(t, cmd, f, f)
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			*waited = true
			if err == nil || !strings.Contains(stderr.String(), "LISTEN_FDS=\"2\"") {
				t.Errorf("exit %v, want a failure naming LISTEN_FDS; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("serve with two activated sockets still running; stderr:\n%s", stderr.String())
		}
	})
}

// waitOutput waits until re matches what a process wrote to out (copied there from a
// pipe, so a line the process wrote before it answered a request may arrive after the
// answer) and returns the match with its groups; it fails the test, naming what, after
// 30 s.
func waitOutput(t *testing.T, out *idptest.LockedBuffer, re *regexp.Regexp, what string) []string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s; output:\n%s", what, out.String())
		}
	}
}
