package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// The demo's ledger identities. In embedded mode the server acts for each of
// them (one organisation's ledger); on Fabric each is a separate organisation.
const (
	DemoRegulatorMSP = "RegulatorMSP"
	DemoIssuerMSP    = "GreenBankMSP"
)

// DemoSummary is what SeedDemo left on the ledger, for the demo's banner.
type DemoSummary struct {
	Seeded   bool             // false when the ledger already held the demo
	Balances []points.Balance // the demo consumers' balances
	Receipt  string           // the donation receipt id ("" when not seeded now)
	Height   uint64           // blocks on the ledger
}

// demoDoc is a published document the demo anchors by hash (rule,
// methodology, profile); the texts are placeholders for the real ones the
// pipeline issue publishes.
func demoHash(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

// SeedDemo puts the demo on an empty ledger: a regulator, an issuer, a
// charity with a project, anchored rule/methodology/profile versions, two
// consumers with points, and one donation. It is idempotent: on a ledger
// that already has a regulator it only reads the balances.
func SeedDemo(ctx context.Context, led issuer.Ledger, now time.Time) (*DemoSummary, error) {
	s := &DemoSummary{}
	var h uint64
	var reg points.Registry
	err := evaluate(ctx, led, DemoRegulatorMSP, "GetRegistry", struct{}{}, &reg)
	if err != nil && apperr.ReasonOf(err) != "not_initialized" {
		return nil, err
	}
	if err != nil {
		if err := seed(ctx, led, now, s); err != nil {
			return nil, fmt.Errorf("seed demo ledger: %w", err)
		}
		s.Seeded = true
	}
	for _, acct := range []string{"demo-alice", "demo-bob"} {
		var b points.Balance
		if err := evaluate(ctx, led, DemoIssuerMSP, "GetBalance", points.AccountArgs{Account: acct}, &b); err != nil {
			return nil, err
		}
		s.Balances = append(s.Balances, b)
	}
	h, err = led.Height(ctx)
	if err != nil {
		return nil, err
	}
	s.Height = h
	return s, nil
}

func seed(ctx context.Context, led issuer.Ledger, now time.Time, s *DemoSummary) error {
	rule := points.VersionRef{ID: "demo-rule", Version: "1"}
	meth := points.VersionRef{ID: "transit-cn-urban", Version: "2026.1"}
	prof := points.VersionRef{ID: "demo-profile", Version: "1"}
	effective := now.Add(-time.Minute)
	steps := []struct {
		caller, fn string
		args       any
	}{
		{DemoRegulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: DemoRegulatorMSP}},
		{DemoRegulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: DemoIssuerMSP, Role: points.RoleIssuer, Name: "Green Bank (demo)", FilingNumber: "DEMO-0001", Status: points.StatusActive}},
		{DemoRegulatorMSP, "RegisterCharity", points.RegisterCharityArgs{CharityID: "green-earth", Name: "Green Earth Foundation (demo)"}},
		{DemoRegulatorMSP, "RegisterProject", points.RegisterProjectArgs{CharityID: "green-earth", ProjectID: "mangroves", Name: "Mangrove restoration"}},
		{DemoIssuerMSP, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: rule.ID, Version: rule.Version, SHA256: demoHash("demo rule: 1 point per 100 g CO2e"), EffectiveAt: effective}},
		{DemoIssuerMSP, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: meth.ID, Version: meth.Version, SHA256: demoHash("urban transit: distance x (car - mode) g/pkm"), EffectiveAt: effective}},
		{DemoIssuerMSP, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: prof.ID, Version: prof.Version, SHA256: demoHash("demo profile"), EffectiveAt: effective,
			Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 730, TransfersAllowed: true, TransferMaxPoints: 500, TransferMaxPointsPerMonth: 2000, PointValueFen: 1}}},
		{DemoIssuerMSP, "OpenAccount", points.OpenAccountArgs{AccountID: "demo-alice", Kind: points.KindConsumer}},
		{DemoIssuerMSP, "OpenAccount", points.OpenAccountArgs{AccountID: "demo-bob", Kind: points.KindConsumer}},
	}
	for _, st := range steps {
		if err := submit(ctx, led, st.caller, st.fn, st.args, nil); err != nil {
			return err
		}
	}
	expires := now.AddDate(1, 0, 0).Truncate(24 * time.Hour)
	item := func(id, acct string, pts, grams int64, cat string) points.IssueItem {
		return points.IssueItem{ItemID: id, Account: acct, Points: pts, Grams: grams, Category: cat,
			RuleVersion: rule, MethodologyVersion: meth, ProfileVersion: prof,
			QuantificationHash: demoHash("quantification " + id), ExpiresAt: expires, Claim: demoHash("claim " + id)}
	}
	batch := points.IssueBatchArgs{Items: []points.IssueItem{
		item("demo-trip-1", "demo-alice", 12, 1_260, "transit"),
		item("demo-fridge-1", "demo-alice", 150, 15_000, "appliance"),
		item("demo-trip-2", "demo-bob", 8, 840, "transit"),
	}}
	if err := submit(ctx, led, DemoIssuerMSP, "IssueBatch", batch, nil); err != nil {
		return err
	}
	var receipt points.ReceiptResult
	donate := points.DonateArgs{Account: "demo-alice", CharityID: "green-earth", ProjectID: "mangroves", Points: 20, RequestHash: demoHash("demo donation request")}
	if err := submit(ctx, led, DemoIssuerMSP, "Donate", donate, &receipt); err != nil {
		return err
	}
	s.Receipt = receipt.Receipt.ReceiptID
	return nil
}

func submit(ctx context.Context, led issuer.Ledger, caller, fn string, args, out any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res, err := led.Submit(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	if out != nil {
		return json.Unmarshal(res.Payload, out)
	}
	return nil
}

func evaluate(ctx context.Context, led issuer.Ledger, caller, fn string, args, out any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res, err := led.Evaluate(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	return json.Unmarshal(res, out)
}
