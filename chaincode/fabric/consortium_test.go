package fabric_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/hash"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/greenpoints/greenpoints/chaincode/contracttest"
	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/fabricnet"
	"github.com/greenpoints/greenpoints/issuer"
)

// The consortium topology (docs/fabric.md §6): BankA, BankB, the regulator
// and the auditor each run their own peer and chaincode service; the
// chaincode policy needs the regulator's peer and an issuer's, and the
// contract gives each issuer's keys the key-level policy "that issuer AND
// the regulator". These tests start it on first use (networkOf), once per
// test binary, beside the suite network of TestMain.

// networks holds the networks of other topologies than TestMain's, started
// on first use and stopped by TestMain (stopNetworks).
var networks = struct {
	sync.Mutex
	m map[string]*lazyNetwork
}{m: map[string]*lazyNetwork{}}

type lazyNetwork struct {
	once sync.Once
	nw   *fabricnet.Network
	err  error
}

// networkOf returns the running network of topology with the points
// chaincode service deployed, starting it on the first call.
func networkOf(tb testing.TB, topology string) *fabricnet.Network {
	tb.Helper()
	networks.Lock()
	ln := networks.m[topology]
	if ln == nil {
		ln = &lazyNetwork{}
		networks.m[topology] = ln
	}
	networks.Unlock()
	ln.once.Do(func() {
		ctx, cancel := context.WithTimeout(chainCtx, 5*time.Minute)
		defer cancel()
		began := time.Now()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ln.nw, ln.err = fabricnet.Start(ctx, fabricnet.Options{Topology: topology, BinDir: binDir, Log: log})
		if ln.err != nil {
			return
		}
		// The first deployment starts the chaincode services; later
		// channels only approve and commit.
		if ln.err = ln.nw.DeployChaincode(ctx, "points"); ln.err != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "fabric %s network up with chaincode in %s (dir %s)\n", topology, time.Since(began).Round(time.Millisecond), ln.nw.Dir)
	})
	if ln.err != nil {
		tb.Fatalf("the %s network: %v", topology, ln.err)
	}
	return ln.nw
}

// stopNetworks stops the networks networkOf started.
func stopNetworks() {
	networks.Lock()
	defer networks.Unlock()
	for topology, ln := range networks.m {
		if ln.nw != nil {
			if err := ln.nw.Stop(context.Background()); err != nil {
				fmt.Fprintf(os.Stderr, "fabricnet.Stop (%s): %v\n", topology, err)
			}
		}
	}
}

// orgIn returns net's organisation msp.
func orgIn(tb testing.TB, net *fabricnet.Network, msp string) *fabricnet.Org {
	tb.Helper()
	for _, o := range net.Orgs {
		if o.MSPID == msp {
			return o
		}
	}
	tb.Fatalf("no organisation %s in the network", msp)
	return nil
}

// TestContractSuiteConsortium runs the contract suite on the consortium
// topology, each ledger a fresh channel. The ledger's gateway is the
// regulator's peer, whose endorsement every transaction needs; the gateway
// adds the issuer's (or, for the regulator's own transactions, one
// issuer's) from the chaincode policy and the key-level policies of the
// keys the transaction writes, through service discovery. The suite
// submits dependent transactions back to back, so each commit waits until
// every other peer has its block (fabric.Config.WaitPeers).
func TestContractSuiteConsortium(t *testing.T) {
	cnw := networkOf(t, "consortium")
	contracttest.Run(t, func(t *testing.T) issuer.Ledger {
		channel := newChannelOn(t, cnw, "cons")
		return waitingLedgerVia(t, cnw, orgIn(t, cnw, regulatorMSP), channel)
	})
}

// waitingLedgerVia is ledgerVia whose commits wait until the peers of every
// other organisation have the block, as a client of a multi-organisation
// channel must before it depends on its own write (docs/fabric.md §3.1).
// The wait is bounded by 20 s here rather than the default 5 s: a busy
// test machine can keep a peer's commit waiting that long.
func waitingLedgerVia(t testing.TB, net *fabricnet.Network, gateway *fabricnet.Org, channel string, msps ...string) *fabric.Ledger {
	t.Helper()
	cfg := ledgerConfig(t, net, gateway, channel, msps...)
	cfg.WaitPeers = peersBesides(t, net, gateway)
	cfg.WaitTimeout = 20 * time.Second
	return openLedger(t, cfg)
}

