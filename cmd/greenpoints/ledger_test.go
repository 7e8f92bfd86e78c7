package main

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// TestLedgerOnboardingEmbedded runs the onboarding commands on the embedded
// ledger of a single-organisation pilot: the regulator initialises the
// ledger, registers the issuer, the issuer anchors its policy; each step
// again is harmless or refused with the reason, and the ledger holds the
// result. Then the projection rebuild, whose flags the commands share,
// replays it. (chaincode/fabric/onboarding_test.go runs the same commands
// on Fabric.)
func TestLedgerOnboardingEmbedded(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDBURL(t)
	keysDir := filepath.Join(t.TempDir(), "keys")
	env := []string{"DATABASE_URL=" + dbURL, "GREENPOINTS_KEYS_DIR=" + keysDir}
	for _, step := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"register before init", []string{"ledger", "register-issuer", "--regulator-msp", "PilotRegulatorMSP", "--msp", "PilotBankMSP", "--name", "Pilot Bank", "--filing", "P-1"}, 1,
			"run 'greenpoints ledger init' first"},
		{"init without regulator", []string{"ledger", "init"}, 1, "--regulator-msp is required"},
		{"init", []string{"ledger", "init", "--regulator-msp", "PilotRegulatorMSP"}, 0, "ledger initialised: regulator PilotRegulatorMSP (transaction "},
		{"init again", []string{"ledger", "init", "--regulator-msp", "PilotRegulatorMSP"}, 0, "ledger already initialised: regulator PilotRegulatorMSP since "},
		{"init another regulator", []string{"ledger", "init", "--regulator-msp", "OtherMSP"}, 1, "conflict/already_initialized"},
		{"register without details", []string{"ledger", "register-issuer", "--msp", "PilotBankMSP"}, 1, "register-issuer needs [--name --filing --regulator-msp]"},
		{"anchor before registration", []string{"ledger", "anchor-policy", "--issuer-msp", "PilotBankMSP"}, 1, "'greenpoints ledger register-issuer'"},
		{"register", []string{"ledger", "register-issuer", "--regulator-msp", "PilotRegulatorMSP", "--msp", "PilotBankMSP", "--name", "Pilot Bank", "--filing", "P-1"}, 0,
			`issuer PilotBankMSP registered by PilotRegulatorMSP: "Pilot Bank", filing P-1, active (transaction `},
		{"register with a bad status", []string{"ledger", "register-issuer", "--regulator-msp", "PilotRegulatorMSP", "--msp", "PilotBankMSP", "--name", "Pilot Bank", "--filing", "P-1", "--status", "asleep"}, 1,
			"invalid"},
		{"anchor", []string{"ledger", "anchor-policy", "--issuer-msp", "PilotBankMSP"}, 0, "4 versions anchored now, 0 already were"},
		{"anchor again", []string{"ledger", "anchor-policy", "--issuer-msp", "PilotBankMSP"}, 0, "0 versions anchored now, 4 already were"},
		{"unknown profile", []string{"ledger", "anchor-policy", "--issuer-msp", "PilotBankMSP", "--profile-id", "nowhere"}, 1, "nowhere"},
		{"fabric without settings", []string{"ledger", "init", "--ledger", "fabric", "--regulator-msp", "PilotRegulatorMSP"}, 1,
			"--ledger fabric needs --fabric-peer (or GREENPOINTS_FABRIC_PEER)"},
		{"fabric as another organisation", []string{"ledger", "anchor-policy", "--ledger", "fabric", "--fabric-msp-id", "PilotBankMSP", "--issuer-msp", "OtherMSP"}, 1,
			"on Fabric the issuer anchors as itself"},
		{"unknown backend", []string{"ledger", "init", "--ledger", "paper", "--regulator-msp", "X"}, 1, `unknown ledger backend "paper"`},
		{"unknown subcommand", []string{"ledger", "burn"}, 2, `unknown subcommand "burn"`},
		{"rebuild", []string{"projection", "rebuild"}, 0, "projection rebuilt to block "},
	} {
		r := runCLI(t, env, step.args...)
		if all := r.stdout + r.stderr; r.code != step.wantCode || !strings.Contains(all, step.want) {
			t.Errorf("%s: exit %d (want %d), output does not say %q:\n%s", step.name, r.code, step.wantCode, step.want, all)
		}
		t.Logf("%s: %s", step.name, strings.TrimSpace(r.stdout+r.stderr))
	}

	// The ledger holds what the commands said.
	ctx := t.Context()
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	km, err := keys.NewFileManager(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	led, err := app.OpenLedger(ctx, app.Config{Ledger: app.LedgerEmbedded}, pool, km, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	eval := func(caller, fn string, args, out any) {
		t.Helper()
		b, _ := json.Marshal(args)
		res, err := led.Evaluate(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: b})
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if err := json.Unmarshal(res, out); err != nil {
			t.Fatal(err)
		}
	}
	var reg points.Registry
	eval("PilotRegulatorMSP", "GetRegistry", struct{}{}, &reg)
	if reg.Regulator.MSP != "PilotRegulatorMSP" || len(reg.Members) != 1 || reg.Members[0].MSP != "PilotBankMSP" ||
		reg.Members[0].Role != points.RoleIssuer || reg.Members[0].Status != points.StatusActive || reg.Members[0].FilingNumber != "P-1" {
		t.Errorf("registry: %+v", reg)
	}
	var anchors points.Anchors
	eval("PilotBankMSP", "GetAnchors", points.IssuerArgs{Issuer: "PilotBankMSP"}, &anchors)
	kinds := map[string]int{}
	for _, a := range anchors.Versions {
		kinds[a.Kind]++
	}
	if len(anchors.Versions) != 4 || kinds[points.AnchorRule] == 0 || kinds[points.AnchorMethodology] == 0 || kinds[points.AnchorProfile] == 0 || anchors.InForce == nil {
		t.Errorf("anchors of PilotBankMSP: %+v (in force %v)", kinds, anchors.InForce)
	}
}
