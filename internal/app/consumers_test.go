package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/greenpoints/greenpoints/api"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/auth"
	"github.com/greenpoints/greenpoints/issuer"
)

// consumerEnv is a running, seeded App with tokens for its consumers and an
// HTTP client that checks every response against openapi.yaml.
type consumerEnv struct {
	t      *testing.T
	a      *App
	base   string
	router routers.Router
	minter *auth.Minter
	tokens map[string]string
}

func newConsumerEnv(t *testing.T, opts ...func(*Config)) *consumerEnv {
	t.Helper()
	a, cancel, done := startApp(t, opts...)
	t.Cleanup(func() { cancel(); <-done })
	if _, err := SeedDemo(t.Context(), a, time.Now()); err != nil {
		t.Fatal(err)
	}
	m, err := NewTokenMinter(t.Context(), a.cfg, a.keys)
	if err != nil {
		t.Fatal(err)
	}
	e := &consumerEnv{t: t, a: a, base: "http://" + a.Addr(), minter: m, tokens: map[string]string{}}
	resp, err := http.Get(e.base + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if e.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return e
}

// token returns a valid token for account.
func (e *consumerEnv) token(account string) string {
	e.t.Helper()
	if tok, ok := e.tokens[account]; ok {
		return tok
	}
	tok, err := e.minter.Mint(account, time.Now(), time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens[account] = tok
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// reason returns the problem's reason ("" for a success).
func (r response) reason() string {
	var p api.Problem
	_ = json.Unmarshal(r.body, &p)
	return p.Reason
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// do sends a request; body is JSON-encoded unless it is a string (sent as
// is). The response must match openapi.yaml.
func (e *consumerEnv) do(method, path, token string, body any, hdr ...string) response {
	t := e.t
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	e.checkSpec(req, r)
	return r
}

func (e *consumerEnv) checkSpec(req *http.Request, r response) {
	t := e.t
	t.Helper()
	vreq := req.Clone(context.Background())
	vreq.URL, _ = url.Parse("http://example.com" + req.URL.RequestURI())
	route, params, err := e.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s %s: not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route},
		Status:                 r.status,
		Header:                 r.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(r.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s -> %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, r.status, err, r.body)
	}
}

// want checks a response's status and, for problems, its reason.
func want(t *testing.T, what string, r response, status int, reason string) {
	t.Helper()
	if r.status != status || (reason != "" && r.reason() != reason) {
		t.Errorf("%s: HTTP %d %s, want %d %s", what, r.status, r.body, status, reason)
	}
	if status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, r.header.Get("Content-Type"))
	}
}

// ledgerCall submits or evaluates a contract function directly (the
// test's set-up and its view of the truth, bypassing the API).
func ledgerCall(t *testing.T, a *App, caller, fn string, args, out any) *issuer.TxResult {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	if (points.New()).ReadOnly(fn) {
		res, err := a.Ledger().Evaluate(t.Context(), issuer.Proposal{Caller: caller, Function: fn, Args: b})
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if out != nil {
			if err := json.Unmarshal(res, out); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}
	res, err := a.Ledger().Submit(t.Context(), issuer.Proposal{Caller: caller, Function: fn, Args: b})
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	if out != nil {
		if err := json.Unmarshal(res.Payload, out); err != nil {
			t.Fatal(err)
		}
	}
	// The API reads the projection: let it catch up before the test reads.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := a.Projection().WaitFor(ctx, res.TxID); err != nil {
		t.Fatalf("projection never showed %s: %v", fn, err)
	}
	return res
}

