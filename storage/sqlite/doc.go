// Package sqlite implements storage.Storage on a single SQLite database file, using the
// pure-Go modernc.org/sqlite driver.
package sqlite
