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
// The Go runtime's monitor thread (sysmon) wakes every 20 µs or so while the program is
// busy, and hands the processor (P) of a goroutine blocked in a system call to other
// goroutines once it has seen the same call on two of its ticks. Linux lets a sleeping
// thread wake up late by its timer slack, 50 µs unless set otherwise. Under load the
// SQLite store's flush (fdatasync of the write-ahead log, about a thousand a second)
// then lost its P a median 0.2 ms into the call, nearly every time, and the flushing
// thread, its disk write done, had to wait for the core and then for a P before it
// could answer the requests it had made durable. With a 1 µs slack on the monitor thread
// alone that stopped (no flush of a 2 s runtime trace lost its P), and client_credentials
// on one core went from about 3,900 to 5,000 tokens a second, with a quarter less CPU
// per token (docs/performance.md has the measurements).
//
// A thread's timer slack is inherited by the threads it creates and kept across execve,
// but the monitor thread is created before main runs, and no thread may set another's
// slack without CAP_SYS_NICE. So serve sets the slack on its own thread and executes the
// program again, once, from main only (reexecAllowed): same program, arguments,
// environment and process id; every thread of the new image, the monitor first, has the
// slack from birth.

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
