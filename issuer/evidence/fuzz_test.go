package evidence_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/greenpoints/greenpoints/internal/apperr"

	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// FuzzCardTransactionValidate: arbitrary strings and numbers never panic,
// every error names a field and a reason, and a token that looks like a
// card number is always refused.
func FuzzCardTransactionValidate(f *testing.F) {
	f.Add("txn-1", "cleared", "tok_1", int64(100), "CNY", "5722", "M1", "name", "91350100M000100Y43", int64(1772325000), "INV1", "", 1, "model", int64(1), int64(100))
	f.Add("", "", "4111 1111 1111 1111", int64(-1), "", "", "", "\xff", "", int64(0), "|", "a|b", 0, "", int64(0), int64(-1))
	f.Add("a", "refunded", "4111111111111112", int64(1e12), "USD", "57a", "m", "\u202e", "91350100M000100Y44", int64(-1<<62), "x", "T-1", 101, "\x00", int64(1e4+1), int64(1e12+1))
	f.Fuzz(func(t *testing.T, id, status, token string, amount int64, currency, mcc, merchant, name, uscc string,
		unix int64, invoice, trip string, line int, model string, qty, price int64) {
		tx := evidence.CardTransaction{
			TransactionID: id, Status: status, CardToken: token, AmountFen: amount, Currency: currency,
			MCC: mcc, MerchantID: merchant, MerchantName: name, MerchantUSCC: uscc,
			Time: time.Unix(unix, 0), InvoiceNumber: invoice, OperatorTripID: trip,
			LineItems: []evidence.LineItem{{Line: line, Model: model, Brand: name, Category: model, Quantity: qty, UnitPriceFen: price},
				{Line: line, Model: name, Quantity: qty, UnitPriceFen: price}},
		}
		errs := tx.Validate()
		for _, e := range errs {
			if e.Field == "" || e.Reason == "" || e.Detail == "" || !utf8.ValidString(e.Detail) {
				t.Fatalf("incomplete field error %+v", e)
			}
		}
		if evidence.LooksLikePAN(token) && !hasReason(errs, "cardToken", "pan_not_allowed") {
			t.Fatalf("PAN-like token %q accepted", token)
		}
		if len(errs) == 0 {
			// Whatever passes is safe to put in a canonical id.
			for _, s := range []string{id, token, merchant, invoice, trip, uscc} {
				if strings.ContainsRune(s, '|') {
					t.Fatalf("a value with '|' passed: %q", s)
				}
			}
		}
		tr := evidence.Trip{TripID: trip, CardToken: token, Account: merchant, Mode: status,
			BoardedAt: time.Unix(unix, 0), AlightedAt: time.Unix(unix+qty, 0), BoardingStop: name, AlightingStop: model, DistanceMeters: amount}
		for _, e := range tr.Validate() {
			if e.Field == "" || e.Reason == "" || e.Detail == "" {
				t.Fatalf("incomplete field error %+v", e)
			}
		}
	})
}

func hasReason(errs []apperr.FieldError, field, reason string) bool {
	for _, e := range errs {
		if e.Field == field && e.Reason == reason {
			return true
		}
	}
	return false
}
