package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/logging"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

const ledgerUsage = `Usage: greenpoints ledger SUBCOMMAND [flags]

Onboarding steps on the points ledger, each by the organisation it belongs to
(docs/fabric.md, "Operations"). On Fabric the --fabric-* identity signs, so
the regulator runs the first two with its identity and the issuer the third
with its own; with --ledger embedded (a single-organisation pilot) the
command acts for each role on the issuer's database.

Subcommands:
  init              the regulator initialises the ledger (InitLedger)
  register-issuer   the regulator registers an issuer (RegisterMember)
  anchor-policy     the issuer anchors its published rule, methodology and
                    profile versions (AnchorVersion)
`

// Defaults of anchor-policy: the issuer's profile and rule set when serve
// is not told otherwise (app.Config.ProfileID, RulesID).
const (
	defaultProfileID = "cn-default"
	defaultRulesID   = "cn-default-rules"
)

// runLedger implements "greenpoints ledger SUBCOMMAND".
func runLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "ledger", ledgerUsage, map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"init": runLedgerInit, "register-issuer": runLedgerRegisterIssuer, "anchor-policy": runLedgerAnchorPolicy,
	}, args, stdout, stderr)
}

// ledgerFlags are how a command outside the server reaches the ledger
// (ledger, projection rebuild): --ledger embedded opens the ledger in the
// issuer's database with the key directory's block-signing key, --ledger
// fabric connects to the gateway peer as the --fabric-* identity.
type ledgerFlags struct {
	backend  string
	dbURL    string
	keysDir  string
	fabric   app.FabricConfig
	logLevel string
}

