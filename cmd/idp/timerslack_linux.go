//go:build linux

package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Timer slack (Linux).
//
// When a goroutine blocks in a system call, the Go runtime's monitor thread (sysmon)
// hands its processor (P) to the other goroutines once it has seen the same call on two
// of its ticks, 20 µs apart at the quickest. Linux lets a sleeping thread wake up late by
// its timer slack, 50 µs unless set otherwise, so a P stays with a blocked call about
// 200 µs. The SQLite store's flush (fdatasync of the write-ahead log, about 0.4 ms)
// blocks that way up to a thousand times a second under load: with the server on one
// core, the handlers that could run meanwhile wait and the core idles (a quarter of the
// time in a runtime trace of client_credentials at 8 clients; docs/performance.md).
//
// A thread's timer slack is inherited by the threads it creates and kept across execve,
// but sysmon is created before main runs, and a thread's slack can be set by no other
// thread without CAP_SYS_NICE. So serve sets the slack on its own thread and executes
// itself again, once, from main (reexecAllowed): same program, arguments, environment
// and process id; every thread of the new image, sysmon first, has the slack from birth.

// timerSlackSetEnv marks the process image executed with the timer slack set, so that it
// is never executed again, whatever the kernel did with the slack.
const timerSlackSetEnv = "IDP_TIMER_SLACK_SET"

// currentTimerSlack returns the calling thread's timer slack.
func currentTimerSlack() (time.Duration, error) {
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("read the timer slack: %w", err)
	}
	return time.Duration(ns), nil
}

// reexecWithTimerSlack gives every thread of the process a timer slack of at most slack
// by executing the program again with it set (see above). It returns nil without doing
// anything when the slack is at most that already, and an error when it could not; once
// it has executed the program again it does not return.
func reexecWithTimerSlack(slack time.Duration) error {
	cur, err := currentTimerSlack()
	if err != nil {
		return err
	}
	if cur <= slack {
		return nil
	}
	if os.Getenv(timerSlackSetEnv) != "" {
		return fmt.Errorf("the timer slack is %s after executing again with %s", cur, slack)
	}
	// The slack is the calling thread's: stay on it until execve.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("set the timer slack: %w", err)
	}
	// /proc/self/exe is the running program even when its file was replaced since.
	err = unix.Exec("/proc/self/exe", os.Args, append(os.Environ(), timerSlackSetEnv+"=1"))
	// Still here: this thread keeps the new slack, the others the old one.
	return fmt.Errorf("execute again with the timer slack: %w", err)
}
