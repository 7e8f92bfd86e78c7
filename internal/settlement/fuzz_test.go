package settlement_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/settlement"
)

// FuzzParse: Parse never panics and either returns a File that passes every
// check again (each transaction valid, in the day's window, unique, summing
// to the total) or an *apperr.Error; never both, never a plain error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		file(row("T1", nil), row("T1", map[string]string{"status": "refunded", "amount_fen": "1"})),
		"\uFEFF" + strings.ReplaceAll(file(row("T1", map[string]string{"merchant_name": `"a,""b"""`})), "\n", "\r\n"),
		file(row("T1", map[string]string{"time": "2026-03-14T15:00:00Z"})),
		file(row("T1", map[string]string{"card_token": "4111111111111111"})),
		header + "\n" + row("T1", map[string]string{"merchant_name": "\"x\ny\""}) + "\nTRAILER,1,1999\n",
		header + "\nTRAILER,0,0\n",
		header + "\nTRAILER,1,1999\n" + row("T1", nil),
		"",
	} {
		f.Add([]byte(s))
	}
	from, to, err := settlement.Window(day)
	if err != nil {
		f.Fatal(err)
	}
	opts := settlement.Options{MaxLines: 1000, MaxBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, in []byte) {
		file, err := settlement.Parse(bytes.NewReader(in), day, opts)
		if err != nil {
			if file != nil {
				t.Fatalf("Parse returned a File and %v", err)
			}
			if apperr.As(err) == nil {
				t.Fatalf("Parse: %v is not an *apperr.Error", err)
			}
			return
		}
		if len(file.Lines) != len(file.Transactions) {
			t.Fatalf("%d lines for %d transactions", len(file.Lines), len(file.Transactions))
		}
		type key struct{ id, status string }
		seen := make(map[key]bool)
		var sum int64
		prev := 1
		for i, tx := range file.Transactions {
			if fes := tx.Validate(); len(fes) != 0 {
				t.Fatalf("transaction %d fails Validate: %v", i, fes)
			}
			if !tx.Time.After(from) || tx.Time.After(to) {
				t.Fatalf("transaction %d at %v outside (%v, %v]", i, tx.Time, from, to)
			}
			k := key{tx.TransactionID, tx.Status}
			if seen[k] {
				t.Fatalf("duplicate %v", k)
			}
			seen[k] = true
			sum += tx.AmountFen
			if file.Lines[i] <= prev {
				t.Fatalf("line %d after line %d", file.Lines[i], prev)
			}
			prev = file.Lines[i]
		}
		if sum != file.AmountTotalFen {
			t.Fatalf("sum %d, AmountTotalFen %d", sum, file.AmountTotalFen)
		}
	})
}
