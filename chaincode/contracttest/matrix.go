package contracttest

import (
	"encoding/json"
	"strings"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Roles of the authorization matrix: the columns.
const (
	colRegulator = "regulator"
	colIssuerA   = "issuerA" // owns the accounts, claims and receipts acted on
	colIssuerB   = "issuerB" // another active issuer
	colAuditor   = "auditor"
	colCharity   = "charity" // the charity member of the donation's charity
	colStranger  = "stranger"
)

var columns = []string{colRegulator, colIssuerA, colIssuerB, colAuditor, colCharity, colStranger}

// matrixRow is one function: its arguments (per caller) and who may call
// it. A denied call must fail with Forbidden and the row's reason for that
// column (role_not_allowed unless listed), and change nothing.
type matrixRow struct {
	fn      string
	args    func(w *world, m *matrixFixture, caller string) any
	allowed []string
	reasons map[string]string // column -> forbidden reason other than role_not_allowed
}

// matrixFixture is the state the rows act on.
type matrixFixture struct {
	receiptID string
	fam       string
}

func (w *world) msp(col string) string {
	switch col {
	case colRegulator:
		return w.o.Regulator
	case colIssuerA:
		return w.o.IssuerA
	case colIssuerB:
		return w.o.IssuerB
	case colAuditor:
		return w.o.Auditor
	case colCharity:
		return w.o.Charity
	}
	return w.o.Stranger
}

var (
	onlyRegulator = []string{colRegulator}
	bothIssuers   = []string{colIssuerA, colIssuerB}
	ownerIssuer   = []string{colIssuerA}
	readers       = []string{colRegulator, colAuditor, colIssuerA}
	notOwner      = map[string]string{colIssuerB: "not_account_owner"}
	notOwnData    = map[string]string{colIssuerB: "not_own_data"}
)

var matrix = []matrixRow{
	{"RegisterMember", func(w *world, _ *matrixFixture, _ string) any {
		return points.RegisterMemberArgs{MSP: w.id("NewMSP"), Role: points.RoleAuditor, Name: "New", Status: points.StatusActive}
	}, onlyRegulator, nil},
	{"SetMemberStatus", func(w *world, _ *matrixFixture, _ string) any {
		return points.SetMemberStatusArgs{MSP: w.o.IssuerB, Status: points.StatusActive}
	}, onlyRegulator, nil},
	{"RegisterCharity", func(w *world, _ *matrixFixture, _ string) any {
		return points.RegisterCharityArgs{CharityID: w.id("c2"), Name: "C2"}
	}, onlyRegulator, nil},
	{"RegisterProject", func(w *world, _ *matrixFixture, _ string) any {
		return points.RegisterProjectArgs{CharityID: w.charity, ProjectID: "p2", Name: "P2"}
	}, onlyRegulator, nil},
	{"SetCharityStatus", func(w *world, _ *matrixFixture, _ string) any {
		return points.SetCharityStatusArgs{CharityID: w.charity, Status: points.StatusSuspended}
	}, onlyRegulator, nil},
	{"SetProjectStatus", func(w *world, _ *matrixFixture, _ string) any {
		return points.SetProjectStatusArgs{CharityID: w.charity, ProjectID: w.project, Status: points.StatusSuspended}
	}, onlyRegulator, nil},
	{"AnchorVersion", func(w *world, _ *matrixFixture, _ string) any {
		return points.AnchorVersionArgs{Kind: points.AnchorRule, ID: w.id("mx"), Version: "1", SHA256: hex64("mx"), EffectiveAt: anchorsEffective}
	}, bothIssuers, nil},
	{"AnchorNoticeBatch", func(w *world, _ *matrixFixture, _ string) any {
		return points.AnchorNoticeBatchArgs{BatchID: w.id("mx"), Kind: "reminder", MerkleRoot: hex64("root"), Count: 1}
	}, bothIssuers, nil},
	{"OpenAccount", func(w *world, _ *matrixFixture, _ string) any {
		return points.OpenAccountArgs{AccountID: w.id("new"), Kind: points.KindConsumer}
	}, bothIssuers, nil},
	{"OpenAccounts", func(w *world, _ *matrixFixture, _ string) any {
		return points.OpenAccountsArgs{Accounts: []points.OpenAccountArgs{{AccountID: w.id("new"), Kind: points.KindEnterprise}}}
	}, bothIssuers, nil},
	{"IssueBatch", func(w *world, _ *matrixFixture, caller string) any {
		acct := w.a1
		if caller == w.o.IssuerB {
			acct = w.b1
		}
		return points.IssueBatchArgs{Items: []points.IssueItem{w.item("mx", acct, 5, 5, days(10))}}
	}, bothIssuers, nil},
	{"SweepExpired", func(w *world, _ *matrixFixture, _ string) any {
		return points.SweepArgs{Bucket: "20200101"}
	}, bothIssuers, nil},
	{"ExtendLots", func(w *world, _ *matrixFixture, _ string) any {
		// An unknown lot: each item is judged on its own, so the call
		// succeeds and changes nothing; another issuer's lot is rejected
		// per item (not_lot_issuer, GraceExtension).
		return points.ExtendLotsArgs{Items: []points.ExtendItem{{LotKey: "lot/" + w.a1 + "/000000000001/" + hex64("none")[:32], NewExpiresAt: days(10), Reason: "mx"}}}
	}, bothIssuers, nil},
	{"Reverse", func(w *world, _ *matrixFixture, _ string) any {
		return points.ReverseArgs{Claim: w.claim("m1"), Reason: "refund", ItemID: "mx"}
	}, ownerIssuer, map[string]string{colIssuerB: "not_claim_owner"}},
	{"CreateFamily", func(w *world, _ *matrixFixture, _ string) any {
		return points.CreateFamilyArgs{FamilyID: w.id("fam2"), Head: w.a3, RequestHash: hex64("x")}
	}, ownerIssuer, notOwner},
	{"InviteMember", func(w *world, m *matrixFixture, _ string) any {
		return points.FamilyMemberArgs{FamilyID: m.fam, Account: w.a3, RequestHash: hex64("x")}
	}, ownerIssuer, notOwner},
	{"AcceptInvite", func(w *world, m *matrixFixture, _ string) any {
		return points.FamilyMemberArgs{FamilyID: m.fam, Account: w.a4, RequestHash: hex64("x")}
	}, ownerIssuer, notOwner},
	{"LeaveFamily", func(w *world, m *matrixFixture, _ string) any {
		return points.FamilyMemberArgs{FamilyID: m.fam, Account: w.a2, RequestHash: hex64("x")}
	}, ownerIssuer, notOwner},
	{"RemoveMember", func(w *world, m *matrixFixture, _ string) any {
		return points.FamilyMemberArgs{FamilyID: m.fam, Account: w.a2, RequestHash: hex64("x")}
	}, ownerIssuer, notOwner},
	{"Transfer", func(w *world, _ *matrixFixture, _ string) any {
		return points.TransferArgs{From: w.a1, To: w.a2, Points: 1, RequestHash: hex64("x")}
	}, ownerIssuer, notOwner},
	{"Donate", func(w *world, _ *matrixFixture, _ string) any { return w.donate(w.a1, 1, "x") }, ownerIssuer, notOwner},
	{"AcknowledgeDonation", func(w *world, m *matrixFixture, _ string) any {
		return points.ReceiptArgs{ReceiptID: m.receiptID}
	}, []string{colCharity}, nil},
	{"GetBalance", func(w *world, _ *matrixFixture, _ string) any { return points.AccountArgs{Account: w.a1} }, readers, notOwner},
	{"GetLots", func(w *world, _ *matrixFixture, _ string) any { return points.PageArgs{Account: w.a1} }, readers, notOwner},
	{"GetAccountHistory", func(w *world, _ *matrixFixture, _ string) any { return points.PageArgs{Account: w.a1} }, readers, notOwner},
	{"GetReceipt", func(w *world, m *matrixFixture, _ string) any {
		return points.ReceiptArgs{ReceiptID: m.receiptID}
	}, []string{colRegulator, colAuditor, colIssuerA, colCharity}, notOwnData},
	{"GetClaim", func(w *world, _ *matrixFixture, _ string) any { return points.ClaimArgs{Claim: w.claim("m1")} }, readers, notOwnData},
	{"GetRegistry", func(w *world, _ *matrixFixture, _ string) any { return struct{}{} },
		[]string{colRegulator, colIssuerA, colIssuerB, colAuditor, colCharity}, nil},
	{"GetAnchors", func(w *world, _ *matrixFixture, _ string) any { return points.IssuerArgs{Issuer: w.o.IssuerA} }, readers, notOwnData},
	{"GetConservation", func(w *world, _ *matrixFixture, _ string) any { return points.ConservationArgs{} },
		[]string{colRegulator, colAuditor, colIssuerA, colIssuerB}, nil},
}

// testAuthorizationMatrix checks every cell: role x function. Allowed cells
// are evaluated (they must succeed; nothing is written), denied cells are
// submitted (queries evaluated) and must fail Forbidden with a stable reason
// and change nothing. InitLedger is refused to everyone once initialized.
func testAuthorizationMatrix(w *world) {
	a := w.o.IssuerA
	m := &matrixFixture{fam: w.id("fam")}
	w.issue(a, w.item("m1", w.a1, 100, 100, days(30)))
	w.family(m.fam, w.a1, w.a2)
	w.submit(a, "InviteMember", points.FamilyMemberArgs{FamilyID: m.fam, Account: w.a4, RequestHash: hex64("x")})
	var r points.ReceiptResult
	if err := json.Unmarshal(w.submit(a, "Donate", w.donate(w.a1, 5, "m")).Payload, &r); err != nil {
		w.t.Fatal(err)
	}
	m.receiptID = r.Receipt.ReceiptID

	fns := map[string]bool{"InitLedger": true}
	before := w.fingerprint()
	for _, row := range matrix {
		fns[row.fn] = true
		readOnly := strings.HasPrefix(row.fn, "Get")
		for _, col := range columns {
			caller := w.msp(col)
			args := row.args(w, m, caller)
			allowed := false
			for _, c := range row.allowed {
				allowed = allowed || c == col
			}
			cell := row.fn + " by " + col
			if allowed {
				if _, err := w.evalErr(caller, row.fn, args); err != nil {
					w.t.Errorf("%s: want allowed, got %v", cell, err)
				}
				continue
			}
			reason := "role_not_allowed"
			if col == colStranger {
				reason = "unknown_caller"
			} else if r, ok := row.reasons[col]; ok {
				reason = r
			}
			var err error
			if readOnly {
				_, err = w.evalErr(caller, row.fn, args)
			} else {
				err = w.try(caller, row.fn, args)
			}
			if apperr.CodeOf(err) != apperr.Forbidden || apperr.ReasonOf(err) != reason {
				w.t.Errorf("%s: want forbidden/%s, got %v", cell, reason, err)
			}
		}
	}
	for _, col := range columns {
		err := w.try(w.msp(col), "InitLedger", points.InitLedgerArgs{RegulatorMSP: w.msp(col)})
		if apperr.ReasonOf(err) != "already_initialized" {
			w.t.Errorf("InitLedger by %s: %v", col, err)
		}
	}
	w.unchanged(before, "denied calls")
	// The matrix covers every function of the contract.
	for _, fn := range points.New().Functions() {
		if !fns[fn] {
			w.t.Errorf("the authorization matrix misses %s", fn)
		}
	}
}

// testSuspension: a suspended issuer cannot act but still reads its own
// accounts; a suspended auditor or charity member can do nothing.
func testSuspension(w *world) {
	o := w.o
	w.issue(o.IssuerB, w.item("b", w.b1, 10, 10, days(30)))
	w.submit(o.Regulator, "SetMemberStatus", points.SetMemberStatusArgs{MSP: o.IssuerB, Status: points.StatusSuspended})
	before := w.fingerprint()
	wantErr(w.t, w.try(o.IssuerB, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{w.item("b2", w.b1, 1, 1, days(30))}}), apperr.Forbidden, "member_suspended", "suspended issuer issues")
	wantErr(w.t, w.try(o.IssuerB, "OpenAccount", points.OpenAccountArgs{AccountID: w.id("bx"), Kind: points.KindConsumer}), apperr.Forbidden, "member_suspended", "suspended issuer opens")
	wantErr(w.t, w.try(o.IssuerB, "SweepExpired", points.SweepArgs{Bucket: "20200101"}), apperr.Forbidden, "member_suspended", "suspended issuer sweeps")
	if b := eval[points.Balance](w, o.IssuerB, "GetBalance", points.AccountArgs{Account: w.b1}); b.Total != 10 {
		w.t.Errorf("suspended issuer reads %+v", b)
	}
	w.unchanged(before, "a suspended issuer")
	w.submit(o.Regulator, "SetMemberStatus", points.SetMemberStatusArgs{MSP: o.IssuerB, Status: points.StatusActive})
	if r := w.issue(o.IssuerB, w.item("b3", w.b1, 1, 1, days(30))); r.Issued != 1 {
		w.t.Errorf("reactivated issuer %+v", r)
	}
	for _, msp := range []string{o.Auditor, o.Charity} {
		w.submit(o.Regulator, "SetMemberStatus", points.SetMemberStatusArgs{MSP: msp, Status: points.StatusSuspended})
		_, err := w.evalErr(msp, "GetRegistry", struct{}{})
		wantErr(w.t, err, apperr.Forbidden, "member_suspended", "suspended "+msp+" reads")
		w.submit(o.Regulator, "SetMemberStatus", points.SetMemberStatusArgs{MSP: msp, Status: points.StatusActive})
	}
}
