package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newStore returns a Store on a fresh database with two banks.
func newStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewDB(t)
	km, err := keys.NewFileManager(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"bank-a", "bank-b"} {
		if _, err := pool.Exec(t.Context(), `INSERT INTO partners (id, kind, name, uscc) VALUES ($1, 'bank', $1, '91110000100000000R')`, id); err != nil {
			t.Fatal(err)
		}
	}
	return NewStore(pool, km), pool
}

func create(t *testing.T, s *Store, np NewPerson) *Person {
	t.Helper()
	p, err := s.Create(t.Context(), np)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var webhookSeq atomic.Int64

// signedReq is a partner request as the API would pass it after verifying
// the signature (the signature itself is the API's and the e2e tests' concern).
func signedReq(partner, route string, body any) SignedRequest {
	b, _ := json.Marshal(body)
	return SignedRequest{Partner: partner, WebhookID: fmt.Sprintf("msg_%d", webhookSeq.Add(1)),
		Route: route, Body: b, Signature: "v1a,test", KeyID: "k1", SignedAt: time.Now()}
}

func consent(version string) *ConsentInput {
	return &ConsentInput{Version: version, GrantedAt: time.Now().Add(-time.Minute), Channel: "app"}
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	return apperr.ReasonOf(err)
}

// TestPersonalDataEncryptedAndErased: fields are stored only sealed, read
// back decrypted, and after erasure the data key is gone, the sealed values
// with it, the person's card links and preferences are deleted, and nothing
// of theirs can be read back.
func TestPersonalDataEncryptedAndErased(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	np := NewPerson{Name: "张小明 Zhang", Phone: "+8613800138000", BirthDate: "1990-05-17"}
	p := create(t, s, np)
	if len(p.Account) != 34 || p.Account[:2] != "c-" {
		t.Errorf("account id %q is not c- and 32 hex digits", p.Account)
	}
	if other := create(t, s, np); other.Account == p.Account {
		t.Error("two people with the same data got the same account: ids must be random")
	}
	got, err := s.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("read back mismatch (-want +got):\n%s", diff)
	}
	// Stored sealed: no plaintext in the row.
	var name, phone, birth, wrapped []byte
	if err := pool.QueryRow(ctx, `SELECT c.name_sealed, c.phone_sealed, c.birth_date_sealed, k.wrapped_key
		FROM consumers c JOIN consumer_keys k ON k.person_id = c.id WHERE c.id = $1`, p.ID).Scan(&name, &phone, &birth, &wrapped); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{name, phone, birth} {
		if bytes.Contains(f, []byte("Zhang")) || bytes.Contains(f, []byte("13800138000")) || bytes.Contains(f, []byte("1990")) {
			t.Errorf("sealed column holds plaintext: %q", f)
		}
	}
	// A ciphertext moved to another column does not open: the aad binds it.
	dk, err := s.keys.UnwrapKey(ctx, wrapped, keyAAD(p.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.OpenData(dk, name, fieldAAD(p.ID, "phone")); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("name opened as phone: %v", err)
	}

	if _, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 1), LinkInput{CardToken: "tok_1", Account: p.Account, Consent: consent("v1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPreferences(ctx, p.Account, Preferences{SMS: true, QuietStart: "22:00", QuietEnd: "07:00", TimeZone: "Asia/Shanghai"}); err != nil {
		t.Fatal(err)
	}

	e, err := s.Erase(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Erasure{Account: p.Account, CardLinks: 1, ConsentsWithdrawn: 1}); !cmp.Equal(want, e) {
		t.Errorf("erasure %+v, want %+v", e, want)
	}
	// The wrapped key row is gone: nothing can unwrap the data key again,
	// so the sealed values taken before (a backup, a leak) stay sealed.
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM consumer_keys WHERE person_id = $1`, p.ID); n != 0 {
		t.Errorf("%d data key rows left after erasure", n)
	}
	if n := count(`SELECT count(*) FROM consumers WHERE id = $1 AND name_sealed IS NULL AND phone_sealed IS NULL
		AND birth_date_sealed IS NULL AND erased_at IS NOT NULL AND account = $2`, p.ID, p.Account); n != 1 {
		t.Error("no tombstone with cleared fields after erasure")
	}
	if n := count(`SELECT count(*) FROM card_links WHERE account = $1`, p.Account); n != 0 {
		t.Errorf("%d card links left after erasure", n)
	}
	if n := count(`SELECT count(*) FROM notification_prefs`); n != 0 {
		t.Errorf("%d preference rows left after erasure", n)
	}
	if n := count(`SELECT count(*) FROM callbacks WHERE event_type = 'card_link.erased' AND partner_id = 'bank-a'`); n != 1 {
		t.Errorf("bank told of the erased link %d times, want 1", n)
	}
	for name, err := range map[string]error{
		"Get":         func() error { _, err := s.Get(ctx, p.ID); return err }(),
		"ByAccount":   func() error { _, err := s.ByAccount(ctx, p.Account); return err }(),
		"Preferences": func() error { _, err := s.Preferences(ctx, p.Account); return err }(),
		"Consents":    func() error { _, err := s.Consents(ctx, p.Account); return err }(),
		"LinkCard": func() error {
			_, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 2), LinkInput{CardToken: "tok_2", Account: p.Account, Consent: consent("v1")})
			return err
		}(),
	} {
		if apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("%s after erasure: %v, want not found", name, err)
		}
	}
	// Erasing twice is harmless; the other person is untouched.
	if e, err := s.Erase(ctx, p.ID); err != nil || !e.AlreadyErased {
		t.Errorf("second erasure: %+v %v", e, err)
	}
	if n := count(`SELECT count(*) FROM consumer_keys`); n != 1 {
		t.Errorf("%d data keys left, want the other person's 1", n)
	}
}

func TestCreateValidates(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	_, err := s.Create(t.Context(), NewPerson{Name: "a\x00b", Phone: "13800138000", BirthDate: "2990-01-01"})
	e := apperr.As(err)
	if e == nil || e.Reason != ReasonValidationFailed {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Field+":"+f.Reason)
	}
	want := []string{"name:invalid_chars", "phone:phone_format", "birthDate:out_of_range"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("field errors mismatch (-want +got):\n%s", diff)
	}
}

// TestCardLinkConsent: no link without a complete consent; a child's link
// needs a guardian's; a bank's links are its own; replays and withdrawals.
func TestCardLinkConsent(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	adult := create(t, s, NewPerson{Name: "Adult", Phone: "+8613800000001", BirthDate: "1980-01-01"})
	child := create(t, s, NewPerson{Name: "Child", Phone: "+8613800000002", BirthDate: time.Now().AddDate(-10, 0, 0).Format(time.DateOnly)})

	for name, tc := range map[string]struct {
		in     LinkInput
		reason string
	}{
		"no consent":         {LinkInput{CardToken: "tok_a", Account: adult.Account}, ReasonConsentRequired},
		"consent incomplete": {LinkInput{CardToken: "tok_a", Account: adult.Account, Consent: &ConsentInput{Version: "v1"}}, ReasonConsentRequired},
		"consent in future": {LinkInput{CardToken: "tok_a", Account: adult.Account,
			Consent: &ConsentInput{Version: "v1", Channel: "app", GrantedAt: time.Now().Add(time.Hour)}}, ReasonConsentRequired},
		"card number":     {LinkInput{CardToken: "4111111111111111", Account: adult.Account, Consent: consent("v1")}, ReasonValidationFailed},
		"unknown account": {LinkInput{CardToken: "tok_a", Account: "c-00000000000000000000000000000000", Consent: consent("v1")}, ReasonAccountNotFound},
		"child alone":     {LinkInput{CardToken: "tok_c", Account: child.Account, Consent: consent("v1")}, ReasonGuardianRequired},
	} {
		_, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", name), tc.in)
		if got := reasonOf(t, err); got != tc.reason {
			t.Errorf("%s: reason %q, want %q (%v)", name, got, tc.reason, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM card_links) + (SELECT count(*) FROM consents) + (SELECT count(*) FROM partner_requests)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows recorded by refused links", n)
	}

	withGuardian := consent("v1")
	withGuardian.GuardianConsent = true
	if st, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 1), LinkInput{CardToken: "tok_c", Account: child.Account, Consent: withGuardian}); err != nil || st.Status != http.StatusCreated {
		t.Fatalf("child with guardian: %+v %v", st, err)
	}

	req := signedReq("bank-a", "card-links", 2)
	in := LinkInput{CardToken: "tok_a", Account: adult.Account, Consent: consent("v1")}
	first, err := s.LinkCard(ctx, req, in)
	if err != nil || first.Status != http.StatusCreated {
		t.Fatalf("link: %+v %v", first, err)
	}
	replay, err := s.LinkCard(ctx, req, in)
	if err != nil || !replay.Replayed || !bytes.Equal(replay.Body, first.Body) || replay.Status != first.Status {
		t.Errorf("replay: %+v %v", replay, err)
	}
	other := req
	other.Body = []byte(`{"other":true}`)
	if _, err := s.LinkCard(ctx, other, in); reasonOf(t, err) != ReasonWebhookIDReused {
		t.Errorf("reused webhook id: %v", err)
	}
	again, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 3), in)
	if err != nil || again.Status != http.StatusOK {
		t.Errorf("same link again: %+v %v", again, err)
	}
	// Another account cannot take the token while it is linked.
	if _, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 4), LinkInput{CardToken: "tok_a", Account: child.Account, Consent: withGuardian}); reasonOf(t, err) != ReasonCardAlreadyLinked {
		t.Errorf("taking a linked token: %v", err)
	}
	// Bank B's token with the same name is its own link.
	if st, err := s.LinkCard(ctx, signedReq("bank-b", "card-links", 5), LinkInput{CardToken: "tok_a", Account: child.Account, Consent: withGuardian}); err != nil || st.Status != http.StatusCreated {
		t.Errorf("bank B's own token: %+v %v", st, err)
	}
	// A new consent version renews the consent: one live, one withdrawn.
	in.Consent = consent("v2")
	if _, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 6), in); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Consents(ctx, adult.Account)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Version != "v1" || cs[0].WithdrawnAt == nil || cs[1].Version != "v2" || cs[1].WithdrawnAt != nil || cs[1].Scope != "bank-a/tok_a" {
		t.Errorf("consents after renewal: %+v", cs)
	}

	// Withdrawal by the bank: the link stays, withdrawn, as does its consent.
	if _, err := s.UnlinkCard(ctx, signedReq("bank-b", "card-links/withdraw", nil), "tok_zzz"); reasonOf(t, err) != ReasonCardLinkNotFound {
		t.Errorf("unlinking an unknown token: %v", err)
	}
	st, err := s.UnlinkCard(ctx, signedReq("bank-a", "card-links/withdraw", nil), "tok_a")
	if err != nil {
		t.Fatal(err)
	}
	var l CardLink
	if err := json.Unmarshal(st.Body, &l); err != nil || l.WithdrawnAt == nil || l.Account != adult.Account || l.Consent.Version != "v2" {
		t.Errorf("withdrawn link: %s %v", st.Body, err)
	}
	var live int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM consents WHERE scope = 'bank-a/tok_a' AND withdrawn_at IS NULL`).Scan(&live); err != nil || live != 0 {
		t.Errorf("%d live consents after withdrawal (%v)", live, err)
	}
	// Linked anew with a new consent.
	if st, err := s.LinkCard(ctx, signedReq("bank-a", "card-links", 7), LinkInput{CardToken: "tok_a", Account: adult.Account, Consent: consent("v2")}); err != nil || st.Status != http.StatusCreated {
		t.Errorf("relink after withdrawal: %+v %v", st, err)
	}
}

