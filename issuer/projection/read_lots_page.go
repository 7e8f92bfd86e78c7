package projection

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// MaxLotsPage bounds one page of LotsPage.
const MaxLotsPage = 200

// LotsPage returns an account's usable lots at now, earliest expiry first,
// up to limit after the cursor ("" for the first page), and the cursor of
// the next page ("" after the last). An account with thousands of lots is
// read a page at a time (proj_lots_live serves the order), where Lots reads
// them all. Errors: Invalid (invalid_cursor, invalid_limit).
func (p *Projector) LotsPage(ctx context.Context, account string, now time.Time, cursor string, limit int) ([]points.Lot, string, error) {
	if limit < 1 || limit > MaxLotsPage {
		return nil, "", apperr.New(apperr.Invalid, "invalid_limit", "limit must be 1 to %d", MaxLotsPage)
	}
	after, afterKey, err := decodeLotsCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	lots, err := queryLots(ctx, p.pool, `WHERE l.account = $1 AND l.remaining > 0 AND l.expires_at > $2
		AND (l.expires_at, l.lot_key) > ($3, $4) ORDER BY l.expires_at, l.lot_key LIMIT $5`,
		account, now.UTC(), after, afterKey, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(lots) > limit {
		lots = lots[:limit]
		last := lots[limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.ExpiresAt.UnixNano(), 10) + "|" + last.Key))
	}
	return lots, next, nil
}

func decodeLotsCursor(c string) (time.Time, string, error) {
	if c == "" {
		return time.Unix(0, 0).UTC(), "", nil
	}
	bad := apperr.New(apperr.Invalid, "invalid_cursor", "the cursor is not one this server returned")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 512 {
		return time.Time{}, "", bad
	}
	ns, key, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, "", bad
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w", bad)
	}
	return time.Unix(0, n).UTC(), key, nil
}
