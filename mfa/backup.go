package mfa

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"

	"github.com/openidp/idp/storage"
)

// Backup-code parameters.
const (
	backupCount = 10 // codes per set
	backupLen   = 8  // characters per code: 31^8, about 40 bits
	// backupAlphabet has no look-alikes: no 0/O, no 1/I/L.
	backupAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	// backupHashPurpose separates the keyed hashes of backup codes from other uses of
	// HashKey.
	backupHashPurpose = "backup"
	backupName        = "Backup codes"
)

// Backup is the backup-code factor: a set of single-use codes, shown once, for when the
// other factors are out of reach. Only keyed hashes (Env.Hash) of the codes are stored,
// and each is consumed atomically.
type Backup struct{ Env *Env }

var _ Factor = (*Backup)(nil)

// Kind returns storage.FactorBackup.
func (*Backup) Kind() storage.FactorKind { return storage.FactorBackup }

// Enroll generates a new set of codes for u, replacing (and so invalidating) every
// earlier code, and creates u's backup factor, already confirmed, if u has none. The
// codes are returned once, formatted XXXX-XXXX; only their hashes are kept.
func (b *Backup) Enroll(ctx context.Context, u *storage.User, _ EnrollRequest) (*Enrollment, error) {
	if u == nil {
		return nil, errors.New("backup enroll: no user")
	}
	codes := make([]string, backupCount)
	hashes := make([]string, backupCount)
	for i := range codes {
		c, err := backupCode()
		if err != nil {
			return nil, err
		}
		codes[i] = c[:backupLen/2] + "-" + c[backupLen/2:]
		hashes[i] = b.Env.Hash(backupHashPurpose, c)
	}
	f, err := b.factor(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	now := b.Env.now()
	if f == nil {
		f = &storage.Factor{
			ID:        newID(),
			UserID:    u.ID,
			Kind:      storage.FactorBackup,
			Name:      backupName,
			Confirmed: true,
			CreatedAt: now,
		}
		if err := b.Env.Store.CreateFactor(ctx, f); err != nil {
			return nil, fmt.Errorf("create backup factor: %w", err)
		}
	}
	if err := b.Env.Store.ReplaceBackupCodes(ctx, u.ID, hashes, now); err != nil {
		return nil, fmt.Errorf("store backup codes: %w", err)
	}
	return &Enrollment{Factor: f, Codes: codes}, nil
}

// Confirm does nothing: backup codes are confirmed when they are generated.
func (*Backup) Confirm(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) error {
	return nil
}

// Challenge has nothing to send: the codes are on the person's paper.
func (*Backup) Challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error) {
	return &Challenge{}, nil
}

// Verify consumes the backup code response of u. Case, spaces and dashes do not matter.
// A wrong or already used code is ErrInvalidCode.
func (b *Backup) Verify(ctx context.Context, u *storage.User, f *storage.Factor, _, response string) ([]string, error) {
	if u == nil || f == nil {
		return nil, errors.New("backup: no user or factor")
	}
	if f.Kind != storage.FactorBackup || f.UserID != u.ID {
		return nil, fmt.Errorf("%w: factor %s is not the backup factor of user %s", ErrInvalidCode, f.ID, u.ID)
	}
	code := backupNormalize(response)
	if !backupWellFormed(code) {
		return nil, fmt.Errorf("%w: not a backup code", ErrInvalidCode)
	}
	now := b.Env.now()
	err := b.Env.Store.ConsumeBackupCode(ctx, u.ID, b.Env.Hash(backupHashPurpose, code), now)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrInvalidCode
	}
	if err != nil {
		return nil, fmt.Errorf("consume backup code: %w", err)
	}
	f.LastUsedAt = now
	// The code is spent: failing to note when is no reason to refuse the sign-in.
	if err := b.touch(ctx, f.ID, now); err != nil && b.Env.Logger != nil {
		b.Env.Logger.WarnContext(ctx, "record backup factor use", "factor", f.ID, "err", err)
	}
	return []string{AMROTP}, nil
}

// touch sets LastUsedAt of factor id, reading it afresh so that nothing else changes.
func (b *Backup) touch(ctx context.Context, id string, at time.Time) error {
	f, err := b.Env.Store.GetFactor(ctx, id)
	if err != nil {
		return fmt.Errorf("load backup factor: %w", err)
	}
	f.LastUsedAt = at
	if err := b.Env.Store.UpdateFactor(ctx, f); err != nil {
		return fmt.Errorf("update backup factor: %w", err)
	}
	return nil
}

// Remaining returns how many unused backup codes the user has.
func (b *Backup) Remaining(ctx context.Context, userID string) (int, error) {
	n, err := b.Env.Store.CountBackupCodes(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("count backup codes: %w", err)
	}
	return n, nil
}

// factor returns the user's backup factor, or nil when there is none.
func (b *Backup) factor(ctx context.Context, userID string) (*storage.Factor, error) {
	fs, err := b.Env.Store.ListFactors(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list factors: %w", err)
	}
	for i := range fs {
		if fs[i].Kind == storage.FactorBackup {
			return &fs[i], nil
		}
	}
	return nil, nil
}

// backupCode returns a random code of backupLen characters from backupAlphabet.
func backupCode() (string, error) {
	radix := big.NewInt(int64(len(backupAlphabet)))
	b := make([]byte, backupLen)
	for i := range b {
		n, err := rand.Int(rand.Reader, radix)
		if err != nil {
			return "", fmt.Errorf("random backup code: %w", err)
		}
		b[i] = backupAlphabet[n.Int64()]
	}
	return string(b), nil
}

// backupNormalize upper-cases s and drops white space and dashes.
func backupNormalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '-' {
			return -1
		}
		return unicode.ToUpper(r)
	}, s)
}

// backupWellFormed reports whether code (normalised) could be a backup code.
func backupWellFormed(code string) bool {
	if len(code) != backupLen {
		return false
	}
	for i := 0; i < len(code); i++ {
		if !strings.ContainsRune(backupAlphabet, rune(code[i])) {
			return false
		}
	}
	return true
}
