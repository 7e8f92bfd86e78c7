package fabric_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"

	"github.com/greenpoints/greenpoints/chaincode/contracttest"
	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/fabricnet"
	"github.com/greenpoints/greenpoints/issuer"
)

// Fault tests: a node of the network dies in the middle of a stream of
// IssueBatch transactions from several workers and is started again on its
// data directory. A client that gets Unavailable does not know whether its
// transaction committed (issuer.Ledger's contract): it looks its claims up
// and resubmits only the items the ledger does not hold, and a resubmission
// that races a late commit gets already_issued for its own claims. In the
// end every issuance must be on the ledger exactly once.
//
// The test restarts nodes, so it runs on a network of its own, not on the
// one TestMain shares between parallel tests.

const (
	faultWorkers   = 4
	faultBatches   = 12 // per worker
	faultBatchSize = 5
	faultPoints    = 7 // per issuance
	// faultAttempts bounds one batch's submissions; faultBackoff spaces
	// them while a node is down (it is not a timing assertion).
	faultAttempts = 200
	faultBackoff  = 250 * time.Millisecond
	// faultCallTimeout bounds each ledger call. fabric-gateway's
	// *WithContext calls, which fabric.Ledger makes, do not apply the
	// client's configured timeouts, and the commit status of a transaction
	// that a crashed orderer lost before cutting its block never comes: a
	// call without a deadline would wait forever.
	faultCallTimeout = 20 * time.Second
)

// TestFaultRestarts kills the peer (SIGKILL, as a crash) and, on a fresh
// channel, the orderer, each once a quarter of the stream has committed,
// and starts it again on the same data directory.
func TestFaultRestarts(t *testing.T) {
	t.Parallel()
	fnw := startFaultNetwork(t)
	for _, tc := range []struct{ phase, node string }{
		{"peer", fnw.Orgs[0].Peers[0].Name},
		{"orderer", fnw.NodeNames()[0]},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			faultStream(t, fnw, "fault"+tc.phase, tc.node)
		})
	}
}

