package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// cardTransactionsEdge runs exactly what the card-transactions handler runs
// on a body before the pipeline sees it: BindJSON into the request type,
// the conversion to domain transactions, and the domain validation.
func cardTransactionsEdge(body []byte) ([]evidence.CardTransaction, error) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodPost, "/v1/partners/p/card-transactions", bytes.NewReader(body))
	c.Request.Header.Set("Content-Type", "application/json")
	var req cardTransactionsRequest
	if err := BindJSON(c, &req); err != nil {
		return nil, err
	}
	txs := make([]evidence.CardTransaction, len(req.Transactions))
	for i, t := range req.Transactions {
		txs[i] = t.domain()
	}
	return txs, domainErrors("transactions", txs)
}

const fuzzValidCard = `{"transactions":[{"transactionId":"T1","status":"cleared","cardToken":"tok_1","amountFen":599900,
"currency":"CNY","mcc":"5722","merchantId":"M1","merchantName":"Store","merchantUscc":"91310000MA1FL0000N",
"time":"2026-11-19T10:00:00+08:00","invoiceNumber":"FP-1",
"lineItems":[{"line":1,"model":"BCD-470WGHFD5DSMU1","brand":"海尔","category":"冰箱","quantity":1,"unitPriceFen":599900}]}]}`

// FuzzCardTransactionsBody: whatever bytes a partner sends, the edge never
// panics, refuses with a client error (never an internal one), and what it
// accepts is a valid domain transaction the pipeline can hash.
func FuzzCardTransactionsBody(f *testing.F) {
	gin.SetMode(gin.TestMode)
	fare := strings.NewReplacer(`"mcc":"5722"`, `"mcc":"4111"`, `,"invoiceNumber":"FP-1"`, `,"operatorTripId":"trip:42"`).Replace(fuzzValidCard)
	for _, seed := range []string{
		fuzzValidCard,
		fare,
		strings.Replace(fuzzValidCard, `"tok_1"`, `"4111111111111111"`, 1),              // a PAN as token
		strings.Replace(fuzzValidCard, `+08:00`, `+23:59`, 1),                           // extreme offset
		strings.Replace(fuzzValidCard, `2026-11-19T10:00:00`, `0000-01-01T00:00:00`, 1), // year 0, -1 in UTC
		strings.Replace(fuzzValidCard, `"quantity":1`, `"quantity":-1`, 1),
		strings.Replace(fuzzValidCard, `"amountFen":599900`, `"amountFen":1e3`, 1),
		strings.Replace(fuzzValidCard, `"line":1`, `"line":1},{"line":1`, 1),
		strings.Replace(fuzzValidCard, `"status":"cleared"`, `"status":"cleared","Status":"refunded"`, 1),
		`{"transactions":[]}`, `{"transactions":null}`, `{}`, `[]`, `null`, `{"transactions":[{}]}`, `{"transactions":[[]]}`,
		`{"transactions":[{"time":"not a time"}]}`, `{"transactions":[{"time":0}]}`, `{"transactions":[{"time":{"a":1}}]}`, `{"transactions":[{"merchantUscc":"91310000MA1FL0000N\u0000"}]}`,
		fuzzValidCard + ` {}`, `{"transactions":[{"lineItems":[{"line":9223372036854775808}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		txs, err := cardTransactionsEdge(body)
		if err != nil {
			e := apperr.As(err)
			if e == nil {
				t.Fatalf("non-application error (would be a 500): %v", err)
			}
			switch s := StatusOf(err); s {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("status %d (%s/%s) for a client's body", s, e.Code, e.Reason)
			}
			if e.Reason == "" {
				t.Fatalf("error without a reason: %v", e)
			}
			for _, fe := range e.Fields {
				if fe.Reason == "" { // Field "" is the body itself
					t.Fatalf("field error without a reason: %+v", fe)
				}
			}
			return
		}
		if len(txs) < 1 || len(txs) > MaxTransactionsPerRequest {
			t.Fatalf("accepted %d transactions", len(txs))
		}
		for i, tx := range txs {
			if fe := tx.Validate(); len(fe) != 0 {
				t.Fatalf("transaction %d accepted with domain errors %+v", i, fe)
			}
			// The pipeline hashes each event's canonical form (time in UTC)
			// and cannot fail there: it must marshal.
			tx.Time = tx.Time.UTC()
			if _, err := json.Marshal(tx); err != nil {
				t.Fatalf("transaction %d accepted but its canonical form does not marshal: %v", i, err)
			}
		}
	})
}

// TestCardTransactionsEdgeAcceptsTheSeed keeps the fuzz target honest: its
// valid seed passes, so the property "accepted => valid" is exercised.
func TestCardTransactionsEdgeAcceptsTheSeed(t *testing.T) {
	gin.SetMode(gin.TestMode)
	txs, err := cardTransactionsEdge([]byte(fuzzValidCard))
	if err != nil || len(txs) != 1 || len(txs[0].LineItems) != 1 || txs[0].LineItems[0].Model != "BCD-470WGHFD5DSMU1" {
		t.Fatalf("valid seed: %v %+v", err, txs)
	}
	_, err = cardTransactionsEdge([]byte(strings.Replace(fuzzValidCard, `"tok_1"`, `"4111111111111111"`, 1)))
	if e := apperr.As(err); e == nil || StatusOf(err) != http.StatusBadRequest || len(e.Fields) != 1 || e.Fields[0].Field != "transactions[0].cardToken" {
		t.Fatalf("PAN as card token: %v", err)
	}
	// A time that is not RFC 3339 is the client's mistake: 400 naming the
	// field, not an internal error.
	_, err = cardTransactionsEdge([]byte(strings.Replace(fuzzValidCard, `2026-11-19T10:00:00+08:00`, `yesterday`, 1)))
	if e := apperr.As(err); e == nil || StatusOf(err) != http.StatusBadRequest || len(e.Fields) != 1 || e.Fields[0].Field != "transactions[0].time" {
		t.Fatalf("malformed time: HTTP %d: %v", StatusOf(err), err)
	}
	_, err = cardTransactionsEdge([]byte(strings.Replace(fuzzValidCard, `"2026-11-19T10:00:00+08:00"`, `20261119`, 1)))
	if e := apperr.As(err); e == nil || StatusOf(err) != http.StatusBadRequest || len(e.Fields) != 1 || e.Fields[0].Field != "transactions[0].time" {
		t.Fatalf("a number as time: HTTP %d: %v", StatusOf(err), err)
	}
}
