package sqlite

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
)

// ts encodes t for an INTEGER time column: unix nanoseconds, or NULL for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// timeCol scans an INTEGER time column into a UTC time.Time; NULL gives the zero time.
type timeCol struct{ t *time.Time }

// Scan implements sql.Scanner.
func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.Unix(0, v).UTC()
	default:
		return fmt.Errorf("scan time: unexpected %T", src)
	}
	return nil
}

// list encodes a string list as a JSON array; nil encodes as [].
func list[T ~string](l []T) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		// Marshalling a list of strings cannot fail.
		panic(err)
	}
	return string(b)
}

// listCol scans a JSON array column into a list of strings; an empty array gives nil.
type listCol[T ~string] struct{ l *[]T }

// Scan implements sql.Scanner.
func (c listCol[T]) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*c.l = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("scan list: unexpected %T", src)
	}
	var l []T
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("scan list: %w", err)
	}
	if len(l) == 0 {
		l = nil
	}
	*c.l = l
	return nil
}

// blob returns b, or nil for an empty slice so that empty values are stored as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// scanner is the Scan method shared by *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// policy encodes an MFA policy as a JSON object; the zero policy encodes as {}.
func policy(p storage.MFAPolicy) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode policy: %w", err)
	}
	return string(b), nil
}

// policyCol scans a JSON policy column into a storage.MFAPolicy; NULL or an empty
// string gives the zero policy.
type policyCol struct{ p *storage.MFAPolicy }

// Scan implements sql.Scanner.
func (c policyCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("scan policy: unexpected %T", src)
	}
	*c.p = storage.MFAPolicy{}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, c.p); err != nil {
		return fmt.Errorf("scan policy: %w", err)
	}
	return nil
}
