package points

import "github.com/greenpoints/greenpoints/internal/apperr"

// initLedger records the regulator, once, called by the regulator's own MSP.
// On Fabric the deploy script calls it, as the regulator, right after the
// chaincode is committed.
func initLedger(t *txn, a *InitLedgerArgs) (any, error) {
	if err := needID("regulatorMsp", a.RegulatorMSP); err != nil {
		return nil, err
	}
	if t.regulator != nil {
		return nil, apperr.New(apperr.Conflict, "already_initialized", "the ledger already has a regulator (%s)", t.regulator.MSP)
	}
	// The regulator initializes the ledger itself: nobody can name another
	// MSP the regulator by calling first.
	if t.caller != a.RegulatorMSP {
		return nil, errForbidden("not_regulator", "only %s itself may initialize the ledger as regulator", a.RegulatorMSP)
	}
	// A member record under the regulator's MSP id cannot exist (nobody
	// could register one), but be explicit.
	var m Member
	if found, err := t.getJSON(memberKey(a.RegulatorMSP), &m); err != nil {
		return nil, err
	} else if found {
		return nil, apperr.New(apperr.Conflict, "msp_is_member", "%s is already a registered member", a.RegulatorMSP)
	}
	r := Regulator{MSP: a.RegulatorMSP, InitializedAt: t.now, TxID: t.txID}
	if err := t.put(keyRegulator, r); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeRegulatorSet, Regulator: &r})
	return r, nil
}

// registerMember registers an issuer, auditor or charity MSP, or updates a
// registered one's name, filing number and status. A member's role never
// changes: register a new MSP instead.
func registerMember(t *txn, a *RegisterMemberArgs) (any, error) {
	if err := needID("msp", a.MSP); err != nil {
		return nil, err
	}
	switch a.Role {
	case RoleIssuer, RoleAuditor, RoleCharity:
	default:
		return nil, errInvalid("invalid_role", "role", "role must be issuer, auditor or charity")
	}
	if err := needName("name", a.Name, true); err != nil {
		return nil, err
	}
	if err := needName("filingNumber", a.FilingNumber, a.Role == RoleIssuer); err != nil {
		return nil, err
	}
	if err := needStatus("status", a.Status); err != nil {
		return nil, err
	}
	if a.MSP == t.regulator.MSP {
		return nil, apperr.New(apperr.Conflict, "msp_is_regulator", "%s is the regulator", a.MSP)
	}
	var m Member
	found, err := t.getJSON(memberKey(a.MSP), &m)
	if err != nil {
		return nil, err
	}
	action := "updated"
	if !found {
		action = "registered"
		m = Member{MSP: a.MSP, Role: a.Role, RegisteredAt: t.now}
	} else if m.Role != a.Role {
		return nil, apperr.New(apperr.Conflict, "role_change_forbidden", "%s is registered as %s", a.MSP, m.Role)
	} else if m.Name == a.Name && m.FilingNumber == a.FilingNumber && m.Status == a.Status {
		return m, nil // nothing changes: a harmless retry
	}
	m.Name, m.FilingNumber, m.Status, m.UpdatedAt = a.Name, a.FilingNumber, a.Status, t.now
	if err := t.put(memberKey(a.MSP), m); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeMemberChanged, Action: action, Member: &m})
	return m, nil
}

// setMemberStatus suspends or reactivates a member.
func setMemberStatus(t *txn, a *SetMemberStatusArgs) (any, error) {
	if err := needID("msp", a.MSP); err != nil {
		return nil, err
	}
	if err := needStatus("status", a.Status); err != nil {
		return nil, err
	}
	var m Member
	found, err := t.getJSON(memberKey(a.MSP), &m)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apperr.New(apperr.NotFound, "member_not_found", "%s is not a registered member", a.MSP)
	}
	if m.Status == a.Status {
		return m, nil
	}
	m.Status, m.UpdatedAt = a.Status, t.now
	if err := t.put(memberKey(a.MSP), m); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeMemberChanged, Action: a.Status, Member: &m})
	return m, nil
}
