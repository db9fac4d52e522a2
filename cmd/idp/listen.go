package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// Socket activation (sd_listen_fds(3)): a supervisor such as systemd binds the
// provider's port itself and passes the listening socket to the process as file
// descriptor 3, with LISTEN_FDS=1 and LISTEN_PID set to the process's id. The port then
// stays bound across restarts (connections wait in its queue instead of being refused),
// and a privileged port needs no privilege in the provider.

// listenFdsStart is the first file descriptor passed by socket activation.
const listenFdsStart = 3

// listenTCP opens a listening socket on addr; tests replace it to hand in-process
// servers a socket they bound beforehand.
var listenTCP = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// listen returns the socket the provider serves on: the one passed by socket
// activation when there is one, else a new one on addr. activated reports which.
func listen(addr string) (ln net.Listener, activated bool, err error) {
	ln, err = activatedListener()
	if err != nil || ln != nil {
		return ln, ln != nil, err
	}
	ln, err = listenTCP(addr)
	if err != nil {
		return nil, false, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, false, nil
}

// activatedListener returns the listening socket passed by socket activation, or nil
// when none was passed to this process: LISTEN_PID names another process (the variables
// were inherited, not meant for it) or is unset. The variables are removed either way,
// so that nothing this process starts takes them for its own.
func activatedListener() (net.Listener, error) {
	pid, fds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		_ = os.Unsetenv(k)
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	if n, err := strconv.Atoi(fds); err != nil || n != 1 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q: idp serve takes exactly one socket, the one --addr would open", fds)
	}
	f := os.NewFile(listenFdsStart, "socket-activation")
	defer f.Close() // FileListener holds a duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("socket activation: file descriptor %d: %w", listenFdsStart, err)
	}
	return ln, nil
}
