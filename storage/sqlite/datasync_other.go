//go:build !linux

package sqlite

import "os"

// datasyncPath flushes the file at path to the disk (fsync).
func datasyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
