package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/openidp/idp/idp"
)

// memoryHeadroom is what the process needs besides password hashes: ~50 MB resident at
// rest (binary, SQLite page cache, connection pools, templates) and the allocations of
// ordinary requests.
const memoryHeadroom = 64 << 20

// gcPercent is the GOGC idp serve runs with when GOGC is not set (setMemoryLimit).
const gcPercent = 400

// setMemoryLimit gives the Go runtime a soft memory limit of the password-hash budget
// plus memoryHeadroom, unless GOMEMLIMIT is set (the operator's value wins).
//
// Each argon2id check allocates its 19 MiB afresh and drops it when done. Left to GOGC
// alone, the garbage collector lets the heap grow to about twice what was live at the
// last collection before it runs, so a busy gate of three hashes could leave well over
// 100 MiB of finished hashes resident. With the limit the collector runs as the heap
// nears it, and peak RSS tracks the budget. It is a soft limit: a heap that really needs
// more gets it, the collector then only works harder (at most about half the CPU).
//
// Under that limit the collector may also wait longer between cycles: unless GOGC is
// set, it runs when the heap has grown by gcPercent of what was live instead of Go's
// 100%. The limit still bounds the heap; below it, the token endpoint spends a third of
// the CPU on garbage collection that it did at 100 (about 15% of its CPU at 100, 5% at
// 400, measured on client_credentials).
func setMemoryLimit(logger *slog.Logger, hashBudget int64) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	if hashBudget <= 0 {
		hashBudget = idp.DefaultPasswordHashMemory
	}
	limit := hashBudget + memoryHeadroom
	debug.SetMemoryLimit(limit)
	logger.Debug("go memory limit set", "bytes", limit)
}