func hash64(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// grant issues points to account in one lot expiring after validFor, under
// the anchored versions in force (as the batcher would).
func grant(t *testing.T, a *App, account string, pts, grams int64, validFor time.Duration) {
	t.Helper()
	var an points.Anchors
	ledgerCall(t, a, DemoIssuerMSP, "GetAnchors", points.IssuerArgs{}, &an)
	if an.InForce == nil {
		t.Fatal("no profile in force")
	}
	item := points.IssueItem{Account: account, Points: pts, Grams: grams, Category: "appliance", ProfileVersion: *an.InForce,
		ExpiresAt: time.Now().Add(validFor).Truncate(time.Second).UTC()}
	for _, v := range an.Versions {
		ref := points.VersionRef{ID: v.ID, Version: v.Version}
		switch {
		case v.Kind == points.AnchorRule && item.RuleVersion.ID == "":
			item.RuleVersion = ref
		case v.Kind == points.AnchorMethodology && item.MethodologyVersion.ID == "":
			item.MethodologyVersion = ref
		}
	}
	id := fmt.Sprintf("test-%s-%d-%d", account, pts, time.Now().UnixNano())
	item.ItemID, item.Claim, item.QuantificationHash = id, hash64("claim "+id), hash64("q "+id)
	var res points.IssueBatchResult
	ledgerCall(t, a, DemoIssuerMSP, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{item}}, &res)
	if res.Issued != 1 {
		t.Fatalf("grant to %s: %+v", account, res.Results)
	}
}

func (e *consumerEnv) balance(account string) api.BalanceJSON {
	e.t.Helper()
	r := e.do("GET", "/v1/me/balance", e.token(account), nil)
	if r.status != 200 {
		e.t.Fatalf("balance of %s: %d %s", account, r.status, r.body)
	}
	var b api.BalanceJSON
	r.decode(e.t, &b)
	return b
}

// conserved checks the ledger's conservation sums and that every
// consumer's projected balance equals the ledger's.
func (e *consumerEnv) conserved(accounts ...string) {
	t := e.t
	t.Helper()
	var total points.Totals
	bookmark := ""
	for {
		var page points.ConservationPage
		ledgerCall(t, e.a, DemoRegulatorMSP, "GetConservation", points.ConservationArgs{Bookmark: bookmark}, &page)
		if err := total.Add(page.Total); err != nil {
			t.Fatal(err)
		}
		if bookmark = page.Bookmark; bookmark == "" {
			break
		}
	}
	if !total.Balanced() {
		t.Errorf("conservation broken: %+v", total)
	}
	for _, acct := range accounts {
		var lb points.Balance
		ledgerCall(t, e.a, DemoIssuerMSP, "GetBalance", points.AccountArgs{Account: acct}, &lb)
		if got := e.balance(acct); got.Total != lb.Total || got.Debt != lb.Debt {
			t.Errorf("%s: API balance %d (debt %d), ledger %d (debt %d)", acct, got.Total, got.Debt, lb.Total, lb.Debt)
		}
	}
}

