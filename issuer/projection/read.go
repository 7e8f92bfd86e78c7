package projection

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// Read bounds.
const (
	// MaxLots bounds the lots Lots returns (as GetBalance bounds the lots it reads).
	MaxLots = 5000
	// DefaultMovementsPage and MaxMovementsPage bound Movements' limit.
	DefaultMovementsPage = 50
	MaxMovementsPage     = 200
)

// expiringSoon is the horizon of Balance.ExpiringSoon, as the contract's.
const expiringSoon = points.ExpiringSoonDays * 24 * time.Hour

// Balance returns the account's balance at now, in the contract's
// GetBalance shape: points of lots not expired at now (expiresAt <= now is
// expired, swept or not), the part expiring within 30 days, the next expiry,
// the debt, the lots holding points and the family. AsOf is now.
//
// Errors: not_found/account_not_found.
func (p *Projector) Balance(ctx context.Context, account string, now time.Time) (points.Balance, error) {
	now = now.UTC()
	b := points.Balance{Account: account, AsOf: now}
	err := p.pool.QueryRow(ctx, `SELECT a.issuer, a.debt, a.family_id,
			coalesce(sum(l.remaining), 0), coalesce(sum(l.remaining) FILTER (WHERE l.expires_at <= $3), 0),
			min(l.expires_at), count(l.lot_key)
		FROM proj_accounts a
		LEFT JOIN proj_lots l ON l.account = a.account_id AND l.remaining > 0 AND l.expires_at > $2
		WHERE a.account_id = $1
		GROUP BY a.account_id`, account, now, now.Add(expiringSoon)).
		Scan(&b.Issuer, &b.Debt, &b.FamilyID, &b.Total, &b.ExpiringSoon, &b.NextExpiry, &b.Lots)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, apperr.New(apperr.NotFound, "account_not_found", "account %s is not in the projection", account)
	}
	if err != nil {
		return b, fmt.Errorf("reading the balance of %s: %w", account, err)
	}
	if b.NextExpiry != nil {
		t := b.NextExpiry.UTC()
		b.NextExpiry = &t
	}
	return b, nil
}

// Lots returns the account's lots holding points at now (not expired), in
// the contract's key order (earliest expiry first), at most MaxLots.
//
// Errors: not_found/account_not_found, too_large/too_many_lots.
func (p *Projector) Lots(ctx context.Context, account string, now time.Time) ([]points.Lot, error) {
	lots, err := queryLots(ctx, p.pool, `WHERE l.account = $1 AND l.remaining > 0 AND l.expires_at > $2 ORDER BY l.lot_key LIMIT $3`,
		account, now.UTC(), MaxLots+1)
	if err != nil {
		return nil, err
	}
	if len(lots) > MaxLots {
		return nil, apperr.New(apperr.TooLarge, "too_many_lots", "account %s holds more than %d lots", account, MaxLots)
	}
	if len(lots) == 0 {
		var one int
		if err := p.pool.QueryRow(ctx, `SELECT 1 FROM proj_accounts WHERE account_id = $1`, account).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return nil, apperr.New(apperr.NotFound, "account_not_found", "account %s is not in the projection", account)
		} else if err != nil {
			return nil, fmt.Errorf("reading account %s: %w", account, err)
		}
	}
	return lots, nil
}

