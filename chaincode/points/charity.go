package points

import (
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// registerCharity registers a charity or updates its name and MSP; a new
// charity is active. The MSP, when given, must be a registered charity
// member: it acknowledges the donations made to the charity.
func registerCharity(t *txn, a *RegisterCharityArgs) (any, error) {
	if err := needID("charityId", a.CharityID); err != nil {
		return nil, err
	}
	if err := needName("name", a.Name, true); err != nil {
		return nil, err
	}
	if a.MSP != "" {
		if err := needID("msp", a.MSP); err != nil {
			return nil, err
		}
		var m Member
		found, err := t.getJSON(memberKey(a.MSP), &m)
		if err != nil {
			return nil, err
		}
		if !found || m.Role != RoleCharity {
			return nil, apperr.New(apperr.Conflict, "msp_not_charity", "%s is not a registered charity member", a.MSP)
		}
	}
	var c Charity
	found, err := t.getJSON(charityKey(a.CharityID), &c)
	if err != nil {
		return nil, err
	}
	action := "updated"
	if !found {
		action = "registered"
		c = Charity{ID: a.CharityID, Status: StatusActive, RegisteredAt: t.now}
	} else if c.Name == a.Name && c.MSP == a.MSP {
		return c, nil
	}
	c.Name, c.MSP, c.UpdatedAt = a.Name, a.MSP, t.now
	if err := t.put(charityKey(c.ID), c); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeCharityChanged, Action: action, Charity: &c})
	return c, nil
}

// registerProject registers a project of a charity or renames it; a new
// project is active.
func registerProject(t *txn, a *RegisterProjectArgs) (any, error) {
	if err := needID("charityId", a.CharityID); err != nil {
		return nil, err
	}
	if err := needID("projectId", a.ProjectID); err != nil {
		return nil, err
	}
	if err := needName("name", a.Name, true); err != nil {
		return nil, err
	}
	vals, err := t.getMany(charityKey(a.CharityID), projectKey(a.CharityID, a.ProjectID))
	if err != nil {
		return nil, err
	}
	if vals[0] == nil {
		return nil, apperr.New(apperr.NotFound, "charity_not_found", "charity %s does not exist", a.CharityID)
	}
	var p Project
	action := "updated"
	if vals[1] == nil {
		action = "registered"
		p = Project{CharityID: a.CharityID, ID: a.ProjectID, Status: StatusActive, RegisteredAt: t.now}
	} else {
		if err := unmarshalState(projectKey(a.CharityID, a.ProjectID), vals[1], &p); err != nil {
			return nil, err
		}
		if p.Name == a.Name {
			return p, nil
		}
	}
	p.Name, p.UpdatedAt = a.Name, t.now
	if err := t.put(projectKey(p.CharityID, p.ID), p); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeCharityChanged, Action: action, Project: &p})
	return p, nil
}

func setCharityStatus(t *txn, a *SetCharityStatusArgs) (any, error) {
	if err := needID("charityId", a.CharityID); err != nil {
		return nil, err
	}
	if err := needStatus("status", a.Status); err != nil {
		return nil, err
	}
	var c Charity
	found, err := t.getJSON(charityKey(a.CharityID), &c)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apperr.New(apperr.NotFound, "charity_not_found", "charity %s does not exist", a.CharityID)
	}
	if c.Status == a.Status {
		return c, nil
	}
	c.Status, c.UpdatedAt = a.Status, t.now
	if err := t.put(charityKey(c.ID), c); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeCharityChanged, Action: a.Status, Charity: &c})
	return c, nil
}

func setProjectStatus(t *txn, a *SetProjectStatusArgs) (any, error) {
	if err := needID("charityId", a.CharityID); err != nil {
		return nil, err
	}
	if err := needID("projectId", a.ProjectID); err != nil {
		return nil, err
	}
	if err := needStatus("status", a.Status); err != nil {
		return nil, err
	}
	var p Project
	found, err := t.getJSON(projectKey(a.CharityID, a.ProjectID), &p)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apperr.New(apperr.NotFound, "project_not_found", "project %s/%s does not exist", a.CharityID, a.ProjectID)
	}
	if p.Status == a.Status {
		return p, nil
	}
	p.Status, p.UpdatedAt = a.Status, t.now
	if err := t.put(projectKey(p.CharityID, p.ID), p); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeCharityChanged, Action: a.Status, Project: &p})
	return p, nil
}

