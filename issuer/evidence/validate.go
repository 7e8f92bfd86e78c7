package evidence

import (
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/uscc"
)

// Field reasons of Validate. Clients and the settlement-file report switch
// on them, so they are stable.
const (
	FieldRequired            = "required"
	FieldTooLong             = "too_long"
	FieldInvalidChars        = "invalid_chars"
	FieldPANNotAllowed       = "pan_not_allowed"
	FieldUSCCFormat          = "uscc_format"
	FieldUSCCChecksum        = "uscc_checksum"
	FieldMCCFormat           = "mcc_format"
	FieldCurrencyUnsupported = "currency_unsupported"
	FieldOutOfRange          = "out_of_range"
	FieldUnknownStatus       = "unknown_status"
	FieldUnknownMode         = "unknown_mode"
	FieldBeforeBoarding      = "before_boarding"
	FieldTripTooLong         = "trip_too_long"
	FieldDuplicateLine       = "duplicate_line"
	FieldTooManyItems        = "too_many_items"
	FieldNoRider             = "no_rider"
)

// CurrencyCNY is the only currency accepted: points methodologies are
// calibrated in fen.
const CurrencyCNY = "CNY"

// Years a time may fall in. Before 2000 is a unit or parsing error on the
// partner's side; after 9999 encoding/json cannot write the time.
const (
	minYear = 2000
	maxYear = 9999
)

// Validate returns every problem with t (nil when there is none), with
// field paths in the API's JSON names. It checks form, not eligibility:
// a well-formed authorised payment or a transit top-up passes, and the
// rules then refuse it with a Reason code.
//
// Required: transactionId, status, cardToken, currency, mcc, merchantId,
// time. Optional: merchantName, merchantUscc (checked when present),
// invoiceNumber, operatorTripId, lineItems. Details never repeat the value:
// it may be a card number.
func (t CardTransaction) Validate() []apperr.FieldError {
	var v validator
	v.id("transactionId", t.TransactionID, true)
	v.oneOf("status", t.Status, FieldUnknownStatus, StatusAuthorised, StatusCleared, StatusRefunded, StatusChargedBack)
	v.token("cardToken", t.CardToken, true)
	v.rangeInt("amountFen", t.AmountFen, 0, MaxFen)
	switch {
	case t.Currency == "":
		v.add("currency", FieldRequired, "currency is required")
	case t.Currency != CurrencyCNY:
		v.add("currency", FieldCurrencyUnsupported, "only CNY is accepted")
	}
	switch {
	case t.MCC == "":
		v.add("mcc", FieldRequired, "mcc is required")
	case !ValidMCC(t.MCC):
		v.add("mcc", FieldMCCFormat, "mcc must be 4 digits (ISO 18245)")
	}
	v.id("merchantId", t.MerchantID, true)
	v.text("merchantName", t.MerchantName, false)
	v.uscc("merchantUscc", t.MerchantUSCC, false)
	v.time("time", t.Time)
	v.id("invoiceNumber", t.InvoiceNumber, false)
	v.id("operatorTripId", t.OperatorTripID, false)
	v.lineItems(t.LineItems)
	return v.errs
}

// Validate returns every problem with t (nil when there is none), with
// field paths in the API's JSON names. Required: tripId, mode, boardedAt,
// alightedAt, and cardToken or account (both may be set). Stops are
// optional texts; distanceMeters is 0 when the operator does not know it.
func (t Trip) Validate() []apperr.FieldError {
	var v validator
	v.id("tripId", t.TripID, true)
	v.token("cardToken", t.CardToken, false)
	v.id("account", t.Account, false)
	if t.CardToken == "" && t.Account == "" {
		v.add("cardToken", FieldNoRider, "one of cardToken and account is required")
	}
	v.oneOf("mode", t.Mode, FieldUnknownMode, ModeBus, ModeMetro, ModeIntercityRail, ModeIntercityCoach)
	boarded, alighted := v.time("boardedAt", t.BoardedAt), v.time("alightedAt", t.AlightedAt)
	if boarded && alighted {
		switch d := t.AlightedAt.Sub(t.BoardedAt); {
		case d < 0:
			v.add("alightedAt", FieldBeforeBoarding, "alightedAt is before boardedAt")
		case d > MaxTripDuration:
			v.add("alightedAt", FieldTripTooLong, fmt.Sprintf("a trip lasts at most %s", MaxTripDuration))
		}
	}
	v.text("boardingStop", t.BoardingStop, false)
	v.text("alightingStop", t.AlightingStop, false)
	v.rangeInt("distanceMeters", t.DistanceMeters, 0, MaxTripDistanceMeters)
	return v.errs
}

// validator collects field errors, so that a partner fixes a record in one
// round trip rather than one per field.
type validator struct{ errs []apperr.FieldError }

func (v *validator) add(field, reason, detail string) {
	v.errs = append(v.errs, apperr.FieldError{Field: field, Reason: reason, Detail: detail})
}

