package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// FamilyJSON is a family as consumers see it.
type FamilyJSON struct {
	FamilyID string   `json:"familyId"`
	Head     string   `json:"head"`
	Members  []string `json:"members"` // accepted members other than the head
	Invited  []string `json:"invited"` // pending invitations
	Status   string   `json:"status"`
}

func familyJSON(f points.Family) FamilyJSON {
	return FamilyJSON{FamilyID: f.ID, Head: f.Head, Members: nonNilStrings(f.Members), Invited: nonNilStrings(f.Invited), Status: f.Status}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// MyFamilyJSON is the body of GET /v1/me/family.
type MyFamilyJSON struct {
	Family      *FamilyJSON  `json:"family"`      // null when in no family
	Invitations []FamilyJSON `json:"invitations"` // families that invited me
}

func (h *meHandlers) family(c *gin.Context) {
	who := me(c)
	b, err := h.ownBalance(c, who.Subject, h.d.Now())
	if err != nil {
		WriteError(c, err)
		return
	}
	out := MyFamilyJSON{Invitations: []FamilyJSON{}}
	if b.FamilyID != "" {
		f, err := h.d.Reads.Family(c, b.FamilyID)
		if err != nil {
			WriteError(c, err)
			return
		}
		fj := familyJSON(*f)
		out.Family = &fj
	}
	inv, err := h.d.Reads.Invitations(c, who.Subject)
	if err != nil {
		WriteError(c, err)
		return
	}
	for _, f := range inv {
		out.Invitations = append(out.Invitations, familyJSON(f))
	}
	c.JSON(http.StatusOK, out)
}

// myFamily returns the family the consumer belongs to, optionally requiring
// them to be its head. The head of a family never changes (the contract
// has no such function), so checking it on the projection is safe.
func (h *meHandlers) myFamily(c *gin.Context, who *consumer, mustBeHead bool) (*points.Family, error) {
	b, err := h.ownBalance(c, who.Subject, h.d.Now())
	if err != nil {
		return nil, err
	}
	if b.FamilyID == "" {
		return nil, apperr.New(apperr.Conflict, ReasonNotInFamily, "you belong to no family")
	}
	f, err := h.d.Reads.Family(c, b.FamilyID)
	if err != nil {
		return nil, err
	}
	if mustBeHead && f.Head != who.Subject {
		return nil, apperr.New(apperr.Forbidden, ReasonNotFamilyHead, "only the head of the family can do this")
	}
	return f, nil
}

// newFamilyID makes a family id nobody can guess or collide with: a
// consumer-chosen id would reveal whether another family uses it.
func newFamilyID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "fam-" + hex.EncodeToString(b[:])
}

func (h *meHandlers) familyCall(c *gin.Context, fn string, args any) (any, error) {
	var res points.FamilyResult
	if _, err := h.submit(c, fn, args, &res); err != nil {
		return nil, err
	}
	return familyJSON(res.Family), nil
}

func (h *meHandlers) createFamily(c *gin.Context) {
	h.mutation(c, nil, http.StatusCreated, func(c *gin.Context, who *consumer, rh string) (any, error) {
		return h.familyCall(c, "CreateFamily", points.CreateFamilyArgs{FamilyID: newFamilyID(), Head: who.Subject, RequestHash: rh})
	})
}

// accountRequest names another consumer's account.
type accountRequest struct {
	Account string `json:"account" validate:"required,max=128"`
}

func (h *meHandlers) invite(c *gin.Context) {
	var req accountRequest
	h.mutation(c, &req, http.StatusOK, func(c *gin.Context, who *consumer, rh string) (any, error) {
		f, err := h.myFamily(c, who, true)
		if err != nil {
			return nil, err
		}
		return h.familyCall(c, "InviteMember", points.FamilyMemberArgs{FamilyID: f.ID, Account: req.Account, RequestHash: rh})
	})
}

type acceptRequest struct {
	FamilyID string `json:"familyId" validate:"required,max=128"`
}

func (h *meHandlers) accept(c *gin.Context) {
	var req acceptRequest
	h.mutation(c, &req, http.StatusOK, func(c *gin.Context, who *consumer, rh string) (any, error) {
		return h.familyCall(c, "AcceptInvite", points.FamilyMemberArgs{FamilyID: req.FamilyID, Account: who.Subject, RequestHash: rh})
	})
}

func (h *meHandlers) leave(c *gin.Context) {
	h.mutation(c, nil, http.StatusOK, func(c *gin.Context, who *consumer, rh string) (any, error) {
		f, err := h.myFamily(c, who, false)
		if err != nil {
			return nil, err
		}
		return h.familyCall(c, "LeaveFamily", points.FamilyMemberArgs{FamilyID: f.ID, Account: who.Subject, RequestHash: rh})
	})
}

func (h *meHandlers) removeMember(c *gin.Context) {
	account := c.Param("account")
	h.mutation(c, nil, http.StatusOK, func(c *gin.Context, who *consumer, rh string) (any, error) {
		f, err := h.myFamily(c, who, true)
		if err != nil {
			return nil, err
		}
		return h.familyCall(c, "RemoveMember", points.FamilyMemberArgs{FamilyID: f.ID, Account: account, RequestHash: rh})
	})
}

// transferRequest is the body of POST /v1/me/transfers. There is no "from":
// points leave the token subject's account and nobody else's.
type transferRequest struct {
	To     string `json:"to" validate:"required,max=128"`
	Points int64  `json:"points" validate:"points"`
}

