package points

import (
	"slices"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Families: the head's issuer creates a family for a consumer account (the
// head), invites other consumer accounts of the same issuer, which accept;
// members leave, the head removes members or withdraws invitations. An
// account belongs to one family at most (famof/<account>). Every call is
// made by the issuer on the consumer's behalf and carries the hash of the
// consumer's authenticated request.

// familyAccount reads an account of the caller that may join a family.
func (t *txn) familyAccount(id string) (*Account, error) {
	a, err := t.ownAccount(id)
	if err != nil {
		return nil, err
	}
	if a.Kind != KindConsumer {
		return nil, apperr.New(apperr.Conflict, "not_consumer_account", "account %s is not a consumer account", id)
	}
	return a, nil
}

// familyOf returns the family an account belongs to, "" when none.
func (t *txn) familyOf(account string) (string, error) {
	var l FamilyLink
	if _, err := t.getJSON(familyOfKey(account), &l); err != nil {
		return "", err
	}
	return l.FamilyID, nil
}

// loadFamily reads an active family of the caller.
func (t *txn) loadFamily(id string) (*Family, error) {
	if err := needID("familyId", id); err != nil {
		return nil, err
	}
	var f Family
	found, err := t.getJSON(familyKey(id), &f)
	if err != nil {
		return nil, err
	}
	if !found || f.Status != FamilyActive {
		return nil, apperr.New(apperr.NotFound, "family_not_found", "family %s does not exist", id)
	}
	if f.Issuer != t.caller {
		return nil, errForbidden("not_account_owner", "family %s belongs to another issuer", id)
	}
	return &f, nil
}

func (t *txn) saveFamily(f *Family, action, subject, requestHash string) error {
	f.UpdatedAt = t.now
	if err := t.put(familyKey(f.ID), f); err != nil {
		return err
	}
	snapshot := *f
	snapshot.Members = slices.Clone(f.Members)
	snapshot.Invited = slices.Clone(f.Invited)
	t.emit(Change{Type: ChangeFamilyChanged, Action: action, Subject: subject, RequestHash: requestHash, Family: &snapshot})
	return nil
}

func (t *txn) link(account, familyID string) error {
	return t.put(familyOfKey(account), FamilyLink{Account: account, FamilyID: familyID})
}

func insertSorted(list []string, v string) []string {
	i, _ := slices.BinarySearch(list, v)
	return slices.Insert(list, i, v)
}

func removeValue(list []string, v string) ([]string, bool) {
	i, found := slices.BinarySearch(list, v)
	if !found {
		return list, false
	}
	return slices.Delete(list, i, i+1), true
}

func createFamily(t *txn, a *CreateFamilyArgs) (any, error) {
	if err := needID("familyId", a.FamilyID); err != nil {
		return nil, err
	}
	if err := needHex64("requestHash", a.RequestHash); err != nil {
		return nil, err
	}
	if _, err := t.familyAccount(a.Head); err != nil {
		return nil, err
	}
	vals, err := t.getMany(familyKey(a.FamilyID), familyOfKey(a.Head))
	if err != nil {
		return nil, err
	}
	if vals[0] != nil {
		return nil, apperr.New(apperr.Conflict, "family_exists", "family %s already exists", a.FamilyID)
	}
	if vals[1] != nil {
		return nil, apperr.New(apperr.Conflict, "already_in_family", "account %s already belongs to a family", a.Head)
	}
	f := &Family{ID: a.FamilyID, Issuer: t.caller, Head: a.Head, Members: []string{}, Invited: []string{}, Status: FamilyActive, CreatedAt: t.now}
	if err := t.link(a.Head, f.ID); err != nil {
		return nil, err
	}
	if err := t.saveFamily(f, "created", a.Head, a.RequestHash); err != nil {
		return nil, err
	}
	return FamilyResult{Family: *f}, nil
}

// familyCall validates the common arguments and loads the family and account.
func (t *txn) familyCall(a *FamilyMemberArgs) (*Family, error) {
	if err := needHex64("requestHash", a.RequestHash); err != nil {
		return nil, err
	}
	if err := needID("account", a.Account); err != nil {
		return nil, err
	}
	f, err := t.loadFamily(a.FamilyID)
	if err != nil {
		return nil, err
	}
	if _, err := t.familyAccount(a.Account); err != nil {
		return nil, err
	}
	return f, nil
}

func inviteMember(t *txn, a *FamilyMemberArgs) (any, error) {
	f, err := t.familyCall(a)
	if err != nil {
		return nil, err
	}
	if cur, err := t.familyOf(a.Account); err != nil {
		return nil, err
	} else if cur != "" {
		return nil, apperr.New(apperr.Conflict, "already_in_family", "account %s already belongs to a family", a.Account)
	}
	if _, invited := slices.BinarySearch(f.Invited, a.Account); invited {
		return nil, apperr.New(apperr.Conflict, "already_invited", "account %s is already invited", a.Account)
	}
	if 1+len(f.Members)+len(f.Invited) >= MaxFamilySize {
		return nil, apperr.New(apperr.Conflict, "family_full", "a family has at most %d members and invitations", MaxFamilySize)
	}
	f.Invited = insertSorted(f.Invited, a.Account)
	if err := t.saveFamily(f, "invited", a.Account, a.RequestHash); err != nil {
		return nil, err
	}
	return FamilyResult{Family: *f}, nil
}

func acceptInvite(t *txn, a *FamilyMemberArgs) (any, error) {
	f, err := t.familyCall(a)
	if err != nil {
		return nil, err
	}
	var invited bool
	if f.Invited, invited = removeValue(f.Invited, a.Account); !invited {
		return nil, apperr.New(apperr.Conflict, "not_invited", "account %s has no invitation to family %s", a.Account, f.ID)
	}
	if cur, err := t.familyOf(a.Account); err != nil {
		return nil, err
	} else if cur != "" {
		return nil, apperr.New(apperr.Conflict, "already_in_family", "account %s already belongs to a family", a.Account)
	}
	f.Members = insertSorted(f.Members, a.Account)
	if err := t.link(a.Account, f.ID); err != nil {
		return nil, err
	}
	if err := t.saveFamily(f, "accepted", a.Account, a.RequestHash); err != nil {
		return nil, err
	}
	return FamilyResult{Family: *f}, nil
}

// leaveFamily: a member leaves; the head leaves only a family with no other
// members, which dissolves it (withdrawing pending invitations).
func leaveFamily(t *txn, a *FamilyMemberArgs) (any, error) {
	f, err := t.familyCall(a)
	if err != nil {
		return nil, err
	}
	action := "left"
	if a.Account == f.Head {
		if len(f.Members) > 0 {
			return nil, apperr.New(apperr.Conflict, "family_not_empty", "the head leaves only after every member has left or been removed")
		}
		f.Status, f.Invited, action = FamilyDissolved, []string{}, "dissolved"
	} else {
		var member bool
		if f.Members, member = removeValue(f.Members, a.Account); !member {
			return nil, apperr.New(apperr.Conflict, "not_a_member", "account %s is not a member of family %s", a.Account, f.ID)
		}
	}
	t.del(familyOfKey(a.Account))
	if err := t.saveFamily(f, action, a.Account, a.RequestHash); err != nil {
		return nil, err
	}
	return FamilyResult{Family: *f}, nil
}

// removeMember: the head removes a member or withdraws an invitation.
func removeMember(t *txn, a *FamilyMemberArgs) (any, error) {
	f, err := t.familyCall(a)
	if err != nil {
		return nil, err
	}
	if a.Account == f.Head {
		return nil, apperr.New(apperr.Conflict, "cannot_remove_head", "the head cannot be removed; it leaves when the family is empty")
	}
	var member, invited bool
	if f.Members, member = removeValue(f.Members, a.Account); member {
		t.del(familyOfKey(a.Account))
	} else if f.Invited, invited = removeValue(f.Invited, a.Account); !invited {
		return nil, apperr.New(apperr.Conflict, "not_a_member", "account %s is neither a member of nor invited to family %s", a.Account, f.ID)
	}
	if err := t.saveFamily(f, "removed", a.Account, a.RequestHash); err != nil {
		return nil, err
	}
	return FamilyResult{Family: *f}, nil
}