// queryLots reads lots as the ledger holds them, children included (the
// lots transfers made from each, in the order the transfers happened).
//
// Children are looked up only for lots that transferred points out (only a
// transfer makes a child, and it debits its source as transfer_out, which
// never decreases): most lots never did, and the lookup was a third of an
// account's read. The children's non-empty source_lot is implied by the
// join, but the planner needs it written out to use the partial index
// proj_lots_source: without it each lookup scanned the whole table
// (docs/benchmarks.md, issue 6).
func queryLots(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, where string, args ...any) ([]points.Lot, error) {
	rows, err := q.Query(ctx, `SELECT l.lot_key, l.lot_id, l.account, l.issuer, l.amount, l.remaining, l.grams, l.grams_remaining,
			l.issued_at, l.expires_at, l.category, l.rule_id, l.rule_version, l.methodology_id, l.methodology_version,
			l.profile_id, l.profile_version, l.quantification_hash, l.claim, l.item_id, l.tx_id, l.source_lot,
			CASE WHEN l.transferred_out > 0 THEN
				ARRAY(SELECT c.lot_key FROM proj_lots c WHERE c.source_lot <> '' AND c.source_lot = l.lot_key ORDER BY c.block, c.idx, c.lot_key)
			END,
			l.donated, l.transferred_out, l.reversed, l.expired
		FROM proj_lots l `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading lots: %w", err)
	}
	var (
		out []points.Lot
		l   points.Lot
	)
	_, err = pgx.ForEachRow(rows, []any{&l.Key, &l.ID, &l.Account, &l.Issuer, &l.Amount, &l.Remaining, &l.Grams, &l.GramsRemaining,
		&l.IssuedAt, &l.ExpiresAt, &l.Category, &l.RuleVersion.ID, &l.RuleVersion.Version, &l.MethodologyVersion.ID, &l.MethodologyVersion.Version,
		&l.ProfileVersion.ID, &l.ProfileVersion.Version, &l.QuantificationHash, &l.Claim, &l.ItemID, &l.TxID, &l.SourceLot,
		&l.Children, &l.Donated, &l.TransferredOut, &l.Reversed, &l.Expired}, func() error {
		l.IssuedAt, l.ExpiresAt = l.IssuedAt.UTC(), l.ExpiresAt.UTC()
		if l.Children == nil {
			l.Children = []string{}
		}
		out = append(out, l)
		l = points.Lot{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading lots: %w", err)
	}
	return out, nil
}

// Movement is one balance movement of an account: points into it (issue,
// transfer_in) or out of it (transfer_out, donate, reverse, expire,
// debt_settle), one per lot touched.
type Movement struct {
	TxID     string            `json:"txId"`
	Position issuer.Checkpoint `json:"position"`
	Seq      int               `json:"seq"` // the change's index in the transaction
	Cause    string            `json:"cause"`
	Points   int64             `json:"points"` // signed
	Grams    int64             `json:"grams"`  // signed
	LotKey   string            `json:"lotKey"`
	Claim    string            `json:"claim"`
	// Counterparty is the other account of a transfer, charity/project of a donation.
	Counterparty string    `json:"counterparty,omitempty"`
	ReceiptID    string    `json:"receiptId,omitempty"`
	Time         time.Time `json:"time"`
	RequestHash  string    `json:"requestHash,omitempty"`
}

// Movements returns a page of the account's movements, newest first, and
// the cursor of the next page ("" after the last). cursor "" starts at the
// newest; limit 0 means DefaultMovementsPage. An account without movements
// (or unknown) has an empty page.
//
// Errors: invalid/invalid_cursor, invalid/invalid_limit.
func (p *Projector) Movements(ctx context.Context, account, cursor string, limit int) ([]Movement, string, error) {
	switch {
	case limit == 0:
		limit = DefaultMovementsPage
	case limit < 0 || limit > MaxMovementsPage:
		return nil, "", apperr.New(apperr.Invalid, "invalid_limit", "limit must be 1 to %d", MaxMovementsPage)
	}
	// Before the first movement, when no cursor: larger than any position.
	before := [3]int64{1 << 62, 0, 0}
	if cursor != "" {
		var err error
		if before, err = decodeCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	rows, err := p.pool.Query(ctx, `SELECT tx_id, block, idx, seq, cause, points, grams, lot_key, claim, counterparty, receipt_id, ts, request_hash
		FROM proj_movements WHERE account = $1 AND (block, idx, seq) < ($2, $3, $4)
		ORDER BY block DESC, idx DESC, seq DESC LIMIT $5`, account, before[0], before[1], before[2], limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("reading movements of %s: %w", account, err)
	}
	var (
		out   []Movement
		m     Movement
		block int64
	)
	_, err = pgx.ForEachRow(rows, []any{&m.TxID, &block, &m.Position.Index, &m.Seq, &m.Cause, &m.Points, &m.Grams, &m.LotKey, &m.Claim,
		&m.Counterparty, &m.ReceiptID, &m.Time, &m.RequestHash}, func() error {
		m.Position.Block, m.Time = uint64(block), m.Time.UTC()
		out = append(out, m)
		m = Movement{}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reading movements of %s: %w", account, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor([3]int64{int64(last.Position.Block), int64(last.Position.Index), int64(last.Seq)})
	}
	return out, next, nil
}

func encodeCursor(c [3]int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "m1:%d:%d:%d", c[0], c[1], c[2]))
}

func decodeCursor(s string) ([3]int64, error) {
	var c [3]int64
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(raw) <= 64 {
		var n int
		n, err = fmt.Sscanf(string(raw), "m1:%d:%d:%d", &c[0], &c[1], &c[2])
		if err == nil && (n != 3 || c[0] < 0 || c[1] < 0 || c[2] < 0 || encodeCursor(c) != s) {
			err = errors.New("malformed")
		}
	} else if err == nil {
		err = errors.New("too long")
	}
	if err != nil {
		return c, apperr.New(apperr.Invalid, "invalid_cursor", "the cursor is not one this API returned")
	}
	return c, nil
}

// ItemResult is the latest result of an IssueBatch item, with the ledger
// transaction that gave it.
type ItemResult struct {
	points.ItemResult
	Issuer   string            `json:"issuer"`
	TxID     string            `json:"txId"`
	Position issuer.Checkpoint `json:"position"`
}

// ItemResult returns the latest result of issuer's item itemID (a retry's
// already_issued follows the first issued, for instance).
//
// Errors: not_found/item_not_found.
func (p *Projector) ItemResult(ctx context.Context, issuerMSP, itemID string) (*ItemResult, error) {
	r := &ItemResult{Issuer: issuerMSP}
	var block int64
	err := p.pool.QueryRow(ctx, `SELECT item_index, item_id, claim, status, reason, lot_id, lot_key, debt_settled, taken_sub_claims, tx_id, block, idx
		FROM proj_item_results WHERE issuer = $1 AND item_id = $2 ORDER BY block DESC, idx DESC, item_index DESC LIMIT 1`, issuerMSP, itemID).
		Scan(&r.Index, &r.ItemID, &r.Claim, &r.Status, &r.Reason, &r.LotID, &r.LotKey, &r.DebtSettled, &r.TakenSubClaims, &r.TxID, &block, &r.Position.Index)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apperr.New(apperr.NotFound, "item_not_found", "no result for item %s of %s in the projection", itemID, issuerMSP)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the result of item %s: %w", itemID, err)
	}
	r.Position.Block = uint64(block)
	if len(r.TakenSubClaims) == 0 {
		r.TakenSubClaims = nil
	}
	return r, nil
}