// TransferJSON is the result of a transfer.
type TransferJSON struct {
	From        string `json:"from"`
	To          string `json:"to"`
	FamilyID    string `json:"familyId"`
	Points      int64  `json:"points"`
	Grams       int64  `json:"grams"`
	MonthPoints int64  `json:"monthPoints"` // transferred out this month, this one included
	TxID        string `json:"txId"`
	Block       uint64 `json:"block"`
}

func (h *meHandlers) transfer(c *gin.Context) {
	var req transferRequest
	h.mutation(c, &req, http.StatusCreated, func(c *gin.Context, who *consumer, rh string) (any, error) {
		var res points.TransferResult
		tx, err := h.submit(c, "Transfer", points.TransferArgs{From: who.Subject, To: req.To, Points: req.Points, RequestHash: rh}, &res)
		if err != nil {
			return nil, err
		}
		t := res.Transfer
		return TransferJSON{From: t.From, To: t.To, FamilyID: t.FamilyID, Points: t.Points, Grams: t.Grams, MonthPoints: t.MonthPoints,
			TxID: tx.TxID, Block: tx.Block}, nil
	})
}

// donationRequest is the body of POST /v1/me/donations.
type donationRequest struct {
	CharityID string `json:"charityId" validate:"required,max=128"`
	ProjectID string `json:"projectId" validate:"required,max=128"`
	Points    int64  `json:"points" validate:"points"`
}

// CertificateJSON is a donation certificate: what the donor receives and
// what anyone can check at GET /v1/certificates/{receiptId}. It names no
// donor: the receipt id is the donor's to share.
type CertificateJSON struct {
	ReceiptID      string      `json:"receiptId"`
	Issuer         string      `json:"issuer"`
	CharityID      string      `json:"charityId"`
	ProjectID      string      `json:"projectId"`
	Points         int64       `json:"points"`
	Grams          int64       `json:"grams"`      // grams CO2e of the green actions that earned the points
	FundingFen     int64       `json:"fundingFen"` // the issuer's funding obligation: points x the profile's point value
	ProfileVersion VersionJSON `json:"profileVersion"`
	TxID           string      `json:"txId"`
	Block          uint64      `json:"block"`
	Time           string      `json:"time"`
	Acknowledged   bool        `json:"acknowledged"` // the charity confirmed receipt on the ledger
	AcknowledgedAt string      `json:"acknowledgedAt,omitempty"`
}

func certificateJSON(r points.Receipt, block uint64) CertificateJSON {
	out := CertificateJSON{ReceiptID: r.ReceiptID, Issuer: r.Issuer, CharityID: r.CharityID, ProjectID: r.ProjectID, Points: r.Points,
		Grams: r.Grams, FundingFen: r.FundingFen, ProfileVersion: versionJSON(r.ProfileVersion), TxID: r.TxID, Block: block,
		Time: r.Time.Format(rfc3339), Acknowledged: r.Acknowledged}
	if r.AcknowledgedAt != nil {
		out.AcknowledgedAt = r.AcknowledgedAt.Format(rfc3339)
	}
	return out
}

const rfc3339 = "2006-01-02T15:04:05.999999999Z07:00"

func (h *meHandlers) donate(c *gin.Context) {
	var req donationRequest
	h.mutation(c, &req, http.StatusCreated, func(c *gin.Context, who *consumer, rh string) (any, error) {
		var res points.ReceiptResult
		tx, err := h.submit(c, "Donate", points.DonateArgs{Account: who.Subject, CharityID: req.CharityID, ProjectID: req.ProjectID,
			Points: req.Points, RequestHash: rh}, &res)
		if err != nil {
			return nil, err
		}
		return certificateJSON(res.Receipt, tx.Block), nil
	})
}

// CharityJSON is a registered charity with its projects.
type CharityJSON struct {
	CharityID string        `json:"charityId"`
	Name      string        `json:"name"`
	Status    string        `json:"status"` // active | suspended: only active ones receive
	Projects  []ProjectJSON `json:"projects"`
}

// ProjectJSON is a charity's project.
type ProjectJSON struct {
	ProjectID string `json:"projectId"`
	Name      string `json:"name"`
	Status    string `json:"status"`
}

// charities lists the charities and projects registered on the ledger (by
// the regulator): public information, no login needed.
func (h *meHandlers) charities(c *gin.Context) {
	var reg points.Registry
	if err := h.evaluate(c, "GetRegistry", struct{}{}, &reg); err != nil {
		WriteError(c, err)
		return
	}
	out := struct {
		Charities []CharityJSON `json:"charities"`
	}{Charities: make([]CharityJSON, 0, len(reg.Charities))}
	idx := map[string]int{}
	for _, ch := range reg.Charities {
		idx[ch.ID] = len(out.Charities)
		out.Charities = append(out.Charities, CharityJSON{CharityID: ch.ID, Name: ch.Name, Status: ch.Status, Projects: []ProjectJSON{}})
	}
	for _, p := range reg.Projects {
		if i, ok := idx[p.CharityID]; ok {
			out.Charities[i].Projects = append(out.Charities[i].Projects, ProjectJSON{ProjectID: p.ID, Name: p.Name, Status: p.Status})
		}
	}
	c.JSON(http.StatusOK, out)
}