// startFaultNetwork starts a suite network in a directory of the test's
// with the chaincode service, and stops it at the end of the test.
func startFaultNetwork(t *testing.T) *fabricnet.Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	binDir, err := fabricnet.EnsureBinaries(ctx, os.Getenv("GREENPOINTS_FABRIC_CACHE"), log)
	if err != nil {
		t.Fatal(err)
	}
	fnw, err := fabricnet.Start(ctx, fabricnet.Options{Dir: t.TempDir(), Topology: "suite", BinDir: binDir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fnw.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return fnw
}

// faultLedger is a ledger on fnw's channel signing as the regulator and the
// issuer.
func faultLedger(t *testing.T, fnw *fabricnet.Network, channel string) *fabric.Ledger {
	t.Helper()
	org1 := fnw.Orgs[0]
	cfg := fabric.Config{
		PeerEndpoint: org1.Peers[0].Address, TLSRootCert: readFile(t, org1.TLSRootCert),
		Identities: map[string]fabric.Identity{}, Channel: channel, Chaincode: "points",
	}
	for _, org := range fnw.Orgs {
		if org.MSPID == regulatorMSP || org.MSPID == issuerMSP {
			cfg.Identities[org.MSPID] = fabric.Identity{Cert: readFile(t, org.User.Cert), Key: readFile(t, org.User.Key)}
		}
	}
	l, err := fabric.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// faultCounts are what the workers saw.
type faultCounts struct {
	committed   atomic.Int64 // batches whose every item is on the ledger
	unavailable atomic.Int64 // submissions with an unknown outcome
	conflicts   atomic.Int64 // submissions invalidated (MVCC), resubmitted
	issued      atomic.Int64 // items a committed transaction issued
	already     atomic.Int64 // items a resubmission found already issued by us
	lookedUp    atomic.Int64 // items found on the ledger by GetClaim after Unavailable
}

func faultStream(t *testing.T, fnw *fabricnet.Network, channel, node string) {
	ctx := t.Context()
	setup, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := fnw.CreateChannel(setup, channel); err != nil {
		t.Fatal(err)
	}
	if err := fnw.DeployChaincodeOn(setup, channel, "points"); err != nil {
		t.Fatal(err)
	}
	l := faultLedger(t, fnw, channel)
	submit := func(caller, fn string, args any) {
		t.Helper()
		if _, err := l.Submit(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: contracttest.MustMarshal(t, args)}); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
	}
	submit(regulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulatorMSP})
	submit(regulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: issuerMSP, Role: points.RoleIssuer, Name: "Bank A",
		FilingNumber: "F-A", Status: points.StatusActive})
	eff := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	submit(issuerMSP, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "rule", Version: "1", SHA256: hex64("r1"), EffectiveAt: eff})
	submit(issuerMSP, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "meth", Version: "1", SHA256: hex64("m1"), EffectiveAt: eff})
	submit(issuerMSP, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "1", SHA256: hex64("p1"), EffectiveAt: eff,
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, PointValueFen: 2}})
	var accounts []string
	var open points.OpenAccountsArgs
	for w := range faultWorkers {
		id := fmt.Sprintf("%s-acct-%d", channel, w)
		accounts = append(accounts, id)
		open.Accounts = append(open.Accounts, points.OpenAccountArgs{AccountID: id, Kind: points.KindConsumer})
	}
	inflightAcct := channel + "-acct-inflight"
	open.Accounts = append(open.Accounts, points.OpenAccountArgs{AccountID: inflightAcct, Kind: points.KindConsumer})
	submit(issuerMSP, "OpenAccounts", open)

	// Each worker issues to its own account, so workers do not conflict
	// with each other; conflicts can still come from a resubmission.
	expires := time.Now().Add(300 * 24 * time.Hour).UTC().Truncate(time.Second)
	total := 0
	newBatch := func(account, prefix string) []points.IssueItem {
		var batch []points.IssueItem
		for i := range faultBatchSize {
			id := fmt.Sprintf("%s-i%d", prefix, i)
			batch = append(batch, points.IssueItem{ItemID: id, Account: account, Points: faultPoints, Grams: 900, Category: "transit",
				RuleVersion: points.VersionRef{ID: "rule", Version: "1"}, MethodologyVersion: points.VersionRef{ID: "meth", Version: "1"},
				ProfileVersion: points.VersionRef{ID: "cn", Version: "1"}, QuantificationHash: hex64("q" + id),
				ExpiresAt: expires, Claim: hex64("claim" + id)})
			total++
		}
		return batch
	}
	// items[w] are worker w's batches; the last account gets one batch, the
	// one in flight when the node dies.
	items := make([][][]points.IssueItem, faultWorkers+1)
	for w := range faultWorkers {
		for b := range faultBatches {
			items[w] = append(items[w], newBatch(accounts[w], fmt.Sprintf("%s-w%d-b%d", channel, w, b)))
		}
	}
	inflight := newBatch(inflightAcct, channel+"-inflight")
	items[faultWorkers] = [][]points.IssueItem{inflight}
	accounts = append(accounts, inflightAcct)
	gw := gatewayContract(t, fnw, channel)

	var (
		counts   faultCounts
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		quarter  = make(chan struct{})
		once     sync.Once
		failed   = make(chan struct{}) // a worker saw Unavailable
		failOnce sync.Once
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	began := time.Now()
	for w := range faultWorkers {
		wg.Go(func() {
			for _, batch := range items[w] {
				if err := issueUntilKnown(ctx, l, batch, &counts, func() { failOnce.Do(func() { close(failed) }) }); err != nil {
					fail(fmt.Errorf("worker %d: %w", w, err))
					return
				}
				if counts.committed.Add(1) >= faultWorkers*faultBatches/4 {
					once.Do(func() { close(quarter) })
				}
			}
		})
	}
	streamDone := make(chan struct{})
	go func() { wg.Wait(); close(streamDone) }()

	// The fault, in the middle of the stream.
	select {
	case <-quarter:
	case <-streamDone:
		t.Fatalf("the stream ended before a quarter of it committed: %v", firstErr)
	}
	// One more batch, endorsed and accepted by the orderer, then the kill
	// before its client hears how it ended: its outcome is unknown.
	inflightTx := submitNoStatus(t, gw, inflight)
	down := time.Now()
	if err := fnw.StopNode(ctx, node, true); err != nil {
		t.Fatal(err)
	}
	// Keep it down until a client has noticed (bounded: a worker that was
	// between calls notices at its next one).
	select {
	case <-failed:
	case <-streamDone:
	case <-time.After(time.Minute):
	}
	if err := fnw.StartNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	restarted := time.Since(down)
	// The in-flight batch's client recovers as issuer.Ledger's contract
	// says: it looks its claims up and resubmits what is missing.
	var inflightCounts faultCounts
	if rest := notOnLedger(ctx, l, inflight, &inflightCounts); len(rest) > 0 {
		if err := issueUntilKnown(ctx, l, rest, &inflightCounts, func() {}); err != nil {
			t.Errorf("recovering the in-flight batch %s: %v", inflightTx, err)
		}
	}
	t.Logf("in-flight batch %s after the restart: %d items found by GetClaim, %d already_issued on resubmission, %d issued by the resubmission",
		inflightTx, inflightCounts.lookedUp.Load(), inflightCounts.already.Load(), inflightCounts.issued.Load())
	// A peer's crash loses nothing the orderer accepted: the restarted peer
	// commits the batch from the orderer's blocks, so a resubmission can
	// never issue it again. (An orderer's crash may lose a transaction not
	// yet cut into a block; then the resubmission issues it, once.)
	if node != fnw.NodeNames()[0] && inflightCounts.issued.Load() != 0 {
		t.Errorf("the in-flight batch was issued again after the peer's restart")
	}
	<-streamDone
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	t.Logf("%s killed after %d of %d batches and started again after %s; stream of %d issuances took %s: "+
		"%d submissions unavailable, %d conflicts; items issued %d, found by GetClaim %d, already_issued on resubmission %d",
		node, faultWorkers*faultBatches/4, faultWorkers*faultBatches, restarted.Round(time.Millisecond), total,
		time.Since(began).Round(time.Millisecond), counts.unavailable.Load(), counts.conflicts.Load(),
		counts.issued.Load(), counts.lookedUp.Load(), counts.already.Load())
	if counts.unavailable.Load() == 0 {
		t.Errorf("no client saw %s down: the fault was not in the stream", node)
	}

	// Exactly once: each claim is ours and names its item; each account
	// holds one lot per item with the item's points; conservation holds.
	eval := func(caller, fn string, args, out any) {
		t.Helper()
		res, err := l.Evaluate(ctx, issuer.Proposal{Caller: caller, Function: fn, Args: contracttest.MustMarshal(t, args)})
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if err := json.Unmarshal(res, out); err != nil {
			t.Fatal(err)
		}
	}
	lotOf := map[string]string{} // claim -> lot key
	for w := range accounts {
		for _, batch := range items[w] {
			for _, it := range batch {
				var c points.Claim
				eval(issuerMSP, "GetClaim", points.ClaimArgs{Claim: it.Claim}, &c)
				if c.Issuer != issuerMSP || c.ItemID != it.ItemID || c.Points != faultPoints || c.LotKey == "" {
					t.Errorf("claim of %s: %+v", it.ItemID, c)
				}
				lotOf[it.Claim] = c.LotKey
			}
		}
		seen := map[string]int{}
		bm := ""
		for range 1000 {
			var page points.LotsPage
			eval(issuerMSP, "GetLots", points.PageArgs{Account: accounts[w], PageSize: 100, Bookmark: bm}, &page)
			for _, lot := range page.Lots {
				seen[lot.Claim]++
				if lot.Amount != faultPoints || lot.Remaining != faultPoints || lotOf[lot.Claim] != lot.Key {
					t.Errorf("lot %s of %s: amount %d remaining %d claim %s (claim's lot %s)", lot.Key, accounts[w], lot.Amount,
						lot.Remaining, lot.Claim, lotOf[lot.Claim])
				}
			}
			if bm = page.Bookmark; bm == "" {
				break
			}
		}
		if want := len(items[w]) * faultBatchSize; len(seen) != want {
			t.Errorf("%s holds lots of %d claims, want %d", accounts[w], len(seen), want)
		}
		for claim, n := range seen {
			if n != 1 {
				t.Errorf("claim %s has %d lots", claim, n)
			}
		}
	}
	var cons points.ConservationPage
	eval(regulatorMSP, "GetConservation", points.ConservationArgs{}, &cons)
	want := int64(total * faultPoints)
	if tot := cons.Total; cons.Bookmark != "" || tot.Lots != int64(total) || tot.Issued != want || tot.Held != want || !tot.Balanced() {
		t.Errorf("conservation: %+v (bookmark %q), want %d lots issuing and holding %d", tot, cons.Bookmark, total, want)
	}
	// Every item, the in-flight batch's too, was accounted for once.
	counts.issued.Add(inflightCounts.issued.Load())
	counts.lookedUp.Add(inflightCounts.lookedUp.Load())
	counts.already.Add(inflightCounts.already.Load())
	if got := counts.issued.Load() + counts.lookedUp.Load() + counts.already.Load(); got != int64(total) {
		t.Errorf("workers accounted for %d items (issued %d, found %d, already issued %d), want %d", got,
			counts.issued.Load(), counts.lookedUp.Load(), counts.already.Load(), total)
	}
}

