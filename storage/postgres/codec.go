package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/openidp/idp/storage"
)

// policyArg encodes an MFA policy for a jsonb column: a JSON object with durations as
// numbers of nanoseconds; the zero policy encodes as {}.
func policyArg(p storage.MFAPolicy) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode policy: %w", err)
	}
	return string(b), nil
}

// policyDest is a scan destination for a jsonb policy column: NULL gives the zero policy.
type policyDest struct{ p *storage.MFAPolicy }

// scanPolicy returns a scan destination that stores into p.
func scanPolicy(p *storage.MFAPolicy) policyDest { return policyDest{p} }

// Scan implements sql.Scanner, which pgx uses for jsonb in both formats.
func (d policyDest) Scan(src any) error {
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
	*d.p = storage.MFAPolicy{}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, d.p); err != nil {
		return fmt.Errorf("scan policy: %w", err)
	}
	return nil
}
