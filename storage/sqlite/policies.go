package sqlite

import (
	"context"

	"github.com/openidp/idp/storage"
)

// SetTypePolicy inserts or replaces the policy of accountType.
func (s *Store) SetTypePolicy(ctx context.Context, accountType string, p storage.MFAPolicy) error {
	pol, err := policy(p)
	if err != nil {
		return wrap("set type policy", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO type_policies (type, policy) VALUES (?, ?)
		ON CONFLICT (type) DO UPDATE SET policy = excluded.policy`, accountType, pol)
	return wrap("set type policy", err)
}

// GetTypePolicy returns the policy of accountType, or ErrNotFound.
func (s *Store) GetTypePolicy(ctx context.Context, accountType string) (*storage.MFAPolicy, error) {
	var p storage.MFAPolicy
	err := s.rdb.QueryRowContext(ctx, `SELECT policy FROM type_policies WHERE type = ?`, accountType).
		Scan(policyCol{&p})
	if err != nil {
		return nil, wrap("get type policy", err)
	}
	return &p, nil
}

// ListTypePolicies returns every account-type policy by type.
func (s *Store) ListTypePolicies(ctx context.Context) (map[string]storage.MFAPolicy, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT type, policy FROM type_policies`)
	if err != nil {
		return nil, wrap("list type policies", err)
	}
	defer rows.Close()
	out := map[string]storage.MFAPolicy{}
	for rows.Next() {
		var (
			typ string
			p   storage.MFAPolicy
		)
		if err := rows.Scan(&typ, policyCol{&p}); err != nil {
			return nil, wrap("list type policies", err)
		}
		out[typ] = p
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list type policies", err)
	}
	return out, nil
}

// DeleteTypePolicy removes the policy of accountType; a missing one is not an error.
func (s *Store) DeleteTypePolicy(ctx context.Context, accountType string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM type_policies WHERE type = ?`, accountType)
	return wrap("delete type policy", err)
}
