package idp

import "context"

// HoldPasswordHashesForTest takes the whole memory budget of the server's password-hash
// gate, as concurrent logins would, until release is called.
func (s *Server) HoldPasswordHashesForTest() (release func()) {
	release, err := s.hashes.acquire(context.Background(), s.hashes.budget)
	if err != nil {
		panic(err)
	}
	return release
}
