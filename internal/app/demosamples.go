package app

import (
	"encoding/json"
	"time"

	"github.com/greenpoints/greenpoints/internal/partnerclient"
)

// Sample partner requests of the demo ('greenpoints partner send --sample'),
// dated relative to now so that they are due at once: purchases cleared four
// days ago (past the 72-hour hold), trips ridden yesterday (a day's transit
// grant is due when the local day ends).

// DemoSampleTxIDs are the transaction ids the samples use, in the order a
// user sees them.
var DemoSampleTxIDs = struct {
	Fridge, Washer, Fare, TopUp, Pending string
}{"demo-tx-fridge-alice", "demo-tx-washer-bob", "demo-tx-fare-bob", "demo-tx-topup-alice", "demo-tx-aircon-alice"}

// DemoSampleTrips are the trip ids of the operator's sample.
var DemoSampleTrips = []string{"M-demo-alice-1", "B-demo-alice-2", "M-demo-bob-1"}

var shanghai = time.FixedZone("CST", 8*3600)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// DemoFridge is a cleared purchase of one energy-label grade-1 fridge at the
// demo appliance store (load and crash tests send many of them).
func DemoFridge(txID, token, invoice string, at time.Time) partnerclient.CardTransaction {
	return store(txID, "cleared", token, at, 599900, invoice, partnerclient.LineItem{Line: 1, Model: "BCD-470WGHFD5DSMU1", Brand: "海尔",
		Category: "冰箱", Quantity: 1, UnitPriceFen: 599900})
}

func store(id, status, token string, at time.Time, amount int64, invoice string, lines ...partnerclient.LineItem) partnerclient.CardTransaction {
	return partnerclient.CardTransaction{TransactionID: id, Status: status, CardToken: token, AmountFen: amount, Currency: "CNY", MCC: "5722",
		MerchantID: "M-DEMO-APPLIANCES", MerchantName: "Demo Appliance Store", MerchantUSCC: DemoRetailerUSCC,
		Time: at, InvoiceNumber: invoice, LineItems: lines}
}

// DemoCardSample is the bank's sample: two itemised appliance purchases, a
// metro fare paid by card with the operator's ride-level trip id, a metro
// card top-up (never a trip), and an authorised purchase not cleared yet.
func DemoCardSample(now time.Time) []byte {
	cleared := now.In(shanghai).AddDate(0, 0, -4)
	yesterday := now.In(shanghai).AddDate(0, 0, -1)
	fare := partnerclient.CardTransaction{TransactionID: DemoSampleTxIDs.Fare, Status: "cleared", CardToken: "tok_demo_bob_1", AmountFen: 500,
		Currency: "CNY", MCC: "4111", MerchantID: "M-DEMO-METRO", MerchantName: "Demo Metro", MerchantUSCC: DemoMetroUSCC,
		Time: yesterday, OperatorTripID: "M-demo-bob-2"}
	topUp := fare
	topUp.TransactionID, topUp.CardToken, topUp.AmountFen, topUp.OperatorTripID = DemoSampleTxIDs.TopUp, "tok_demo_alice_1", 10000, ""
	return mustJSON(map[string]any{"transactions": []partnerclient.CardTransaction{
		store(DemoSampleTxIDs.Fridge, "cleared", "tok_demo_alice_1", cleared, 599900, "FP-DEMO-0001",
			lineItem(1, "BCD-470WGHFD5DSMU1", "海尔", "冰箱", 1, 599900)),
		store(DemoSampleTxIDs.Washer, "cleared", "tok_demo_bob_1", cleared, 329900, "FP-DEMO-0002",
			lineItem(1, "EG100HPRO6S", "海尔", "洗衣机", 1, 329900)),
		fare,
		topUp,
		store(DemoSampleTxIDs.Pending, "authorised", "tok_demo_alice_1", now.In(shanghai).Add(-time.Hour), 459900, "",
			lineItem(1, "KFR-35GW/NhAe1BAj", "格力", "空调", 1, 459900)),
	}})
}

// DemoRefundSample refunds Bob's washing machine after it was issued.
func DemoRefundSample(now time.Time) []byte {
	return mustJSON(map[string]any{"transactions": []partnerclient.CardTransaction{
		store(DemoSampleTxIDs.Washer, "refunded", "tok_demo_bob_1", now.In(shanghai).Add(-time.Minute), 329900, "FP-DEMO-0002",
			lineItem(1, "EG100HPRO6S", "海尔", "洗衣机", 1, 329900)),
	}})
}

// DemoTripSample is the metro operator's sample: Alice's metro and bus rides
// yesterday (the bus without a known distance: the operator's published
// average applies) and one of Bob's.
func DemoTripSample(now time.Time) []byte {
	y := now.In(shanghai).AddDate(0, 0, -1)
	day := time.Date(y.Year(), y.Month(), y.Day(), 8, 5, 0, 0, shanghai)
	return mustJSON(map[string]any{"trips": []partnerclient.Trip{
		{TripID: DemoSampleTrips[0], CardToken: "metro_alice", Mode: "metro", BoardedAt: day, AlightedAt: day.Add(31 * time.Minute),
			BoardingStop: "Futian", AlightingStop: "Science Park", DistanceMeters: 12_400},
		{TripID: DemoSampleTrips[1], CardToken: "metro_alice", Mode: "bus", BoardedAt: day.Add(9 * time.Hour), AlightedAt: day.Add(9*time.Hour + 20*time.Minute),
			BoardingStop: "Science Park", AlightingStop: "Shenzhen Bay"},
		{TripID: DemoSampleTrips[2], CardToken: "metro_bob", Mode: "metro", BoardedAt: day.Add(time.Hour), AlightedAt: day.Add(time.Hour + 18*time.Minute),
			BoardingStop: "Luohu", AlightingStop: "Shopping Park", DistanceMeters: 7_300},
	}})
}

// lineItem is one invoice line of a sample purchase.
func lineItem(n int, model, brand, category string, quantity, unitPriceFen int64) partnerclient.LineItem {
	return partnerclient.LineItem{Line: n, Model: model, Brand: brand, Category: category, Quantity: quantity, UnitPriceFen: unitPriceFen}
}
