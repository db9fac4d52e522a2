package consent

import "github.com/openidp/idp/storage"

// UsableFactors returns the person's confirmed factors that count for r, backup codes
// last; backup codes alone do not make a second factor (they are the way back in).
func (r Requirement) UsableFactors(all []storage.Factor) []storage.Factor {
	var out []storage.Factor
	realOne := false
	for _, f := range all {
		if !r.Counts(f.Kind) {
			continue
		}
		out = append(out, f)
		if f.Kind != storage.FactorBackup {
			realOne = true
		}
	}
	if !realOne {
		return nil
	}
	return out
}

// NeedsSecondFactor is the rule both the login and `idp policy explain` apply: a
// second factor is needed when the requirement says so, or when it is optional and the
// person has one that counts (usable, from UsableFactors).
func (r Requirement) NeedsSecondFactor(usable []storage.Factor) bool {
	return r.Mode == ModeRequired || (r.Mode == ModeOptional && len(usable) > 0)
}
