package points

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// lotPlain has Lot's fields and tags but not its MarshalJSON.
type lotPlain Lot

func TestLotEncodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	str := rapid.OneOf(rapid.StringMatching(`[A-Za-z0-9._:/-]{0,20}`), rapid.String())
	rapid.Check(t, func(t *rapid.T) {
		tm := func(label string) time.Time {
			return time.Unix(rapid.Int64Range(-62135596800+86400, 253402300799-86400).Draw(t, label), rapid.Int64Range(0, 999999999).Draw(t, label+"ns")).
				In(rapid.SampledFrom([]*time.Location{time.UTC, time.FixedZone("X", 8*3600), time.FixedZone("Y", -5*3600-1800)}).Draw(t, label+"loc"))
		}
		l := Lot{
			Key: str.Draw(t, "key"), ID: str.Draw(t, "id"), Account: str.Draw(t, "account"), Issuer: str.Draw(t, "issuer"),
			Amount: rapid.Int64().Draw(t, "amount"), Remaining: rapid.Int64().Draw(t, "rem"), Grams: rapid.Int64().Draw(t, "g"),
			GramsRemaining: rapid.Int64().Draw(t, "gr"), IssuedAt: tm("issued"), ExpiresAt: tm("expires"), Category: str.Draw(t, "cat"),
			RuleVersion:        VersionRef{ID: str.Draw(t, "r"), Version: str.Draw(t, "rv")},
			MethodologyVersion: VersionRef{ID: str.Draw(t, "m"), Version: str.Draw(t, "mv")},
			ProfileVersion:     VersionRef{ID: str.Draw(t, "p"), Version: str.Draw(t, "pv")},
			QuantificationHash: str.Draw(t, "q"), Claim: str.Draw(t, "claim"), ItemID: str.Draw(t, "item"), TxID: str.Draw(t, "tx"),
			SourceLot: str.Draw(t, "src"), Donated: rapid.Int64().Draw(t, "d"), TransferredOut: rapid.Int64().Draw(t, "to"),
			Reversed: rapid.Int64().Draw(t, "rev"), Expired: rapid.Int64().Draw(t, "exp"),
		}
		switch rapid.IntRange(0, 2).Draw(t, "children") {
		case 1:
			l.Children = []string{}
		case 2:
			l.Children = rapid.SliceOf(str).Draw(t, "kids")
		}
		if rapid.Bool().Draw(t, "extended") {
			l.Extension = &LotExtension{LotID: str.Draw(t, "xid"), FromKey: str.Draw(t, "xfrom"), ToKey: str.Draw(t, "xto"),
				From: tm("xf"), To: tm("xt"), Reason: str.Draw(t, "xr"), NoticeRef: str.Draw(t, "xn"), At: tm("xa"), TxID: str.Draw(t, "xtx")}
		}
		want, err := json.Marshal(lotPlain(l))
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(&l)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("encodings differ:\n got %s\nwant %s", got, want)
		}
		var back Lot
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
	})
	bad := Lot{IssuedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := json.Marshal(bad); err == nil {
		t.Error("a year beyond 9999 must not encode")
	}
}

type (
	claimPlain  Claim
	itemPlain   ItemResult
	changePlain Change
	eventPlain  Event
)

