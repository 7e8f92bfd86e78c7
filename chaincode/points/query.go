package points

import (
	"slices"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/stub"
)

// Queries are read-only: evaluate them. GetLots, GetAccountHistory and
// GetConservation use paginated range and history reads, which the backends
// refuse in submitted transactions (Fabric's rule).

func getBalance(t *txn, a *AccountArgs) (any, error) {
	if _, err := t.getMany(accountKey(a.Account), debtKey(a.Account), familyOfKey(a.Account)); err != nil {
		return nil, err
	}
	acct, err := t.ownAccount(a.Account)
	if err != nil {
		return nil, err
	}
	b := Balance{Account: acct.ID, Issuer: acct.Issuer, AsOf: t.now}
	var d Debt
	if _, err := t.getJSON(debtKey(acct.ID), &d); err != nil {
		return nil, err
	}
	b.Debt = d.Points
	if b.FamilyID, err = t.familyOf(acct.ID); err != nil {
		return nil, err
	}
	lots, err := t.liveLots(acct.ID, 0)
	if err != nil {
		return nil, err
	}
	soon := t.now.Add(ExpiringSoonDays * day)
	for _, l := range lots {
		if err := sumChecked(&b.Total, l.Remaining, "the balance"); err != nil {
			return nil, err
		}
		if !l.ExpiresAt.After(soon) {
			b.ExpiringSoon += l.Remaining // part of Total: cannot overflow
		}
		b.Lots++
		if b.NextExpiry == nil {
			e := l.ExpiresAt
			b.NextExpiry = &e
		}
	}
	return b, nil
}

// pageSize applies a page-size default and bound.
func pageSize(n, def, max int32) (int32, error) {
	switch {
	case n == 0:
		return def, nil
	case n < 0 || n > max:
		return 0, errInvalid("invalid_page_size", "pageSize", "pageSize must be 1 to %d", max)
	}
	return n, nil
}

// checkBookmark requires a bookmark to lie inside [start, end).
func checkBookmark(b, start, end string) error {
	if b != "" && (b < start || (end != "" && b >= end) || len(b) > stub.MaxKeyLen) {
		return errInvalid("invalid_bookmark", "bookmark", "the bookmark does not belong to this query")
	}
	return nil
}

func (t *txn) page(start, end string, size int32, bookmark string) ([]stub.KV, string, error) {
	if err := checkBookmark(bookmark, start, end); err != nil {
		return nil, "", err
	}
	kvs, next, err := t.s.GetStateByRangeWithPagination(start, end, size, bookmark)
	if err != nil {
		return nil, "", errStub(err, t.fn)
	}
	return kvs, next, nil
}

// lotPage reads one page of the lot keys of an account the caller may read.
func (t *txn) lotPage(a *PageArgs, def, max int32) (*Account, []stub.KV, string, error) {
	acct, err := t.ownAccount(a.Account)
	if err != nil {
		return nil, nil, "", err
	}
	size, err := pageSize(a.PageSize, def, max)
	if err != nil {
		return nil, nil, "", err
	}
	prefix := lotPrefix(acct.ID)
	kvs, next, err := t.page(prefix, stub.PrefixEnd(prefix), size, a.Bookmark)
	if err != nil {
		return nil, nil, "", err
	}
	return acct, kvs, next, nil
}

func getLots(t *txn, a *PageArgs) (any, error) {
	acct, kvs, next, err := t.lotPage(a, DefaultLotsPage, MaxLotsPage)
	if err != nil {
		return nil, err
	}
	out := LotsPage{Account: acct.ID, Lots: make([]LotView, 0, len(kvs)), Bookmark: next}
	for _, kv := range kvs {
		var v LotView
		if err := unmarshalState(kv.Key, kv.Value, &v.Lot); err != nil {
			return nil, err
		}
		v.Due = !v.ExpiresAt.After(t.now)
		if !v.Due {
			v.Held = v.Remaining
		}
		out.Lots = append(out.Lots, v)
	}
	return out, nil
}

