package notices

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/merkle"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

func TestSendAtQuietHours(t *testing.T) {
	t.Parallel()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, sh) }
	night := &QuietHours{Start: 22 * 60, End: 8 * 60, Zone: "Asia/Shanghai"} // spans midnight
	lunch := &QuietHours{Start: 12 * 60, End: 13 * 60, Zone: "Asia/Shanghai"}
	for _, tc := range []struct {
		name          string
		due, deadline time.Time
		q             *QuietHours
		want          time.Time
	}{
		{"no quiet hours", at(10, 23, 0), time.Time{}, nil, at(10, 23, 0)},
		{"outside the window", at(10, 9, 30), at(20, 0, 0), night, at(10, 9, 30)},
		{"late evening waits for the morning", at(10, 23, 0), at(20, 0, 0), night, at(11, 8, 0)},
		{"after midnight waits for the same morning", at(11, 2, 15), at(20, 0, 0), night, at(11, 8, 0)},
		{"the window's first minute is quiet", at(10, 22, 0), at(20, 0, 0), night, at(11, 8, 0)},
		{"its end is not", at(11, 8, 0), at(20, 0, 0), night, at(11, 8, 0)},
		{"a daytime window", at(10, 12, 30), at(20, 0, 0), lunch, at(10, 13, 0)},
		{"never past the expiry it warns of", at(10, 23, 0), at(11, 0, 0), night, at(10, 23, 0)},
		{"not even to the expiry instant", at(10, 23, 0), at(11, 8, 0), night, at(10, 23, 0)},
		{"a minute before expiry is fine", at(10, 23, 0), at(11, 8, 1), night, at(11, 8, 0)},
		{"start = end is no window", at(10, 23, 0), at(20, 0, 0), &QuietHours{Start: 60, End: 60, Zone: "Asia/Shanghai"}, at(10, 23, 0)},
	} {
		if got := SendAt(tc.due, tc.deadline, tc.q); !got.Equal(tc.want) {
			t.Errorf("%s: SendAt = %s, want %s", tc.name, got.In(sh), tc.want)
		}
	}
}

// quietPrefs gives accounts in quiet night-time hours and "mute" no channel.
type quietPrefs struct{}

func (quietPrefs) For(_ context.Context, account string) (Prefs, error) {
	switch account {
	case "mute":
		return Prefs{}, nil
	case "night":
		return Prefs{Channels: []string{ChannelSMS}, Quiet: &QuietHours{Start: 22 * 60, End: 8 * 60, Zone: "Asia/Shanghai"}}, nil
	}
	return Prefs{Channels: []string{ChannelPush}}, nil
}

func offsetsByLot(rs []row) map[string][]int {
	out := map[string][]int{}
	for _, r := range rs {
		out[*r.LotKey] = append(out[*r.LotKey], *r.Offset)
	}
	return out
}

