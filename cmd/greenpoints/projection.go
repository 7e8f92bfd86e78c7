package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/projection"
)

const projectionUsage = `Usage: greenpoints projection SUBCOMMAND [flags]

Subcommands:
  rebuild   empty the read projection and replay the ledger from block 0
`

const rebuildSynopsis = `Empties the read projection (balances, lots, history, item results, receipts)
and replays every valid ledger transaction from block 0 up to the ledger's
height when it starts, then exits. Applies pending migrations first. The
ledger is the embedded one in the database, or with --ledger fabric the
channel the --fabric-* settings name, read as the --fabric-* identity.
Running servers need not stop: their projectors resume from the reset
checkpoint and skip what the rebuild applied. Progress goes to stderr.`

// runProjection implements "greenpoints projection SUBCOMMAND".
func runProjection(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "projection", projectionUsage, map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"rebuild": runProjectionRebuild,
	}, args, stdout, stderr)
}

func runProjectionRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("projection rebuild", rebuildSynopsis, stderr)
	var (
		f     ledgerFlags
		every int64
	)
	b := config.NewBinder(fs)
	f.bind(b, "the projection's (and the embedded ledger's) database")
	b.Int64(&every, "progress-every", "GREENPOINTS_PROGRESS_EVERY", 1000, "print a progress line every this many blocks")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if every < 1 {
		return fmt.Errorf("--progress-every must be at least 1")
	}
	// The ledger is only read: on Fabric any identity of a member that may
	// read every issuer's records (the regulator, an auditor) or the
	// issuer's own identity for its projection.
	o, err := f.open(ctx, stderr, true)
	if err != nil {
		return err
	}
	defer o.Close()
	pool, led := o.pool, o.led
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