func TestRecordEncodingsMatchEncodingJSON(t *testing.T) {
	t.Parallel()
	str := rapid.OneOf(rapid.StringMatching(`[A-Za-z0-9._:/-]{0,12}`), rapid.String())
	ts := func(t *rapid.T, label string) time.Time {
		return time.Unix(rapid.Int64Range(0, 253402300799-86400).Draw(t, label), rapid.Int64Range(0, 999999999).Draw(t, label+"ns")).UTC()
	}
	same := func(t *rapid.T, what string, got []byte, err error, want []byte, werr error) {
		if err != nil || werr != nil {
			t.Fatalf("%s: %v / %v", what, err, werr)
		}
		if string(got) != string(want) {
			t.Fatalf("%s encodings differ:\n got %s\nwant %s", what, got, want)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		c := Claim{Claim: str.Draw(t, "c"), Issuer: str.Draw(t, "i"), ItemID: str.Draw(t, "it"), Account: str.Draw(t, "a"),
			LotKey: str.Draw(t, "lk"), LotID: str.Draw(t, "li"), Points: rapid.Int64().Draw(t, "p"), Grams: rapid.Int64().Draw(t, "g"),
			DebtSettled: rapid.Int64().Draw(t, "d"), IssuedAt: ts(t, "at"), TxID: str.Draw(t, "tx"), Parent: str.Draw(t, "parent"),
			SubReversed: rapid.Int64Range(-2, 2).Draw(t, "sr"), SubExpired: rapid.Int64Range(-2, 2).Draw(t, "se")}
		if rapid.Bool().Draw(t, "reversed") {
			c.Reversal = &Reversal{ItemID: str.Draw(t, "ri"), Reason: str.Draw(t, "rr"), At: ts(t, "rat"), Clawed: 3, Debt: 4, Lots: 2, Truncated: true}
		}
		got, err := json.Marshal(c)
		want, werr := json.Marshal(claimPlain(c))
		same(t, "claim", got, err, want, werr)

		it := ItemResult{Index: rapid.IntRange(0, 999).Draw(t, "idx"), ItemID: str.Draw(t, "iid"), Claim: str.Draw(t, "ic"),
			Status: str.Draw(t, "st"), Reason: str.Draw(t, "re"), LotID: str.Draw(t, "ilot"), LotKey: str.Draw(t, "ikey"),
			DebtSettled: rapid.Int64Range(-2, 2).Draw(t, "ids"), TakenSubClaims: strSlice(t, str, "taken")}
		got, err = json.Marshal(it)
		want, werr = json.Marshal(itemPlain(it))
		same(t, "item", got, err, want, werr)

		ch := Change{Type: str.Draw(t, "type"), Cause: str.Draw(t, "cause"), Action: str.Draw(t, "action"), RequestHash: str.Draw(t, "rh"), Subject: str.Draw(t, "subject")}
		lot := Lot{Key: "k", IssuedAt: ts(t, "li"), ExpiresAt: ts(t, "le"), Children: []string{"x"}}
		payloads := []func(){
			func() { ch.Regulator = &Regulator{MSP: str.Draw(t, "reg"), InitializedAt: ts(t, "ri")} },
			func() { ch.Member = &Member{MSP: str.Draw(t, "m"), Name: str.Draw(t, "mn")} },
			func() { ch.Anchor = &Anchor{ID: "a", Profile: &Profile{Timezone: "UTC"}} },
			func() { ch.Notice = &NoticeBatch{BatchID: str.Draw(t, "nb")} },
			func() { ch.Account = &Account{ID: str.Draw(t, "acc")} },
			func() { ch.Item = &it },
			func() { ch.Claim = &c },
			func() { ch.Lot = &lot },
			func() { ch.Debit = &Debit{LotKey: "k", Points: 3} },
			func() { ch.Debt = &DebtChange{Account: "a", Delta: -1} },
			func() { ch.Transfer = &TransferRecord{From: "a", To: "b"} },
			func() { ch.Receipt = &Receipt{ReceiptID: "r", AcknowledgedAt: &lot.IssuedAt} },
			func() { ch.Family = &Family{ID: "f", Members: []string{"a"}} },
			func() { ch.Charity = &Charity{ID: "c"} },
			func() { ch.Project = &Project{ID: "p"} },
		}
		for i, p := range payloads {
			if rapid.IntRange(0, 3).Draw(t, fmt.Sprint("payload", i)) == 0 {
				p()
			}
		}
		got, err = json.Marshal(ch)
		want, werr = json.Marshal(changePlain(ch))
		same(t, "change", got, err, want, werr)

		ev := Event{V: 1, TxID: str.Draw(t, "etx"), Function: str.Draw(t, "fn"), Time: str.Draw(t, "time"), Caller: str.Draw(t, "caller")}
		if rapid.Bool().Draw(t, "hasChanges") {
			ev.Changes = []Change{ch, {Type: "item_result", Item: &it}}
		}
		got, err = ev.MarshalJSON()
		want, werr = json.Marshal(eventPlain(ev))
		same(t, "event", got, err, want, werr)
	})
}

