package evidence_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

var t0 = time.Date(2026, 3, 1, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))

func goodTx() evidence.CardTransaction {
	return evidence.CardTransaction{
		TransactionID: "txn-0001",
		Status:        evidence.StatusCleared,
		CardToken:     "tok_8f3a:01",
		AmountFen:     329900,
		Currency:      "CNY",
		MCC:           "5722",
		MerchantID:    "M.000123",
		MerchantName:  "苏宁易购 南京新街口店",
		MerchantUSCC:  "91350100M000100Y43",
		Time:          t0,
		InvoiceNumber: "24322000000012345678",
		LineItems: []evidence.LineItem{
			{Line: 1, Model: "KFR-35GW/BpR3", Brand: "格力", Category: "空调", Quantity: 1, UnitPriceFen: 299900},
			{Line: 2, Model: "BCD-500", Quantity: 1, UnitPriceFen: 30000},
		},
	}
}

func goodTrip() evidence.Trip {
	return evidence.Trip{
		TripID:         "T20260301-000042",
		CardToken:      "tok_8f3a:01",
		Mode:           evidence.ModeMetro,
		BoardedAt:      t0,
		AlightedAt:     t0.Add(35 * time.Minute),
		BoardingStop:   "新街口",
		AlightingStop:  "南京南站",
		DistanceMeters: 12_400,
	}
}

type fe struct{ Field, Reason string }

func reasons(errs []apperr.FieldError) []fe {
	var out []fe
	for _, e := range errs {
		out = append(out, fe{e.Field, e.Reason})
	}
	return out
}

func TestCardTransactionValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", evidence.MaxIDLen+1)
	tests := []struct {
		name   string
		modify func(*evidence.CardTransaction)
		want   []fe
	}{
		{"valid", func(*evidence.CardTransaction) {}, nil},
		{"minimal", func(tx *evidence.CardTransaction) {
			tx.MerchantName, tx.MerchantUSCC, tx.InvoiceNumber, tx.LineItems, tx.AmountFen = "", "", "", nil, 0
		}, nil},
		{"max id length", func(tx *evidence.CardTransaction) { tx.TransactionID = long[1:] }, nil},
		{"all statuses", func(tx *evidence.CardTransaction) { tx.Status = evidence.StatusChargedBack }, nil},
		{"transit tap with trip id", func(tx *evidence.CardTransaction) { tx.MCC, tx.OperatorTripID = "4111", "T-1" }, nil},
		{"max amount", func(tx *evidence.CardTransaction) { tx.AmountFen = evidence.MaxFen }, nil},
		{"text at limit", func(tx *evidence.CardTransaction) {
			tx.MerchantName = strings.Repeat("店", evidence.MaxTextLen)
		}, nil},
		{"emoji with joiner", func(tx *evidence.CardTransaction) { tx.MerchantName = "Café 👩‍🍳" }, nil},
		{"zero value", func(tx *evidence.CardTransaction) { *tx = evidence.CardTransaction{} }, []fe{
			{"transactionId", "required"}, {"status", "required"}, {"cardToken", "required"},
			{"currency", "required"}, {"mcc", "required"}, {"merchantId", "required"}, {"time", "required"},
		}},
		{"id too long", func(tx *evidence.CardTransaction) { tx.TransactionID = long }, []fe{{"transactionId", "too_long"}}},
		{"id with pipe", func(tx *evidence.CardTransaction) { tx.TransactionID = "a|b" }, []fe{{"transactionId", "invalid_chars"}}},
		{"id with space", func(tx *evidence.CardTransaction) { tx.MerchantID = "M 1" }, []fe{{"merchantId", "invalid_chars"}}},
		{"id non-ASCII", func(tx *evidence.CardTransaction) { tx.InvoiceNumber = "发票1" }, []fe{{"invoiceNumber", "invalid_chars"}}},
		{"trip id with slash", func(tx *evidence.CardTransaction) { tx.OperatorTripID = "a/b" }, []fe{{"operatorTripId", "invalid_chars"}}},
		{"unknown status", func(tx *evidence.CardTransaction) { tx.Status = "settled" }, []fe{{"status", "unknown_status"}}},
		{"status case", func(tx *evidence.CardTransaction) { tx.Status = "Cleared" }, []fe{{"status", "unknown_status"}}},
		{"PAN token", func(tx *evidence.CardTransaction) { tx.CardToken = "4111111111111111" }, []fe{{"cardToken", "pan_not_allowed"}}},
		{"spaced PAN token", func(tx *evidence.CardTransaction) { tx.CardToken = "4111 1111 1111 1111" }, []fe{{"cardToken", "pan_not_allowed"}}},
		{"token with bad check digit", func(tx *evidence.CardTransaction) { tx.CardToken = "4111111111111112" }, nil},
		{"token too long", func(tx *evidence.CardTransaction) { tx.CardToken = long }, []fe{{"cardToken", "too_long"}}},
		{"negative amount", func(tx *evidence.CardTransaction) { tx.AmountFen = -1 }, []fe{{"amountFen", "out_of_range"}}},
		{"amount over max", func(tx *evidence.CardTransaction) { tx.AmountFen = evidence.MaxFen + 1 }, []fe{{"amountFen", "out_of_range"}}},
		{"currency USD", func(tx *evidence.CardTransaction) { tx.Currency = "USD" }, []fe{{"currency", "currency_unsupported"}}},
		{"currency lower", func(tx *evidence.CardTransaction) { tx.Currency = "cny" }, []fe{{"currency", "currency_unsupported"}}},
		{"mcc 3 digits", func(tx *evidence.CardTransaction) { tx.MCC = "572" }, []fe{{"mcc", "mcc_format"}}},
		{"mcc letters", func(tx *evidence.CardTransaction) { tx.MCC = "57a2" }, []fe{{"mcc", "mcc_format"}}},
		{"mcc full-width digits", func(tx *evidence.CardTransaction) { tx.MCC = "５７２２" }, []fe{{"mcc", "mcc_format"}}},
		{"uscc checksum", func(tx *evidence.CardTransaction) { tx.MerchantUSCC = "91350100M000100Y44" }, []fe{{"merchantUscc", "uscc_checksum"}}},
		{"uscc length", func(tx *evidence.CardTransaction) { tx.MerchantUSCC = "91350100M000100Y4" }, []fe{{"merchantUscc", "uscc_format"}}},
		{"uscc lower case", func(tx *evidence.CardTransaction) { tx.MerchantUSCC = "91350100m000100y43" }, []fe{{"merchantUscc", "uscc_format"}}},
		{"uscc excluded check letter", func(tx *evidence.CardTransaction) { tx.MerchantUSCC = "91350100M000100Y4Z" }, []fe{{"merchantUscc", "uscc_format"}}},
		{"name too long", func(tx *evidence.CardTransaction) {
			tx.MerchantName = strings.Repeat("店", evidence.MaxTextLen+1)
		}, []fe{{"merchantName", "too_long"}}},
		{"name huge", func(tx *evidence.CardTransaction) { tx.MerchantName = strings.Repeat("a", 1<<20) }, []fe{{"merchantName", "too_long"}}},
		{"name invalid UTF-8", func(tx *evidence.CardTransaction) { tx.MerchantName = "ab\xffc" }, []fe{{"merchantName", "invalid_chars"}}},
		{"name newline", func(tx *evidence.CardTransaction) { tx.MerchantName = "a\nb" }, []fe{{"merchantName", "invalid_chars"}}},
		{"name NUL", func(tx *evidence.CardTransaction) { tx.MerchantName = "a\x00" }, []fe{{"merchantName", "invalid_chars"}}},
		{"name C1 control", func(tx *evidence.CardTransaction) { tx.MerchantName = "a\u0085" }, []fe{{"merchantName", "invalid_chars"}}},
		{"name bidi override", func(tx *evidence.CardTransaction) { tx.MerchantName = "abc\u202Efed" }, []fe{{"merchantName", "invalid_chars"}}},
		{"year 1970", func(tx *evidence.CardTransaction) { tx.Time = time.Unix(0, 0) }, []fe{{"time", "out_of_range"}}},
		{"year 10000", func(tx *evidence.CardTransaction) { tx.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, []fe{{"time", "out_of_range"}}},
		{"too many items", func(tx *evidence.CardTransaction) {
			tx.LineItems = nil
			for i := range evidence.MaxLineItems + 5 {
				tx.LineItems = append(tx.LineItems, evidence.LineItem{Line: i%evidence.MaxLineItems + 1, Model: "m", Quantity: 1})
			}
		}, []fe{{"lineItems", "too_many_items"}}},
		{"max items", func(tx *evidence.CardTransaction) {
			tx.LineItems = nil
			for i := range evidence.MaxLineItems {
				tx.LineItems = append(tx.LineItems, evidence.LineItem{Line: i + 1, Model: "m", Quantity: 1})
			}
		}, nil},
		{"line item problems", func(tx *evidence.CardTransaction) {
			tx.LineItems = []evidence.LineItem{
				{Line: 0, Model: "", Quantity: 0, UnitPriceFen: -1},
				{Line: 2, Model: "m", Brand: "b\tx", Category: strings.Repeat("c", evidence.MaxTextLen+1), Quantity: evidence.MaxQuantity + 1, UnitPriceFen: evidence.MaxFen + 1},
				{Line: 2, Model: "m", Quantity: evidence.MaxQuantity},
				{Line: evidence.MaxLineItems + 1, Model: "m", Quantity: 1},
			}
		}, []fe{
			{"lineItems[0].line", "out_of_range"}, {"lineItems[0].model", "required"},
			{"lineItems[0].quantity", "out_of_range"}, {"lineItems[0].unitPriceFen", "out_of_range"},
			{"lineItems[1].brand", "invalid_chars"}, {"lineItems[1].category", "too_long"},
			{"lineItems[1].quantity", "out_of_range"}, {"lineItems[1].unitPriceFen", "out_of_range"},
			{"lineItems[2].line", "duplicate_line"},
			{"lineItems[3].line", "out_of_range"},
		}},
		{"several at once", func(tx *evidence.CardTransaction) {
			tx.Status, tx.Currency, tx.MCC = "x", "EUR", "1"
		}, []fe{{"status", "unknown_status"}, {"currency", "currency_unsupported"}, {"mcc", "mcc_format"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tx := goodTx()
			tt.modify(&tx)
			errs := tx.Validate()
			if diff := cmp.Diff(tt.want, reasons(errs)); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
			for _, e := range errs {
				if e.Detail == "" {
					t.Errorf("%s/%s: empty detail", e.Field, e.Reason)
				}
				if len(tx.CardToken) > 8 && strings.Contains(e.Detail, tx.CardToken) {
					t.Errorf("detail %q repeats the card token", e.Detail)
				}
			}
		})
	}
}

func TestTripValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*evidence.Trip)
		want   []fe
	}{
		{"valid", func(*evidence.Trip) {}, nil},
		{"account only", func(tr *evidence.Trip) { tr.CardToken, tr.Account = "", "acc_01HZX" }, nil},
		{"card and account", func(tr *evidence.Trip) { tr.Account = "acc_01HZX" }, nil},
		{"bus, no stops, no distance", func(tr *evidence.Trip) {
			tr.Mode, tr.BoardingStop, tr.AlightingStop, tr.DistanceMeters = evidence.ModeBus, "", "", 0
		}, nil},
		{"intercity is well-formed", func(tr *evidence.Trip) { tr.Mode = evidence.ModeIntercityRail }, nil},
		{"zero duration", func(tr *evidence.Trip) { tr.AlightedAt = tr.BoardedAt }, nil},
		{"max duration", func(tr *evidence.Trip) { tr.AlightedAt = tr.BoardedAt.Add(evidence.MaxTripDuration) }, nil},
		{"max distance", func(tr *evidence.Trip) { tr.DistanceMeters = evidence.MaxTripDistanceMeters }, nil},
		{"zero value", func(tr *evidence.Trip) { *tr = evidence.Trip{} }, []fe{
			{"tripId", "required"}, {"cardToken", "no_rider"}, {"mode", "required"},
			{"boardedAt", "required"}, {"alightedAt", "required"},
		}},
		{"no rider", func(tr *evidence.Trip) { tr.CardToken = "" }, []fe{{"cardToken", "no_rider"}}},
		{"PAN token", func(tr *evidence.Trip) { tr.CardToken = "5555-5555-5555-4444" }, []fe{{"cardToken", "pan_not_allowed"}}},
		{"bad account", func(tr *evidence.Trip) { tr.Account = "a b" }, []fe{{"account", "invalid_chars"}}},
		{"trip id too long", func(tr *evidence.Trip) { tr.TripID = strings.Repeat("9", evidence.MaxIDLen+1) }, []fe{{"tripId", "too_long"}}},
		{"trip id chars", func(tr *evidence.Trip) { tr.TripID = "T#1" }, []fe{{"tripId", "invalid_chars"}}},
		{"unknown mode", func(tr *evidence.Trip) { tr.Mode = "ferry" }, []fe{{"mode", "unknown_mode"}}},
		{"alighted before boarding", func(tr *evidence.Trip) { tr.AlightedAt = tr.BoardedAt.Add(-time.Second) }, []fe{{"alightedAt", "before_boarding"}}},
		{"too long", func(tr *evidence.Trip) {
			tr.AlightedAt = tr.BoardedAt.Add(evidence.MaxTripDuration + time.Second)
		}, []fe{{"alightedAt", "trip_too_long"}}},
		{"no alighting", func(tr *evidence.Trip) { tr.AlightedAt = time.Time{} }, []fe{{"alightedAt", "required"}}},
		{"boarded in 1999", func(tr *evidence.Trip) {
			tr.BoardedAt = time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC)
			tr.AlightedAt = tr.BoardedAt.Add(time.Minute)
		}, []fe{{"boardedAt", "out_of_range"}, {"alightedAt", "out_of_range"}}},
		{"stop control char", func(tr *evidence.Trip) { tr.BoardingStop = "a\rb" }, []fe{{"boardingStop", "invalid_chars"}}},
		{"stop too long", func(tr *evidence.Trip) {
			tr.AlightingStop = strings.Repeat("站", evidence.MaxTextLen+1)
		}, []fe{{"alightingStop", "too_long"}}},
		{"negative distance", func(tr *evidence.Trip) { tr.DistanceMeters = -1 }, []fe{{"distanceMeters", "out_of_range"}}},
		{"distance in mm", func(tr *evidence.Trip) { tr.DistanceMeters = 12_400_000 }, []fe{{"distanceMeters", "out_of_range"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := goodTrip()
			tt.modify(&tr)
			if diff := cmp.Diff(tt.want, reasons(tr.Validate())); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLooksLikePAN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"4111111111111111", true},      // Visa test number
		{"5555555555554444", true},      // Mastercard test number
		{"6212345678901265", true},      // UnionPay-like, Luhn-valid (computed)
		{"378282246310005", true},       // Amex test number, 15 digits
		{"4222222222222", true},         // 13 digits
		{"6250941006528599", true},      // UnionPay test number
		{"4111 1111 1111 1111", true},   // spaced
		{"4111-1111-1111-1111", true},   // dashed
		{" 4111-1111 1111-1111 ", true}, // mixed separators
		{"4111111111111112", false},     // broken check digit
		{"411111111111", false},         // 12 digits
		{"41111111111111111113", false}, // 20 digits
		{"00000000000000000000", false}, // 20 digits
		{"4111111111111111x", false},    // a letter
		{"tok_4111111111111111", false}, // a token that embeds digits
		{"４１１１１１１１１１１１１１１１", false},     // full-width digits
		{"", false},
		{"-- --", false},
		{strings.Repeat(" ", 100) + "4111111111111111", false}, // separators beyond the bound
	}
	for _, tt := range tests {
		if got := evidence.LooksLikePAN(tt.in); got != tt.want {
			t.Errorf("LooksLikePAN(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