// bind binds the flags; dbUsage says what the command uses the database for.
func (f *ledgerFlags) bind(b *config.Binder, dbUsage string) {
	b.String(&f.backend, "ledger", "GREENPOINTS_LEDGER", app.LedgerEmbedded, "ledger backend: embedded (in-process, state and blocks in PostgreSQL) or fabric (a Hyperledger Fabric network, see the --fabric-* flags)")
	b.Secret(&f.dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL, e.g. postgres://user:pass@host:5432/greenpoints; "+dbUsage)
	b.String(&f.keysDir, "keys-dir", "GREENPOINTS_KEYS_DIR", "data/keys", "directory of the development file key manager (the embedded ledger's block-signing key)")
	b.String(&f.logLevel, "log-level", "GREENPOINTS_LOG_LEVEL", "warn", "log level: debug, info, warn, error")
	bindFabricFlags(b, &f.fabric)
}

// openedLedger is a ledger opened by ledgerFlags.open, with the database
// when the command needs one.
type openedLedger struct {
	led  app.LedgerBackend
	pool *pgxpool.Pool // nil on Fabric when the command needs no database
	log  *slog.Logger
}

func (o *openedLedger) Close() {
	_ = o.led.Close()
	if o.pool != nil {
		o.pool.Close()
	}
}

// open checks the settings and opens the ledger. The embedded ledger needs
// the database (migrated first, as serve does) and the block-signing key;
// Fabric needs neither, unless needDB (the projection lives in the database).
func (f *ledgerFlags) open(ctx context.Context, stderr io.Writer, needDB bool) (*openedLedger, error) {
	switch f.backend {
	case app.LedgerEmbedded, app.LedgerFabric:
	default:
		return nil, fmt.Errorf("unknown ledger backend %q: use --ledger embedded or --ledger fabric", f.backend)
	}
	embedded := f.backend == app.LedgerEmbedded
	if (embedded || needDB) && f.dbURL == "" {
		return nil, fmt.Errorf("no database: set --database-url or DATABASE_URL")
	}
	log, err := logging.New(stderr, f.logLevel)
	if err != nil {
		return nil, err
	}
	o := &openedLedger{log: log}
	var km keys.Manager
	if embedded || needDB {
		if o.pool, err = database.Open(ctx, f.dbURL); err != nil {
			return nil, err
		}
		if err := database.Migrate(ctx, o.pool); err != nil {
			o.pool.Close()
			return nil, fmt.Errorf("migrate database: %w", err)
		}
	}
	if embedded {
		if km, err = keys.NewFileManager(f.keysDir, keys.WithLogger(log)); err != nil {
			o.pool.Close()
			return nil, fmt.Errorf("open keys: %w", err)
		}
	}
	if o.led, err = app.OpenLedger(ctx, app.Config{Ledger: f.backend, Fabric: f.fabric}, o.pool, km, log); err != nil {
		if o.pool != nil {
			o.pool.Close()
		}
		return nil, err
	}
	return o, nil
}

// onFabric reports whether the ledger is Fabric, where the caller is fixed
// by the identity (--fabric-msp-id).
func (f *ledgerFlags) onFabric() bool { return f.backend == app.LedgerFabric }

func ledgerSubmit(ctx context.Context, led issuer.Ledger, caller, fn string, args, out any) (*issuer.TxResult, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	res, err := led.Submit(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		return nil, ledgerError(fn, caller, err)
	}
	if out != nil {
		if err := json.Unmarshal(res.Payload, out); err != nil {
			return nil, fmt.Errorf("decoding the result of %s: %w", fn, err)
		}
	}
	return res, nil
}

func ledgerEvaluate(ctx context.Context, led issuer.Ledger, caller, fn string, args, out any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res, err := led.Evaluate(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		return ledgerError(fn, caller, err)
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("decoding the result of %s: %w", fn, err)
	}
	return nil
}

// ledgerError names the call and, for the refusals onboarding runs into
// when a step is skipped, the step that comes first.
func ledgerError(fn, caller string, err error) error {
	switch apperr.ReasonOf(err) {
	case "not_initialized":
		return fmt.Errorf("%s as %s: %w (run 'greenpoints ledger init' first)", fn, caller, err)
	case "unknown_caller":
		return fmt.Errorf("%s as %s: %w (the regulator registers it first: 'greenpoints ledger register-issuer')", fn, caller, err)
	}
	return fmt.Errorf("%s as %s: %w", fn, caller, err)
}

// registry reads the ledger's registry; any identity may (GetRegistry).
func registry(ctx context.Context, led issuer.Ledger, caller string) (points.Registry, error) {
	var reg points.Registry
	err := ledgerEvaluate(ctx, led, caller, "GetRegistry", struct{}{}, &reg)
	return reg, err
}

const ledgerInitSynopsis = `The regulator initialises the ledger: InitLedger records --regulator-msp as
the regulator (only that organisation itself may). On Fabric, sign as the
regulator's identity (--fabric-msp-id equal to --regulator-msp). Running it
again on a ledger with this regulator reports so and succeeds.`

func runLedgerInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger init", ledgerInitSynopsis, stderr)
	var (
		f   ledgerFlags
		reg string
	)
	b := config.NewBinder(fs)
	f.bind(b, "embedded only: the ledger's database")
	b.String(&reg, "regulator-msp", "GREENPOINTS_REGULATOR_MSP", "", "MSP id of the regulator (required)")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if reg == "" {
		return fmt.Errorf("--regulator-msp is required")
	}
	if f.onFabric() && f.fabric.MSPID != "" && f.fabric.MSPID != reg {
		return fmt.Errorf("on Fabric the regulator initialises the ledger as itself: --fabric-msp-id is %q, --regulator-msp %q", f.fabric.MSPID, reg)
	}
	o, err := f.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer o.Close()
	var r points.Regulator
	res, err := ledgerSubmit(ctx, o.led, reg, "InitLedger", points.InitLedgerArgs{RegulatorMSP: reg}, &r)
	if apperr.ReasonOf(err) == "already_initialized" {
		cur, rerr := registry(ctx, o.led, reg)
		if rerr == nil && cur.Regulator.MSP == reg {
			fmt.Fprintf(stdout, "ledger already initialised: regulator %s since %s (transaction %s)\n", reg,
				cur.Regulator.InitializedAt.Format("2006-01-02T15:04:05Z07:00"), cur.Regulator.TxID)
			return nil
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ledger initialised: regulator %s (transaction %s, block %d)\n", r.MSP, res.TxID, res.Block)
	return nil
}

const ledgerRegisterSynopsis = `The regulator registers an issuer: RegisterMember with role issuer. On
Fabric, sign as the regulator's identity; on the embedded ledger name the
regulator with --regulator-msp. Registering an issuer again updates its name,
filing number and status (unchanged details change nothing).`

func runLedgerRegisterIssuer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger register-issuer", ledgerRegisterSynopsis, stderr)
	var (
		f                              ledgerFlags
		reg, msp, name, filing, status string
	)
	b := config.NewBinder(fs)
	f.bind(b, "embedded only: the ledger's database")
	b.String(&reg, "regulator-msp", "GREENPOINTS_REGULATOR_MSP", "", "MSP id of the regulator, who registers (required on the embedded ledger; on Fabric --fabric-msp-id)")
	b.String(&msp, "msp", "GREENPOINTS_ISSUER_MSP_ID", "", "MSP id of the issuer to register (required)")
	b.String(&name, "name", "GREENPOINTS_ISSUER_NAME", "", "the issuer's registered name (required)")
	b.String(&filing, "filing", "GREENPOINTS_ISSUER_FILING", "", "the issuer's filing number with the regulator (required)")
	b.String(&status, "status", "GREENPOINTS_ISSUER_STATUS", points.StatusActive, "the issuer's status: active or suspended")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	var missing []string
	for _, s := range []struct{ v, flag string }{{msp, "--msp"}, {name, "--name"}, {filing, "--filing"}} {
		if s.v == "" {
			missing = append(missing, s.flag)
		}
	}
	switch {
	case f.onFabric() && reg == "":
		reg = f.fabric.MSPID
	case f.onFabric() && reg != f.fabric.MSPID:
		return fmt.Errorf("on Fabric the regulator registers as itself: --regulator-msp %q is not --fabric-msp-id %q", reg, f.fabric.MSPID)
	case reg == "":
		missing = append(missing, "--regulator-msp")
	}
	if len(missing) > 0 {
		return fmt.Errorf("register-issuer needs %v", missing)
	}
	o, err := f.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer o.Close()
	caller := reg
	var m points.Member
	res, err := ledgerSubmit(ctx, o.led, caller, "RegisterMember", points.RegisterMemberArgs{MSP: msp, Role: points.RoleIssuer,
		Name: name, FilingNumber: filing, Status: status}, &m)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "issuer %s registered by %s: %q, filing %s, %s (transaction %s, block %d)\n", m.MSP, caller, m.Name,
		m.FilingNumber, m.Status, res.TxID, res.Block)
	return nil
}

