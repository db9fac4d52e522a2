package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Ports for the servers the tests start. An address picked by binding port 0 and
// closing the socket at once can be taken by another process before the server binds
// it (the packages are tested in parallel, and their servers bind ports all the time):
// the server then fails to start, and its readiness check reaches the other process's
// server instead, which answers every later request for it. So the port stays bound
// from the moment its address is picked until the server takes the socket over: an
// in-process server through listenTCP, an `idp serve` process through socket
// activation (startActivated).

// reserved holds the listening sockets bound by freeAddr and reserveAddr and not yet
// taken by a server, by address.
var reserved sync.Map // string → *net.TCPListener

func init() {
	listenTCP = func(addr string) (net.Listener, error) {
		if ln := takeReserved(addr); ln != nil {
			return ln, nil
		}
		return net.Listen("tcp", addr)
	}
}

// freeAddr returns a loopback address whose port is bound for the test until a server
// takes it (see above) or the test ends.
func freeAddr(t *testing.T) string {
	t.Helper()
	return reserveAddr(t, "127.0.0.1:0")
}

// reserveAddr binds addr (port 0: any free port) for the test until a server takes it
// or the test ends, and returns the address bound.
func reserveAddr(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("reserve %s: %v", addr, err)
	}
	bound := ln.Addr().String()
	reserved.Store(bound, ln)
	t.Cleanup(func() {
		if ln := takeReserved(bound); ln != nil {
			_ = ln.Close()
		}
	})
	return bound
}

// takeReserved removes the socket reserved for addr from the reservations and returns
// it, or nil when there is none.
func takeReserved(addr string) *net.TCPListener {
	ln, ok := reserved.LoadAndDelete(addr)
	if !ok {
		return nil
	}
	return ln.(*net.TCPListener)
}

// startActivated starts cmd, an `idp serve` process listening on addr, on the socket
// reserved for addr: as socket activation passes it (file descriptor 3, LISTEN_FDS=1,
// LISTEN_PID set by a shell that then executes the program in its own process). The
// test's copy of the socket is closed once the process has it, so that the port is
// refused when the process dies. addr must be reserved (freeAddr, reserveAddr): a
// process left to bind it itself would bring back the race described above.
func startActivated(t *testing.T, cmd *exec.Cmd, addr string) {
	t.Helper()
	ln := takeReserved(addr)
	if ln == nil {
		t.Fatalf("no socket reserved for %s: get the address from freeAddr or reserveAddr", addr)
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	activate(t, cmd, f)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// activate makes cmd run its program with files passed as socket activation passes
// them: from file descriptor 3 on, LISTEN_FDS their number and LISTEN_PID the process's
// id, which a shell sets before it executes the program in its own process.
func activate(t *testing.T, cmd *exec.Cmd, files ...*os.File) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = files
	script := fmt.Sprintf(`LISTEN_PID=$$ LISTEN_FDS=%d exec "$0" "$@"`, len(files))
	cmd.Args = append([]string{"sh", "-c", script, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = sh
}

// TestFreeAddrStaysBound: no other socket can bind a port freeAddr picked while the
// test holds it, and an in-process server takes the reserved socket itself.
func TestFreeAddrStaysBound(t *testing.T) {
	addr := freeAddr(t)
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("%s could be bound again while reserved", addr)
	}
	ln, err := listenTCP(addr)
	if err != nil {
		t.Fatalf("listenTCP(%s) did not take the reserved socket: %v", addr, err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != addr {
		t.Fatalf("listenTCP(%s) listens on %s", addr, got)
	}
	if takeReserved(addr) != nil {
		t.Fatalf("%s still reserved after a server took it", addr)
	}
}
