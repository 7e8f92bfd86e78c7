package fabric_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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

// The benchmarks run the points contract, side by side in one run, on two
// networks:
//
//   - topology=suite: the network TestMain starts, i.e. the dev topology
//     (Org1 with the only peer, one Raft orderer, one chaincode service)
//     plus peerless member orgs, whose RegulatorMSP and BankAMSP identities
//     the benchmark signs as; Org1's peer alone endorses, validates and
//     commits; no key-level policies (they could never be met).
//   - topology=trio: BankA, the regulator and the auditor each with its own
//     peer and chaincode service (mutual TLS); every transaction is
//     endorsed by BankA's peer AND the regulator's (chaincode policy), every
//     key the contract creates gets the key-level policy "BankA AND the
//     regulator", and three peers validate and commit. The benchmark's
//     gateway is BankA's peer, the issuer's own.
//
// Each sub-benchmark gets its own channel with the chaincode committed on
// it. Block cutting is fabricnet's: BatchTimeout 200 ms, MaxMessageCount
// 10, PreferredMaxBytes 16 MB. See docs/benchmarks.md for the command and
// the results.

const (
	benchRegulator = "RegulatorMSP"
	benchIssuer    = "BankAMSP"
	benchAccounts  = 1000
)

// cpuMeter measures the CPU time this process (the benchmark's gateway
// client) and the network's processes (peer, orderer, chaincode service)
// spend, so the figures can be read independently of the machine's other
// load (Linux only; zero elsewhere).
type cpuMeter struct {
	net    *fabricnet.Network
	client time.Duration
	procs  map[string]time.Duration // by /proc/<pid>/comm
}

func readCPU(net *fabricnet.Network) cpuMeter {
	m := cpuMeter{net: net, procs: map[string]time.Duration{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range net.PIDs() {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		name := strings.TrimSpace(string(comm))
		if strings.HasPrefix(name, "greenpoints") {
			name = "cc"
		}
		// Fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		m.procs[name] += time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
	}
	return m
}

// report adds the CPU spent since start, per unit of work, to b's metrics.
func (start cpuMeter) report(b *testing.B, units int, unit string) {
	end := readCPU(start.net)
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(units) }
	b.ReportMetric(per(end.client-start.client), "client-cpu-µs/"+unit)
	for _, name := range []string{"peer", "orderer", "cc"} {
		b.ReportMetric(per(end.procs[name]-start.procs[name]), name+"-cpu-µs/"+unit)
	}
}

func hex64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// pointsBench is a ledger on a fresh channel running the points contract
// with a regulator, one issuer with anchored rule, methodology and profile,
// and accounts.
type pointsBench struct {
	net      *fabricnet.Network
	gateway  *fabricnet.Org // whose peer the clients talk to
	l        *fabric.Ledger
	channel  string
	accounts []string
	expires  time.Time
}

func (p *pointsBench) call(b *testing.B, caller, fn string, args any, result any) {
	b.Helper()
	res, err := p.l.Submit(context.Background(), issuer.Proposal{Caller: caller, Function: fn, Args: contracttest.MustMarshal(b, args)})
	if err != nil {
		b.Fatalf("%s: %v", fn, err)
	}
	if result != nil {
		if err := json.Unmarshal(res.Payload, result); err != nil {
			b.Fatal(err)
		}
	}
}

// setupPoints creates a channel on net with the chaincode and the
// contract's setup on it; the clients talk to the first peer of gateway.
// The ledger is closed by the caller.
func setupPoints(b *testing.B, net *fabricnet.Network, gateway *fabricnet.Org, accounts int) *pointsBench {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	channel := fmt.Sprintf("bench%d", chCount.Add(1))
	if err := net.CreateChannel(ctx, channel); err != nil {
		b.Fatalf("CreateChannel(%s): %v", channel, err)
	}
	if err := net.DeployChaincodeOn(ctx, channel, "points"); err != nil {
		b.Fatalf("DeployChaincodeOn(%s): %v", channel, err)
	}
	cfg := fabric.Config{
		PeerEndpoint: gateway.Peers[0].Address,
		TLSRootCert:  readFile(b, gateway.TLSRootCert),
		Identities:   map[string]fabric.Identity{},
		Channel:      channel,
		Chaincode:    "points",
	}
	for _, org := range net.Orgs {
		if org.MSPID == benchRegulator || org.MSPID == benchIssuer {
			cfg.Identities[org.MSPID] = fabric.Identity{Cert: readFile(b, org.User.Cert), Key: readFile(b, org.User.Key)}
		}
	}
	if len(cfg.Identities) != 2 {
		b.Fatalf("the network has no %s or %s", benchRegulator, benchIssuer)
	}
	l, err := fabric.New(ctx, cfg)
	if err != nil {
		b.Fatalf("fabric.New: %v", err)
	}
	p := &pointsBench{net: net, gateway: gateway, l: l, channel: channel, expires: time.Now().Add(300 * 24 * time.Hour).Truncate(time.Second)}
	p.call(b, benchRegulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: benchRegulator}, nil)
	p.call(b, benchRegulator, "RegisterMember", points.RegisterMemberArgs{
		MSP: benchIssuer, Role: points.RoleIssuer, Name: "Bank", FilingNumber: "F-1", Status: points.StatusActive}, nil)
	eff := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	p.call(b, benchIssuer, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "rule", Version: "1", SHA256: hex64("r1"), EffectiveAt: eff}, nil)
	p.call(b, benchIssuer, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "meth", Version: "1", SHA256: hex64("m1"), EffectiveAt: eff}, nil)
	p.call(b, benchIssuer, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "1", SHA256: hex64("p1"), EffectiveAt: eff,
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true, PointValueFen: 2}}, nil)
	for start := 0; start < accounts; start += points.MaxOpenAccounts {
		var batch points.OpenAccountsArgs
		for i := start; i < min(accounts, start+points.MaxOpenAccounts); i++ {
			batch.Accounts = append(batch.Accounts, points.OpenAccountArgs{AccountID: fmt.Sprintf("acct-%06d", i), Kind: points.KindConsumer})
		}
		p.call(b, benchIssuer, "OpenAccounts", batch, nil)
		for _, a := range batch.Accounts {
			p.accounts = append(p.accounts, a.AccountID)
		}
	}
	return p
}