// TestConsumerAPI walks the consumers' API: authentication, balance and
// history, families, transfers, donations and certificates, the
// authorisation matrix, idempotency and bad input.
func TestConsumerAPI(t *testing.T) {
	t.Parallel()
	e := newConsumerEnv(t)
	a := e.a
	ledgerCall(t, a, DemoIssuerMSP, "OpenAccount", points.OpenAccountArgs{AccountID: "demo-carol", Kind: points.KindConsumer}, nil)
	grant(t, a, "demo-alice", 600, 6_000, 10*24*time.Hour) // expiring soon
	grant(t, a, "demo-alice", 400, 4_000, 300*24*time.Hour)
	grant(t, a, "demo-bob", 100, 1_000, 300*24*time.Hour)
	grant(t, a, "demo-carol", 50, 500, 300*24*time.Hour)
	alice, bob, carol := e.token("demo-alice"), e.token("demo-bob"), e.token("demo-carol")

	t.Run("authentication", func(t *testing.T) {
		expired, err := e.minter.Mint("demo-alice", time.Now(), -time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		otherAud, err := auth.NewDevMinter(t.Context(), a.keys, auth.DefaultIssuer, "another-api")
		if err != nil {
			t.Fatal(err)
		}
		wrongAud, _ := otherAud.Mint("demo-alice", time.Now(), time.Hour)
		for _, route := range []string{"/v1/me/balance", "/v1/me/history", "/v1/me/family"} {
			r := e.do("GET", route, "", nil)
			want(t, route+" without a token", r, 401, auth.ReasonTokenMissing)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", route, r.header.Get("WWW-Authenticate"))
			}
			want(t, route+" expired", e.do("GET", route, expired, nil), 401, auth.ReasonTokenExpired)
			want(t, route+" garbage", e.do("GET", route, "abc.def.ghi", nil), 401, auth.ReasonTokenMalformed)
			want(t, route+" wrong audience", e.do("GET", route, wrongAud, nil), 401, auth.ReasonTokenAudienceInvalid)
		}
		for _, route := range []string{"/v1/me/transfers", "/v1/me/donations", "/v1/me/family", "/v1/me/family/leave"} {
			want(t, "POST "+route+" expired", e.do("POST", route, expired, map[string]any{"to": "demo-bob", "points": 1}), 401, auth.ReasonTokenExpired)
		}
		want(t, "DELETE member expired", e.do("DELETE", "/v1/me/family/members/demo-bob", expired, nil), 401, auth.ReasonTokenExpired)
		// A token for an account that does not exist authenticates, but has nothing.
		want(t, "unknown account", e.do("GET", "/v1/me/balance", e.token("demo-nobody"), nil), 404, "account_not_found")
	})

	t.Run("balance and history", func(t *testing.T) {
		b := e.balance("demo-alice")
		if b.Total != 1000 || b.ExpiringSoon != 600 || len(b.Lots) != 2 || b.Debt != 0 || b.NextExpiry == nil {
			t.Fatalf("balance = %+v", b)
		}
		l := b.Lots[0] // earliest expiry first
		if l.Points != 600 || l.Grams != 6_000 || l.Category != "appliance" || l.RuleVersion.ID == "" || l.MethodologyVersion.ID == "" ||
			l.ProfileVersion.ID != "cn-default" || l.Transferred {
			t.Errorf("lot = %+v", l)
		}
		r := e.do("GET", "/v1/me/history?limit=1", alice, nil)
		want(t, "history page 1", r, 200, "")
		var p1, p2 api.HistoryJSON
		r.decode(t, &p1)
		if len(p1.Movements) != 1 || p1.NextCursor == "" || p1.Movements[0].Points != 400 || p1.Movements[0].Reason != "issue" || p1.Movements[0].Description == "" {
			t.Fatalf("page 1 = %+v", p1)
		}
		e.do("GET", "/v1/me/history?limit=1&cursor="+url.QueryEscape(p1.NextCursor), alice, nil).decode(t, &p2)
		if len(p2.Movements) != 1 || p2.NextCursor != "" || p2.Movements[0].Points != 600 {
			t.Fatalf("page 2 = %+v", p2)
		}
		want(t, "oversized page", e.do("GET", "/v1/me/history?limit=201", alice, nil), 400, api.ReasonInvalidQuery)
		want(t, "zero page", e.do("GET", "/v1/me/history?limit=0", alice, nil), 400, api.ReasonInvalidQuery)
		want(t, "non-numeric page", e.do("GET", "/v1/me/history?limit=ten", alice, nil), 400, api.ReasonInvalidQuery)
		want(t, "forged cursor", e.do("GET", "/v1/me/history?cursor=bm90LWEtY3Vyc29y", alice, nil), 400, "invalid_cursor")
	})

	var familyID string
	t.Run("family", func(t *testing.T) {
		// No family yet: transfers are refused.
		want(t, "transfer without a family", e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 10}), 409, "not_same_family")
		want(t, "invite without a family", e.do("POST", "/v1/me/family/invitations", carol, map[string]any{"account": "demo-bob"}), 409, api.ReasonNotInFamily)
		r := e.do("POST", "/v1/me/family", alice, nil)
		want(t, "create", r, 201, "")
		var f api.FamilyJSON
		r.decode(t, &f)
		if f.Head != "demo-alice" || f.FamilyID == "" || f.Status != "active" {
			t.Fatalf("family = %+v", f)
		}
		familyID = f.FamilyID
		want(t, "create twice", e.do("POST", "/v1/me/family", alice, nil), 409, "already_in_family")
		want(t, "invite bob", e.do("POST", "/v1/me/family/invitations", alice, map[string]any{"account": "demo-bob"}), 200, "")
		var mine api.MyFamilyJSON
		e.do("GET", "/v1/me/family", bob, nil).decode(t, &mine)
		if mine.Family != nil || len(mine.Invitations) != 1 || mine.Invitations[0].FamilyID != familyID {
			t.Fatalf("bob's family view = %+v", mine)
		}
		// Carol was not invited: she cannot join.
		want(t, "uninvited accept", e.do("POST", "/v1/me/family/accept", carol, map[string]any{"familyId": familyID}), 409, "not_invited")
		want(t, "bob accepts", e.do("POST", "/v1/me/family/accept", bob, map[string]any{"familyId": familyID}), 200, "")
		// Only the head invites and removes.
		want(t, "member invites", e.do("POST", "/v1/me/family/invitations", bob, map[string]any{"account": "demo-carol"}), 403, api.ReasonNotFamilyHead)
		want(t, "member removes", e.do("DELETE", "/v1/me/family/members/demo-alice", bob, nil), 403, api.ReasonNotFamilyHead)
		e.do("GET", "/v1/me/family", alice, nil).decode(t, &mine)
		if mine.Family == nil || len(mine.Family.Members) != 1 || mine.Family.Members[0] != "demo-bob" {
			t.Fatalf("alice's family view = %+v", mine)
		}
	})

	t.Run("transfers", func(t *testing.T) {
		r := e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 700})
		want(t, "over the per-transfer cap", r, 400, "transfer_limit_exceeded")
		r = e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 100})
		want(t, "transfer", r, 201, "")
		var tr api.TransferJSON
		r.decode(t, &tr)
		// Earliest expiry first: the 600-point lot (10 g per point) pays.
		if tr.From != "demo-alice" || tr.To != "demo-bob" || tr.Points != 100 || tr.Grams != 1_000 || tr.Block == 0 || tr.TxID == "" || tr.MonthPoints != 100 {
			t.Errorf("transfer = %+v", tr)
		}
		if b := e.balance("demo-alice"); b.Total != 900 || b.ExpiringSoon != 500 {
			t.Errorf("alice after transfer: %+v", b)
		}
		bb := e.balance("demo-bob")
		var moved *api.LotJSON
		for i := range bb.Lots {
			if bb.Lots[i].Transferred {
				moved = &bb.Lots[i]
			}
		}
		if bb.Total != 200 || moved == nil || moved.Points != 100 || !moved.ExpiresAt.Equal(e.balance("demo-alice").Lots[0].ExpiresAt) {
			t.Errorf("bob after transfer: %+v", bb)
		}
		// The ledger recorded the hash of alice's authenticated request.
		ms, _, err := a.Projection().Movements(t.Context(), "demo-alice", "", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].Cause != points.CauseTransferOut || len(ms[0].RequestHash) != 64 {
			t.Errorf("alice's transfer on the ledger: %+v", ms)
		}
		var h api.HistoryJSON
		e.do("GET", "/v1/me/history?limit=1", bob, nil).decode(t, &h)
		if len(h.Movements) != 1 || h.Movements[0].Reason != "transfer_in" || h.Movements[0].Counterparty != "demo-alice" || h.Movements[0].Points != 100 {
			t.Errorf("bob's history = %+v", h)
		}
	})

	t.Run("authorisation matrix and bad input", func(t *testing.T) {
		before := map[string]int64{}
		for _, acct := range []string{"demo-alice", "demo-bob", "demo-carol"} {
			before[acct] = e.balance(acct).Total
		}
		// Each balance read is the token subject's own, whatever the request says.
		if b := e.balance("demo-bob"); b.Account != "demo-bob" {
			t.Errorf("bob reads %s", b.Account)
		}
		if r := e.do("GET", "/v1/me/balance?account=demo-alice", bob, nil); !strings.Contains(string(r.body), `"account":"demo-bob"`) {
			t.Errorf("a query parameter changed the account: %s", r.body)
		}
		cases := []struct {
			name, method, path, token string
			body                      any
			status                    int
			reason                    string
		}{
			{"bob moves alice's points via from", "POST", "/v1/me/transfers", bob, map[string]any{"from": "demo-alice", "to": "demo-bob", "points": 10}, 400, api.ReasonValidationFailed},
			{"bob donates alice's points via account", "POST", "/v1/me/donations", bob, map[string]any{"account": "demo-alice", "charityId": "green-earth", "projectId": "mangroves", "points": 10}, 400, api.ReasonValidationFailed},
			{"carol transfers to bob outside her family", "POST", "/v1/me/transfers", carol, map[string]any{"to": "demo-bob", "points": 10}, 409, "not_same_family"},
			{"carol removes bob from alice's family", "DELETE", "/v1/me/family/members/demo-bob", carol, nil, 409, api.ReasonNotInFamily},
			{"carol leaves a family she is not in", "POST", "/v1/me/family/leave", carol, nil, 409, api.ReasonNotInFamily},
			{"zero points", "POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 0}, 400, api.ReasonValidationFailed},
			{"negative points", "POST", "/v1/me/donations", alice, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": -5}, 400, api.ReasonValidationFailed},
			{"points as a string", "POST", "/v1/me/transfers", alice, `{"to":"demo-bob","points":"10"}`, 400, api.ReasonValidationFailed},
			{"malformed JSON", "POST", "/v1/me/transfers", alice, `{"to":"demo-bob",`, 400, api.ReasonMalformedJSON},
			{"two JSON values", "POST", "/v1/me/donations", alice, `{}{}`, 400, api.ReasonMalformedJSON},
			{"missing recipient", "POST", "/v1/me/transfers", alice, map[string]any{"points": 10}, 400, api.ReasonValidationFailed},
			{"unknown recipient", "POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-nobody", "points": 10}, 404, "account_not_found"},
			{"transfer to self", "POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-alice", "points": 10}, 400, "same_account"},
			{"more than held", "POST", "/v1/me/transfers", bob, map[string]any{"to": "demo-alice", "points": 201}, 409, "insufficient_points"},
			{"unknown charity", "POST", "/v1/me/donations", alice, map[string]any{"charityId": "no-such", "projectId": "mangroves", "points": 10}, 404, "charity_not_found"},
			{"unknown project", "POST", "/v1/me/donations", alice, map[string]any{"charityId": "green-earth", "projectId": "no-such", "points": 10}, 404, "project_not_found"},
			{"unknown family", "POST", "/v1/me/family/accept", carol, map[string]any{"familyId": "fam-nope"}, 404, "family_not_found"},
			{"leave with a body that is not JSON", "POST", "/v1/me/family/leave", bob, `x`, 400, api.ReasonMalformedJSON},
		}
		for _, c := range cases {
			want(t, c.name, e.do(c.method, c.path, c.token, c.body), c.status, c.reason)
		}
		for acct, was := range before {
			if now := e.balance(acct).Total; now != was {
				t.Errorf("%s: balance %d after refused requests, was %d", acct, now, was)
			}
		}
		// A removed member can no longer receive.
		want(t, "remove bob", e.do("DELETE", "/v1/me/family/members/demo-bob", alice, nil), 200, "")
		want(t, "transfer to a removed member", e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 10}), 409, "not_same_family")
		if now := e.balance("demo-bob").Total; now != before["demo-bob"] {
			t.Errorf("removed bob received: %d", now)
		}
	})

	var receiptID string
	t.Run("donations, idempotency and certificates", func(t *testing.T) {
		r := e.do("GET", "/v1/charities", "", nil)
		want(t, "charities", r, 200, "")
		if !strings.Contains(string(r.body), `"charityId":"green-earth"`) || !strings.Contains(string(r.body), `"projectId":"mangroves"`) {
			t.Errorf("charities = %s", r.body)
		}
		body := map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": 50}
		r1 := e.do("POST", "/v1/me/donations", alice, body, "Idempotency-Key", `"don-1"`)
		want(t, "donate", r1, 201, "")
		var cert api.CertificateJSON
		r1.decode(t, &cert)
		// 50 points from the lot of 600 points and 6,000 g: 500 g.
		if cert.Points != 50 || cert.Grams != 500 || cert.FundingFen != 50 || cert.Block == 0 || cert.TxID == "" || len(cert.ReceiptID) != 32 ||
			cert.ProfileVersion.ID != "cn-default" || cert.Acknowledged {
			t.Errorf("certificate = %+v", cert)
		}
		receiptID = cert.ReceiptID
		// A retry with the same key and body replays; nothing is donated twice.
		r2 := e.do("POST", "/v1/me/donations", alice, body, "Idempotency-Key", `"don-1"`)
		want(t, "replay", r2, 201, "")
		if r2.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r1.body, r2.body) {
			t.Errorf("replay: %v %s", r2.header, r2.body)
		}
		if b := e.balance("demo-alice"); b.Total != 850 {
			t.Errorf("alice after one donation (sent twice): %d, want 850", b.Total)
		}
		want(t, "same key, other body", e.do("POST", "/v1/me/donations", alice, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": 51},
			"Idempotency-Key", `"don-1"`), 422, "idempotency_key_reused")
		want(t, "same key, other route", e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 1},
			"Idempotency-Key", `"don-1"`), 422, "idempotency_key_reused")
		want(t, "invalid key", e.do("POST", "/v1/me/donations", alice, body, "Idempotency-Key", `"a b"`), 400, "idempotency_key_invalid")
		// Keys are per consumer: bob's "don-1" is his own.
		want(t, "bob's own don-1", e.do("POST", "/v1/me/donations", bob, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": 5},
			"Idempotency-Key", `"don-1"`), 201, "")
		// A refused request does not use up its key.
		want(t, "refused with a key", e.do("POST", "/v1/me/donations", carol, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": 51},
			"Idempotency-Key", "k-carol"), 409, "insufficient_points")
		want(t, "same key, fixed request", e.do("POST", "/v1/me/donations", carol, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": 50},
			"Idempotency-Key", "k-carol"), 201, "")

		// Anyone can check the certificate, without logging in.
		r = e.do("GET", "/v1/certificates/"+receiptID, "", nil)
		want(t, "public certificate", r, 200, "")
		var pub api.CertificateJSON
		r.decode(t, &pub)
		if pub != cert {
			t.Errorf("public certificate %+v != donor's %+v", pub, cert)
		}
		if strings.Contains(string(r.body), "demo-alice") {
			t.Errorf("the public certificate names the donor: %s", r.body)
		}
		want(t, "unknown receipt", e.do("GET", "/v1/certificates/"+strings.Repeat("0", 32), "", nil), 404, "receipt_not_found")
		want(t, "malformed receipt id", e.do("GET", "/v1/certificates/guess", "", nil), 400, "invalid_receipt_id")
		var h api.HistoryJSON
		e.do("GET", "/v1/me/history?limit=1", alice, nil).decode(t, &h)
		if len(h.Movements) != 1 || h.Movements[0].Reason != "donate" || h.Movements[0].ReceiptID != receiptID || h.Movements[0].Points != -50 {
			t.Errorf("alice's last movement = %+v", h.Movements)
		}
	})

	t.Run("suspended charity cannot receive", func(t *testing.T) {
		ledgerCall(t, a, DemoRegulatorMSP, "SetCharityStatus", points.SetCharityStatusArgs{CharityID: "green-earth", Status: points.StatusSuspended}, nil)
		before := e.balance("demo-alice").Total
		want(t, "donate to a suspended charity", e.do("POST", "/v1/me/donations", alice, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": 10}),
			409, "charity_suspended")
		if now := e.balance("demo-alice").Total; now != before {
			t.Errorf("balance %d after a refused donation, was %d", now, before)
		}
		// Earlier certificates stay checkable.
		want(t, "old certificate", e.do("GET", "/v1/certificates/"+receiptID, "", nil), 200, "")
	})

	t.Run("leave", func(t *testing.T) {
		// Bob was removed; alice, head of an empty family, dissolves it.
		r := e.do("POST", "/v1/me/family/leave", alice, nil)
		want(t, "head leaves", r, 200, "")
		var f api.FamilyJSON
		r.decode(t, &f)
		if f.Status != "dissolved" || f.FamilyID != familyID {
			t.Errorf("after leaving: %+v", f)
		}
		var mine api.MyFamilyJSON
		e.do("GET", "/v1/me/family", alice, nil).decode(t, &mine)
		if mine.Family != nil {
			t.Errorf("alice still in %+v", mine.Family)
		}
	})
	e.conserved("demo-alice", "demo-bob", "demo-carol")
}

