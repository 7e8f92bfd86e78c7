package partnerclient

import "time"

// The request documents a partner sends (docs/partners.md; api/openapi.yaml
// is the contract). The server has its own types with validation rules;
// these are the client's side of the wire.

// CardTransactions is the body of POST card-transactions.
type CardTransactions struct {
	Transactions []CardTransaction `json:"transactions"`
}

// CardTransaction is one card payment event.
type CardTransaction struct {
	TransactionID  string     `json:"transactionId"`
	Status         string     `json:"status"`
	CardToken      string     `json:"cardToken"`
	AmountFen      int64      `json:"amountFen"`
	Currency       string     `json:"currency"`
	MCC            string     `json:"mcc"`
	MerchantID     string     `json:"merchantId"`
	MerchantName   string     `json:"merchantName"`
	MerchantUSCC   string     `json:"merchantUscc"`
	Time           time.Time  `json:"time"`
	InvoiceNumber  string     `json:"invoiceNumber,omitempty"`
	OperatorTripID string     `json:"operatorTripId,omitempty"`
	LineItems      []LineItem `json:"lineItems,omitempty"`
}

// LineItem is one itemised line of a purchase.
type LineItem struct {
	Line         int    `json:"line"`
	Model        string `json:"model"`
	Brand        string `json:"brand"`
	Category     string `json:"category"`
	Quantity     int64  `json:"quantity"`
	UnitPriceFen int64  `json:"unitPriceFen"`
}

// Trips is the body of POST trips.
type Trips struct {
	Trips []Trip `json:"trips"`
}

// Trip is one ride as an operator records it.
type Trip struct {
	TripID         string    `json:"tripId"`
	CardToken      string    `json:"cardToken,omitempty"`
	Account        string    `json:"account,omitempty"`
	Mode           string    `json:"mode"`
	BoardedAt      time.Time `json:"boardedAt"`
	AlightedAt     time.Time `json:"alightedAt"`
	BoardingStop   string    `json:"boardingStop"`
	AlightingStop  string    `json:"alightingStop"`
	DistanceMeters int64     `json:"distanceMeters,omitempty"`
}