const ledgerAnchorSynopsis = `The issuer anchors the published versions of its rule set, the
methodologies and its compliance profile on the ledger (AnchorVersion): the
ledger refuses issuances under versions that are not anchored. Versions
already anchored are skipped, so it is safe to run again; serve also does it
at every start. On Fabric, sign as the issuer's identity; the issuer must be
registered (ledger register-issuer).`

func runLedgerAnchorPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ledger anchor-policy", ledgerAnchorSynopsis, stderr)
	var (
		f                           ledgerFlags
		issuerMSP, profile, ruleSet string
	)
	b := config.NewBinder(fs)
	f.bind(b, "embedded only: the ledger's database")
	b.String(&issuerMSP, "issuer-msp", "GREENPOINTS_ISSUER_MSP", "", "the issuer's MSP id; default: --fabric-msp-id on Fabric, "+app.DemoIssuerMSP+" on the embedded ledger")
	b.String(&profile, "profile-id", "GREENPOINTS_PROFILE_ID", defaultProfileID, "the issuer's compliance profile")
	b.String(&ruleSet, "rules-id", "GREENPOINTS_RULES_ID", defaultRulesID, "the issuer's rule set")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	switch {
	case f.onFabric() && issuerMSP == "":
		issuerMSP = f.fabric.MSPID
	case f.onFabric() && issuerMSP != f.fabric.MSPID:
		return fmt.Errorf("on Fabric the issuer anchors as itself: --issuer-msp %q is not --fabric-msp-id %q", issuerMSP, f.fabric.MSPID)
	case issuerMSP == "":
		issuerMSP = app.DemoIssuerMSP
	}
	pol, err := pipeline.NewPolicy(profile, ruleSet)
	if err != nil {
		return err
	}
	o, err := f.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer o.Close()
	anchored := func() (int, error) {
		var a points.Anchors
		if err := ledgerEvaluate(ctx, o.led, issuerMSP, "GetAnchors", points.IssuerArgs{Issuer: issuerMSP}, &a); err != nil {
			return 0, err
		}
		return len(a.Versions), nil
	}
	before, err := anchored()
	if err != nil {
		return err
	}
	if err := pol.Anchor(ctx, o.led, issuerMSP); err != nil {
		return err
	}
	after, err := anchored()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "policy of %s anchored (profile %s, rules %s): %d versions anchored now, %d already were\n",
		issuerMSP, profile, ruleSet, after-before, before)
	return nil
}