// getAccountHistory returns the committed history of an account's keys: on
// the first page its account, debt and family-link keys, then a page of its
// lot keys, at most MaxHistoryPerKey entries each (the latest ones).
func getAccountHistory(t *txn, a *PageArgs) (any, error) {
	acct, kvs, next, err := t.lotPage(a, DefaultHistoryPage, MaxHistoryPage)
	if err != nil {
		return nil, err
	}
	var keys []string
	if a.Bookmark == "" {
		keys = append(keys, accountKey(acct.ID), debtKey(acct.ID), familyOfKey(acct.ID))
	}
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	out := HistoryPage{Account: acct.ID, Entries: []HistoryItem{}, Bookmark: next}
	for _, k := range keys {
		hist, err := t.s.GetHistoryForKey(k)
		if err != nil {
			return nil, errStub(err, t.fn)
		}
		if len(hist) > MaxHistoryPerKey {
			hist = hist[len(hist)-MaxHistoryPerKey:]
			out.Truncated = true
		}
		for _, h := range hist {
			out.Entries = append(out.Entries, HistoryItem{Key: k, TxID: h.TxID, Timestamp: h.Timestamp.UTC(), IsDelete: h.IsDelete, Value: string(h.Value)})
		}
	}
	slices.SortStableFunc(out.Entries, func(x, y HistoryItem) int {
		if c := x.Timestamp.Compare(y.Timestamp); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})
	return out, nil
}

// getReceipt: regulator, auditors, the donor's issuer and the charity's MSP.
func getReceipt(t *txn, a *ReceiptArgs) (any, error) {
	r, c, err := t.loadReceipt(a.ReceiptID)
	if err != nil {
		return nil, err
	}
	if !t.isOverseer() && r.Issuer != t.caller && (c.MSP == "" || c.MSP != t.caller) {
		return nil, errForbidden("not_own_data", "the receipt belongs to another issuer or charity")
	}
	return ReceiptResult{Receipt: *r}, nil
}

// getClaim: regulator, auditors and the claim's issuer.
func getClaim(t *txn, a *ClaimArgs) (any, error) {
	if err := needHex64("claim", a.Claim); err != nil {
		return nil, err
	}
	c, err := t.loadClaim(a.Claim)
	if err != nil {
		return nil, err
	}
	if err := t.canReadIssuer(c.Issuer); err != nil {
		return nil, err
	}
	return *c, nil
}

// prefixRange reads up to MaxRegistryEntries records under prefix.
func prefixRange[T any](t *txn, prefix string) ([]T, bool, error) {
	kvs, err := t.rangeRead(prefix, stub.PrefixEnd(prefix), MaxRegistryEntries+1)
	if err != nil {
		return nil, false, err
	}
	truncated := len(kvs) > MaxRegistryEntries
	if truncated {
		kvs = kvs[:MaxRegistryEntries]
	}
	out := make([]T, len(kvs))
	for i, kv := range kvs {
		if err := unmarshalState(kv.Key, kv.Value, &out[i]); err != nil {
			return nil, false, err
		}
	}
	return out, truncated, nil
}

func getRegistry(t *txn, _ *struct{}) (any, error) {
	r := Registry{Regulator: *t.regulator}
	var tr1, tr2, tr3 bool
	var err error
	if r.Members, tr1, err = prefixRange[Member](t, prefixMember); err != nil {
		return nil, err
	}
	if r.Charities, tr2, err = prefixRange[Charity](t, prefixCharity); err != nil {
		return nil, err
	}
	if r.Projects, tr3, err = prefixRange[Project](t, prefixProject); err != nil {
		return nil, err
	}
	r.Truncated = tr1 || tr2 || tr3
	return r, nil
}

func getAnchors(t *txn, a *IssuerArgs) (any, error) {
	issuer := a.Issuer
	if issuer == "" {
		issuer = t.caller
	}
	if err := needID("issuer", issuer); err != nil {
		return nil, err
	}
	if err := t.canReadIssuer(issuer); err != nil {
		return nil, err
	}
	out := Anchors{Issuer: issuer}
	var tr1, tr2 bool
	var err error
	if out.Versions, tr1, err = prefixRange[Anchor](t, prefixAnchor+issuer+"/"); err != nil {
		return nil, err
	}
	if out.Notices, tr2, err = prefixRange[NoticeBatch](t, prefixNotice+issuer+"/"); err != nil {
		return nil, err
	}
	out.Truncated = tr1 || tr2
	s, err := t.loadSchedule(issuer)
	if err != nil {
		return nil, err
	}
	if len(s.Entries) > 0 {
		out.Schedule = s
	}
	if p := s.inForce(t.now); p != nil {
		out.InForce = &VersionRef{ID: p.ID, Version: p.Version}
	}
	return out, nil
}

