package notices

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// SweepReport is what one Sweep recorded on the ledger.
type SweepReport struct {
	Buckets int   // expiry buckets swept
	Txs     int   // SweepExpired transactions
	Lots    int   // lots recorded as expired
	Points  int64 // points recorded as expired
	Pruned  int   // index entries of empty lots removed
}

// Sweep records on the ledger the expiry of the issuer's lots due at now:
// for every expiry bucket (UTC day) in which the projection shows a lot
// with points left and expiresAt <= now, it submits SweepExpired with
// SweepLimit until the contract says no More, or a transaction makes no
// progress (the rest of the bucket is not due yet: a bucket is read in key
// order, which is by account, so up to SweepLimit not-yet-due lots of
// today can hide due ones until the day is over). Expiry does not wait for
// this: a due lot is expired for every purpose from its expiresAt. Several
// instances sweeping at once are safe (Cycle's advisory lock, and the
// ledger's MVCC checks would invalidate a concurrent duplicate, which is
// re-submitted).
func (s *Service) Sweep(ctx context.Context, now time.Time) (SweepReport, error) {
	var r SweepReport
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT to_char(expires_at AT TIME ZONE 'UTC', 'YYYYMMDD') AS b FROM proj_lots
		WHERE issuer = $1 AND remaining > 0 AND expires_at <= $2 ORDER BY b LIMIT `+fmt.Sprint(maxSweepBucket), s.cfg.IssuerMSP, now)
	if err != nil {
		return r, err
	}
	buckets, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return r, err
	}
	for _, b := range buckets {
		r.Buckets++
		for range maxSweepTxs {
			res, err := s.sweepOnce(ctx, b)
			if err != nil {
				return r, fmt.Errorf("bucket %s: %w", b, err)
			}
			r.Txs++
			r.Lots += res.Swept
			r.Points += res.Points
			r.Pruned += res.Pruned
			if !res.More || res.Swept+res.Pruned == 0 {
				break
			}
		}
	}
	return r, nil
}

// sweepOnce submits one SweepExpired, re-submitting a transaction
// invalidated by a concurrent write (a new proposal, as the Ledger
// contract requires), and logs it in expiry_sweeps.
func (s *Service) sweepOnce(ctx context.Context, bucket string) (points.SweepResult, error) {
	var res points.SweepResult
	args, err := json.Marshal(points.SweepArgs{Bucket: bucket, Limit: s.cfg.SweepLimit})
	if err != nil {
		return res, err
	}
	var tx *issuer.TxResult
	for i := 0; ; i++ {
		tx, err = s.led.Submit(ctx, issuer.Proposal{Caller: s.cfg.IssuerMSP, Function: "SweepExpired", Args: args})
		if err == nil {
			break
		}
		if apperr.CodeOf(err) != apperr.Conflict || i+1 >= conflictRetry {
			return res, err
		}
	}
	if err := json.Unmarshal(tx.Payload, &res); err != nil {
		return res, fmt.Errorf("SweepExpired result: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO expiry_sweeps (tx_id, issuer, bucket, swept, points, pruned, not_due, more, swept_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tx_id) DO NOTHING`,
		tx.TxID, s.cfg.IssuerMSP, bucket, res.Swept, res.Points, res.Pruned, res.NotDue, res.More, tx.Timestamp)
	return res, err
}