// peersBesides returns the peers of net's organisations other than org.
func peersBesides(t testing.TB, net *fabricnet.Network, org *fabricnet.Org) []fabric.Peer {
	t.Helper()
	var ps []fabric.Peer
	for _, o := range net.Orgs {
		if o == org {
			continue
		}
		for _, p := range o.Peers {
			ps = append(ps, fabric.Peer{Endpoint: p.Address, TLSRootCert: readFile(t, o.TLSRootCert)})
		}
	}
	return ps
}

// rawGateway is a fabric-gateway client of one identity through one peer,
// for proposals fabric.Ledger would never make (endorsing organisations
// chosen by hand).
type rawGateway struct {
	contract *client.Contract
	close    func()
}

func newRawGateway(t testing.TB, gateway, signer *fabricnet.Org, channel string) *rawGateway {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, gateway.TLSRootCert)) {
		t.Fatal("no TLS root certificate")
	}
	conn, err := grpc.NewClient(gateway.Peers[0].Address, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(100<<20), grpc.MaxCallSendMsgSize(100<<20)))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.CertificateFromPEM(readFile(t, signer.User.Cert))
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewX509Identity(signer.MSPID, cert)
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.PrivateKeyFromPEM(readFile(t, signer.User.Key))
	if err != nil {
		t.Fatal(err)
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := client.Connect(id, client.WithSign(sign), client.WithHash(hash.SHA256), client.WithClientConnection(conn),
		client.WithEndorseTimeout(time.Minute), client.WithSubmitTimeout(time.Minute), client.WithCommitStatusTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return &rawGateway{contract: gw.GetNetwork(channel).GetContract("points"), close: func() { _ = gw.Close(); _ = conn.Close() }}
}

// submitEndorsedBy endorses fn on exactly the peers of orgs, submits it and
// returns its commit status (VALID or the reason it was invalidated).
func (g *rawGateway) submitEndorsedBy(t *testing.T, fn string, args any, orgs ...string) peer.TxValidationCode {
	t.Helper()
	prop, err := g.contract.NewProposal(fn, client.WithBytesArguments(contracttest.MustMarshal(t, args)), client.WithEndorsingOrganizations(orgs...))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := prop.Endorse()
	if err != nil {
		t.Fatalf("%s endorsed by %v: %v", fn, orgs, err)
	}
	commit, err := tx.Submit()
	if err != nil {
		t.Fatalf("%s endorsed by %v: submit: %v", fn, orgs, err)
	}
	st, err := commit.Status()
	if err != nil {
		t.Fatalf("%s endorsed by %v: commit status: %v", fn, orgs, err)
	}
	return st.Code
}

// TestConsortiumTenancy: issuer B's identity cannot issue, spend or reverse
// on issuer A's accounts (the contract's MSP checks), and a transaction that
// writes A's keys is invalid unless A's own peer endorsed it (the key-level
// policy "A AND the regulator"), even when B's peer and the regulator's
// endorsed it and the chaincode policy is met.
func TestConsortiumTenancy(t *testing.T) {
	t.Parallel()
	cnw := networkOf(t, "consortium")
	channel := newChannelOn(t, cnw, "tenancy")
	const bankB = "BankBMSP"
	reg := orgIn(t, cnw, regulatorMSP)
	// Each organisation is its own client through its own peer.
	regL := waitingLedgerVia(t, cnw, reg, channel, regulatorMSP)
	aL := waitingLedgerVia(t, cnw, orgIn(t, cnw, issuerMSP), channel, issuerMSP)
	bL := waitingLedgerVia(t, cnw, orgIn(t, cnw, bankB), channel, bankB)

	submitAs(t, regL, regulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulatorMSP})
	for _, m := range []string{issuerMSP, bankB} {
		submitAs(t, regL, regulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: m, Role: points.RoleIssuer,
			Name: m, FilingNumber: "F-" + m, Status: points.StatusActive})
	}
	anchorTestVersions(t, aL, issuerMSP)
	anchorTestVersions(t, bL, bankB)
	submitAs(t, aL, issuerMSP, "OpenAccounts", points.OpenAccountsArgs{Accounts: []points.OpenAccountArgs{
		{AccountID: "alice", Kind: points.KindConsumer}, {AccountID: "andy", Kind: points.KindConsumer}}})
	submitAs(t, aL, issuerMSP, "CreateFamily", points.CreateFamilyArgs{FamilyID: "fam-a", Head: "alice", RequestHash: hex64("f1")})
	submitAs(t, aL, issuerMSP, "InviteMember", points.FamilyMemberArgs{FamilyID: "fam-a", Account: "andy", RequestHash: hex64("f2")})
	submitAs(t, aL, issuerMSP, "AcceptInvite", points.FamilyMemberArgs{FamilyID: "fam-a", Account: "andy", RequestHash: hex64("f3")})
	submitAs(t, bL, bankB, "OpenAccount", points.OpenAccountArgs{AccountID: "bob", Kind: points.KindConsumer})

	issue := func(l *fabric.Ledger, msp string, items ...points.IssueItem) points.IssueBatchResult {
		t.Helper()
		res, err := l.Submit(t.Context(), issuer.Proposal{Caller: msp, Function: "IssueBatch",
			Args: contracttest.MustMarshal(t, points.IssueBatchArgs{Items: items})})
		if err != nil {
			t.Fatalf("IssueBatch as %s: %v", msp, err)
		}
		var r points.IssueBatchResult
		if err := json.Unmarshal(res.Payload, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := issue(aL, issuerMSP, testItem("a1", "alice", 100), testItem("a2", "alice", 50)); r.Issued != 2 {
		t.Fatalf("A's issuance: %+v", r)
	}
	balance := func(account string) int64 {
		t.Helper()
		var b points.Balance
		evaluateAs(t, regL, regulatorMSP, "GetBalance", points.AccountArgs{Account: account}, &b)
		return b.Total
	}

	// The contract: B's identity may not act on A's accounts and claims.
	t.Run("contract", func(t *testing.T) {
		r := issue(bL, bankB, testItem("b-on-a", "alice", 10))
		if r.Issued != 0 || r.Results[0].Status != points.ItemRejected || r.Results[0].Reason != "not_account_owner" {
			t.Errorf("B issuing on A's account: %+v, want rejected/not_account_owner", r.Results[0])
		}
		for _, tc := range []struct {
			fn     string
			args   any
			reason string
		}{
			{"Transfer", points.TransferArgs{From: "alice", To: "andy", Points: 10, RequestHash: hex64("t1")}, "not_account_owner"},
			{"Donate", points.DonateArgs{Account: "alice", CharityID: "none", ProjectID: "none", Points: 10, RequestHash: hex64("d1")}, "not_account_owner"},
			{"Reverse", points.ReverseArgs{Claim: hex64("claima1"), Reason: "refund", ItemID: "a1"}, "not_claim_owner"},
		} {
			_, err := bL.Submit(t.Context(), issuer.Proposal{Caller: bankB, Function: tc.fn, Args: contracttest.MustMarshal(t, tc.args)})
			if e := apperr.As(err); e == nil || e.Code != apperr.Forbidden || e.Reason != tc.reason {
				t.Errorf("B's %s on A's account: %v, want forbidden/%s", tc.fn, err, tc.reason)
			}
		}
		if got := balance("alice"); got != 150 {
			t.Errorf("alice's balance after B's attempts: %d, want 150", got)
		}
	})

	// The endorsement policies: A's own identity (the creator every
	// endorser's contract sees) with the peers chosen by hand. Writes of
	// A's existing keys (lots, claim, family, transfer counter) need A's
	// peer AND the regulator's; B's peer can never stand in for A's.
	t.Run("endorsement", func(t *testing.T) {
		asA := newRawGateway(t, orgIn(t, cnw, bankB), orgIn(t, cnw, issuerMSP), channel)
		defer asA.close()
		reverse := points.ReverseArgs{Claim: hex64("claima1"), Reason: "refund", ItemID: "a1"}
		transfer := points.TransferArgs{From: "alice", To: "andy", Points: 20, RequestHash: hex64("t2")}
		for _, tc := range []struct {
			fn   string
			args any
			orgs []string
			want peer.TxValidationCode
		}{
			// The chaincode policy (regulator AND an issuer) is met; the
			// key-level policy of A's lots and claim is not.
			{"Reverse", reverse, []string{bankB, regulatorMSP}, peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE},
			{"Transfer", transfer, []string{bankB, regulatorMSP}, peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE},
			// B's peer alone meets neither.
			{"Reverse", reverse, []string{bankB}, peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE},
			// A's peer alone: the regulator is missing.
			{"Transfer", transfer, []string{issuerMSP}, peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE},
			// A's and the regulator's peers: valid (the gateway is B's
			// peer, which only forwards).
			{"Transfer", transfer, []string{issuerMSP, regulatorMSP}, peer.TxValidationCode_VALID},
			{"Reverse", reverse, []string{issuerMSP, regulatorMSP}, peer.TxValidationCode_VALID},
		} {
			if got := asA.submitEndorsedBy(t, tc.fn, tc.args, tc.orgs...); got != tc.want {
				t.Errorf("%s endorsed by %v: %s, want %s", tc.fn, tc.orgs, got, tc.want)
			}
		}
		// Only the two valid transactions changed anything: alice had 150,
		// 20 went to andy, then a1's 100 were clawed back (from alice's
		// lot and andy's child of it) with no debt.
		if a, n := balance("alice"), balance("andy"); a+n != 50 {
			t.Errorf("alice %d + andy %d = %d points, want 50", a, n, a+n)
		}
	})

	// B's own business is untouched by all this: B's peer and the
	// regulator's endorse B's keys.
	t.Run("own", func(t *testing.T) {
		if r := issue(bL, bankB, testItem("b1", "bob", 30)); r.Issued != 1 {
			t.Fatalf("B's issuance on its own account: %+v", r)
		}
		submitAs(t, bL, bankB, "Reverse", points.ReverseArgs{Claim: hex64("claimb1"), Reason: "refund", ItemID: "b1"})
		if got := balance("bob"); got != 0 {
			t.Errorf("bob's balance after the reversal: %d, want 0", got)
		}
	})
}

// anchorTestVersions anchors, as msp, the rule, methodology and profile
// versions that testItem's issuances name.
func anchorTestVersions(t *testing.T, l *fabric.Ledger, msp string) {
	t.Helper()
	eff := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	submitAs(t, l, msp, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "rule", Version: "1", SHA256: hex64("r1"), EffectiveAt: eff})
	submitAs(t, l, msp, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "meth", Version: "1", SHA256: hex64("m1"), EffectiveAt: eff})
	submitAs(t, l, msp, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "1", SHA256: hex64("p1"), EffectiveAt: eff,
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true, PointValueFen: 2}})
}