// issueUntilKnown submits batch until every item is known to be on the
// ledger, as the issuer's batcher must: Unavailable means the outcome is
// unknown, so it looks up the claims (when the peer answers) and resubmits
// only the items the ledger does not hold; a conflict is resubmitted as a
// new proposal. Any other error, or an item the ledger refuses, fails.
// noticed is called at each Unavailable.
func issueUntilKnown(ctx context.Context, l *fabric.Ledger, batch []points.IssueItem, c *faultCounts, noticed func()) error {
	pending := batch
	for attempt := 1; ; attempt++ {
		args, err := json.Marshal(points.IssueBatchArgs{Items: pending})
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, faultCallTimeout)
		res, err := l.Submit(cctx, issuer.Proposal{Caller: issuerMSP, Function: "IssueBatch", Args: args})
		cancel()
		if err == nil {
			var r points.IssueBatchResult
			if err := json.Unmarshal(res.Payload, &r); err != nil {
				return err
			}
			for _, ir := range r.Results {
				switch {
				case ir.Status == points.ItemIssued:
					c.issued.Add(1)
				case ir.Status == points.ItemAlreadyIssued && ir.ItemID == pending[ir.Index].ItemID:
					// A lost outcome committed after all: ours.
					c.already.Add(1)
				default:
					return fmt.Errorf("item %s: %+v", pending[ir.Index].ItemID, ir)
				}
			}
			return nil
		}
		switch apperr.CodeOf(err) {
		case apperr.Unavailable:
			c.unavailable.Add(1)
			noticed()
			pending = notOnLedger(ctx, l, pending, c)
			if len(pending) == 0 {
				return nil
			}
		case apperr.Conflict:
			c.conflicts.Add(1)
		default:
			return fmt.Errorf("IssueBatch (attempt %d): %w", attempt, err)
		}
		if attempt == faultAttempts {
			return fmt.Errorf("IssueBatch still failing after %d attempts: %w", attempt, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(faultBackoff):
		}
	}
}

