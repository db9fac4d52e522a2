package sqlite

import "syscall"

// datasyncPath flushes the data of the file at path, and the metadata needed to read it
// back, to the disk (fdatasync). The file is opened with plain system calls: an
// os.File would register it with the network poller first.
func datasyncPath(path string) error {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = syscall.Fdatasync(fd)
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	return err
}