// testItem is an issuance of pts to account under anchorTestVersions'
// versions, its claim and quantification hash derived from id.
func testItem(id, account string, pts int64) points.IssueItem {
	return points.IssueItem{ItemID: id, Account: account, Points: pts, Grams: 1000, Category: "transit",
		RuleVersion: points.VersionRef{ID: "rule", Version: "1"}, MethodologyVersion: points.VersionRef{ID: "meth", Version: "1"},
		ProfileVersion: points.VersionRef{ID: "cn", Version: "1"}, QuantificationHash: hex64("q" + id),
		ExpiresAt: time.Now().Add(300 * 24 * time.Hour).Truncate(time.Second), Claim: hex64("claim" + id)}
}

// TestConsortiumReadYourWrites: the issuer's server on the consortium, as
// its batcher works: open accounts, then at once issue to them, through the
// issuer's own peer, each transaction endorsed by that peer and the
// regulator's. The commit status comes from the issuer's peer; with the
// regulator's peer in fabric.Config.WaitPeers, Commit returns only once
// that peer has the block too, so every issuance's first endorsement agrees
// and every item is issued. A regulator's peer that stalls shows both
// sides: without the wait, Commit returns while that peer does not have the
// block, which is what the next endorsement would meet; with it, Commit
// waits until the deadline, warns with the peer and its height, and
// returns the committed transaction.
func TestConsortiumReadYourWrites(t *testing.T) {
	t.Parallel()
	cnw := networkOf(t, "consortium")
	channel := newChannelOn(t, cnw, "ryw")
	reg, bankA := orgIn(t, cnw, regulatorMSP), orgIn(t, cnw, issuerMSP)
	regL := waitingLedgerVia(t, cnw, reg, channel, regulatorMSP)
	submitAs(t, regL, regulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulatorMSP})
	submitAs(t, regL, regulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: issuerMSP, Role: points.RoleIssuer,
		Name: issuerMSP, FilingNumber: "F-" + issuerMSP, Status: points.StatusActive})
	anchorTestVersions(t, waitingLedgerVia(t, cnw, bankA, channel, issuerMSP), issuerMSP)
	regPeer := fabric.Peer{Endpoint: reg.Peers[0].Address, TLSRootCert: readFile(t, reg.TLSRootCert)}

	// The issuer's client: only its own identity, through its own peer.
	issuerLedger := func(t *testing.T, log *logCounter, timeout time.Duration, wait ...fabric.Peer) *fabric.Ledger {
		cfg := ledgerConfig(t, cnw, bankA, channel, issuerMSP)
		cfg.WaitPeers, cfg.WaitTimeout, cfg.Log = wait, timeout, slog.New(log)
		return openLedger(t, cfg)
	}
	open := func(t *testing.T, l *fabric.Ledger, accounts ...string) issuer.Endorsed {
		t.Helper()
		var args points.OpenAccountsArgs
		for _, a := range accounts {
			args.Accounts = append(args.Accounts, points.OpenAccountArgs{AccountID: a, Kind: points.KindConsumer})
		}
		e, err := l.Endorse(t.Context(), issuer.Proposal{Caller: issuerMSP, Function: "OpenAccounts", Args: contracttest.MustMarshal(t, args)})
		if err != nil {
			t.Fatalf("endorsing OpenAccounts: %v", err)
		}
		return e
	}
	// issue issues 10 points to each account and returns the items that
	// were not issued.
	issue := func(t *testing.T, l *fabric.Ledger, accounts ...string) []points.ItemResult {
		t.Helper()
		var items []points.IssueItem
		for _, a := range accounts {
			items = append(items, testItem(a, a, 10))
		}
		res, err := l.Submit(t.Context(), issuer.Proposal{Caller: issuerMSP, Function: "IssueBatch",
			Args: contracttest.MustMarshal(t, points.IssueBatchArgs{Items: items})})
		if err != nil {
			t.Fatalf("IssueBatch to %v: %v", accounts, err)
		}
		var r points.IssueBatchResult
		if err := json.Unmarshal(res.Payload, &r); err != nil {
			t.Fatal(err)
		}
		var missed []points.ItemResult
		for _, ir := range r.Results {
			if ir.Status != points.ItemIssued {
				missed = append(missed, ir)
			}
		}
		return missed
	}

	t.Run("waiting", func(t *testing.T) {
		log := &logCounter{}
		// A bound against a hang on a loaded machine, far above the
		// milliseconds the peer takes: this subtest is the wait's success.
		l := issuerLedger(t, log, time.Minute, regPeer)
		began := time.Now()
		const rounds = 20
		for i := range rounds {
			a, b := fmt.Sprintf("w%d-a", i), fmt.Sprintf("w%d-b", i)
			if _, err := l.Commit(t.Context(), open(t, l, a, b)); err != nil {
				t.Fatalf("round %d: OpenAccounts: %v", i, err)
			}
			if missed := issue(t, l, a, b); len(missed) > 0 {
				t.Errorf("round %d: items not issued: %+v", i, missed)
			}
		}
		if n := log.count(mismatchMsg); n != 0 {
			t.Errorf("%d endorsements were repeated after a mismatch; with the regulator's peer waited for, none should be", n)
		}
		if w := log.warnings(); len(w) > 0 {
			t.Errorf("warnings: %v", w)
		}
		t.Logf("%d rounds of OpenAccounts then IssueBatch, waiting for the regulator's peer: %s", rounds, time.Since(began).Round(time.Millisecond))
	})

	// Last, and briefly: the stalled peer is the regulator's peer of the
	// network the other consortium tests share, which waits for it.
	t.Run("regulator's peer stalled", func(t *testing.T) {
		waitLog, plainLog := &logCounter{}, &logCounter{}
		const timeout = 500 * time.Millisecond // a bound the paused peer must exceed, not a measurement
		waiting := issuerLedger(t, waitLog, timeout, regPeer)
		plain := issuerLedger(t, plainLog, 0)
		before, err := waiting.WaitPeerHeights(t.Context())
		if err != nil || len(before) != 1 || before[0] < 2 {
			t.Fatalf("WaitPeerHeights: %v, %v; want the regulator's peer's height", before, err)
		}
		ew, ep := open(t, waiting, "stall-w"), open(t, plain, "stall-p")

		name := reg.Peers[0].Name
		if err := cnw.PauseNode(name); err != nil {
			t.Fatal(err)
		}
		var resumeOnce sync.Once
		resume := func() {
			resumeOnce.Do(func() {
				if err := cnw.ResumeNode(name); err != nil {
					t.Errorf("ResumeNode: %v", err)
				}
			})
		}
		t.Cleanup(resume)
		var (
			wg             sync.WaitGroup
			rw, rp         *issuer.TxResult
			errW, errP     error
			commitCtx, end = context.WithTimeout(t.Context(), time.Minute)
		)
		defer end()
		wg.Go(func() { rw, errW = waiting.Commit(commitCtx, ew) })
		wg.Go(func() { rp, errP = plain.Commit(commitCtx, ep) })
		wg.Wait()
		resume()
		// Both commits returned while the regulator's peer was paused: the
		// plain one as soon as the issuer's peer had the block, the waiting
		// one at its deadline.
		if errW != nil || errP != nil {
			t.Fatalf("Commit with the regulator's peer stalled: waiting %v, plain %v; want both committed", errW, errP)
		}
		if w := plainLog.warnings(); len(w) > 0 {
			t.Errorf("the client without WaitPeers warned: %v", w)
		}
		want := map[string]string{"msg": "fabric: an endorsing peer has not committed the block within the wait; the next transaction may be endorsed against older state",
			"peer": regPeer.Endpoint, "block": fmt.Sprint(rw.Block), "peer_height": fmt.Sprint(before[0]), "wait": timeout.String()}
		if diff := cmp.Diff([]map[string]string{want}, waitLog.warnings()); diff != "" {
			t.Errorf("warnings of the waiting client mismatch (-want +got):\n%s", diff)
		}
		if before[0] > rw.Block || before[0] > rp.Block {
			t.Errorf("blocks %d and %d are below the regulator's peer's height %d before they were committed", rw.Block, rp.Block, before[0])
		}
		// Resumed, the peer catches up, and the accounts take points.
		if missed := issue(t, waiting, "stall-w", "stall-p"); len(missed) > 0 {
			t.Errorf("items not issued after the peer resumed: %+v", missed)
		}
		t.Logf("after the stall: %d re-endorsements of the issuance", waitLog.count(mismatchMsg))
	})
}

// mismatchMsg is what fabric.Ledger logs (debug) before it endorses a new
// proposal because the endorsers disagreed.
const mismatchMsg = "fabric: the endorsers disagreed; endorsing a new proposal"

// logCounter is a slog.Handler that keeps every record, for tests of what
// the ledger logs.
type logCounter struct {
	mu      sync.Mutex
	records []slog.Record
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCounter) WithGroup(string) slog.Handler            { return c }

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r.Clone())
	return nil
}

// count returns the number of records with message msg.
func (c *logCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.records {
		if r.Message == msg {
			n++
		}
	}
	return n
}

// warnings returns the warnings, each as its message and attributes.
func (c *logCounter) warnings() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, r := range c.records {
		if r.Level < slog.LevelWarn {
			continue
		}
		m := map[string]string{"msg": r.Message}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}
