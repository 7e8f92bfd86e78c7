package projection

import (
	"fmt"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/issuer"
)

// groupRows gathers the projection rows of a group of ledger transactions in
// Go, so that each table is written with a few set-based statements (see
// write.go) instead of one statement per change: a 500-item IssueBatch makes
// about 2,000 rows, and one statement each capped the pipeline.
//
// Changes inside a group depend on each other (a lot created then debited,
// the same lot debited twice, a debt changing in sequence, a claim recorded
// then reversed, a receipt issued then acknowledged). They are folded per
// key here, in change order, with the checks the per-change statements made:
// each debit must turn the lot's remaining points and grams into the
// change's "after" values, each debt change must add up. What folds into a
// row created in the group is checked here; what applies to a row from an
// earlier group keeps one "before" state that the UPDATE requires.
type groupRows struct {
	txs       []txRow
	accounts  []*points.Account
	families  []familyOp // in change order: applied one by one (rare)
	movements []movementRow
	items     []itemRow

	// extensions move lots to new keys (ExtendLots). applyGroup ends a
	// group after a transaction that has them, so that they apply after
	// every earlier change and before every later one.
	extensions []*points.LotExtension

	lots     keyed[lotRow]
	claims   keyed[claimRow]
	receipts keyed[receiptRow]
	debts    keyed[debtRow]
}

// keyed is rows by key, in the order their keys first appeared, so that the
// statements (and so their locks and errors) follow the ledger's order.
type keyed[T any] struct {
	byKey map[string]*T
	order []*T
}

func (k *keyed[T]) get(key string) *T {
	return k.byKey[key]
}

func (k *keyed[T]) add(key string, v *T) {
	if k.byKey == nil {
		k.byKey = map[string]*T{}
	}
	k.byKey[key] = v
	k.order = append(k.order, v)
}

// at names a change for error messages; formatted only on error, as
// applying a group formats nothing per change.
type at struct {
	tx  *issuer.CommittedTx
	seq int
	typ string
}

func (a at) String() string {
	return fmt.Sprintf("transaction %s change %d (%s)", a.tx.TxID, a.seq, a.typ)
}

func (a at) diverged(format string, args ...any) error {
	return &errDiverged{a.String() + ": " + fmt.Sprintf(format, args...)}
}

type txRow struct {
	tx      *issuer.CommittedTx
	changes int
}

type familyOp struct {
	family  *points.Family
	subject string
}

type movementRow struct {
	tx                 *issuer.CommittedTx
	seq                int
	account, issuer    string
	cause              string
	points, grams      int64
	lotKey, claim      string
	counterparty, rcpt string
	requestHash        string
}

type itemRow struct {
	tx     *issuer.CommittedTx
	issuer string
	item   *points.ItemResult
}

// lotRow is a lot created in the group (inserted as it is after the
// group's debits) or a lot of an earlier group debited in this one
// (updated: remaining and grams become lot's, the four debit counters of lot
// are added, and the projected row must hold the before values).
type lotRow struct {
	created     bool
	lot         points.Lot
	cause       string // created: issue or transfer_in
	tx          *issuer.CommittedTx
	beforePts   int64 // debited only
	beforeGrams int64
	first       at // the first change of the lot in the group
}

// claimRow is a claim recorded in the group, with its reversal if the group
// also reversed it, or the reversal of a claim of an earlier group.
type claimRow struct {
	created bool
	claim   *points.Claim
	rev     *points.Reversal
	first   at
}

// receiptRow is a receipt issued in the group (with its acknowledgement if
// the group also has it), or the last acknowledgement of a receipt of an
// earlier group.
type receiptRow struct {
	created bool
	receipt *points.Receipt
	tx      *issuer.CommittedTx
	acked   bool
	ackedAt *time.Time
	first   at
}

// debtRow is an account's debt changes in the group: the debt the
// projection must hold before them and the debt after the last.
type debtRow struct {
	account       string
	before, after int64
	first         at
}

// debitField is the lot counter a debit of cause adds to; nil for an
// unknown cause.
func debitField(l *points.Lot, cause string) *int64 {
	switch cause {
	case points.CauseDonate:
		return &l.Donated
	case points.CauseTransferOut:
		return &l.TransferredOut
	case points.CauseReverse, points.CauseDebtSettle:
		return &l.Reversed
	case points.CauseExpire:
		return &l.Expired
	}
	return nil
}