// notOnLedger returns the items whose claims the ledger does not hold. When
// the lookup itself fails (the peer is still down) it returns them all: the
// resubmission then reports already_issued for those that are.
func notOnLedger(ctx context.Context, l *fabric.Ledger, items []points.IssueItem, c *faultCounts) []points.IssueItem {
	var rest []points.IssueItem
	for i, it := range items {
		args, _ := json.Marshal(points.ClaimArgs{Claim: it.Claim})
		cctx, cancel := context.WithTimeout(ctx, faultCallTimeout)
		res, err := l.Evaluate(cctx, issuer.Proposal{Caller: issuerMSP, Function: "GetClaim", Args: args})
		cancel()
		var claim points.Claim
		switch {
		case err == nil && json.Unmarshal(res, &claim) == nil && claim.Issuer == issuerMSP && claim.ItemID == it.ItemID:
			c.lookedUp.Add(1)
		case err == nil || apperr.CodeOf(err) == apperr.NotFound:
			rest = append(rest, it)
		default:
			return append(rest, items[i:]...)
		}
	}
	return rest
}

// gatewayContract is the points contract on channel through fabric-gateway
// itself, as the issuer: submitNoStatus needs the step between the
// orderer's acceptance and the commit status, which fabric.Ledger.Submit
// does not expose.
func gatewayContract(t *testing.T, fnw *fabricnet.Network, channel string) *client.Contract {
	t.Helper()
	rg := newRawGateway(t, fnw.Orgs[0], orgIn(t, fnw, issuerMSP), channel)
	t.Cleanup(rg.close)
	return rg.contract
}

// submitNoStatus endorses an IssueBatch of items and submits it (the
// orderer has accepted it when this returns) without waiting for its
// commit status, and returns its transaction id.
func submitNoStatus(t *testing.T, c *client.Contract, items []points.IssueItem) string {
	t.Helper()
	prop, err := c.NewProposal("IssueBatch", client.WithBytesArguments(contracttest.MustMarshal(t, points.IssueBatchArgs{Items: items})))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := prop.Endorse()
	if err != nil {
		t.Fatalf("endorsing the in-flight batch: %v", err)
	}
	if _, err := tx.Submit(); err != nil {
		t.Fatalf("submitting the in-flight batch: %v", err)
	}
	return tx.TransactionID()
}
