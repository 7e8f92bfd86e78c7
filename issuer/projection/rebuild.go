package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/issuer"
)

// Bounds of Rebuild's PostgreSQL transactions: large groups, so a replay
// takes a few transactions, each bounded in memory.
const (
	rebuildGroupTxs   = 20_000
	rebuildGroupBytes = 256 << 20
	// The ledger interface cannot say which transaction is the last valid
	// one at a height, so Rebuild stops when the subscription goes quiet:
	// briefly once it has delivered the last block, longer before (a page
	// of large transactions takes a while to read). Which block is the last
	// depends on the backend: the embedded ledger numbers blocks from 1, so
	// its last is the height; Fabric from 0 (the channel's genesis block),
	// so its last is height-1, which is never >= height. At height-1 Rebuild
	// waits rebuildQuietNearHeight: the end on Fabric, and on the embedded
	// ledger one committed block before the end, which is read at once.
	rebuildQuietAtHeight   = 300 * time.Millisecond
	rebuildQuietNearHeight = time.Second
	rebuildQuiet           = 5 * time.Second
)

// Rebuild empties the projection and replays the ledger from block 0 up to
// its height when Rebuild starts, with the code Run uses. The emptying and
// the first group are one PostgreSQL transaction, so readers see the old
// projection until the first group commits; each group commits with its
// checkpoint, so an interrupted Rebuild leaves a consistent projection that
// Run (or Rebuild again) continues. progress, if set, is called after each
// committed group with the checkpoint reached.
//
// Running Projectors need not stop: they find the checkpoint moved back,
// resubscribe from it and skip what Rebuild applied (and Rebuild skips what
// they applied).
func Rebuild(ctx context.Context, pool *pgxpool.Pool, led issuer.Ledger, progress func(issuer.Checkpoint)) error {
	height, err := led.Height(ctx)
	if err != nil {
		return fmt.Errorf("rebuild: ledger height: %w", err)
	}
	p := New(pool, led, nil)
	_, err = p.follow(ctx, issuer.Checkpoint{}, loopOptions{
		groupTxs:   rebuildGroupTxs,
		groupBytes: rebuildGroupBytes,
		reset:      true,
		fill: func(last issuer.Checkpoint) time.Duration {
			switch {
			case last.Block >= height:
				return rebuildQuietAtHeight
			case last.Block+1 == height:
				return rebuildQuietNearHeight
			}
			return rebuildQuiet
		},
		beyond: func(tx issuer.CommittedTx) bool { return tx.Block > height },
	}, progress)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	return nil
}
