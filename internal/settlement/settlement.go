// Package settlement parses the daily card settlement files banks send: one
// CSV file per business day with one row per card transaction event.
//
// A file is validated whole: any problem on any line rejects the file with a
// per-line report (an *apperr.Error with reason "file_invalid") and nothing
// of it is returned. The format is documented in docs/partners.md, "Settlement
// files"; the summary:
//
//   - UTF-8 (a leading BOM is stripped), RFC 4180 quoting, LF or CRLF.
//   - Header: transaction_id,status,card_token,amount_fen,currency,mcc,
//     merchant_id,merchant_name,merchant_uscc,time,invoice_number,
//     operator_trip_id
//   - Last record: TRAILER,<number of data records>,<sum of amount_fen>.
//   - time is RFC 3339 with an offset. A file covers one business day in
//     China Standard Time (UTC+8) with a 23:00 cut-off: every event time t
//     satisfies day-1 23:00 < t <= day 23:00 local.
//   - (transaction_id, status) is unique within a file.
//
// Line items are not carried: itemised purchases come through the API.
package settlement

import (
	"fmt"
	"io"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/csvfile"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// Defaults for Options left at zero.
const (
	DefaultMaxLines = 100_000
	DefaultMaxBytes = 64 << 20
)

// Trailer is the first field of the trailer record. A transaction id equal
// to it cannot be carried in a settlement file.
const Trailer = "TRAILER"

// Columns are the header of a settlement file, in order.
var Columns = []string{
	"transaction_id", "status", "card_token", "amount_fen", "currency", "mcc",
	"merchant_id", "merchant_name", "merchant_uscc", "time", "invoice_number",
	"operator_trip_id",
}

// Column indexes into a record; they follow Columns.
const (
	colTransactionID = iota
	colStatus
	colCardToken
	colAmountFen
	colCurrency
	colMCC
	colMerchantID
	colMerchantName
	colMerchantUSCC
	colTime
	colInvoiceNumber
	colOperatorTripID
)

// fieldColumns maps evidence.CardTransaction.Validate field paths to columns.
var fieldColumns = map[string]string{
	"transactionId":  "transaction_id",
	"status":         "status",
	"cardToken":      "card_token",
	"amountFen":      "amount_fen",
	"currency":       "currency",
	"mcc":            "mcc",
	"merchantId":     "merchant_id",
	"merchantName":   "merchant_name",
	"merchantUscc":   "merchant_uscc",
	"time":           "time",
	"invoiceNumber":  "invoice_number",
	"operatorTripId": "operator_trip_id",
}

// ChinaTime is China Standard Time. China has kept UTC+8 without daylight
// saving since 1991, so a fixed zone equals Asia/Shanghai for every date a
// settlement file can carry and needs no tzdata on the host.
var ChinaTime = time.FixedZone("CST", 8*60*60)

// CutOff is the local time of day at which a business day ends: events after
// it belong to the next day's file.
const CutOff = 23 * time.Hour

// BusinessDayLayout is the layout of a business day: "2026-03-14".
const BusinessDayLayout = time.DateOnly

// Options bound a parse. Zero values take the defaults.
type Options struct {
	MaxLines int   // physical lines, header and trailer included; default DefaultMaxLines
	MaxBytes int64 // file size; default DefaultMaxBytes
}

// File is a validated settlement file.
type File struct {
	BusinessDay  string // "2026-03-14"
	Transactions []evidence.CardTransaction
	// Lines holds the physical line of each transaction, for reports that
	// point back into the file.
	Lines          []int
	AmountTotalFen int64  // sum of amount_fen, equal to the trailer's
	SHA256         string // hex SHA-256 of the raw bytes
}

// Window returns the interval (from, to] that event times of businessDay must
// fall in: from the previous day's cut-off, exclusive, to the day's cut-off,
// inclusive. It returns code Invalid, reason "business_day_invalid", for a
// day not in BusinessDayLayout.
func Window(businessDay string) (from, to time.Time, err error) {
	d, err := time.ParseInLocation(BusinessDayLayout, businessDay, ChinaTime)
	if err != nil || d.Format(BusinessDayLayout) != businessDay {
		return time.Time{}, time.Time{}, apperr.Wrap(err, apperr.Invalid, "business_day_invalid",
			"the business day must be a date like 2026-03-14, got %q", businessDay)
	}
	to = d.Add(CutOff)
	return to.AddDate(0, 0, -1), to, nil
}

// Parse reads and validates the settlement file for businessDay from r.
//
// Errors: Invalid "business_day_invalid" for a bad businessDay; TooLarge
// ("file_too_large", "file_too_many_lines") beyond opts; Invalid
// "file_invalid" with one FieldError per problem ("line 12: mcc") for any
// invalid content; a plain error when r fails.
func Parse(r io.Reader, businessDay string, opts Options) (*File, error) {
	from, to, err := Window(businessDay)
	if err != nil {
		return nil, err
	}
	if opts.MaxLines <= 0 {
		opts.MaxLines = DefaultMaxLines
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	raw, rep, err := csvfile.Read(r, csvfile.Spec{
		Header:        Columns,
		Trailer:       Trailer,
		TrailerFields: 3,
		MaxBytes:      opts.MaxBytes,
		MaxLines:      opts.MaxLines,
	})
	if err != nil {
		return nil, fmt.Errorf("settlement: %w", err)
	}

	f := &File{
		BusinessDay:  businessDay,
		Transactions: make([]evidence.CardTransaction, 0, len(raw.Records)),
		Lines:        make([]int, 0, len(raw.Records)),
		SHA256:       raw.SHA256,
	}
	type key struct{ id, status string }
	seen := make(map[key]int, len(raw.Records))
	// sumOK is false once a record is unreadable or the sum overflows: the
	// total is then unknown, and the record's own problem says why.
	sumOK := raw.Count == len(raw.Records)
	for _, rec := range raw.Records {
		tx, bad := parseRecord(rep, rec)
		if bad[Columns[colAmountFen]] {
			sumOK = false
		} else if s, ok := addChecked(f.AmountTotalFen, tx.AmountFen); ok {
			f.AmountTotalFen = s
		} else {
			sumOK = false
			rep.Add(rec.Line, Columns[colAmountFen], "sum_overflow", "the running total of amount_fen overflows")
		}
		if !bad[Columns[colTime]] && (!tx.Time.After(from) || tx.Time.After(to)) {
			rep.Addf(rec.Line, Columns[colTime], "outside_business_day",
				"%s is outside business day %s: after %s and up to %s",
				tx.Time.Format(time.RFC3339), businessDay, from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
		// A missing id or status is reported by Validate; counting every
		// blank as a duplicate would only add noise.
		if k := (key{tx.TransactionID, tx.Status}); k.id != "" && k.status != "" {
			if first, dup := seen[k]; dup {
				rep.Addf(rec.Line, Columns[colTransactionID], "duplicate",
					"the same transaction_id and status as line %d", first)
			} else {
				seen[k] = rec.Line
			}
		}
		f.Transactions = append(f.Transactions, tx)
		f.Lines = append(f.Lines, rec.Line)
	}
	if t := raw.Trailer; t != nil {
		line := t.Line
		if n, ok := rep.Int(line, "trailer", t.Fields[1], 0, int64(opts.MaxLines)); ok && n != int64(raw.Count) {
			rep.Addf(line, "trailer", "trailer_count", "the trailer says %d records, the file has %d", n, raw.Count)
		}
		if total, ok := rep.Int(line, "trailer", t.Fields[2], -1<<63, 1<<63-1); ok && sumOK && total != f.AmountTotalFen {
			rep.Addf(line, "trailer", "trailer_total", "the trailer says amount_fen totals %d, the records total %d", total, f.AmountTotalFen)
		}
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// parseRecord converts one record and reports its problems. bad holds the
// columns that failed to parse.
func parseRecord(rep *csvfile.Report, rec csvfile.Record) (evidence.CardTransaction, map[string]bool) {
	v := rec.Fields
	tx := evidence.CardTransaction{
		TransactionID:  v[colTransactionID],
		Status:         v[colStatus],
		CardToken:      v[colCardToken],
		Currency:       v[colCurrency],
		MCC:            v[colMCC],
		MerchantID:     v[colMerchantID],
		MerchantName:   v[colMerchantName],
		MerchantUSCC:   v[colMerchantUSCC],
		InvoiceNumber:  v[colInvoiceNumber],
		OperatorTripID: v[colOperatorTripID],
	}
	var bad map[string]bool
	markBad := func(col string) {
		if bad == nil {
			bad = make(map[string]bool)
		}
		bad[col] = true
	}
	// The domain bounds of the amount are Validate's; here only "is it an
	// int64", so the one rule lives in one place.
	if n, ok := rep.Int(rec.Line, Columns[colAmountFen], v[colAmountFen], -1<<63, 1<<63-1); ok {
		tx.AmountFen = n
	} else {
		markBad(Columns[colAmountFen])
	}
	if t, ok := parseTime(rep, rec.Line, v[colTime]); ok {
		tx.Time = t
	} else {
		markBad(Columns[colTime])
	}
	rep.AddFieldErrors(rec.Line, tx.Validate(), fieldColumns, bad)
	return tx, bad
}

// parseTime parses an RFC 3339 time, which always carries an offset ("Z" or
// "+08:00"): a local time without one would be ambiguous.
func parseTime(rep *csvfile.Report, line int, s string) (time.Time, bool) {
	col := Columns[colTime]
	if s == "" {
		rep.Add(line, col, "required", "a value is required")
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		rep.Add(line, col, "time", "the value is not an RFC 3339 time with an offset, like 2026-03-14T09:30:00+08:00")
		return time.Time{}, false
	}
	return t, true
}

// addChecked returns a+b and false on int64 overflow.
func addChecked(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}