var itemSeq atomic.Int64

func (p *pointsBench) item(account string, pts int64) points.IssueItem {
	id := fmt.Sprintf("item-%d", itemSeq.Add(1))
	return points.IssueItem{
		ItemID: id, Account: account, Points: pts, Grams: 1500, Category: "transit",
		RuleVersion: points.VersionRef{ID: "rule", Version: "1"}, MethodologyVersion: points.VersionRef{ID: "meth", Version: "1"},
		ProfileVersion: points.VersionRef{ID: "cn", Version: "1"}, QuantificationHash: hex64("q" + id),
		ExpiresAt: p.expires, Claim: hex64("claim" + id),
	}
}

func height(b *testing.B, l *fabric.Ledger) uint64 {
	b.Helper()
	h, err := l.Height(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// viaLedger submits through issuer.Ledger (fabric.Ledger.Submit): endorse,
// submit, commit status, then the transaction's block (qscc
// GetBlockByNumber) for its index and timestamp.
// A conflicted endorsement (conflict/endorsement_mismatch: issuer's and
// regulator's peers at different heights) is endorsed again as a new
// proposal, as the issuer's batcher does, at most maxBenchRetries times;
// mismatches counts them for the report.
func viaLedger(_ *testing.B, p *pointsBench) (contracttest.SubmitFunc, func()) {
	return func(prop issuer.Proposal) ([]byte, error) {
		for attempt := 0; ; attempt++ {
			res, err := p.l.Submit(context.Background(), prop)
			if apperr.ReasonOf(err) == "endorsement_mismatch" && attempt < maxBenchRetries {
				mismatches.Add(1)
				continue
			}
			if err != nil {
				return nil, err
			}
			return res.Payload, nil
		}
	}, func() {}
}

const maxBenchRetries = 5

var mismatches atomic.Int64

// viaGateway submits with fabric-gateway directly as the issuer: endorse,
// submit, commit status, and nothing else. It isolates the network's rate
// from the ledger client's per-transaction block lookup.
func viaGateway(b *testing.B, p *pointsBench) (contracttest.SubmitFunc, func()) {
	b.Helper()
	var bank *fabricnet.Org
	for _, o := range p.net.Orgs {
		if o.MSPID == benchIssuer {
			bank = o
		}
	}
	rg := newRawGateway(b, p.gateway, bank, p.channel)
	contract := rg.contract
	return func(prop issuer.Proposal) ([]byte, error) {
		if prop.Caller != benchIssuer {
			return nil, fmt.Errorf("viaGateway signs as %s only", benchIssuer)
		}
		out, commit, err := contract.SubmitAsync(prop.Function, client.WithBytesArguments(prop.Args))
		for attempt := 0; fabric.EndorsementMismatch(err) && attempt < maxBenchRetries; attempt++ {
			mismatches.Add(1)
			out, commit, err = contract.SubmitAsync(prop.Function, client.WithBytesArguments(prop.Args))
		}
		if err != nil {
			return nil, err
		}
		st, err := commit.Status()
		if err != nil {
			return nil, err
		}
		if !st.Successful {
			return nil, fmt.Errorf("transaction %s: %s", st.TransactionID, st.Code)
		}
		return out, nil
	}, rg.close
}

// benchSizes are the batch sizes (issuances per transaction) and the
// concurrent submitters of each.
var benchSizes = []struct{ size, workers int }{{1, 16}, {10, 16}, {100, 16}, {500, 8}}

// BenchmarkFabricIssue measures IssueBatch committed on Fabric through
// fabric.Ledger: each issuance writes its own claim, its lot and its expiry
// index entry. b.N is the number of batches (transactions), submitted by
// enough concurrent clients to fill blocks of MaxMessageCount 10. Every item
// must be issued.
func BenchmarkFabricIssue(b *testing.B) { benchIssue(b, viaLedger) }

// BenchmarkFabricIssueGateway is BenchmarkFabricIssue with fabric-gateway
// called directly (no block lookup per transaction): the network's rate.
func BenchmarkFabricIssueGateway(b *testing.B) { benchIssue(b, viaGateway) }

// benchTopologies are the networks the benchmarks compare, in one run.
var benchTopologies = []string{"suite", "trio"}

// benchNetwork returns the network of topology and the organisation whose
// peer the issuer's clients talk to: Org1's (the only peer) on suite, the
// issuer's own on trio.
func benchNetwork(b *testing.B, topology string) (*fabricnet.Network, *fabricnet.Org) {
	b.Helper()
	if topology == "suite" {
		return nw, nw.Orgs[0]
	}
	net := networkOf(b, topology)
	return net, orgIn(b, net, benchIssuer)
}

func benchIssue(b *testing.B, via func(*testing.B, *pointsBench) (contracttest.SubmitFunc, func())) {
	for _, topology := range benchTopologies {
		b.Run("topology="+topology, func(b *testing.B) { benchIssueOn(b, topology, via) })
	}
}

func benchIssueOn(b *testing.B, topology string, via func(*testing.B, *pointsBench) (contracttest.SubmitFunc, func())) {
	for _, tc := range benchSizes {
		// One channel per batch size, set up on the first call only: the
		// benchmark function runs several times with growing b.N.
		var (
			p      *pointsBench
			submit contracttest.SubmitFunc
			done   func()
		)
		defer func() {
			if done != nil {
				done()
			}
			if p != nil {
				_ = p.l.Close()
			}
		}()
		b.Run(fmt.Sprintf("batch=%d", tc.size), func(b *testing.B) {
			if p == nil {
				net, gateway := benchNetwork(b, topology)
				p = setupPoints(b, net, gateway, benchAccounts)
				submit, done = via(b, p)
			}
			props := make([]issuer.Proposal, b.N)
			for i := range props {
				var args points.IssueBatchArgs
				for range tc.size {
					args.Items = append(args.Items, p.item(p.accounts[int(itemSeq.Load())%len(p.accounts)], 10))
				}
				props[i] = issuer.Proposal{Caller: benchIssuer, Function: "IssueBatch", Args: contracttest.MustMarshal(b, args)}
			}
			h0 := height(b, p.l)
			cpu := readCPU(p.net)
			m0 := mismatches.Load()
			b.ResetTimer()
			elapsed := contracttest.RunWorkers(b, submit, tc.workers, props, func(payload []byte) error {
				var r points.IssueBatchResult
				if err := json.Unmarshal(payload, &r); err != nil {
					return err
				}
				if r.Issued != tc.size {
					return fmt.Errorf("issued %d of %d: %+v", r.Issued, tc.size, r.Results[0])
				}
				return nil
			})
			b.StopTimer()
			cpu.report(b, b.N*tc.size, "issuance")
			b.ReportMetric(float64(b.N*tc.size)/elapsed.Seconds(), "issuances/s")
			b.ReportMetric(float64(b.N)/float64(height(b, p.l)-h0), "txs/block")
			b.ReportMetric(float64(mismatches.Load()-m0), "mismatch-retries")
			b.ReportMetric(0, "ns/op")
		})
	}
}
