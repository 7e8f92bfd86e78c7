package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/evidence"
	"github.com/greenpoints/greenpoints/issuer/labels"
	"github.com/greenpoints/greenpoints/issuer/quantify"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// Categories of green actions (the ledger's lot category).
const (
	CategoryTransit   = "transit"
	CategoryAppliance = "appliance"
)

// Pipeline-specific rejection reasons, beyond evidence.Reasons().
const (
	ReasonNoInvoice         = "no_invoice"           // itemised purchase without a fapiao number: no canonical evidence id
	ReasonUnknownOperator   = "unknown_operator"     // a ride-level trip id from an operator we do not know
	ReasonNothingToReverse  = "nothing_to_reverse"   // a refund of a payment that earned nothing
	ReasonBelowOnePoint     = "below_one_point"      // the action's grams earn less than one point
	ReasonTransitNotReverse = "transit_not_reversed" // fare refunds do not reverse a day's transit grant
	ReasonUnknownAccount    = "unknown_account"      // a trip names an account we never opened
)

// transitMode maps the MCC of a card payment carrying a ride-level trip id
// to a mode: 4131 is bus lines; 4111 (local commuter transport) is taken as
// metro, the urban mode that reports ride-level trip ids to banks.
func transitMode(mcc string) (string, bool) {
	switch mcc {
	case "4131":
		return evidence.ModeBus, true
	case "4111":
		return evidence.ModeMetro, true
	}
	return "", false
}

