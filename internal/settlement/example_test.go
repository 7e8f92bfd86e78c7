package settlement_test

import (
	"fmt"
	"strings"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/settlement"
)

// The example of docs/partners.md, "Settlement files".
func ExampleParse() {
	const in = `transaction_id,status,card_token,amount_fen,currency,mcc,merchant_id,merchant_name,merchant_uscc,time,invoice_number,operator_trip_id
T1,cleared,tok_T1,1999,CNY,5411,M001,"Green Mart, ""Pudong""",91350100M000100Y43,2026-03-14T09:30:00+08:00,INV-001,
T1,refunded,tok_T1,500,CNY,5411,M001,Green Mart,91350100M000100Y43,2026-03-14T15:00:00Z,,
T2,cleared,tok_T2,200,CNY,4111,M900,Metro Line 2,,2026-03-13T23:00:00.001+08:00,,trip:42
TRAILER,3,2699
`
	f, err := settlement.Parse(strings.NewReader(in), "2026-03-14", settlement.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, tx := range f.Transactions {
		fmt.Println(f.Lines[i], tx.TransactionID, tx.Status, tx.AmountFen, tx.MerchantName)
	}
	fmt.Println("total", f.AmountTotalFen)

	// The same file for the next day: every record is outside the window.
	_, err = settlement.Parse(strings.NewReader(in), "2026-03-15", settlement.Options{})
	e := apperr.As(err)
	fmt.Println(e.Reason, e.Detail)
	for _, fe := range e.Fields {
		fmt.Println(fe.Field, fe.Reason)
	}
	// Output:
	// 2 T1 cleared 1999 Green Mart, "Pudong"
	// 3 T1 refunded 500 Green Mart
	// 4 T2 cleared 200 Metro Line 2
	// total 2699
	// file_invalid 3 problems in 3 lines; nothing was applied
	// line 2: time outside_business_day
	// line 3: time outside_business_day
	// line 4: time outside_business_day
}
