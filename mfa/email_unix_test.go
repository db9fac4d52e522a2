//go:build unix

package mfa

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// closedPort returns a loopback port that refuses connections for the whole test: a
// socket is bound to it and never listens. (A port found by listening and closing could
// be taken by another process's server before the dial.)
func closedPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		ln.Close()
		t.Fatalf("port %d could be taken by a listener while bound", port)
	}
	return port
}

func TestSMTPSenderUnreachable(t *testing.T) {
	port := closedPort(t)
	s, err := NewSMTPSender(SMTPConfig{Host: "127.0.0.1", Port: port, From: "id@idp.test", TLS: "none", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), "alice@example.com", "subject", "body")
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Send to a closed port = %v, want a dial error (connection refused)", err)
	}
}