// cleared handles a cleared card payment: a ride (when it carries the
// operator's trip id) or itemised appliances matched to the label registry.
func (w *work) cleared(ctx context.Context, eventID uuid.UUID, t *evidence.CardTransaction) (outcome, error) {
	mode, isTransit := transitMode(t.MCC)
	if isTransit && t.OperatorTripID == "" {
		// Top-ups and passes are not trips: only a ride-level trip id is.
		return rejected(evidence.ReasonMCCNotTrip), nil
	}
	account, reason, err := w.account(ctx, w.req.Partner.ID, t.CardToken)
	if err != nil || reason != "" {
		return rejected(reason), err
	}
	// A refund or chargeback can overtake its clearing (files and API calls
	// race); a payment already reversed earns nothing.
	var reversed bool
	if err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM evidence_events WHERE partner_id = $1 AND kind = 'card'
		AND partner_tx_id = $2 AND event_status IN ('refunded', 'charged_back'))`, w.req.Partner.ID, t.TransactionID).Scan(&reversed); err != nil {
		return outcome{}, fmt.Errorf("look for an earlier refund: %w", err)
	}
	if reversed {
		return rejected(evidence.ReasonRefundBeforeIssue), nil
	}
	if isTransit {
		op, err := w.s.partners.ByUSCC(ctx, w.tx, t.MerchantUSCC)
		if err != nil {
			return outcome{}, fmt.Errorf("look up operator: %w", err)
		}
		if op == nil {
			return rejected(ReasonUnknownOperator), nil
		}
		trip := evidence.Trip{TripID: t.OperatorTripID, Mode: mode, BoardedAt: t.Time, AlightedAt: t.Time}
		a, err := w.transitAction(ctx, eventID, op, &trip, account, t.TransactionID)
		if err != nil {
			return outcome{}, err
		}
		return summarise([]ActionResult{a}), nil
	}
	if len(t.LineItems) == 0 {
		return rejected(evidence.ReasonNoEligibleItems), nil
	}
	if t.InvoiceNumber == "" {
		return rejected(ReasonNoInvoice), nil
	}
	var acts []ActionResult
	for i := range t.LineItems {
		a, err := w.applianceAction(ctx, eventID, t, &t.LineItems[i], account)
		if err != nil {
			return outcome{}, err
		}
		acts = append(acts, a)
	}
	return summarise(acts), nil
}

// summarise: accepted when any action is queued; otherwise rejected with the
// first action's reason (each action keeps its own).
func summarise(acts []ActionResult) outcome {
	for _, a := range acts {
		if a.Status == "queued" || a.Status == "held" {
			return outcome{status: OutcomeAccepted, actions: acts}
		}
	}
	o := outcome{status: OutcomeRejected, reason: evidence.ReasonNoEligibleItems, actions: acts}
	if len(acts) == 1 {
		o.reason = acts[0].Reason
	}
	return o
}

// applianceAction quantifies one invoice line and queues its issuance after
// the hold period.
func (w *work) applianceAction(ctx context.Context, eventID uuid.UUID, t *evidence.CardTransaction, li *evidence.LineItem, account string) (ActionResult, error) {
	id := uuid.Must(uuid.NewV7())
	a := ActionResult{ActionID: id.String(), Kind: CategoryAppliance, Line: li.Line, Status: "rejected"}
	var e labels.Entry
	err := w.tx.QueryRow(ctx, `SELECT brand, model, category, grade, label_value_milli, capacity_w
		FROM label_registry WHERE brand_key = $1 AND model_key = $2`,
		labels.NormalizeModel(li.Brand), labels.NormalizeModel(li.Model)).Scan(
		&e.Brand, &e.Model, &e.Category, &e.Grade, &e.LabelValueMilli, &e.CapacityW)
	if errors.Is(err, pgx.ErrNoRows) {
		a.Reason = evidence.ReasonModelNotInRegistry
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("look up label registry: %w", err)
	}
	prof, err := w.s.policy.Profile(t.Time)
	if err != nil {
		return a, err
	}
	if !accepts(prof, CategoryAppliance) {
		a.Reason = evidence.ReasonCategoryNotAccepted
		return a, nil
	}
	meth, err := w.s.policy.Methods.Find(CategoryAppliance, w.s.policy.Jurisdiction, t.Time)
	if err != nil {
		return a, err
	}
	rec, err := meth.Appliance(quantify.ApplianceInput{Category: e.Category, Model: e.Model, Grade: e.Grade,
		LabelValueMilli: e.LabelValueMilli, Quantity: li.Quantity, CapacityW: e.CapacityW})
	if err != nil {
		if ae := apperr.As(err); ae != nil && ae.Code == apperr.Invalid {
			a.Reason = evidence.ReasonGradeNotEligible
			return a, nil
		}
		return a, err
	}
	a.Grams = rec.Grams
	claim := evidence.Claim(w.s.cfg.ClaimKey, evidence.ApplianceEvidenceID(t.MerchantUSCC, t.InvoiceNumber, li.Line))
	iss := issuance{id: id, kind: CategoryAppliance, account: account, category: CategoryAppliance, claim: claim,
		occurredAt: t.Time, notBefore: t.Time.Add(prof.HoldPeriod), grams: rec.Grams, methodology: meth.Ref}
	pts, reason, err := w.price(ctx, prof, &iss, []quantify.Record{rec})
	if err != nil {
		return a, err
	}
	a.NotBefore = iss.notBefore
	status := "queued"
	if reason != "" {
		status = "rejected"
	}
	ok, err := w.insertAction(ctx, id, eventID, CategoryAppliance, t.TransactionID, li.Line, account, claim, "", t.Time, rec, status, reason, iss.notBefore)
	if err != nil {
		return a, err
	}
	if !ok {
		a.Reason = evidence.ReasonDuplicateEvidence
		return a, nil
	}
	if reason != "" {
		a.Reason = reason
		return a, nil
	}
	if err := insertIssuance(ctx, w.tx, &iss); err != nil {
		return a, err
	}
	if _, err := w.tx.Exec(ctx, `UPDATE actions SET issuance_id = $1 WHERE id = $1`, id); err != nil {
		return a, err
	}
	a.Status, a.Points = "queued", pts
	return a, nil
}

func accepts(p rules.Profile, category string) bool {
	for _, c := range p.Categories {
		if c == category {
			return true
		}
	}
	return false
}

// trip handles an operator's trip record.
func (w *work) trip(ctx context.Context, eventID uuid.UUID, t *evidence.Trip) (outcome, error) {
	account := t.Account
	if account == "" {
		acct, reason, err := w.account(ctx, w.req.Partner.ID, t.CardToken)
		if err != nil || reason != "" {
			return rejected(reason), err
		}
		account = acct
	} else {
		var known bool
		if err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger_accounts WHERE account = $1)
			OR EXISTS (SELECT 1 FROM card_links WHERE account = $1 AND withdrawn_at IS NULL)`, account).Scan(&known); err != nil {
			return outcome{}, err
		}
		if !known {
			return rejected(ReasonUnknownAccount), nil
		}
	}
	a, err := w.transitAction(ctx, eventID, &w.req.Partner.Partner, t, account, t.TripID)
	if err != nil {
		return outcome{}, err
	}
	return summarise([]ActionResult{a}), nil
}

