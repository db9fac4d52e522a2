package admin

import (
	"context"
	"fmt"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// ReencryptResult counts what Reencrypt re-sealed.
type ReencryptResult struct {
	SigningKeys   int `json:"signing_keys"`
	Factors       int `json:"factors"`
	ServerSecrets int `json:"server_secrets"`
	Unchanged     int `json:"unchanged"` // already sealed under the current key
}

// Reencrypt re-seals every secret at rest (signing keys, factor secrets such as TOTP
// seeds, server secrets) under the sealer's current key; the sealer must still hold the
// old keys to open them. It is idempotent: values already under the current key are
// left alone, so an interrupted run can simply be repeated. Afterwards the old keys can
// be dropped from IDP_ENCRYPTION_KEYS_OLD of the servers. Audit events are not re-keyed
// (that would rewrite the history): those keyed before the rotation verify only with
// the old key (audit.ChainKeysOf), so `idp audit verify` keeps it while they are retained.
//
// Every value is opened and re-sealed in memory first; then the audit event, with the
// counts of what is about to be re-sealed, is written ahead, and only then are the new
// values stored. Nothing is stored when the event cannot be written. A failure while
// storing is recorded as a failure event counting what was stored.
func (a *Admin) Reencrypt(ctx context.Context, actor string, sealer *seal.Sealer) (res ReencryptResult, err error) {
	refused := false // the event could not be written ahead: nothing changed, no failure event
	defer func() {
		if err != nil && !refused {
			a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminReencrypt, Result: audit.ResultFailure},
				fmt.Sprintf("key=%s signing_keys=%d factors=%d server_secrets=%d; stopped: %v", sealer.CurrentKeyID(), res.SigningKeys, res.Factors, res.ServerSecrets, err))
		}
	}()
	reseal := func(sealed []byte, aad string) ([]byte, bool, error) {
		if len(sealed) == 0 || string(sealed[:min(len(sealed), len(sealer.CurrentKeyID())+1)]) == sealer.CurrentKeyID()+"." {
			return nil, false, nil
		}
		plain, err := sealer.Open(sealed, []byte(aad))
		if err != nil {
			return nil, false, err
		}
		out, err := sealer.Seal(plain, []byte(aad))
		return out, true, err
	}
	// resealed is a value to store: the id (or name) it is stored under and its new
	// sealed form.
	type resealed struct {
		id  string
		out []byte
	}
	var signingKeys, factors, secrets []resealed

	keys, err := a.Store.ListSigningKeys(ctx)
	if err != nil {
		return res, fmt.Errorf("list signing keys: %w", err)
	}
	for _, k := range keys {
		out, changed, err := reseal(k.PrivateSealed, "signing-key:"+k.ID)
		if err != nil {
			return res, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		if !changed {
			res.Unchanged++
			continue
		}
		signingKeys = append(signingKeys, resealed{k.ID, out})
	}
	allFactors, err := a.Store.ListAllFactors(ctx)
	if err != nil {
		return res, fmt.Errorf("list factors: %w", err)
	}
	for i := range allFactors {
		f := &allFactors[i]
		if len(f.Secret) == 0 {
			continue // e-mail, SMS and backup factors keep no secret
		}
		out, changed, err := reseal(f.Secret, "factor:"+f.ID)
		if err != nil {
			return res, fmt.Errorf("factor %s: %w", f.ID, err)
		}
		if !changed {
			res.Unchanged++
			continue
		}
		factors = append(factors, resealed{f.ID, out})
	}
	serverSecrets, err := a.Store.ListSecrets(ctx)
	if err != nil {
		return res, fmt.Errorf("list server secrets: %w", err)
	}
	for name, sealed := range serverSecrets {
		out, changed, err := reseal(sealed, "server-secret:"+name)
		if err != nil {
			return res, fmt.Errorf("server secret %s: %w", name, err)
		}
		if !changed {
			res.Unchanged++
			continue
		}
		secrets = append(secrets, resealed{name, out})
	}

	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminReencrypt, Result: audit.ResultSuccess},
		fmt.Sprintf("key=%s signing_keys=%d factors=%d server_secrets=%d", sealer.CurrentKeyID(), len(signingKeys), len(factors), len(secrets))); err != nil {
		refused = true
		return res, fmt.Errorf("re-encrypt: %w", err)
	}
	for _, k := range signingKeys {
		if err := a.Store.UpdateSigningKeySealed(ctx, k.id, k.out); err != nil {
			return res, fmt.Errorf("store signing key %s: %w", k.id, err)
		}
		res.SigningKeys++
	}
	for _, f := range factors {
		// Re-read just before writing so a factor confirmed or used meanwhile keeps that.
		fresh, err := a.Store.GetFactor(ctx, f.id)
		if err != nil {
			return res, fmt.Errorf("factor %s: %w", f.id, err)
		}
		fresh.Secret = f.out
		if err := a.Store.UpdateFactor(ctx, fresh); err != nil {
			return res, fmt.Errorf("store factor %s: %w", f.id, err)
		}
		res.Factors++
	}
	for _, sc := range secrets {
		if err := a.Store.UpdateSecret(ctx, sc.id, sc.out); err != nil {
			return res, fmt.Errorf("store server secret %s: %w", sc.id, err)
		}
		res.ServerSecrets++
	}
	return res, nil
}
