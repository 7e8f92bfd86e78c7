package settlement_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/csvfile"
	"github.com/greenpoints/greenpoints/internal/settlement"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

const (
	day    = "2026-03-14"
	header = "transaction_id,status,card_token,amount_fen,currency,mcc,merchant_id,merchant_name,merchant_uscc,time,invoice_number,operator_trip_id"
	uscc   = "91350100M000100Y43"
)

// row returns a valid CSV row with the given fields replaced.
func row(id string, repl map[string]string) string {
	v := map[string]string{
		"transaction_id": id, "status": "cleared", "card_token": "tok_" + id, "amount_fen": "1999",
		"currency": "CNY", "mcc": "5411", "merchant_id": "M001", "merchant_name": "Green Mart",
		"merchant_uscc": uscc, "time": "2026-03-14T09:30:00+08:00", "invoice_number": "", "operator_trip_id": "",
	}
	for k, s := range repl {
		if _, ok := v[k]; !ok {
			panic("no column " + k)
		}
		v[k] = s
	}
	fs := make([]string, len(settlement.Columns))
	for i, c := range settlement.Columns {
		fs[i] = v[c]
	}
	return strings.Join(fs, ",")
}

// file joins the header, rows and a trailer computed from the rows' amounts
// (rows must be single-line for that).
func file(rows ...string) string {
	var sum int64
	for _, r := range rows {
		n, _ := strconv.ParseInt(strings.Split(r, ",")[3], 10, 64)
		sum += n
	}
	return header + "\n" + strings.Join(append(rows, fmt.Sprintf("TRAILER,%d,%d", len(rows), sum)), "\n") + "\n"
}

// fields returns the field paths and reasons of a file_invalid error.
func fields(t *testing.T, err error) []apperr.FieldError {
	t.Helper()
	e := apperr.As(err)
	if e == nil || e.Code != apperr.Invalid || e.Reason != csvfile.ReasonFileInvalid {
		t.Fatalf("err = %v, want invalid/file_invalid", err)
	}
	out := make([]apperr.FieldError, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = apperr.FieldError{Field: f.Field, Reason: f.Reason}
	}
	return out
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	in := header + "\n" +
		row("T1", map[string]string{"merchant_name": `"Green Mart, ""Pudong"""`, "invoice_number": "INV-001"}) + "\n" +
		row("T1", map[string]string{"status": "refunded", "amount_fen": "500", "time": "2026-03-14T15:00:00Z"}) + "\n" +
		row("T2", map[string]string{"mcc": "4111", "merchant_uscc": "", "operator_trip_id": "trip:42", "time": "2026-03-13T23:00:00.001+08:00"}) + "\n" +
		"TRAILER,3,4498\n"
	f, err := settlement.Parse(strings.NewReader(in), day, settlement.Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	sum := sha256.Sum256([]byte(in))
	want := &settlement.File{
		BusinessDay: day,
		Transactions: []evidence.CardTransaction{
			{TransactionID: "T1", Status: "cleared", CardToken: "tok_T1", AmountFen: 1999, Currency: "CNY", MCC: "5411",
				MerchantID: "M001", MerchantName: `Green Mart, "Pudong"`, MerchantUSCC: uscc,
				Time: time.Date(2026, 3, 14, 9, 30, 0, 0, settlement.ChinaTime), InvoiceNumber: "INV-001"},
			{TransactionID: "T1", Status: "refunded", CardToken: "tok_T1", AmountFen: 500, Currency: "CNY", MCC: "5411",
				MerchantID: "M001", MerchantName: "Green Mart", MerchantUSCC: uscc,
				Time: time.Date(2026, 3, 14, 23, 0, 0, 0, settlement.ChinaTime)},
			{TransactionID: "T2", Status: "cleared", CardToken: "tok_T2", AmountFen: 1999, Currency: "CNY", MCC: "4111",
				MerchantID: "M001", MerchantName: "Green Mart", OperatorTripID: "trip:42",
				Time: time.Date(2026, 3, 13, 23, 0, 0, 1e6, settlement.ChinaTime)},
		},
		Lines:          []int{2, 3, 4},
		AmountTotalFen: 4498,
		SHA256:         hex.EncodeToString(sum[:]),
	}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}

	// The same file with a BOM and CRLF line endings parses to the same
	// transactions; only the hash of the raw bytes differs.
	crlf := "\uFEFF" + strings.ReplaceAll(in, "\n", "\r\n")
	g, err := settlement.Parse(strings.NewReader(crlf), day, settlement.Options{})
	if err != nil {
		t.Fatalf("Parse with BOM and CRLF: %v", err)
	}
	sum = sha256.Sum256([]byte(crlf))
	want.SHA256 = hex.EncodeToString(sum[:])
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("Parse with BOM and CRLF mismatch (-want +got):\n%s", diff)
	}
}

