package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgharness"
)

const demoSynopsis = `Runs a complete issuer on one machine with no set-up: when no database URL is
given it starts a throwaway PostgreSQL cluster (from the system's PostgreSQL
binaries, installing Debian's postgresql package if they are missing), applies
the migrations, serves the API, and prints what to try next.
Ctrl-C (or SIGTERM) stops the server and its PostgreSQL.`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoSynopsis, stderr)
	var f serverFlags
	var dataDir string
	b := config.NewBinder(fs)
	f.bind(b, "", "")
	b.String(&dataDir, "data-dir", "GREENPOINTS_DEMO_DIR", "", "keep the demo PostgreSQL cluster in this directory (default: a temporary one, deleted on exit)")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if f.cfg.Ledger != "" && f.cfg.Ledger != app.LedgerEmbedded {
		return fmt.Errorf("the demo runs on the embedded ledger only; for Fabric use 'greenpoints serve --ledger fabric' (docs/fabric.md)")
	}
	log, err := f.logger(stderr)
	if err != nil {
		return err
	}
	log.Info("starting greenpoints demo", "version", version, b.Effective(maskSecret))
	start := time.Now()

	if f.cfg.KeysDir == "" {
		dir, cleanup, err := demoKeysDir(dataDir)
		if err != nil {
			return err
		}
		defer cleanup()
		f.cfg.KeysDir = dir
	}
	if f.cfg.DatabaseURL == "" {
		cluster, err := startDemoCluster(ctx, dataDir, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := cluster.Stop(sctx); err != nil {
				log.Error("stopping demo PostgreSQL", "err", err)
			} else {
				log.Info("demo PostgreSQL stopped")
			}
		}()
		f.cfg.DatabaseURL = cluster.URL("greenpoints")
	}
	a, err := app.Start(ctx, f.cfg, log)
	if err != nil {
		return err
	}
	sum, err := app.SeedDemo(ctx, a, time.Now())
	if err != nil {
		a.Close()
		return err
	}
	if err := a.VerifyLedger(ctx); err != nil {
		a.Close()
		return fmt.Errorf("demo ledger does not verify: %w", err)
	}
	printNextSteps(stdout, a.Addr(), f.cfg.KeysDir, f.cfg.DatabaseURL, time.Since(start), sum)
	return a.Run(ctx)
}

// startDemoCluster starts PostgreSQL and creates the greenpoints database.
func startDemoCluster(ctx context.Context, dataDir string, log *slog.Logger) (*pgharness.Cluster, error) {
	binDir, err := pgharness.EnsureInstalled(ctx, log)
	if err != nil {
		return nil, err
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create --data-dir: %w", err)
		}
	}
	cluster, err := pgharness.Start(ctx, pgharness.Options{Dir: dataDir, BinDir: binDir, Durable: dataDir != "", Logger: log})
	if err != nil {
		return nil, fmt.Errorf("start demo PostgreSQL: %w", err)
	}
	if err := createDatabase(ctx, cluster.URL("postgres"), "greenpoints"); err != nil {
		_ = cluster.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	log.Info("demo PostgreSQL ready", "pid", cluster.PID(), "data_dir", cluster.DataDir())
	return cluster, nil
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to demo PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// demoKeysDir is where the demo keeps its development keys: beside a kept
// cluster, or in a temporary directory removed on exit.
func demoKeysDir(dataDir string) (string, func(), error) {
	if dataDir != "" {
		return filepath.Join(dataDir, "keys"), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "greenpoints-demo-keys-")
	if err != nil {
		return "", nil, fmt.Errorf("create demo key directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func printNextSteps(w io.Writer, addr, keysDir, dbURL string, took time.Duration, sum *app.DemoSummary) {
	base := "http://" + addr
	lines := []string{
		"",
		fmt.Sprintf("greenpoints demo is running at %s (ready in %.1fs)", base, took.Seconds()),
		"",
		fmt.Sprintf("Embedded ledger: %d blocks, hash chain and signatures verified.", sum.Height),
		"Database: " + database.MaskURL(dbURL),
	}
	if sum.Seeded {
		lines = append(lines, "Seeded: regulator, issuer GreenBankMSP, charity green-earth/mangroves, published rules/methodologies/profile anchored,",
			"        sandbox partners demo-bank and demo-metro, consented card links for demo-alice and demo-bob, label registry.")
	}
	for _, b := range sum.Balances {
		lines = append(lines, fmt.Sprintf("  %-11s %4d points held, %d debt", b.Account, b.Total, b.Debt))
	}
	lines = append(lines,
		"",
		"See the issuance pipeline work (signed partner requests -> points on the ledger -> a refund clawed back):",
		"  "+os.Args[0]+" partner send --url "+base+" --sample all --keys-dir "+keysDir,
		"  curl "+base+"/v1/disclosure    # earning conditions, expiry, redemption, methodologies",
		"",
		"Then as a consumer (a bearer token from the demo's development issuer):",
		"  TOKEN=$("+os.Args[0]+" token --subject demo-alice --keys-dir "+keysDir+")",
		"  curl -H \"Authorization: Bearer $TOKEN\" "+base+"/v1/me/balance",
		"  curl -H \"Authorization: Bearer $TOKEN\" "+base+"/v1/me/history",
		"",
		"Try:",
		"  curl "+base+"/healthz          # process up",
		"  curl "+base+"/readyz           # database reachable",
		"  curl "+base+"/v1/version       # API version",
		"  curl "+base+"/openapi.yaml     # the API description",
		"  curl "+base+"/metrics          # Prometheus metrics",
		"",
		"Press Ctrl-C to stop the server and its PostgreSQL.",
		"",
	)
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
