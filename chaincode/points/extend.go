package points

import (
	"encoding/json"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// MaxExtendLots bounds the items of one ExtendLots: each item reads and
// writes its lot, its claim, its source lot and up to MaxLotChildren
// children, so a batch stays well inside a transaction's bounds.
const MaxExtendLots = 200

// Item statuses of ExtendLots.
const (
	ItemExtended = "extended"
)

// ExtendItem asks to extend one lot's expiry (the grace extension of a lot
// none of whose reminders reached its holder).
type ExtendItem struct {
	LotKey       string    `json:"lotKey"`
	NewExpiresAt time.Time `json:"newExpiresAt"`
	Reason       string    `json:"reason"`
	NoticeRef    string    `json:"noticeRef"` // the reminder (or "") the extension answers for; may be ""
}

// ExtendLotsArgs are the arguments of ExtendLots.
type ExtendLotsArgs struct {
	Items []ExtendItem `json:"items"`
}

// ExtendItemResult is one item's outcome: extended (NewLotKey is the lot's
// key from now on) or rejected with a reason.
type ExtendItemResult struct {
	Index     int    `json:"index"`
	LotKey    string `json:"lotKey"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	NewLotKey string `json:"newLotKey,omitempty"`
}

// ExtendLotsResult is the result of ExtendLots.
type ExtendLotsResult struct {
	Extended int                `json:"extended"`
	Rejected int                `json:"rejected"`
	Results  []ExtendItemResult `json:"results"`
}

// LotExtension records a lot's one grace extension: on the lot (which is
// what refuses a second one) and as the lot_extended change.
type LotExtension struct {
	LotID     string    `json:"lotId"`
	Account   string    `json:"account"`
	Issuer    string    `json:"issuer"`
	FromKey   string    `json:"fromKey"`
	ToKey     string    `json:"toKey"`
	From      time.Time `json:"from"` // the expiry before
	To        time.Time `json:"to"`   // the expiry after
	Reason    string    `json:"reason"`
	NoticeRef string    `json:"noticeRef"`
	At        time.Time `json:"at"`
	TxID      string    `json:"txId"`
}

// extendLots extends lots' expiry by at most the graceDays of the profile
// each lot was issued under, once per lot, never beyond that profile's
// maxValidityDays from the claim's issuance, and only while the lot is not
// expired at the transaction time. Each item is judged on its own, like
// IssueBatch's. No points move: the lot keeps its id, amounts and
// provenance, but its key embeds the expiry, so it moves to a new key (with
// its expiry index entry), and what names it by key follows: its claim's
// lotKey, its source lot's children and its children's sourceLot, so that
// a reversal's provenance walk still finds it. Sub-claims keep the key at
// issuance (they are never reversed; their lotId stays right).
func extendLots(t *txn, a *ExtendLotsArgs) (any, error) {
	n := len(a.Items)
	if n == 0 {
		return nil, errInvalid("empty_batch", "items", "no items given")
	}
	if n > MaxExtendLots {
		return nil, apperr.New(apperr.TooLarge, "batch_too_large", "at most %d items per batch, got %d", MaxExtendLots, n)
	}
	keys := make([]string, 0, n)
	for i := range a.Items {
		if _, _, _, ok := parseLotKey(a.Items[i].LotKey); ok {
			keys = append(keys, a.Items[i].LotKey)
		}
	}
	if _, err := t.getMany(keys...); err != nil { // one round trip for the lots
		return nil, err
	}
	res := ExtendLotsResult{Results: make([]ExtendItemResult, n)}
	for i := range a.Items {
		it := &a.Items[i]
		r := ExtendItemResult{Index: i, LotKey: it.LotKey}
		newKey, reason, err := t.extendLot(it)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			r.Status, r.Reason = ItemRejected, reason
			res.Rejected++
		} else {
			r.Status, r.NewLotKey = ItemExtended, newKey
			res.Extended++
		}
		res.Results[i] = r
	}
	return res, nil
}

// extendLot extends one lot and returns its new key, or the rejection
// reason.
func (t *txn) extendLot(it *ExtendItem) (newKey, reason string, err error) {
	switch {
	case !validLotKey(it.LotKey):
		return "", "invalid_lot_key", nil
	case !validID(it.Reason):
		return "", "invalid_reason", nil
	case it.NoticeRef != "" && !validID(it.NoticeRef):
		return "", "invalid_notice_ref", nil
	case it.NewExpiresAt.IsZero() || it.NewExpiresAt.Nanosecond() != 0 || it.NewExpiresAt.Unix() > maxUnix:
		return "", "invalid_new_expires_at", nil
	}
	var l Lot
	found, err := t.getJSON(it.LotKey, &l)
	if err != nil {
		return "", "", err
	}
	newExp := it.NewExpiresAt.UTC()
	switch {
	case !found:
		return "", "lot_not_found", nil
	case l.Issuer != t.caller:
		return "", "not_lot_issuer", nil
	case !l.ExpiresAt.After(t.now):
		return "", "lot_expired", nil
	case l.Extension != nil:
		return "", "already_extended", nil
	case l.Remaining == 0:
		return "", "lot_empty", nil
	case !newExp.After(l.ExpiresAt):
		return "", "not_later", nil
	}
	an, err := lookup[Anchor](t, anchorKey(l.Issuer, AnchorProfile, l.ProfileVersion))
	if err != nil {
		return "", "", err
	}
	if an == nil || an.Profile == nil {
		return "", "profile_not_anchored", nil
	}
	if newExp.After(l.ExpiresAt.Add(time.Duration(an.Profile.GraceDays) * day)) {
		return "", "exceeds_grace", nil
	}
	// The validity runs from the points' issuance: a transfer's lot counts
	// from its claim's issuance, not from the transfer.
	c, err := lookup[Claim](t, claimKey(l.Claim))
	if err != nil {
		return "", "", err
	}
	issued := l.IssuedAt
	if c != nil {
		issued = c.IssuedAt
	}
	if newExp.After(issued.Add(time.Duration(an.Profile.MaxValidityDays) * day)) {
		return "", "validity_exceeds_profile", nil
	}
	return t.moveLot(&l, c, newExp, it)
}

// moveLot moves lot l to the key of its new expiry and repoints what names
// it by key.
func (t *txn) moveLot(l *Lot, c *Claim, newExp time.Time, it *ExtendItem) (string, string, error) {
	oldKey := l.Key
	newKey := lotKey(l.Account, newExp, l.ID)
	ext := LotExtension{
		LotID: l.ID, Account: l.Account, Issuer: l.Issuer, FromKey: oldKey, ToKey: newKey,
		From: l.ExpiresAt, To: newExp, Reason: it.Reason, NoticeRef: it.NoticeRef, At: t.now, TxID: t.txID,
	}
	refs := append([]string{}, l.Children...)
	if l.SourceLot != "" {
		refs = append(refs, l.SourceLot)
	}
	vals, err := t.getMany(refs...)
	if err != nil {
		return "", "", err
	}
	for i, key := range refs {
		if vals[i] == nil {
			return "", "", apperr.New(apperr.Internal, "corrupt_state", "lot %s names lot %s, which is missing", oldKey, key)
		}
		var r Lot
		if err := unmarshalState(key, vals[i], &r); err != nil {
			return "", "", err
		}
		if key == l.SourceLot {
			for j, ch := range r.Children {
				if ch == oldKey {
					r.Children[j] = newKey
				}
			}
		} else {
			r.SourceLot = newKey
		}
		if err := t.put(key, &r); err != nil {
			return "", "", err
		}
	}
	if c != nil && c.LotKey == oldKey {
		moved := *c
		moved.LotKey = newKey
		if err := t.put(claimKey(moved.Claim), &moved); err != nil {
			return "", "", err
		}
	}
	t.del(oldKey) // its index entry stays; the sweep drops a lot it cannot find
	l.Key, l.ExpiresAt, l.Extension = newKey, newExp, &ext
	if err := t.placeLot(l); err != nil {
		return "", "", err
	}
	t.emit(Change{Type: ChangeLotExtended, Extension: &ext})
	return newKey, "", nil
}

// validLotKey reports whether key is a well-formed lot key.
func validLotKey(key string) bool {
	_, _, _, ok := parseLotKey(key)
	return ok
}

// placeLot writes a lot under its key and lists it in the transaction's
// expiry index entry for its issuer and bucket (not an empty lot: the
// sweep has nothing to record): issuance, transfers and extensions make
// lots this way. One entry per transaction and bucket, written at commit,
// rather than one per lot: an IssueBatch of 1,000 wrote 1,000 index keys,
// a third of its state writes. The key is the transaction's own, so no
// two transactions write it (no MVCC conflict between them).
func (t *txn) placeLot(l *Lot) error {
	if err := t.put(l.Key, l); err != nil {
		return err
	}
	if l.Remaining == 0 {
		return nil
	}
	k := expiryGroupKey(l.Issuer, bucketOf(l.ExpiresAt), t.txID)
	if t.expiring == nil {
		t.expiring = map[string][]string{}
	}
	if _, ok := t.expiring[k]; !ok {
		t.expiringOrder = append(t.expiringOrder, k)
	}
	t.expiring[k] = append(t.expiring[k], l.Key)
	return nil
}

// writeExpiryIndex writes the transaction's expiry index entries.
func (t *txn) writeExpiryIndex() error {
	for _, k := range t.expiringOrder {
		raw, err := json.Marshal(t.expiring[k])
		if err != nil {
			return apperr.Wrap(err, apperr.Internal, "encode_failed", "encoding the expiry index entry %q", k)
		}
		t.write(k, raw)
	}
	t.expiring, t.expiringOrder = nil, nil
	return nil
}
