//go:build !linux

package main

import (
	"errors"
	"time"
)

// currentTimerSlack is Linux's alone (timerslack_linux.go).
func currentTimerSlack() (time.Duration, error) {
	return 0, errors.ErrUnsupported
}

// reexecWithTimerSlack does nothing: the timer slack is Linux's (timerslack_linux.go).
func reexecWithTimerSlack(time.Duration) error { return nil }
