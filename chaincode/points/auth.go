package points

import "github.com/greenpoints/greenpoints/internal/apperr"

// Roles come from the caller's MSP id, mapped through the on-chain registry:
// the regulator recorded by InitLedger, and members registered by it.

func errForbidden(reason, format string, args ...any) error {
	return apperr.New(apperr.Forbidden, reason, format, args...)
}

// loadCaller reads the regulator and the caller's member record in one call.
func (t *txn) loadCaller() error {
	vals, err := t.getMany(keyRegulator, memberKey(t.caller))
	if err != nil {
		return err
	}
	if vals[0] != nil {
		t.regulator = new(Regulator)
		if err := unmarshalState(keyRegulator, vals[0], t.regulator); err != nil {
			return err
		}
	}
	if vals[1] != nil {
		t.member = new(Member)
		if err := unmarshalState(memberKey(t.caller), vals[1], t.member); err != nil {
			return err
		}
	}
	return nil
}

// role is the caller's role, "" when unknown.
func (t *txn) role() string {
	switch {
	case t.regulator != nil && t.caller == t.regulator.MSP:
		return RoleRegulator
	case t.member != nil:
		return t.member.Role
	}
	return ""
}

// authorize checks the caller against a function's access rule. Checks that
// depend on the record acted on (the account's owner, the claim's issuer,
// the receipt's charity) are made by the functions themselves.
func (t *txn) authorize(a access) error {
	if !validID(t.caller) {
		return errForbidden("unknown_caller", "the caller's MSP id is not valid")
	}
	if err := t.loadCaller(); err != nil {
		return err
	}
	if a == accessInit {
		return nil // InitLedger checks that no regulator is recorded yet
	}
	if t.regulator == nil {
		return apperr.New(apperr.Conflict, "not_initialized", "the ledger has no regulator yet (InitLedger)")
	}
	role := t.role()
	if role == "" {
		return errForbidden("unknown_caller", "%s is not registered", t.caller)
	}
	suspended := t.member != nil && t.member.Status != StatusActive
	allowed := false
	switch a {
	case accessRegulator:
		allowed = role == RoleRegulator
	case accessIssuer:
		allowed = role == RoleIssuer
	case accessCharity:
		allowed = role == RoleCharity
	case accessRead:
		allowed = role == RoleRegulator || role == RoleAuditor || role == RoleIssuer
	case accessReadAll:
		allowed = true
	}
	if !allowed {
		return errForbidden("role_not_allowed", "a caller with role %s may not call %s", role, t.fn)
	}
	// A suspended issuer may still read its own accounts (its consumers
	// keep their points); it may not act. Suspended auditors and charities
	// may do nothing.
	if suspended && (!t.readOnly || role != RoleIssuer) {
		return errForbidden("member_suspended", "%s is suspended", t.caller)
	}
	return nil
}

// isOverseer reports whether the caller reads everything (regulator, auditors).
func (t *txn) isOverseer() bool {
	r := t.role()
	return r == RoleRegulator || r == RoleAuditor
}

// loadAccount reads an account; not_found when absent.
func (t *txn) loadAccount(id string) (*Account, error) {
	if !validID(id) {
		return nil, errInvalid("invalid_account", "account", "the account id is not valid")
	}
	var a Account
	found, err := t.getJSON(accountKey(id), &a)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apperr.New(apperr.NotFound, "account_not_found", "account %s does not exist", id)
	}
	return &a, nil
}

// ownAccount reads an account the caller must own (as issuer) or, for reads,
// may see (regulator and auditors see every account).
func (t *txn) ownAccount(id string) (*Account, error) {
	a, err := t.loadAccount(id)
	if err != nil {
		return nil, err
	}
	if a.Issuer != t.caller && !(t.readOnly && t.isOverseer()) {
		return nil, errForbidden("not_account_owner", "account %s belongs to another issuer", id)
	}
	return a, nil
}

// canReadIssuer checks that the caller may read an issuer's data.
func (t *txn) canReadIssuer(issuer string) error {
	if t.isOverseer() || issuer == t.caller {
		return nil
	}
	return errForbidden("not_own_data", "an issuer reads only its own data")
}