// add gathers the rows of one transaction's changes, in their order.
func (g *groupRows) add(t *issuer.CommittedTx, ev *points.Event) error {
	g.txs = append(g.txs, txRow{tx: t, changes: len(ev.Changes)})

	// A transfer's and a donation's summary comes after its debits: look
	// ahead for the counterparty of the movements.
	var transfer *points.TransferRecord
	var receipt *points.Receipt
	for i := range ev.Changes {
		switch c := &ev.Changes[i]; c.Type {
		case points.ChangeTransferRecorded:
			transfer = c.Transfer
		case points.ChangeReceiptIssued:
			receipt = c.Receipt
		}
	}
	movement := func(seq int, account, iss, cause string, pts, grams int64, lotKey, claim, requestHash string) {
		m := movementRow{tx: t, seq: seq, account: account, issuer: iss, cause: cause, points: pts, grams: grams,
			lotKey: lotKey, claim: claim, requestHash: requestHash}
		switch {
		case cause == points.CauseTransferOut && transfer != nil:
			m.counterparty = transfer.To
		case cause == points.CauseTransferIn && transfer != nil:
			m.counterparty = transfer.From
		case cause == points.CauseDonate && receipt != nil:
			m.counterparty, m.rcpt = receipt.CharityID+"/"+receipt.ProjectID, receipt.ReceiptID
		}
		g.movements = append(g.movements, m)
	}

	for seq := range ev.Changes {
		c := &ev.Changes[seq]
		where := at{tx: t, seq: seq, typ: c.Type}
		if !hasPayload(c) {
			return where.diverged("payload missing")
		}
		switch c.Type {
		case points.ChangeAccountOpened:
			g.accounts = append(g.accounts, c.Account)
		case points.ChangeFamilyChanged:
			g.families = append(g.families, familyOp{family: c.Family, subject: c.Subject})
		case points.ChangeItemResult:
			g.items = append(g.items, itemRow{tx: t, issuer: ev.Caller, item: c.Item})
		case points.ChangeClaimRecorded:
			if g.claims.get(c.Claim.Claim) != nil {
				return where.diverged("claim %s recorded again", c.Claim.Claim)
			}
			g.claims.add(c.Claim.Claim, &claimRow{created: true, claim: c.Claim, first: where})
		case points.ChangeClaimReversed:
			if err := g.reverseClaim(where, c.Claim); err != nil {
				return err
			}
		case points.ChangeLotCreated:
			if err := g.createLot(where, t, c); err != nil {
				return err
			}
			l := c.Lot
			movement(seq, l.Account, l.Issuer, c.Cause, l.Remaining, l.GramsRemaining, l.Key, l.Claim, c.RequestHash)
		case points.ChangeLotDebited:
			if err := g.debitLot(where, t, c); err != nil {
				return err
			}
			d := c.Debit
			movement(seq, d.Account, d.Issuer, c.Cause, -d.Points, -d.Grams, d.LotKey, d.Claim, c.RequestHash)
		case points.ChangeDebtChanged:
			if err := g.changeDebt(where, c.Debt); err != nil {
				return err
			}
		case points.ChangeReceiptIssued:
			if g.receipts.get(c.Receipt.ReceiptID) != nil {
				return where.diverged("receipt %s issued again", c.Receipt.ReceiptID)
			}
			g.receipts.add(c.Receipt.ReceiptID, &receiptRow{created: true, receipt: c.Receipt, tx: t, first: where})
		case points.ChangeDonationAcknowledged:
			g.acknowledge(where, c.Receipt)
		case points.ChangeLotExtended:
			g.extensions = append(g.extensions, c.Extension)
		case points.ChangeTransferRecorded, points.ChangeRegulatorSet, points.ChangeMemberChanged,
			points.ChangeAnchorRecorded, points.ChangeCharityChanged:
			// Not projected (yet): the registry, anchors and charities are
			// read from the ledger; a transfer's movements carry it.
		default:
			return where.diverged("unknown change type")
		}
	}
	return nil
}

func (g *groupRows) reverseClaim(where at, cl *points.Claim) error {
	if cl.Reversal == nil {
		return where.diverged("no reversal")
	}
	row := g.claims.get(cl.Claim)
	switch {
	case row == nil:
		g.claims.add(cl.Claim, &claimRow{claim: cl, rev: cl.Reversal, first: where})
	case row.rev != nil:
		// The per-row UPDATE required "NOT reversed".
		return where.diverged("claim %s reversed twice", cl.Claim)
	default:
		row.rev = cl.Reversal
	}
	return nil
}