// TestConsumerConcurrentSpends: many concurrent transfers and donations
// from one account never overdraw it, and points are conserved.
func TestConsumerConcurrentSpends(t *testing.T) {
	t.Parallel()
	e := newConsumerEnv(t)
	a := e.a
	const held = 1000
	grant(t, a, "demo-alice", held, 10_000, 300*24*time.Hour)
	alice, bob := e.token("demo-alice"), e.token("demo-bob")
	want(t, "create family", e.do("POST", "/v1/me/family", alice, nil), 201, "")
	var f api.FamilyJSON
	e.do("GET", "/v1/me/family", alice, nil)
	want(t, "invite", e.do("POST", "/v1/me/family/invitations", alice, map[string]any{"account": "demo-bob"}), 200, "")
	var mine api.MyFamilyJSON
	e.do("GET", "/v1/me/family", bob, nil).decode(t, &mine)
	if len(mine.Invitations) != 1 {
		t.Fatalf("bob's invitations: %+v", mine)
	}
	f = mine.Invitations[0]
	want(t, "accept", e.do("POST", "/v1/me/family/accept", bob, map[string]any{"familyId": f.FamilyID}), 200, "")
	bobBefore := e.balance("demo-bob").Total

	// 24 requests of 60 points: 1,440 demanded of 1,000 held.
	const n, each = 24, 60
	type outcome struct {
		transfer bool
		status   int
		reason   string
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r response
			if i%2 == 0 {
				r = e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": each})
			} else {
				r = e.do("POST", "/v1/me/donations", alice, map[string]any{"charityId": "green-earth", "projectId": "mangroves", "points": each})
			}
			out[i] = outcome{transfer: i%2 == 0, status: r.status, reason: r.reason()}
		}()
	}
	wg.Wait()
	var transferred, donated int64
	counts := map[string]int{}
	for _, o := range out {
		switch {
		case o.status == 201 && o.transfer:
			transferred += each
			counts["transferred"]++
		case o.status == 201:
			donated += each
			counts["donated"]++
		case o.status == 409 && (o.reason == "insufficient_points" || o.reason == api.ReasonLedgerContended):
			counts[o.reason]++
		default:
			t.Errorf("unexpected outcome %+v", o)
		}
	}
	t.Logf("outcomes of %d concurrent spends of %d points from %d: %v", n, each, held, counts)
	if transferred+donated > held {
		t.Errorf("spent %d of %d held", transferred+donated, held)
	}
	if transferred+donated == 0 {
		t.Error("no spend succeeded")
	}
	if got := e.balance("demo-alice").Total; got != held-transferred-donated {
		t.Errorf("alice holds %d, want %d - %d - %d", got, held, transferred, donated)
	}
	if got := e.balance("demo-bob").Total; got != bobBefore+transferred {
		t.Errorf("bob holds %d, want %d + %d", got, bobBefore, transferred)
	}
	e.conserved("demo-alice", "demo-bob")
}

