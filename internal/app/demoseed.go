package app

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/internal/webhook"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/labels"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// The demo's ledger identities. In embedded mode the server acts for each of
// them (one organisation's ledger); on Fabric each is a separate organisation.
const (
	DemoRegulatorMSP = "RegulatorMSP"
	DemoIssuerMSP    = "GreenBankMSP"
)

// The demo's sandbox partners (test keys, test card tokens).
const (
	DemoBank           = "demo-bank"
	DemoMetro          = "demo-metro"
	DemoBankUSCC       = "91110000100000000R" // the bank itself
	DemoMetroUSCC      = "91440300MA5G00001W" // the metro operator (also the merchant of its fares)
	DemoRetailerUSCC   = "91310000MA1FL0000N" // the appliance store in the sample purchases
	DemoConsentVersion = "demo-consent-v1"
)

// DemoCards are the sandbox card tokens, linked with consent.
var DemoCards = []pipeline.CardLink{
	{Partner: DemoBank, CardToken: "tok_demo_alice_1", Account: "demo-alice", ConsentVersion: DemoConsentVersion, ConsentChannel: "app"},
	{Partner: DemoBank, CardToken: "tok_demo_bob_1", Account: "demo-bob", ConsentVersion: DemoConsentVersion, ConsentChannel: "app"},
	{Partner: DemoMetro, CardToken: "metro_alice", Account: "demo-alice", ConsentVersion: DemoConsentVersion, ConsentChannel: "app"},
	{Partner: DemoMetro, CardToken: "metro_bob", Account: "demo-bob", ConsentVersion: DemoConsentVersion, ConsentChannel: "app"},
}

//go:embed demodata/labels.csv
var demoLabels []byte

// DemoSummary is what SeedDemo left on the ledger, for the demo's banner.
type DemoSummary struct {
	Seeded   bool              // false when the ledger already held the demo
	Balances []points.Balance  // the demo consumers' balances
	Height   uint64            // blocks on the ledger
	KeyFiles map[string]string // sandbox partner id -> its private signing key file (whsk_)
}

// SeedDemo prepares a working issuer on an empty ledger: a regulator, the
// issuer, a charity with a project, the published rule, methodology and
// profile versions anchored, sandbox partners (a bank and a metro operator)
// with test keys, consented card links for two consumers, and the sample
// energy-label registry. It is idempotent: run again, it only adds what is
// missing and reads the balances.
func SeedDemo(ctx context.Context, a *App, now time.Time) (*DemoSummary, error) {
	led := a.Ledger()
	s := &DemoSummary{KeyFiles: map[string]string{}}
	var reg points.Registry
	err := evaluate(ctx, led, DemoRegulatorMSP, "GetRegistry", struct{}{}, &reg)
	if err != nil && apperr.ReasonOf(err) != "not_initialized" {
		return nil, err
	}
	if err != nil {
		if err := seed(ctx, led); err != nil {
			return nil, fmt.Errorf("seed demo ledger: %w", err)
		}
		s.Seeded = true
	}
	if err := a.svc.Policy().Anchor(ctx, led, DemoIssuerMSP); err != nil {
		return nil, fmt.Errorf("anchor the published policy (a demo data directory from an older version? delete it): %w", err)
	}
	if err := seedPartners(ctx, a, s); err != nil {
		return nil, fmt.Errorf("seed demo partners: %w", err)
	}
	for _, acct := range []string{"demo-alice", "demo-bob"} {
		var b points.Balance
		if err := evaluate(ctx, led, DemoIssuerMSP, "GetBalance", points.AccountArgs{Account: acct}, &b); err != nil {
			return nil, err
		}
		s.Balances = append(s.Balances, b)
	}
	h, err := led.Height(ctx)
	if err != nil {
		return nil, err
	}
	s.Height = h
	return s, nil
}