// TestWithdrawConsentByConsumer: the consumer withdrawing card_link consent
// withdraws every card link of theirs and tells the banks.
func TestWithdrawConsentByConsumer(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	p := create(t, s, NewPerson{Name: "P", Phone: "+8613800000003"})
	for i, bank := range []string{"bank-a", "bank-b"} {
		if _, err := s.LinkCard(ctx, signedReq(bank, "card-links", i), LinkInput{CardToken: "tok_p", Account: p.Account, Consent: consent("v1")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GrantConsent(ctx, p.Account, PurposeMarketing, *consent("m1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GrantConsent(ctx, p.Account, PurposeCardLink, *consent("m1")); reasonOf(t, err) != ReasonValidationFailed {
		t.Errorf("card_link consent without a card: %v", err)
	}
	n, err := s.WithdrawConsent(ctx, p.Account, PurposeCardLink, "")
	if err != nil || n != 2 {
		t.Fatalf("withdrew %d, %v", n, err)
	}
	links, err := s.CardLinks(ctx, p.Account)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.WithdrawnAt == nil {
			t.Errorf("link %s/%s still live", l.Partner, l.CardToken)
		}
	}
	var cbs, live int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM callbacks WHERE event_type = 'card_link.withdrawn'),
		(SELECT count(*) FROM consents WHERE withdrawn_at IS NULL)`).Scan(&cbs, &live); err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || cbs != 2 || live != 1 {
		t.Errorf("%d links, %d callbacks, %d live consents (want 2, 2, marketing's 1)", len(links), cbs, live)
	}
}

func TestPreferences(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	p := create(t, s, NewPerson{Name: "P", Phone: "+8613800000004"})
	got, err := s.Preferences(ctx, p.Account)
	if err != nil || got != DefaultPreferences() {
		t.Errorf("defaults: %+v %v", got, err)
	}
	want := Preferences{SMS: true, Push: false, QuietStart: "22:30", QuietEnd: "07:00", TimeZone: "Asia/Shanghai"}
	if err := s.SetPreferences(ctx, p.Account, want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Preferences(ctx, p.Account); err != nil || got != want {
		t.Errorf("read back %+v %v, want %+v", got, err, want)
	}
	err = s.SetPreferences(ctx, p.Account, Preferences{QuietStart: "25:00", QuietEnd: "7:00", TimeZone: "Mars/Olympus"})
	if e := apperr.As(err); e == nil || len(e.Fields) != 3 {
		t.Errorf("invalid preferences: %v", err)
	}
	if _, err := s.Preferences(ctx, "c-ffffffffffffffffffffffffffffffff"); reasonOf(t, err) != ReasonAccountNotFound {
		t.Errorf("unknown account: %v", err)
	}

	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, sh) }
	for _, tc := range []struct{ in, want time.Time }{
		{at(10, 21, 0), at(10, 21, 0)}, // before quiet hours
		{at(10, 23, 0), at(11, 7, 0)},  // in them, before midnight
		{at(11, 3, 0), at(11, 7, 0)},   // in them, after midnight
		{at(11, 7, 0), at(11, 7, 0)},   // at their end
	} {
		if got := want.NextAllowed(tc.in); !got.Equal(tc.want) {
			t.Errorf("NextAllowed(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	day := Preferences{QuietStart: "12:00", QuietEnd: "14:00", TimeZone: "Asia/Shanghai"}
	if got := day.NextAllowed(at(10, 13, 0)); !got.Equal(at(10, 14, 0)) {
		t.Errorf("daytime quiet hours: %v", got)
	}
}

// TestRetention: rows past their period are deleted or redacted, rows
// within it are kept, and a second run finds nothing.
func TestRetention(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	now := time.Now()
	p := create(t, s, NewPerson{Name: "P", Phone: "+8613800000005"})
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	old, recent := now.AddDate(-6, 0, 0), now.AddDate(0, -1, 0)
	// Evidence: an old request whose event's action is finished, an old
	// request whose action is still queued, a recent one.
	for i, r := range []struct {
		id     string
		at     time.Time
		status string
	}{
		{"00000000-0000-7000-8000-000000000001", old, "rejected"},
		{"00000000-0000-7000-8000-000000000002", old, "queued"},
		{"00000000-0000-7000-8000-000000000003", recent, "rejected"},
	} {
		exec(`INSERT INTO partner_requests (id, partner_id, webhook_id, route, body, body_sha256, signature, key_id, signed_at, received_at, response_status, response)
			VALUES ($1, 'bank-a', $3, 'card-transactions', 'raw body', '\x00', 'v1a,x', 'k', $2, $2, 202, 'resp')`, r.id, r.at, "wh"+r.id)
		ev := r.id[:len(r.id)-2] + "a" + r.id[len(r.id)-1:]
		exec(`INSERT INTO evidence_events (id, partner_id, kind, partner_tx_id, event_status, item_sha256, request_id, item_index, source, occurred_at, received_at, outcome)
			VALUES ($1, 'bank-a', 'card', $2, 'cleared', '\x00', $3, 0, 'api', $4, $4, 'accepted')`, ev, "tx"+string(rune('0'+i)), r.id, r.at)
		exec(`INSERT INTO actions (id, event_id, partner_id, kind, partner_tx_id, account, claim, occurred_at, grams, record, record_hash, status, not_before, created_at)
			VALUES ($1, $2, 'bank-a', 'appliance', $3, $4, $7, $5, 1, '{}', 'h', $6, $5, $5)`,
			r.id[:len(r.id)-2]+"b"+r.id[len(r.id)-1:], ev, "tx"+string(rune('0'+i)), p.Account, r.at, r.status, "claim"+r.id)
	}
	exec(`INSERT INTO callbacks (partner_id, event_type, payload, delivered_at, created_at) VALUES
		('bank-a', 'x', '{}', $1, $1), ('bank-a', 'x', '{}', NULL, $1), ('bank-a', 'x', '{}', $2, $2)`, now.AddDate(0, 0, -91), now.AddDate(0, 0, -89))
	// Card links withdrawn 2 years and 1 month ago; consents withdrawn 4
	// years and 1 year ago.
	exec(`INSERT INTO card_links (partner_id, card_token, account, consent_version, consented_at, consent_channel, withdrawn_at) VALUES
		('bank-a', 'tok_old', $1, 'v1', $2, 'app', $2), ('bank-a', 'tok_new', $1, 'v1', $3, 'app', $3), ('bank-a', 'tok_live', $1, 'v1', $2, 'app', NULL)`,
		p.Account, now.AddDate(-2, 0, 0), recent)
	exec(`INSERT INTO consents (id, person_id, purpose, version, granted_at, channel, withdrawn_at) VALUES
		(gen_random_uuid(), $1, 'marketing', 'v1', $2, 'app', $2), (gen_random_uuid(), $1, 'whereabouts', 'v1', $3, 'app', $3)`,
		p.ID, now.AddDate(-4, 0, 0), now.AddDate(-1, 0, 0))

	exec(`INSERT INTO idempotency_keys (subject, key, route, request_hash, state, locked_until, status, body, created_at, completed_at) VALUES
		($1, 'old', 'r', $3, 'done', $2, 200, '{}', $2, $2), ($1, 'new', 'r', $3, 'done', $4, 200, '{}', $4, $4)`,
		p.Account, now.Add(-25*time.Hour), bytes.Repeat([]byte{1}, 32), now.Add(-time.Hour))

	r, err := EnforceRetention(ctx, pool, now, DefaultPeriods())
	if err != nil {
		t.Fatal(err)
	}
	want := RetentionReport{Callbacks: 1, Consents: 1, CardLinks: 1, Actions: 1, Events: 1, Requests: 1, RequestsRedacted: 1, IdempotencyKeys: 1}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("report mismatch (-want +got):\n%s", diff)
	}
	var left struct{ requests, redacted, events, actions, callbacks, links, consents int }
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM partner_requests), (SELECT count(*) FROM partner_requests WHERE body = '' AND response = ''
		AND id = '00000000-0000-7000-8000-000000000002' AND body_sha256 = '\x00' AND signature = 'v1a,x'),
		(SELECT count(*) FROM evidence_events), (SELECT count(*) FROM actions), (SELECT count(*) FROM callbacks),
		(SELECT string_agg(card_token, ',' ORDER BY card_token) = 'tok_live,tok_new' FROM card_links)::int,
		(SELECT count(*) FROM consents WHERE purpose = 'whereabouts')`).Scan(
		&left.requests, &left.redacted, &left.events, &left.actions, &left.callbacks, &left.links, &left.consents); err != nil {
		t.Fatal(err)
	}
	if left != (struct{ requests, redacted, events, actions, callbacks, links, consents int }{2, 1, 2, 2, 2, 1, 1}) {
		t.Errorf("left after retention: %+v", left)
	}
	again, err := EnforceRetention(ctx, pool, now, DefaultPeriods())
	if err != nil || again != (RetentionReport{}) {
		t.Errorf("second run: %+v %v", again, err)
	}
}