func (g *groupRows) createLot(where at, t *issuer.CommittedTx, c *points.Change) error {
	if c.Cause != points.CauseIssue && c.Cause != points.CauseTransferIn {
		return where.diverged("unknown cause %s", c.Cause)
	}
	if g.lots.get(c.Lot.Key) != nil {
		// Created twice, or debited before it was created: either the
		// insert or the debit would have failed row by row.
		return where.diverged("lot %s created after a change of it in the same group", c.Lot.Key)
	}
	g.lots.add(c.Lot.Key, &lotRow{created: true, lot: *c.Lot, cause: c.Cause, tx: t, first: where})
	return nil
}

func (g *groupRows) debitLot(where at, t *issuer.CommittedTx, c *points.Change) error {
	d := c.Debit
	row := g.lots.get(d.LotKey)
	if row == nil {
		// A lot of an earlier group: the projection must hold what this
		// first debit started from.
		row = &lotRow{tx: t, beforePts: d.Remaining + d.Points, beforeGrams: d.GramsRemaining + d.Grams, first: where}
		row.lot.Key, row.lot.Remaining, row.lot.GramsRemaining = d.LotKey, row.beforePts, row.beforeGrams
		g.lots.add(d.LotKey, row)
	}
	field := debitField(&row.lot, c.Cause)
	switch {
	case field == nil:
		return where.diverged("unknown cause %s", c.Cause)
	case row.lot.Remaining-d.Points != d.Remaining || row.lot.GramsRemaining-d.Grams != d.GramsRemaining:
		return where.diverged("lot %s holds %d points, %d grams; the debit of %d, %d leaves %d, %d",
			d.LotKey, row.lot.Remaining, row.lot.GramsRemaining, d.Points, d.Grams, d.Remaining, d.GramsRemaining)
	case d.Remaining < 0 || d.GramsRemaining < 0:
		// The per-row UPDATE would have failed the table's CHECK.
		return where.diverged("lot %s debited below zero", d.LotKey)
	}
	row.lot.Remaining, row.lot.GramsRemaining = d.Remaining, d.GramsRemaining
	*field += d.Points
	return nil
}

func (g *groupRows) changeDebt(where at, d *points.DebtChange) error {
	if d.Points < 0 {
		return where.diverged("account %s: negative debt %d", d.Account, d.Points)
	}
	row := g.debts.get(d.Account)
	switch {
	case row == nil:
		g.debts.add(d.Account, &debtRow{account: d.Account, before: d.Points - d.Delta, after: d.Points, first: where})
	case row.after+d.Delta != d.Points:
		return where.diverged("account %s: debt %d changed by %d is not %d", d.Account, row.after, d.Delta, d.Points)
	default:
		row.after = d.Points
	}
	return nil
}

func (g *groupRows) acknowledge(where at, r *points.Receipt) {
	var ackAt *time.Time
	if r.AcknowledgedAt != nil {
		t := r.AcknowledgedAt.UTC()
		ackAt = &t
	}
	row := g.receipts.get(r.ReceiptID)
	if row == nil {
		row = &receiptRow{receipt: r, first: where}
		g.receipts.add(r.ReceiptID, row)
	}
	// As the per-row UPDATE, the last acknowledgement's time stays.
	row.acked, row.ackedAt = true, ackAt
}

// hasPayload reports whether a change carries the payload its type
// promises, so that a malformed event is reported instead of dereferencing
// nil.
func hasPayload(c *points.Change) bool {
	switch c.Type {
	case points.ChangeAccountOpened:
		return c.Account != nil
	case points.ChangeFamilyChanged:
		return c.Family != nil
	case points.ChangeItemResult:
		return c.Item != nil
	case points.ChangeClaimRecorded, points.ChangeClaimReversed:
		return c.Claim != nil
	case points.ChangeLotCreated:
		return c.Lot != nil
	case points.ChangeLotDebited:
		return c.Debit != nil
	case points.ChangeDebtChanged:
		return c.Debt != nil
	case points.ChangeReceiptIssued, points.ChangeDonationAcknowledged:
		return c.Receipt != nil
	case points.ChangeTransferRecorded:
		return c.Transfer != nil
	case points.ChangeLotExtended:
		return c.Extension != nil
	}
	return true
}

// arrayLiteral is s as a PostgreSQL array literal ({"a","b"}), to pass a
// text[] per row through unnest, which would flatten a two-dimensional
// array.
func arrayLiteral(s []string) string {
	if len(s) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range e {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
