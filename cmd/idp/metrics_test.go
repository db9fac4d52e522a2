package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// getStatus returns the status and body of GET u.
func getStatus(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestServeMetricsAddr: /metrics is on the main listener by default; --metrics-addr
// moves it to its own listener (the main one answers 404), and IDP_METRICS_ADDR=off
// serves it nowhere.
func TestServeMetricsAddr(t *testing.T) {
	c := newCLI(t)
	addr := freeAddr(t)
	_, stderr, stop := startServe(t, c.dataDir, "--dev", "--addr", addr)
	waitDiscovery(t, addr, stderr)
	if code, body := getStatus(t, "http://"+addr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "openidp_http_requests_total") {
		t.Errorf("default: main /metrics = %d:\n%.300s", code, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}

	addr, metricsAddr := freeAddr(t), freeAddr(t)
	_, stderr, stop = startServe(t, c.dataDir, "--dev", "--addr", addr, "--metrics-addr", metricsAddr)
	waitDiscovery(t, addr, stderr)
	code, body := getStatus(t, "http://"+metricsAddr+"/metrics")
	if code != http.StatusOK {
		t.Errorf("--metrics-addr: /metrics = %d", code)
	}
	for _, want := range []string{"openidp_http_requests_total", `route="/.well-known/openid-configuration"`, "openidp_db_pool_connections", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("--metrics-addr: /metrics lacks %s", want)
		}
	}
	if code, _ := getStatus(t, "http://"+addr+"/metrics"); code != http.StatusNotFound {
		t.Errorf("--metrics-addr: main /metrics = %d, want 404", code)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}

	t.Setenv("IDP_METRICS_ADDR", "off")
	addr = freeAddr(t)
	_, stderr, stop = startServe(t, c.dataDir, "--dev", "--addr", addr)
	waitDiscovery(t, addr, stderr)
	if code, _ := getStatus(t, "http://"+addr+"/metrics"); code != http.StatusNotFound {
		t.Errorf("off: main /metrics = %d, want 404", code)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
}
