package evidence

// Reason codes for green actions that earn no points. They are recorded
// with the evidence and shown to the account holder, so they are stable:
// a code is never renamed or reused, only added.
const (
	ReasonNotCleared          = "not_cleared"
	ReasonNoCardLink          = "no_card_link"
	ReasonConsentWithdrawn    = "consent_withdrawn"
	ReasonMCCNotTrip          = "mcc_not_trip"
	ReasonNoEligibleItems     = "no_eligible_items"
	ReasonModelNotInRegistry  = "model_not_in_registry"
	ReasonGradeNotEligible    = "grade_not_eligible"
	ReasonIntercityMode       = "intercity_mode"
	ReasonCategoryNotAccepted = "category_not_accepted"
	ReasonCapReached          = "cap_reached"
	ReasonClaimedElsewhere    = "claimed_elsewhere"
	ReasonAlreadyIssued       = "already_issued"
	ReasonDuplicateEvidence   = "duplicate_evidence"
	ReasonRefundBeforeIssue   = "refund_before_issue"
	ReasonProfileForbids      = "profile_forbids"
	ReasonLedgerRejected      = "ledger_rejected"
)

// Reason describes a reason code for people: support staff, auditors and
// the account holder's statement.
type Reason struct {
	Code        string `json:"code"`
	Title       string `json:"title"`       // a short phrase
	Description string `json:"description"` // what happened and what, if anything, the holder can do
}

// reasons is the catalogue, in the order a green action meets the checks.
var reasons = []Reason{
	{ReasonNotCleared, "Payment not cleared",
		"The card payment has not cleared yet, or the profile's hold period after clearing has not passed. Points follow once it has."},
	{ReasonNoCardLink, "Card not linked",
		"The card token is not linked to any account, so there is nobody to credit."},
	{ReasonConsentWithdrawn, "Consent withdrawn",
		"The account holder withdrew consent to use this card's or operator's data; the evidence is not used."},
	{ReasonMCCNotTrip, "Not a ride",
		"The merchant is a transit operator but the payment carries no ride-level trip id: top-ups and passes are not trips, the rides they pay for earn points when the operator reports them."},
	{ReasonNoEligibleItems, "No eligible items",
		"The purchase has no itemised line that a methodology covers."},
	{ReasonModelNotInRegistry, "Model not in registry",
		"The product model is not in the energy-label registry, so its efficiency grade cannot be checked."},
	{ReasonGradeNotEligible, "Efficiency grade not eligible",
		"The product's energy-efficiency grade is below what the methodology rewards."},
	{ReasonIntercityMode, "Intercity travel",
		"The trip is intercity; no methodology covers intercity modes yet."},
	{ReasonCategoryNotAccepted, "Category not accepted",
		"The product category is not one the issuer's profile rewards."},
	{ReasonCapReached, "Cap reached",
		"The account has reached the profile's cap on points for this kind of action in the period."},
	{ReasonClaimedElsewhere, "Claimed elsewhere",
		"Another issuer, or another item, has already been paid for this evidence on the ledger."},
	{ReasonAlreadyIssued, "Already issued",
		"Points for this evidence were already issued by us; this is a repeat report."},
	{ReasonDuplicateEvidence, "Duplicate evidence",
		"The same evidence arrived twice in one batch or file; it is counted once."},
	{ReasonRefundBeforeIssue, "Refunded before issue",
		"The payment was refunded or charged back before points were issued, so none are. A card-paid fare refunded before its day's transit grant reached the ledger is left out of the grant; the day's other trips are granted without it."},
	{ReasonProfileForbids, "Not allowed by profile",
		"The issuer's profile excludes this merchant, region or kind of action."},
	{ReasonLedgerRejected, "Ledger rejected",
		"The ledger refused the issuance; the ledger's own reason is recorded alongside."},
}

// Reasons returns the catalogue of reason codes. The slice is a copy: the
// caller may sort or filter it.
func Reasons() []Reason {
	out := make([]Reason, len(reasons))
	copy(out, reasons)
	return out
}