// TestConsumerTransfersForbiddenByProfile: under a profile that forbids
// transfers (Shenzhen's), a transfer is refused with a clear reason and
// moves nothing.
func TestConsumerTransfersForbiddenByProfile(t *testing.T) {
	t.Parallel()
	e := newConsumerEnv(t, func(c *Config) { c.ProfileID = "cn-shenzhen" })
	grant(t, e.a, "demo-alice", 100, 1_000, 300*24*time.Hour)
	alice, bob := e.token("demo-alice"), e.token("demo-bob")
	var f api.FamilyJSON
	r := e.do("POST", "/v1/me/family", alice, nil)
	want(t, "create family", r, 201, "")
	r.decode(t, &f)
	want(t, "invite", e.do("POST", "/v1/me/family/invitations", alice, map[string]any{"account": "demo-bob"}), 200, "")
	want(t, "accept", e.do("POST", "/v1/me/family/accept", bob, map[string]any{"familyId": f.FamilyID}), 200, "")
	r = e.do("POST", "/v1/me/transfers", alice, map[string]any{"to": "demo-bob", "points": 10})
	want(t, "transfer", r, 409, "transfers_not_allowed")
	if !strings.Contains(string(r.body), "cn-shenzhen") {
		t.Errorf("the refusal does not name the profile: %s", r.body)
	}
	if got := e.balance("demo-alice").Total; got != 100 {
		t.Errorf("alice holds %d after a refused transfer", got)
	}
}