func TestRemindersOncePerLotAndOffset(t *testing.T) {
	e := newEnv(t, "a1", "a2", "night")
	ctx := context.Background()
	base := e.now().Truncate(time.Second)
	keys := e.issue(
		lotSpec{"a1", 100, base.Add(40 * 24 * time.Hour)},
		lotSpec{"a1", 50, base.Add(20 * 24 * time.Hour)},
		lotSpec{"a2", 30, base.Add(3 * 24 * time.Hour)},
		lotSpec{"a2", 20, base.Add(12 * time.Hour)},
	)
	// Two instances create at once: one reminder per lot and offset.
	s1, s2 := e.service(Config{}), e.service(Config{})
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, s := range []*Service{s1, s2} {
		wg.Go(func() {
			n, err := s.CreateReminders(ctx, base)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 3 {
		t.Errorf("two instances created %v reminders, want 3 in all", counts)
	}
	want := map[string][]int{keys[1]: {30}, keys[2]: {7}, keys[3]: {1}}
	if diff := cmp.Diff(want, offsetsByLot(e.rows("kind = 'expiry_reminder'"))); diff != "" {
		t.Fatalf("reminders mismatch (-want +got):\n%s", diff)
	}
	if n, err := s1.CreateReminders(ctx, base.Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("second run created %d (%v), want 0", n, err)
	}
	// 11 days on: the 40-day lot is 29 days from expiry (its 30-day
	// reminder); the 20-day lot, 9 days away, already had its one.
	if n, err := s2.CreateReminders(ctx, base.Add(11*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("day 11 created %d (%v), want 1", n, err)
	}
	// Day 14: the 20-day lot is 6 days away: its 7-day reminder.
	if n, err := s1.CreateReminders(ctx, base.Add(14*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("day 14 created %d (%v), want 1", n, err)
	}
	want = map[string][]int{keys[0]: {30}, keys[1]: {30, 7}, keys[2]: {7}, keys[3]: {1}}
	if diff := cmp.Diff(want, offsetsByLot(e.rows("kind = 'expiry_reminder'"))); diff != "" {
		t.Fatalf("reminders mismatch (-want +got):\n%s", diff)
	}

	t.Run("quiet hours shift a reminder but never past expiry", func(t *testing.T) {
		sh, _ := time.LoadLocation("Asia/Shanghai")
		// The next 23:00 in Shanghai at least an hour ahead.
		l := e.now().Add(time.Hour).In(sh)
		t23 := time.Date(l.Year(), l.Month(), l.Day(), 23, 0, 0, 0, sh)
		if t23.Before(l) {
			t23 = t23.AddDate(0, 0, 1)
		}
		k := e.issue(lotSpec{"night", 10, t23.Add(12 * time.Hour)}, lotSpec{"night", 10, t23.Add(2 * time.Hour)})
		s := e.service(Config{Preferences: quietPrefs{}})
		if _, err := s.CreateReminders(ctx, t23); err != nil {
			t.Fatal(err)
		}
		got := map[string]time.Time{}
		for _, r := range e.rows("account = 'night'") {
			got[*r.LotKey] = r.Next.In(sh)
			if r.Channel != ChannelSMS {
				t.Errorf("channel %q, want the preferred sms", r.Channel)
			}
		}
		wantT := map[string]time.Time{k[0]: t23.Add(9 * time.Hour), k[1]: t23} // 08:00 next morning; at once (08:00 is after the 01:00 expiry)
		if diff := cmp.Diff(wantT, got); diff != "" {
			t.Errorf("send times mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("rights notices reach every account once", func(t *testing.T) {
		now := e.now()
		v2 := e.prof
		v2.Version, v2.PublishedAt, v2.EffectiveAt, v2.ValidityDays = "2", now.Add(-time.Hour), now.Add(40*24*time.Hour), 365
		v3 := v2
		v3.Version, v3.PublishedAt, v3.EffectiveAt, v3.GraceDays = "3", now.Add(-time.Hour), now.Add(50*24*time.Hour), 10
		changes := Changes([]rules.Profile{e.prof, v2, v3}, nil, now)
		if len(changes) != 2 || changes[0].ID != "profile:p@2" || changes[0].Check != nil || changes[1].ID != "profile:p@3" {
			t.Fatalf("changes = %+v", changes)
		}
		// A change published with less than the notice period is still
		// listed, with CheckPublication's verdict.
		v4 := v2
		v4.Version, v4.EffectiveAt = "4", now.Add(5*24*time.Hour)
		if c := Changes([]rules.Profile{e.prof, v4}, nil, now); len(c) != 1 || apperr.ReasonOf(c[0].Check) != "notice_period_too_short" {
			t.Fatalf("a change with 5 days' notice: %+v", c)
		}
		s := e.service(Config{Profiles: []rules.Profile{e.prof, v2}})
		n, err := s.EnqueueNotices(ctx, now)
		if err != nil || n != 3 {
			t.Fatalf("EnqueueNotices = %d, %v; want 3 (a1, a2, night)", n, err)
		}
		if n, err := s.EnqueueNotices(ctx, now); err != nil || n != 0 {
			t.Fatalf("again: %d, %v; want 0", n, err)
		}
		e.wait(e.submit(bank, "OpenAccounts", points.OpenAccountsArgs{Accounts: []points.OpenAccountArgs{{AccountID: "late", Kind: points.KindConsumer}}}))
		if n, err := s.EnqueueNotices(ctx, now); err != nil || n != 1 {
			t.Fatalf("after a new account: %d, %v; want 1", n, err)
		}
		if c := Changes([]rules.Profile{e.prof, v2}, nil, v2.EffectiveAt); len(c) != 0 {
			t.Errorf("a change in effect is not announced any more: %+v", c)
		}
	})
}

// gateway is an httptest SMS/push gateway: it fails the first failFirst
// calls with 503, refuses account "refused" with 400 and otherwise answers
// with a receipt.
type gateway struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	keys      map[string]int // Idempotency-Key -> calls
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	g.keys[r.Header.Get("Idempotency-Key")]++
	switch {
	case m.Account == "refused":
		http.Error(w, `{"error":"unknown device"}`, http.StatusBadRequest)
	case g.calls <= g.failFirst:
		http.Error(w, "try later", http.StatusServiceUnavailable)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"receiptId":"rcpt-`+m.ID+`","status":"accepted"}`)
	}
}

func TestHTTPSenderRetriesAndKeepsReceipt(t *testing.T) {
	e := newEnv(t, "a1", "refused")
	ctx := context.Background()
	g := &gateway{failFirst: 2, keys: map[string]int{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	now := e.now().Truncate(time.Second)
	e.issue(lotSpec{"a1", 40, now.Add(3 * 24 * time.Hour)})
	s := e.service(Config{Sender: &HTTPSender{URL: srv.URL}, RetryBase: 30 * time.Second})
	if n, err := s.CreateReminders(ctx, now); err != nil || n != 1 {
		t.Fatalf("CreateReminders = %d, %v", n, err)
	}
	steps := []struct {
		at        time.Time
		attempted int
		status    string
	}{
		{now, 1, StatusPending},                       // 503
		{now.Add(10 * time.Second), 0, StatusPending}, // backing off
		{now.Add(30 * time.Second), 1, StatusPending}, // 503 again
		{now.Add(89 * time.Second), 0, StatusPending}, // 60 s backoff not over
		{now.Add(90 * time.Second), 1, StatusSent},
	}
	for i, st := range steps {
		n, err := s.Deliver(ctx, st.at)
		if err != nil {
			t.Fatal(err)
		}
		r := e.rows("account = 'a1'")[0]
		if n != st.attempted || r.Status != st.status {
			t.Fatalf("step %d: attempted %d, status %s (%s); want %d, %s", i, n, r.Status, r.LastError, st.attempted, st.status)
		}
	}
	r := e.rows("account = 'a1'")[0]
	wantReceipt := `{"receiptId":"rcpt-` + r.ID + `","status":"accepted"}`
	if r.Attempts != 3 || r.ReceiptID != "rcpt-"+r.ID || string(r.Receipt) != wantReceipt {
		t.Errorf("sent row: attempts %d, receipt %q %s", r.Attempts, r.ReceiptID, r.Receipt)
	}
	if g.keys[r.ID] != 3 {
		t.Errorf("the gateway saw idempotency key %s %d times, want 3", r.ID, g.keys[r.ID])
	}

	// A refusal (4xx) is final at once.
	e.issue(lotSpec{"refused", 5, now.Add(3 * 24 * time.Hour)})
	if _, err := s.CreateReminders(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := e.rows("account = 'refused'")[0]; r.Status != StatusUndelivered || r.Attempts != 1 {
		t.Errorf("refused: status %s after %d attempts (%s); want undelivered after 1", r.Status, r.Attempts, r.LastError)
	}
}

// flaky is a Sender that always fails temporarily for account "down".
type flaky struct{ LogSender }

func (f flaky) Send(ctx context.Context, m Message) (Receipt, error) {
	if m.Account == "down" {
		return Receipt{}, errors.New("gateway unreachable")
	}
	return f.LogSender.Send(ctx, m)
}

func TestGraceAndAnchoredReminderProofs(t *testing.T) {
	e := newEnv(t, "ok", "down", "mute", "unseen")
	ctx := context.Background()
	now := e.now().Truncate(time.Second)
	exp := now.Add(20 * time.Hour)
	keys := e.issue(lotSpec{"ok", 70, exp}, lotSpec{"down", 60, exp}, lotSpec{"mute", 50, exp}, lotSpec{"ok", 40, exp.Add(time.Minute)})
	s := e.service(Config{Preferences: quietPrefs{}, Sender: flaky{}, AnchorAfter: -1, MaxAttempts: 3})
	if n, err := s.CreateReminders(ctx, now); err != nil || n != 4 {
		t.Fatalf("CreateReminders = %d, %v", n, err)
	}
	// A lot issued after the reminder run, expiring before the next one.
	late := e.issue(lotSpec{"unseen", 30, now.Add(30 * time.Minute)})[0]
	for at := now; at.Before(now.Add(3 * time.Hour)); at = at.Add(10 * time.Minute) {
		if _, err := s.Deliver(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	status := map[string]string{}
	for _, r := range e.rows("kind = 'expiry_reminder'") {
		status[r.Account] = r.Status
	}
	if diff := cmp.Diff(map[string]string{"ok": StatusSent, "down": StatusUndelivered, "mute": StatusUndelivered}, status); diff != "" {
		t.Fatalf("statuses mismatch (-want +got):\n%s", diff)
	}

	after := exp.Add(2 * time.Minute)
	n, err := s.RecordGrace(ctx, after)
	if err != nil || n != 3 {
		t.Fatalf("RecordGrace = %d, %v; want 3", n, err)
	}
	if n, err := s.RecordGrace(ctx, after.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("RecordGrace again = %d, %v; want 0", n, err)
	}
	type g struct {
		Points int64
		Until  time.Time
		Reason string
	}
	got := map[string]g{}
	for _, k := range []string{keys[0], keys[1], keys[2], keys[3], late} {
		if r, ok, err := s.Grace(ctx, k); err != nil {
			t.Fatal(err)
		} else if ok {
			got[k] = g{r.Points, r.GraceUntil.UTC(), r.Reason}
		}
	}
	want := map[string]g{
		keys[1]: {60, exp.AddDate(0, 0, 30).UTC(), GraceUndelivered},
		keys[2]: {50, exp.AddDate(0, 0, 30).UTC(), GraceUndelivered},
		late:    {30, now.Add(30*time.Minute).AddDate(0, 0, 30).UTC(), GraceNoReminder},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("grace records mismatch (-want +got):\n%s", diff)
	}

	batches, err := s.AnchorBatches(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 1 || batches[0].Count != 4 || batches[0].Kind != KindReminder {
		t.Fatalf("batches = %+v, want one of the 4 reminders", batches)
	}
	// The root on the ledger is the RFC 6962 root of the stored leaves.
	anchors := evalInto[points.Anchors](e, regulator, "GetAnchors", points.IssuerArgs{Issuer: bank})
	if len(anchors.Notices) != 1 {
		t.Fatalf("ledger notices = %+v", anchors.Notices)
	}
	rows, err := e.pool.Query(ctx, `SELECT leaf FROM notifications WHERE batch_id = $1 ORDER BY leaf_index`, batches[0].BatchID)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []merkle.Hash
	for rows.Next() {
		var leaf []byte
		if err := rows.Scan(&leaf); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, merkle.LeafHash(leaf))
	}
	rows.Close()
	root := merkle.Root(hashes)
	if n := anchors.Notices[0]; n.MerkleRoot != hexOf(root) || n.Count != 4 || n.Kind != KindReminder {
		t.Errorf("anchored %+v, want root %s of 4", n, hexOf(root))
	}
	if b, err := s.AnchorBatches(ctx, after.Add(time.Hour)); err != nil || len(b) != 0 {
		t.Errorf("anchoring again: %+v, %v; want nothing", b, err)
	}

	// The expired lot of "ok" proves its reminder; a forged leaf does not.
	p, err := s.ProveLotReminded(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAnchored(ctx, e.led, regulator, p); err != nil {
		t.Fatalf("a genuine proof failed: %v", err)
	}
	var leaf Leaf
	if err := json.Unmarshal(p.Leaf, &leaf); err != nil {
		t.Fatal(err)
	}
	if leaf.LotKey != keys[0] || leaf.Status != StatusSent || leaf.Points != 70 || leaf.ReceiptSHA256 == "" {
		t.Errorf("leaf %+v", leaf)
	}
	forged := *p
	leaf.LotKey = keys[1] // claim the unreminded lot was reminded
	forged.Leaf, _ = json.Marshal(leaf)
	if err := VerifyAnchored(ctx, e.led, regulator, &forged); !errors.Is(err, merkle.ErrMismatch) {
		t.Errorf("a forged leaf: %v, want ErrMismatch", err)
	}
	if _, err := s.ProveLotReminded(ctx, keys[1]); apperr.ReasonOf(err) != "no_delivered_reminder" {
		t.Errorf("the undelivered lot: %v, want no_delivered_reminder", err)
	}
}

func TestSweepRecordsExpiryInChunks(t *testing.T) {
	accounts := []string{"s1", "s2", "s3"}
	e := newEnv(t, accounts...)
	ctx := context.Background()
	exp := e.now().Add(time.Hour).Truncate(time.Second)
	var specs []lotSpec
	var total int64
	for i := range 23 {
		pts := int64(10 + i)
		specs = append(specs, lotSpec{accounts[i%3], pts, exp.Add(time.Duration(i) * time.Second)})
		total += pts
	}
	e.issue(append(specs, lotSpec{"s1", 1000, exp.Add(48 * time.Hour)})...)
	e.offset.Store(int64(2 * time.Hour)) // the ledger's clock moves past the expiry

	// Two instances run their cycles at once; the advisory lock lets one
	// sweep (the other skips, or finds nothing left).
	s1, s2 := e.service(Config{SweepLimit: 5, AnchorAfter: -1}), e.service(Config{SweepLimit: 5, AnchorAfter: -1})
	var wg sync.WaitGroup
	reps := make([]CycleReport, 2)
	for i, s := range []*Service{s1, s2} {
		wg.Go(func() {
			r, err := s.Cycle(ctx, e.now())
			if err != nil {
				t.Error(err)
			}
			reps[i] = r
		})
	}
	wg.Wait()
	lots, pts, txs := reps[0].Sweep.Lots+reps[1].Sweep.Lots, reps[0].Sweep.Points+reps[1].Sweep.Points, reps[0].Sweep.Txs+reps[1].Sweep.Txs
	if lots != 23 || pts != total {
		t.Fatalf("swept %d lots, %d points; want 23, %d (%+v)", lots, pts, total, reps)
	}
	if txs < 5 {
		t.Errorf("%d sweep transactions for 23 lots at 5 a transaction", txs)
	}
	var logged int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM expiry_sweeps WHERE issuer = $1`, bank).Scan(&logged); err != nil || logged != txs {
		t.Errorf("expiry_sweeps has %d rows (%v), want %d", logged, err, txs)
	}

	// Conservation on the ledger: what was issued is held or expired.
	cp := evalInto[points.ConservationPage](e, regulator, "GetConservation", points.ConservationArgs{Issuer: bank})
	if cp.Bookmark != "" || len(cp.Issuers) != 1 {
		t.Fatalf("conservation page %+v", cp)
	}
	got := cp.Issuers[0]
	if got.Issued != total+1000 || got.Expired != total || got.Held != 1000 || !got.Balanced() {
		t.Errorf("conservation %+v: want issued %d = held 1000 + expired %d", got, total+1000, total)
	}
	// Every lot's expiry is written down: no due lot has points left.
	for _, a := range accounts {
		page := evalInto[points.LotsPage](e, bank, "GetLots", points.PageArgs{Account: a})
		for _, l := range page.Lots {
			if l.Due && (l.Remaining != 0 || l.Expired != l.Amount) {
				t.Errorf("lot %s: due with remaining %d, expired %d of %d", l.Key, l.Remaining, l.Expired, l.Amount)
			}
		}
	}
}

func hexOf(h merkle.Hash) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 64)
	for _, c := range h {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}

// TestGraceExtensionBeforeExpiry: in the last reminder window, the lot of a
// holder no reminder reached is extended on the ledger by the profile's
// graceDays, once; a reached holder's lot is not, nor is a lot whose
// reminder is still pending.
func TestGraceExtensionBeforeExpiry(t *testing.T) {
	e := newEnv(t, "ok", "mute")
	ctx := context.Background()
	now := e.now().Truncate(time.Second)
	exp := now.Add(20 * time.Hour) // inside the 1-day window
	keys := e.issue(lotSpec{"ok", 70, exp}, lotSpec{"mute", 50, exp})
	s := e.service(Config{Preferences: quietPrefs{}, AnchorAfter: -1})

	// The cycle makes the last reminders; while they are pending nothing
	// is extended.
	r, err := s.Cycle(ctx, now)
	if err != nil || r.Reminders != 2 || r.Extended != 0 {
		t.Fatalf("first cycle = %+v, %v; want 2 reminders, no extension", r, err)
	}
	if _, err := s.Deliver(ctx, now); err != nil {
		t.Fatal(err)
	}
	r, err = s.Cycle(ctx, now.Add(time.Minute))
	if err != nil || r.Extended != 1 {
		t.Fatalf("second cycle = %+v, %v; want 1 extension", r, err)
	}

	lotOf := func(account string) points.Lot {
		t.Helper()
		ls := evalInto[points.LotsPage](e, bank, "GetLots", points.PageArgs{Account: account}).Lots
		if len(ls) != 1 {
			t.Fatalf("%s holds %d lots", account, len(ls))
		}
		return ls[0].Lot
	}
	until := exp.Add(30 * 24 * time.Hour).UTC()
	if l := lotOf("mute"); l.Key == keys[1] || !l.ExpiresAt.Equal(until) || l.Remaining != 50 || l.Extension == nil ||
		l.Extension.FromKey != keys[1] || l.Extension.Reason != GraceUndelivered || l.Extension.NoticeRef == "" {
		t.Errorf("undeliverable holder's lot %+v (extension %+v); want it moved to expire at %s", l, l.Extension, until)
	}
	if l := lotOf("ok"); l.Key != keys[0] || !l.ExpiresAt.Equal(exp) || l.Extension != nil {
		t.Errorf("reached holder's lot %+v; want it unchanged", l)
	}
	g, ok, err := s.Grace(ctx, keys[1])
	if err != nil || !ok || !g.GraceUntil.Equal(until) || g.Points != 50 || g.GraceDays != 30 || g.Reason != GraceUndelivered {
		t.Errorf("grace record %+v, %v, %v", g, ok, err)
	}
	if _, ok, _ := s.Grace(ctx, keys[0]); ok {
		t.Errorf("the reached holder has a grace record")
	}

	// Once the projection has the move, later cycles leave the lot alone.
	e.wait(e.submit(bank, "GetBalance", points.AccountArgs{Account: "mute"}))
	if l := lotOf("mute"); l.Key == keys[1] {
		t.Fatal("the lot did not move")
	}
	for _, at := range []time.Time{now.Add(2 * time.Minute), exp.Add(-time.Minute)} {
		if _, err := s.Deliver(ctx, at); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Cycle(ctx, at); err != nil || r.Extended != 0 || r.Grace != 0 {
			t.Errorf("cycle at %s = %+v, %v; want no extension, no grace record", at, r, err)
		}
	}
}