// transitAction quantifies one ride and queues it for the account's grant
// of its local day, due when that day ends.
func (w *work) transitAction(ctx context.Context, eventID uuid.UUID, op *Partner, t *evidence.Trip, account, partnerTxID string) (ActionResult, error) {
	id := uuid.Must(uuid.NewV7())
	a := ActionResult{ActionID: id.String(), Kind: CategoryTransit, Status: "rejected"}
	prof, err := w.s.policy.Profile(t.BoardedAt)
	if err != nil {
		return a, err
	}
	if !accepts(prof, CategoryTransit) {
		a.Reason = evidence.ReasonCategoryNotAccepted
		return a, nil
	}
	meth, err := w.s.policy.Methods.Find(CategoryTransit, w.s.policy.Jurisdiction, t.BoardedAt)
	if err != nil {
		return a, err
	}
	avg := op.AvgBusMeters
	if t.Mode == evidence.ModeMetro {
		avg = op.AvgMetroMeters
	}
	rec, err := meth.Transit(quantify.TransitInput{Mode: t.Mode, DistanceMeters: t.DistanceMeters, OperatorAverageMeters: avg, AverageSource: op.AvgSource})
	if err != nil {
		if ae := apperr.As(err); ae != nil && ae.Code == apperr.Invalid {
			a.Reason = ae.Reason
			return a, nil
		}
		return a, err
	}
	a.Grams = rec.Grams
	day := prof.LocalDay(t.BoardedAt)
	_, dayEnd := prof.PeriodWindow("day", t.BoardedAt)
	a.NotBefore = dayEnd
	claim := evidence.Claim(w.s.cfg.ClaimKey, evidence.TransitEvidenceID(op.USCC, t.TripID))
	ok, err := w.insertAction(ctx, id, eventID, CategoryTransit, partnerTxID, 0, account, claim, day, t.BoardedAt, rec, "queued", "", dayEnd)
	if err != nil {
		return a, err
	}
	if !ok {
		a.Reason = evidence.ReasonDuplicateEvidence
		return a, nil
	}
	a.Status = "queued"
	return a, nil
}

// insertAction records a green action; false when its claim was already
// recorded by another action (the same invoice line or trip reported twice,
// e.g. by the operator and by the bank).
func (w *work) insertAction(ctx context.Context, id, eventID uuid.UUID, kind, partnerTxID string, line int, account, claim, day string,
	at time.Time, rec quantify.Record, status, reason string, notBefore time.Time) (bool, error) {
	tag, err := w.tx.Exec(ctx, `INSERT INTO actions (id, event_id, partner_id, kind, partner_tx_id, line, account, claim,
		local_day, occurred_at, grams, record, record_hash, status, reason, not_before)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (claim) DO NOTHING`,
		id, eventID, w.req.Partner.ID, kind, partnerTxID, line, account, claim, day, at, rec.Grams,
		json.RawMessage(rec.Canonical()), rec.Hash(), status, reason, notBefore)
	if err != nil {
		return false, fmt.Errorf("record action: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
