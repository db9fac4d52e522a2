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

// setMemoryLimit gives the Go runtime a soft memory limit of the password-hash budget
// plus memoryHeadroom, unless GOMEMLIMIT is set (the operator's value wins).
//
// Each argon2id check allocates its 19 MiB afresh and drops it when done. Left to GOGC
// alone, the garbage collector lets the heap grow to about twice what was live at the
// last collection before it runs, so a busy gate of three hashes could leave well over
// 100 MiB of finished hashes resident. With the limit the collector runs as the heap
// nears it, and peak RSS tracks the budget. It is a soft limit: a heap that really needs
// more gets it, the collector then only works harder (at most about half the CPU).
func setMemoryLimit(logger *slog.Logger, hashBudget int64) {
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
