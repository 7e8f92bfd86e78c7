// Package evidence holds what partners tell us about green actions: card
// transactions with optional line items and transit trip records, the
// canonical evidence ids derived from them and the ledger claims (HMAC of a
// canonical id under the consortium claim key).
//
// It imports no HTTP and no SQL: the API, the settlement-file parser and the
// pipeline all build these values and call Validate.
package evidence

import "time"

// Card transaction statuses as banks report them. Points are issued only for
// cleared transactions (after the profile's hold period); refunded and
// charged_back reverse what a cleared transaction earned.
const (
	StatusAuthorised  = "authorised"
	StatusCleared     = "cleared"
	StatusRefunded    = "refunded"
	StatusChargedBack = "charged_back"
)

// Transit modes with a methodology. Intercity modes are refused until a
// methodology covers them.
const (
	ModeBus   = "bus"
	ModeMetro = "metro"
	// Intercity modes pass Validate, so that a ride reported with one is
	// recorded and refused with ReasonIntercityMode rather than bounced as
	// bad input.
	ModeIntercityRail  = "intercity_rail"
	ModeIntercityCoach = "intercity_coach"
)

// Bounds on partner input: a limit on everything.
const (
	MaxLineItems = 100
	MaxIDLen     = 64
	MaxTextLen   = 200
	MaxFen       = 1_000_000_000_000 // 10^10 yuan
	MaxQuantity  = 10_000
	// MaxTripDistanceMeters bounds one urban trip (the longest metro lines are
	// ~100 km; anything beyond is a unit error on the partner's side).
	MaxTripDistanceMeters = 300_000
	// MaxTripDuration bounds boarding to alighting.
	MaxTripDuration = 6 * time.Hour
)

// CardTransaction is one card payment event as a bank reports it. Each
// status change of the same payment (cleared, then refunded) is its own
// event with the same TransactionID.
type CardTransaction struct {
	TransactionID string    // the bank's own id of the payment
	Status        string    // Status* constant
	CardToken     string    // the bank's token for the card, never a card number
	AmountFen     int64     // amount in fen (1/100 yuan)
	Currency      string    // ISO 4217, "CNY"
	MCC           string    // ISO 18245 merchant category code, 4 digits
	MerchantID    string    // the acquirer's merchant id
	MerchantName  string    // as on the receipt
	MerchantUSCC  string    // the merchant's unified social credit code
	Time          time.Time // when the payment happened, with the partner's offset
	InvoiceNumber string    // fapiao number, when one was issued
	// OperatorTripID is the transit operator's ride-level trip id, present
	// only when the card was tapped on a bus or metro gate as the fare medium
	// (top-ups and passes never carry one).
	OperatorTripID string
	LineItems      []LineItem
}

// LineItem is one itemised line of a purchase.
type LineItem struct {
	Line         int    // 1-based line number on the invoice
	Model        string // product model as on the energy label
	Brand        string
	Category     string // the seller's product category text
	Quantity     int64
	UnitPriceFen int64
}

// Trip is one ride as a transit operator records it.
type Trip struct {
	TripID         string // the operator's ride-level trip id
	CardToken      string // the payment token, when the rider tapped a linked card
	Account        string // the pseudonymous account, when the rider used our app
	Mode           string // Mode* constant
	BoardedAt      time.Time
	AlightedAt     time.Time
	BoardingStop   string
	AlightingStop  string
	DistanceMeters int64 // 0 when the operator does not know it
}
