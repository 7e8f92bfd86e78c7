package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/logging"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/projection"
)

const projectionUsage = `Usage: greenpoints projection SUBCOMMAND [flags]

Subcommands:
  rebuild   empty the read projection and replay the ledger from block 0
`

const rebuildSynopsis = `Empties the read projection (balances, lots, history, item results, receipts)
and replays every valid ledger transaction from block 0 up to the ledger's
height when it starts, then exits. Applies pending migrations first.
Running servers need not stop: their projectors resume from the reset
checkpoint and skip what the rebuild applied. Progress goes to stderr.`

// runProjection implements "greenpoints projection SUBCOMMAND".
func runProjection(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, projectionUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, projectionUsage)
		return nil
	case "rebuild":
		return runProjectionRebuild(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "greenpoints projection: unknown subcommand %q\n%s", args[0], projectionUsage)
	return errUsage
}

func runProjectionRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("projection rebuild", rebuildSynopsis, stderr)
	var (
		dbURL, keysDir, ledgerName, logLevel string
		every                                int64
	)
	b := config.NewBinder(fs)
	b.Secret(&dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL, e.g. postgres://user:pass@host:5432/greenpoints")
	b.String(&ledgerName, "ledger", "GREENPOINTS_LEDGER", app.LedgerEmbedded, "ledger backend: embedded (in-process, state and blocks in PostgreSQL)")
	b.String(&keysDir, "keys-dir", "GREENPOINTS_KEYS_DIR", "data/keys", "directory of the development file key manager (the embedded ledger's block-signing key)")
	b.Int64(&every, "progress-every", "GREENPOINTS_PROGRESS_EVERY", 1000, "print a progress line every this many blocks")
	b.String(&logLevel, "log-level", "GREENPOINTS_LOG_LEVEL", "warn", "log level: debug, info, warn, error")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if dbURL == "" {
		return fmt.Errorf("no database: set --database-url or DATABASE_URL")
	}
	if ledgerName != app.LedgerEmbedded {
		return fmt.Errorf("--ledger %s: only the embedded ledger can be replayed by this build", ledgerName)
	}
	if every < 1 {
		return fmt.Errorf("--progress-every must be at least 1")
	}
	log, err := logging.New(stderr, logLevel)
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	km, err := keys.NewFileManager(keysDir, keys.WithLogger(log))
	if err != nil {
		return fmt.Errorf("open keys: %w", err)
	}
	// The ledger is only read; opening it needs its signer all the same.
	led, err := app.OpenLedger(ctx, app.Config{Ledger: ledgerName}, pool, km, log)
	if err != nil {
		return err
	}
	defer led.Close()
	height, err := led.Height(ctx)
	if err != nil {
		return err
	}

	began := time.Now()
	var printed uint64
	fmt.Fprintf(stderr, "rebuilding the projection from %d blocks\n", height)
	err = projection.Rebuild(ctx, pool, led, func(cp issuer.Checkpoint) {
		if cp.Block >= printed+uint64(every) {
			printed = cp.Block
			fmt.Fprintf(stderr, "block %d/%d (%.0f%%) after %s\n", cp.Block, height, 100*float64(cp.Block)/float64(max(height, 1)),
				time.Since(began).Round(time.Second))
		}
	})
	if err != nil {
		return err
	}
	var txs int64
	var cp issuer.Checkpoint
	var block int64
	if err := pool.QueryRow(ctx, `SELECT block, idx, applied FROM proj_checkpoint WHERE name = $1`, projection.Name).Scan(&block, &cp.Index, &txs); err != nil {
		return fmt.Errorf("reading the projection checkpoint: %w", err)
	}
	cp.Block = uint64(block)
	took := time.Since(began)
	fmt.Fprintf(stdout, "projection rebuilt to block %d, transaction %d: %d transactions in %s (%.0f/s)\n",
		cp.Block, cp.Index, txs, took.Round(time.Millisecond), float64(txs)/took.Seconds())
	return nil
}