// strSlice draws a nil, an empty or a filled []string: the three encode
// differently under omitempty and without it.
func strSlice(t *rapid.T, str *rapid.Generator[string], label string) []string {
	switch rapid.IntRange(0, 2).Draw(t, label) {
	case 1:
		return []string{}
	case 2:
		return rapid.SliceOfN(str, 1, 4).Draw(t, label+"s")
	}
	return nil
}

func TestLotViewKeepsItsFields(t *testing.T) {
	t.Parallel()
	v := LotView{Lot: Lot{Key: "k", Amount: 5, Remaining: 5, IssuedAt: time.Unix(0, 0).UTC(), ExpiresAt: time.Unix(10, 0).UTC()}, Due: true, Held: 0}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back LotView
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Due || back.Amount != 5 || back.Key != "k" {
		t.Errorf("round trip %s -> %+v", raw, back)
	}
	v.Due, v.Held = false, 5
	raw, _ = json.Marshal(v)
	if err := json.Unmarshal(raw, &back); err != nil || back.Due || back.Held != 5 {
		t.Errorf("round trip %s -> %+v (%v)", raw, back, err)
	}
}

// issueBatchResultPlain has IssueBatchResult's fields and tags but not its MarshalJSON.
type issueBatchResultPlain IssueBatchResult

func TestIssueBatchResultEncodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	str := rapid.OneOf(rapid.StringMatching(`[A-Za-z0-9._:/-]{0,20}`), rapid.String())
	rapid.Check(t, func(t *rapid.T) {
		r := IssueBatchResult{Issued: rapid.Int().Draw(t, "i"), AlreadyIssued: rapid.Int().Draw(t, "a"),
			ClaimedElsewhere: rapid.Int().Draw(t, "c"), Rejected: rapid.Int().Draw(t, "r")}
		if rapid.Bool().Draw(t, "some") {
			r.Results = []ItemResult{}
			for i := range rapid.IntRange(0, 5).Draw(t, "n") {
				r.Results = append(r.Results, ItemResult{Index: i, ItemID: str.Draw(t, "id"), Claim: str.Draw(t, "claim"),
					Status: str.Draw(t, "status"), Reason: str.Draw(t, "reason"), LotID: str.Draw(t, "lot"),
					LotKey: str.Draw(t, "key"), DebtSettled: rapid.Int64().Draw(t, "debt"), TakenSubClaims: strSlice(t, str, "taken")})
			}
		}
		want, err := json.Marshal(issueBatchResultPlain(r))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.MarshalJSON()
		if err != nil || string(got) != string(want) {
			t.Fatalf("got %s (%v), want %s", got, err, want)
		}
	})
}

func TestAccountDecodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	str := rapid.OneOf(rapid.StringMatching(`[A-Za-z0-9._:/-]{0,20}`), rapid.String())
	rapid.Check(t, func(t *rapid.T) {
		a := Account{ID: str.Draw(t, "id"), Kind: str.Draw(t, "kind"), Issuer: str.Draw(t, "issuer"), TxID: str.Draw(t, "tx"),
			OpenedAt: time.Unix(rapid.Int64Range(0, 253402300799).Draw(t, "at"), rapid.Int64Range(0, 999999999).Draw(t, "ns")).UTC()}
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		// The canonical encoding, and arbitrary edits of it.
		if rapid.Bool().Draw(t, "edit") {
			i := rapid.IntRange(0, len(raw)-1).Draw(t, "at")
			raw = append(raw[:i:i], append([]byte(rapid.StringN(0, 3, 3).Draw(t, "ins")), raw[i+rapid.IntRange(0, min(3, len(raw)-i)).Draw(t, "cut"):]...)...)
		}
		var want Account
		wantErr := json.Unmarshal(raw, &want)
		var got Account
		if !decodeAccount(raw, &got) {
			return // encoding/json decides
		}
		if wantErr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeAccount(%s) = %+v, encoding/json %+v (%v)", raw, got, want, wantErr)
		}
	})
}