// donate burns points of an account, earliest expiry first, for an active
// project of an active charity, and writes a receipt: the consumer's
// certificate, under an id nobody can guess before the transaction.
func donate(t *txn, a *DonateArgs) (any, error) {
	if err := needID("account", a.Account); err != nil {
		return nil, err
	}
	if err := needID("charityId", a.CharityID); err != nil {
		return nil, err
	}
	if err := needID("projectId", a.ProjectID); err != nil {
		return nil, err
	}
	if err := needPositive("points", a.Points); err != nil {
		return nil, err
	}
	if err := needHex64("requestHash", a.RequestHash); err != nil {
		return nil, err
	}
	vals, err := t.getMany(accountKey(a.Account), charityKey(a.CharityID), projectKey(a.CharityID, a.ProjectID), scheduleKey(t.caller))
	if err != nil {
		return nil, err
	}
	if _, err := t.ownAccount(a.Account); err != nil {
		return nil, err
	}
	var c Charity
	if vals[1] == nil {
		return nil, apperr.New(apperr.NotFound, "charity_not_found", "charity %s does not exist", a.CharityID)
	}
	if err := unmarshalState(charityKey(a.CharityID), vals[1], &c); err != nil {
		return nil, err
	}
	if c.Status != StatusActive {
		return nil, apperr.New(apperr.Conflict, "charity_suspended", "charity %s is suspended", a.CharityID)
	}
	var p Project
	if vals[2] == nil {
		return nil, apperr.New(apperr.NotFound, "project_not_found", "project %s/%s does not exist", a.CharityID, a.ProjectID)
	}
	if err := unmarshalState(projectKey(a.CharityID, a.ProjectID), vals[2], &p); err != nil {
		return nil, err
	}
	if p.Status != StatusActive {
		return nil, apperr.New(apperr.Conflict, "project_suspended", "project %s/%s is suspended", a.CharityID, a.ProjectID)
	}
	prof, err := t.profileInForce(t.caller)
	if err != nil {
		return nil, err
	}
	funding, ok := mul(a.Points, prof.Profile.PointValueFen)
	if !ok {
		return nil, errOverflow("the donation's funding")
	}
	parts, err := t.spend(a.Account, a.Points, CauseDonate, a.RequestHash)
	if err != nil {
		return nil, err
	}
	r := Receipt{
		ReceiptID: receiptID(t.txID), Donor: a.Account, Issuer: t.caller, CharityID: a.CharityID, ProjectID: a.ProjectID,
		Points: a.Points, FundingFen: funding, ProfileVersion: VersionRef{ID: prof.ID, Version: prof.Version},
		TxID: t.txID, Time: t.now, RequestHash: a.RequestHash,
	}
	for _, p := range parts {
		if err := sumChecked(&r.Grams, p.grams, "the donated grams"); err != nil {
			return nil, err
		}
	}
	if err := t.put(receiptKey(r.ReceiptID), r); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeReceiptIssued, RequestHash: a.RequestHash, Receipt: &r})
	return ReceiptResult{Receipt: r}, nil
}

// acknowledgeDonation is the charity's acknowledgement of a receipt, made by
// the charity's MSP. Acknowledging twice is a harmless no-op.
func acknowledgeDonation(t *txn, a *ReceiptArgs) (any, error) {
	r, c, err := t.loadReceipt(a.ReceiptID)
	if err != nil {
		return nil, err
	}
	if c.MSP != t.caller {
		return nil, errForbidden("not_charity_msp", "the receipt's charity is not represented by %s", t.caller)
	}
	if r.Acknowledged {
		return ReceiptResult{Status: "already_acknowledged", Receipt: *r}, nil
	}
	now := t.now
	r.Acknowledged, r.AcknowledgedAt = true, &now
	if err := t.put(receiptKey(r.ReceiptID), r); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeDonationAcknowledged, Receipt: r})
	return ReceiptResult{Status: "acknowledged", Receipt: *r}, nil
}

// loadReceipt reads a receipt and its charity.
func (t *txn) loadReceipt(id string) (*Receipt, *Charity, error) {
	if !validHex(id, lotIDLen) {
		return nil, nil, errInvalid("invalid_receipt_id", "receiptId", "receiptId must be 32 lowercase hex digits")
	}
	var r Receipt
	found, err := t.getJSON(receiptKey(id), &r)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, apperr.New(apperr.NotFound, "receipt_not_found", "receipt %s does not exist", id)
	}
	var c Charity
	if _, err := t.getJSON(charityKey(r.CharityID), &c); err != nil {
		return nil, nil, err
	}
	return &r, &c, nil
}