// id checks an identifier: 1..MaxIDLen of [A-Za-z0-9._:-]. The charset
// keeps ids safe in ledger keys, logs and canonical evidence ids (it has no
// '|', the evidence-id separator).
func (v *validator) id(field, s string, required bool) bool {
	switch {
	case s == "":
		if required {
			v.add(field, FieldRequired, field+" is required")
			return false
		}
		return true
	case len(s) > MaxIDLen:
		v.add(field, FieldTooLong, fmt.Sprintf("%s is longer than %d characters", field, MaxIDLen))
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			v.add(field, FieldInvalidChars, field+" may contain only A-Z, a-z, 0-9, '.', '_', ':' and '-'")
			return false
		}
	}
	return true
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// token is id for card tokens, which must also not look like a card
// number. The PAN check comes first so that "4111 1111 1111 1111" is
// reported as what it is, not as a token with spaces.
func (v *validator) token(field, s string, required bool) {
	if LooksLikePAN(s) {
		v.add(field, FieldPANNotAllowed, field+" looks like a card number; send the bank's token, never the card number")
		return
	}
	v.id(field, s, required)
}

// text checks a free text: valid UTF-8, at most MaxTextLen runes, no
// control characters and no bidirectional overrides (which make a
// merchant name display as something else in a statement or a log).
func (v *validator) text(field, s string, required bool) {
	if s == "" {
		if required {
			v.add(field, FieldRequired, field+" is required")
		}
		return
	}
	// Every rune is at least one byte: a quick bound before decoding.
	if len(s) > 4*MaxTextLen || utf8.RuneCountInString(s) > MaxTextLen {
		v.add(field, FieldTooLong, fmt.Sprintf("%s is longer than %d characters", field, MaxTextLen))
		return
	}
	if !utf8.ValidString(s) {
		v.add(field, FieldInvalidChars, field+" is not valid UTF-8")
		return
	}
	for _, r := range s {
		if unicode.IsControl(r) || bidiControl(r) {
			v.add(field, FieldInvalidChars, field+" contains a control character")
			return
		}
	}
}

// bidiControl reports the explicit directional formatting characters
// (Unicode UAX #9): embeddings, overrides and isolates.
func bidiControl(r rune) bool {
	return r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069'
}

func (v *validator) uscc(field, s string, required bool) {
	switch {
	case s == "":
		if required {
			v.add(field, FieldRequired, field+" is required")
		}
	case len(s) != uscc.Len:
		v.add(field, FieldUSCCFormat, fmt.Sprintf("%s must be %d characters", field, uscc.Len))
	case !uscc.Valid(s):
		if _, ok := uscc.CheckChar(s); !ok || !validUSCCChar(s[uscc.Len-1]) {
			v.add(field, FieldUSCCFormat, field+" may contain only digits and the capitals of the USCC alphabet")
			return
		}
		v.add(field, FieldUSCCChecksum, field+" has a wrong check character")
	}
}

func validUSCCChar(c byte) bool {
	for i := range len(uscc.Charset) {
		if uscc.Charset[i] == c {
			return true
		}
	}
	return false
}

func (v *validator) oneOf(field, s, reason string, allowed ...string) {
	if s == "" {
		v.add(field, FieldRequired, field+" is required")
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.add(field, reason, fmt.Sprintf("%s must be one of %q", field, allowed))
}

func (v *validator) rangeInt(field string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.add(field, FieldOutOfRange, fmt.Sprintf("%s must be between %d and %d", field, lo, hi))
	}
}

// time reports whether t is usable for further checks.
func (v *validator) time(field string, t time.Time) bool {
	if t.IsZero() {
		v.add(field, FieldRequired, field+" is required")
		return false
	}
	if y := t.UTC().Year(); y < minYear || y > maxYear {
		v.add(field, FieldOutOfRange, fmt.Sprintf("%s must be in the years %d to %d", field, minYear, maxYear))
		return false
	}
	return true
}

// lineItems checks at most MaxLineItems items: the rest are reported as
// one error, not one per item, so a hostile list cannot inflate the
// response.
func (v *validator) lineItems(items []LineItem) {
	if len(items) > MaxLineItems {
		v.add("lineItems", FieldTooManyItems, fmt.Sprintf("at most %d line items", MaxLineItems))
		items = items[:MaxLineItems]
	}
	var seen [MaxLineItems + 1]bool
	for i, it := range items {
		p := "lineItems[" + strconv.Itoa(i) + "]."
		if it.Line < 1 || it.Line > MaxLineItems {
			v.add(p+"line", FieldOutOfRange, fmt.Sprintf("line must be between 1 and %d", MaxLineItems))
		} else if seen[it.Line] {
			v.add(p+"line", FieldDuplicateLine, "line "+strconv.Itoa(it.Line)+" appears more than once")
		} else {
			seen[it.Line] = true
		}
		v.text(p+"model", it.Model, true)
		v.text(p+"brand", it.Brand, false)
		v.text(p+"category", it.Category, false)
		v.rangeInt(p+"quantity", it.Quantity, 1, MaxQuantity)
		v.rangeInt(p+"unitPriceFen", it.UnitPriceFen, 0, MaxFen)
	}
}

// ValidMCC reports whether s is an ISO 18245 merchant category code:
// exactly four ASCII digits. Which codes are
// assigned is the rules' business, not the input layer's.
func ValidMCC(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := range 4 {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
