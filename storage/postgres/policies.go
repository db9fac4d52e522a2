package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

// SetTypePolicy inserts or replaces the policy of accountType.
func (s *Store) SetTypePolicy(ctx context.Context, accountType string, p storage.MFAPolicy) error {
	pol, err := policyArg(p)
	if err != nil {
		return wrapErr("set type policy", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO type_policies (type, policy) VALUES ($1, $2)
		ON CONFLICT (type) DO UPDATE SET policy = EXCLUDED.policy`, accountType, pol)
	return wrapErr("set type policy", err)
}

// GetTypePolicy returns the policy of accountType, or ErrNotFound.
func (s *Store) GetTypePolicy(ctx context.Context, accountType string) (*storage.MFAPolicy, error) {
	var p storage.MFAPolicy
	err := s.pool.QueryRow(ctx, `SELECT policy FROM type_policies WHERE type = $1`, accountType).
		Scan(scanPolicy(&p))
	if err != nil {
		return nil, wrapErr("get type policy", err)
	}
	return &p, nil
}

// ListTypePolicies returns every account-type policy by type.
func (s *Store) ListTypePolicies(ctx context.Context) (map[string]storage.MFAPolicy, error) {
	rows, _ := s.pool.Query(ctx, `SELECT type, policy FROM type_policies`)
	out := map[string]storage.MFAPolicy{}
	var (
		typ string
		p   storage.MFAPolicy
	)
	_, err := pgx.ForEachRow(rows, []any{&typ, scanPolicy(&p)}, func() error {
		out[typ] = p
		return nil
	})
	if err != nil {
		return nil, wrapErr("list type policies", err)
	}
	return out, nil
}

// DeleteTypePolicy removes the policy of accountType; a missing one is not an error.
func (s *Store) DeleteTypePolicy(ctx context.Context, accountType string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM type_policies WHERE type = $1`, accountType)
	return wrapErr("delete type policy", err)
}
