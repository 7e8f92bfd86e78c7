package pipeline

import (
	"github.com/greenpoints/greenpoints/issuer/evidence"
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
	ReasonTransitNotReverse = "transit_not_reversed" // no longer given (older events carry it); codes are never removed
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

func accepts(p rules.Profile, category string) bool {
	for _, c := range p.Categories {
		if c == category {
			return true
		}
	}
	return false
}