func seed(ctx context.Context, led issuer.Ledger) error {
	steps := []struct {
		caller, fn string
		args       any
	}{
		{DemoRegulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: DemoRegulatorMSP}},
		{DemoRegulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: DemoIssuerMSP, Role: points.RoleIssuer, Name: "Green Bank (demo)", FilingNumber: "DEMO-0001", Status: points.StatusActive}},
		{DemoRegulatorMSP, "RegisterCharity", points.RegisterCharityArgs{CharityID: "green-earth", Name: "Green Earth Foundation (demo)"}},
		{DemoRegulatorMSP, "RegisterProject", points.RegisterProjectArgs{CharityID: "green-earth", ProjectID: "mangroves", Name: "Mangrove restoration"}},
		{DemoIssuerMSP, "OpenAccounts", points.OpenAccountsArgs{Accounts: []points.OpenAccountArgs{
			{AccountID: "demo-alice", Kind: points.KindConsumer}, {AccountID: "demo-bob", Kind: points.KindConsumer}}}},
	}
	for _, st := range steps {
		if err := submit(ctx, led, st.caller, st.fn, st.args, nil); err != nil {
			return err
		}
	}
	return nil
}

// seedPartners registers the sandbox partners with a v1a key each, whose
// private half is written to the key directory for 'greenpoints partner send'.
func seedPartners(ctx context.Context, a *App, s *DemoSummary) error {
	partners := a.svc.Partners()
	for _, p := range []pipeline.Partner{
		{ID: DemoBank, Kind: pipeline.KindBank, Name: "Demo Bank (sandbox)", USCC: DemoBankUSCC, Sandbox: true},
		{ID: DemoMetro, Kind: pipeline.KindTransitOperator, Name: "Demo Metro (sandbox)", USCC: DemoMetroUSCC, Sandbox: true,
			AvgBusMeters: 4_200, AvgMetroMeters: 8_100, AvgSource: "demo operator's published averages (illustrative)"},
	} {
		if err := partners.Create(ctx, p); err != nil && apperr.ReasonOf(err) != "partner_exists" {
			return err
		}
		path := filepath.Join(a.cfg.KeysDir, p.ID+".whsk")
		s.KeyFiles[p.ID] = path
		if _, err := os.Stat(path); err == nil {
			continue
		}
		pub, priv, err := webhook.NewKeyPair()
		if err != nil {
			return err
		}
		pk, err := webhook.ParsePublicKey(pub)
		if err != nil {
			return err
		}
		if err := partners.AddPublicKey(ctx, p.ID, "demo-"+time.Now().UTC().Format("20060102T150405"), pk); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(priv+"\n"), 0o600); err != nil {
			return fmt.Errorf("write sandbox key: %w", err)
		}
	}
	for _, l := range DemoCards {
		if err := pipeline.LinkCard(ctx, a.pool, l); err != nil {
			return err
		}
	}
	if _, err := a.pool.Exec(ctx, `INSERT INTO ledger_accounts (account) VALUES ('demo-alice'), ('demo-bob') ON CONFLICT DO NOTHING`); err != nil {
		return err
	}
	// The demo consumers' personal records (sealed under their own keys),
	// so that /v1/me/preferences and the reminders' quiet hours work.
	store := a.Consumers()
	for _, c := range []struct{ account, name, phone string }{
		{"demo-alice", "Alice (demo)", "+8613800000001"}, {"demo-bob", "Bob (demo)", "+8613800000002"},
	} {
		if _, err := store.ByAccount(ctx, c.account); apperr.CodeOf(err) != apperr.NotFound {
			if err != nil {
				return err
			}
			continue
		}
		if _, err := store.Create(ctx, consumers.NewPerson{Name: c.name, Phone: c.phone, Account: c.account}); err != nil {
			return fmt.Errorf("demo consumer %s: %w", c.account, err)
		}
	}
	entries, err := labels.Parse(bytes.NewReader(demoLabels), labels.Options{})
	if err != nil {
		return fmt.Errorf("demo label registry: %w", err)
	}
	return pipeline.ImportLabels(ctx, a.pool, entries, nil)
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