// Add adds o's sums to x (Issuer and pages aside).
func (x *Totals) Add(o Totals) error {
	for _, f := range []struct {
		dst *int64
		v   int64
	}{
		{&x.Lots, o.Lots}, {&x.Issued, o.Issued}, {&x.Held, o.Held}, {&x.Donated, o.Donated}, {&x.Expired, o.Expired},
		{&x.Reversed, o.Reversed}, {&x.TransferredIn, o.TransferredIn}, {&x.TransferredOut, o.TransferredOut},
	} {
		if err := sumChecked(f.dst, f.v, "a conservation total"); err != nil {
			return err
		}
	}
	return nil
}

// Balanced reports whether the totals conserve points:
// Issued = Held + Donated + Expired + Reversed and TransferredIn = TransferredOut.
func (x Totals) Balanced() bool {
	sum := []int64{x.Held, x.Donated, x.Expired, x.Reversed}
	var s int64
	for _, v := range sum {
		var ok bool
		if s, ok = add(s, v); !ok {
			return false
		}
	}
	return s == x.Issued && x.TransferredIn == x.TransferredOut
}

// lotTotals is one lot's contribution to the conservation sums at now.
func lotTotals(l *Lot, now time.Time) (Totals, error) {
	x := Totals{Issuer: l.Issuer, Lots: 1, Donated: l.Donated, Reversed: l.Reversed, Expired: l.Expired, TransferredOut: l.TransferredOut}
	if l.SourceLot == "" {
		x.Issued = l.Amount
	} else {
		x.TransferredIn = l.Amount
	}
	if l.ExpiresAt.After(now) {
		x.Held = l.Remaining
	} else if err := sumChecked(&x.Expired, l.Remaining, "the expired points"); err != nil {
		return Totals{}, err
	}
	return x, nil
}

// getConservation sums one page of all lots, per issuer and in total. The
// caller adds up the pages. An issuer sees only its own sums.
func getConservation(t *txn, a *ConservationArgs) (any, error) {
	issuer := a.Issuer
	if !t.isOverseer() {
		if issuer == "" {
			issuer = t.caller
		}
		if err := t.canReadIssuer(issuer); err != nil {
			return nil, err
		}
	} else if issuer != "" {
		if err := needID("issuer", issuer); err != nil {
			return nil, err
		}
	}
	size, err := pageSize(a.PageSize, DefaultConservationPage, MaxConservationPage)
	if err != nil {
		return nil, err
	}
	kvs, next, err := t.page(prefixLot, stub.PrefixEnd(prefixLot), size, a.Bookmark)
	if err != nil {
		return nil, err
	}
	var per []Totals // sorted by issuer
	total := Totals{Issuer: issuer}
	for _, kv := range kvs {
		var l Lot
		if err := unmarshalState(kv.Key, kv.Value, &l); err != nil {
			return nil, err
		}
		if issuer != "" && l.Issuer != issuer {
			continue
		}
		x, err := lotTotals(&l, t.now)
		if err != nil {
			return nil, err
		}
		i, found := slices.BinarySearchFunc(per, l.Issuer, func(e Totals, s string) int { return strings.Compare(e.Issuer, s) })
		if !found {
			per = slices.Insert(per, i, Totals{Issuer: l.Issuer})
		}
		if err := per[i].Add(x); err != nil {
			return nil, err
		}
		if err := total.Add(x); err != nil {
			return nil, err
		}
	}
	if per == nil {
		per = []Totals{}
	}
	return ConservationPage{Issuers: per, Total: total, AsOf: t.now.Format(time.RFC3339Nano), Bookmark: next}, nil
}