func TestParseEmptyDay(t *testing.T) {
	t.Parallel()
	f, err := settlement.Parse(strings.NewReader(header+"\nTRAILER,0,0\n"), day, settlement.Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(f.Transactions) != 0 || f.AmountTotalFen != 0 {
		t.Errorf("Parse = %+v, want no transactions", f)
	}
}

func TestParseArguments(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"", "2026-3-14", "2026-02-30", "14/03/2026", "2026-03-14T00:00:00Z"} {
		_, err := settlement.Parse(strings.NewReader(file(row("T1", nil))), d, settlement.Options{})
		if e := apperr.As(err); e == nil || e.Reason != "business_day_invalid" {
			t.Errorf("Parse with day %q: err = %v, want business_day_invalid", d, err)
		}
	}
	in := file(row("T1", nil), row("T2", nil))
	for _, tt := range []struct {
		opts   settlement.Options
		reason string
	}{
		{settlement.Options{MaxLines: 3}, "file_too_many_lines"},
		{settlement.Options{MaxBytes: int64(len(in) - 1)}, "file_too_large"},
	} {
		_, err := settlement.Parse(strings.NewReader(in), day, tt.opts)
		if e := apperr.As(err); e == nil || e.Code != apperr.TooLarge || e.Reason != tt.reason {
			t.Errorf("Parse with %+v: err = %v, want too_large/%s", tt.opts, err, tt.reason)
		}
	}
	if _, err := settlement.Parse(strings.NewReader(in), day, settlement.Options{MaxLines: 4, MaxBytes: int64(len(in))}); err != nil {
		t.Errorf("Parse at the bounds: %v", err)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	from, to, err := settlement.Window("2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 12, 31, 15, 0, 0, 0, time.UTC); !from.Equal(want) {
		t.Errorf("from = %v, want %v", from, want)
	}
	if want := time.Date(2026, 1, 1, 15, 0, 0, 0, time.UTC); !to.Equal(want) {
		t.Errorf("to = %v, want %v", to, want)
	}
}

func TestParseProblemCap(t *testing.T) {
	t.Parallel()
	rows := make([]string, csvfile.MaxProblems+10)
	for i := range rows {
		rows[i] = row("T"+strconv.Itoa(i), map[string]string{"mcc": "x"})
	}
	_, err := settlement.Parse(strings.NewReader(file(rows...)), day, settlement.Options{})
	e := apperr.As(err)
	if e == nil {
		t.Fatalf("err = %v, want an *apperr.Error", err)
	}
	if len(e.Fields) != csvfile.MaxProblems {
		t.Errorf("len(Fields) = %d, want %d", len(e.Fields), csvfile.MaxProblems)
	}
	want := fmt.Sprintf("%d problems in %d lines; nothing was applied; the first %d are listed, 10 omitted",
		len(rows), len(rows), csvfile.MaxProblems)
	if e.Detail != want {
		t.Errorf("Detail = %q, want %q", e.Detail, want)
	}
	if got := e.Fields[len(e.Fields)-1].Field; got != fmt.Sprintf("line %d: mcc", csvfile.MaxProblems+1) {
		t.Errorf("last field = %q", got)
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	longName := strings.Repeat("x", csvfile.DefaultMaxRecordBytes)
	tests := []struct {
		name string
		in   string
		want []apperr.FieldError
	}{
		{
			name: "bad header",
			in:   strings.Replace(file(row("T1", nil)), "mcc", "MCC", 1),
			want: []apperr.FieldError{{Field: "line 1: header", Reason: "header_mismatch"}},
		},
		{
			name: "no header",
			in:   row("T1", nil) + "\nTRAILER,1,1999\n",
			want: []apperr.FieldError{{Field: "line 1: header", Reason: "header_mismatch"}},
		},
		{
			name: "empty file",
			in:   "",
			want: []apperr.FieldError{{Field: "line 1: header", Reason: "header_missing"}},
		},
		{
			name: "wrong column count",
			in:   header + "\n" + row("T1", nil) + ",extra\n" + row("T2", nil) + "\nTRAILER,2,3998\n",
			want: []apperr.FieldError{{Field: "line 2: record", Reason: "column_count"}},
		},
		{
			name: "bad number",
			in:   file(row("T1", map[string]string{"amount_fen": "19.99"}), row("T2", map[string]string{"amount_fen": ""})),
			want: []apperr.FieldError{
				{Field: "line 2: amount_fen", Reason: "number"},
				{Field: "line 3: amount_fen", Reason: "required"},
			},
		},
		{
			name: "negative amount",
			in:   file(row("T1", map[string]string{"amount_fen": "-1"})),
			want: []apperr.FieldError{{Field: "line 2: amount_fen", Reason: evidence.FieldOutOfRange}},
		},
		{
			name: "bad time",
			in: file(
				row("T1", map[string]string{"time": "2026-03-14 09:30:00"}),
				row("T2", map[string]string{"time": "2026-03-14T09:30:00"}),
				row("T3", map[string]string{"time": ""}),
			),
			want: []apperr.FieldError{
				{Field: "line 2: time", Reason: "time"},
				{Field: "line 3: time", Reason: "time"},
				{Field: "line 4: time", Reason: "required"},
			},
		},
		{
			name: "outside the cut-off window",
			in: file(
				row("T1", map[string]string{"time": "2026-03-13T23:00:00+08:00"}),
				row("T2", map[string]string{"time": "2026-03-14T23:00:01+08:00"}),
				row("T3", map[string]string{"time": "2026-03-14T15:00:00.000000001Z"}),
				row("T4", map[string]string{"time": "2026-03-13T14:59:59Z"}),
			),
			want: []apperr.FieldError{
				{Field: "line 2: time", Reason: "outside_business_day"},
				{Field: "line 3: time", Reason: "outside_business_day"},
				{Field: "line 4: time", Reason: "outside_business_day"},
				{Field: "line 5: time", Reason: "outside_business_day"},
			},
		},
		{
			name: "trailer count and total mismatch",
			in:   header + "\n" + row("T1", nil) + "\nTRAILER,2,2000\n",
			want: []apperr.FieldError{
				{Field: "line 3: trailer", Reason: "trailer_count"},
				{Field: "line 3: trailer", Reason: "trailer_total"},
			},
		},
		{
			name: "trailer not a number",
			in:   header + "\n" + row("T1", nil) + "\nTRAILER,one,1999\n",
			want: []apperr.FieldError{{Field: "line 3: trailer", Reason: "number"}},
		},
		{
			name: "trailer with the wrong field count",
			in:   header + "\n" + row("T1", nil) + "\nTRAILER,1\n",
			want: []apperr.FieldError{{Field: "line 3: trailer", Reason: "column_count"}},
		},
		{
			name: "missing trailer",
			in:   header + "\n" + row("T1", nil) + "\n",
			want: []apperr.FieldError{{Field: "line 2: trailer", Reason: "trailer_missing"}},
		},
		{
			name: "trailer not last",
			in:   header + "\nTRAILER,1,1999\n" + row("T1", nil) + "\n",
			want: []apperr.FieldError{{Field: "line 3: record", Reason: "trailer_not_last"}},
		},
		{
			name: "duplicate transaction id and status",
			in:   file(row("T1", nil), row("T1", map[string]string{"status": "refunded"}), row("T1", nil)),
			want: []apperr.FieldError{{Field: "line 4: transaction_id", Reason: "duplicate"}},
		},
		{
			name: "a PAN in card_token",
			in:   file(row("T1", map[string]string{"card_token": "4111111111111111"}), row("T2", map[string]string{"card_token": "4111 1111 1111 1111"})),
			want: []apperr.FieldError{
				{Field: "line 2: card_token", Reason: evidence.FieldPANNotAllowed},
				{Field: "line 3: card_token", Reason: evidence.FieldPANNotAllowed},
			},
		},
		{
			name: "invalid USCC",
			in:   file(row("T1", map[string]string{"merchant_uscc": "91350100M000100Y44"}), row("T2", map[string]string{"merchant_uscc": "9135"})),
			want: []apperr.FieldError{
				{Field: "line 2: merchant_uscc", Reason: evidence.FieldUSCCChecksum},
				{Field: "line 3: merchant_uscc", Reason: evidence.FieldUSCCFormat},
			},
		},
		{
			name: "validate problems map to columns",
			in:   file(row("", map[string]string{"status": "settled", "currency": "USD", "mcc": "54x1", "merchant_id": "M 1"})),
			want: []apperr.FieldError{
				{Field: "line 2: transaction_id", Reason: evidence.FieldRequired},
				{Field: "line 2: status", Reason: evidence.FieldUnknownStatus},
				{Field: "line 2: currency", Reason: evidence.FieldCurrencyUnsupported},
				{Field: "line 2: mcc", Reason: evidence.FieldMCCFormat},
				{Field: "line 2: merchant_id", Reason: evidence.FieldInvalidChars},
			},
		},
		{
			name: "quoted newlines keep physical line numbers",
			in: header + "\n" +
				row("T1", map[string]string{"merchant_name": "\"Green\nMart\""}) + "\n" +
				row("T2", map[string]string{"mcc": "12345"}) + "\n" +
				"TRAILER,2,3998\n",
			want: []apperr.FieldError{
				{Field: "line 2: merchant_name", Reason: evidence.FieldInvalidChars},
				{Field: "line 4: mcc", Reason: evidence.FieldMCCFormat},
			},
		},
		{
			name: "record too long",
			in:   file(row("T1", map[string]string{"merchant_name": longName})),
			want: []apperr.FieldError{{Field: "line 2: record", Reason: "record_too_long"}},
		},
		{
			name: "invalid UTF-8",
			in:   file(row("T1", map[string]string{"merchant_name": "Gr\xffen"})),
			want: []apperr.FieldError{{Field: "line 2: encoding", Reason: "utf8"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := settlement.Parse(strings.NewReader(tt.in), day, settlement.Options{})
			if f != nil {
				t.Errorf("Parse returned a File with an error")
			}
			if diff := cmp.Diff(tt.want, fields(t, err)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s\nerr: %v", diff, err)
			}
		})
	}
}
