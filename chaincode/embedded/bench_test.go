package embedded

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/contracttest"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgharness"
	"github.com/greenpoints/greenpoints/issuer"
)

// The benchmarks run the points contract on a DURABLE cluster (fsync,
// synchronous_commit and full_page_writes on, logged tables): production
// settings, as the design requires of published figures. See
// docs/benchmarks.md for the command and the results.

const (
	benchRegulator = "RegulatorMSP"
	benchIssuer    = "BankMSP"
	benchPoolConns = 12
)

var durable struct {
	once    sync.Once
	cluster *pgharness.Cluster
	err     error
	dbs     atomic.Int64
}

// stopDurableCluster is called by TestMain after the run.
func stopDurableCluster() {
	if durable.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = durable.cluster.Stop(ctx)
	}
}

// durableDB returns a pool on a new, migrated database of the durable cluster.
func durableDB(b *testing.B) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	durable.once.Do(func() {
		durable.cluster, durable.err = pgharness.Start(ctx, pgharness.Options{Durable: true})
	})
	if durable.err != nil {
		b.Fatalf("starting a durable cluster: %v", durable.err)
	}
	admin, err := database.Open(ctx, durable.cluster.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("bench_%d", durable.dbs.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	// Dropped after the pool closes (cleanups run last-in first-out), so
	// that autovacuum of finished runs does not bill the next one.
	b.Cleanup(func() {
		drop, err := database.Open(context.Background(), durable.cluster.URL("postgres"))
		if err != nil {
			b.Error(err)
			return
		}
		defer drop.Close()
		if _, err := drop.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			b.Error(err)
		}
	})
	pool, err := database.Open(ctx, durable.cluster.URL(name), database.WithMaxConns(benchPoolConns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	return pool
}

// cpuMeter measures the CPU time this process and the durable cluster's
// server processes spend, so the figures can be read independently of
// other load on the machine (Linux only; zero elsewhere).
type cpuMeter struct{ goCPU, pgCPU time.Duration }

func readCPU() cpuMeter {
	var m cpuMeter
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.goCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if durable.cluster == nil {
		return m
	}
	pids, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range pids {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		ppid, _ := strconv.Atoi(f[1])
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if ppid != durable.cluster.PID() && pid != durable.cluster.PID() {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		m.pgCPU += time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
	}
	return m
}

// report adds the CPU spent since start, per unit of work, to b's metrics.
func (start cpuMeter) report(b *testing.B, units int, unit string) {
	end := readCPU()
	b.ReportMetric(float64((end.goCPU-start.goCPU).Microseconds())/float64(units), "go-cpu-µs/"+unit)
	b.ReportMetric(float64((end.pgCPU-start.pgCPU).Microseconds())/float64(units), "pg-cpu-µs/"+unit)
}

func hex64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// pointsBench is a ledger running the points contract with a regulator, one
// issuer with anchored rule, methodology and profile, and accounts.
type pointsBench struct {
	l        *Ledger
	accounts []string
	expires  time.Time
}

func (p *pointsBench) call(tb testing.TB, caller, fn string, args any, result any) {
	tb.Helper()
	doc, err := json.Marshal(args)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := p.l.Submit(context.Background(), issuer.Proposal{Caller: caller, Function: fn, Args: doc})
	if err != nil {
		tb.Fatalf("%s: %v", fn, err)
	}
	if result != nil {
		if err := json.Unmarshal(res.Payload, result); err != nil {
			tb.Fatal(err)
		}
	}
}

func setupPoints(b *testing.B, accounts int) *pointsBench {
	b.Helper()
	pool := durableDB(b)
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	l, err := New(context.Background(), pool, points.New(), Options{Signer: priv, KeyID: "bench/v1"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	p := &pointsBench{l: l, expires: time.Now().Add(300 * 24 * time.Hour).Truncate(time.Second)}
	p.setupIssuer(b, time.Now().Add(-24*time.Hour).Truncate(time.Second), accounts)
	return p
}

// setupIssuer makes the regulator, the issuer with its rule, methodology
// and profile anchored to take effect at eff, and accounts accounts.
func (p *pointsBench) setupIssuer(tb testing.TB, eff time.Time, accounts int) {
	tb.Helper()
	p.call(tb, benchRegulator, "InitLedger", points.InitLedgerArgs{RegulatorMSP: benchRegulator}, nil)
	p.call(tb, benchRegulator, "RegisterMember", points.RegisterMemberArgs{
		MSP: benchIssuer, Role: points.RoleIssuer, Name: "Bank", FilingNumber: "F-1", Status: points.StatusActive}, nil)
	p.call(tb, benchIssuer, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorRule, ID: "rule", Version: "1", SHA256: hex64("r1"), EffectiveAt: eff}, nil)
	p.call(tb, benchIssuer, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: "meth", Version: "1", SHA256: hex64("m1"), EffectiveAt: eff}, nil)
	p.call(tb, benchIssuer, "AnchorVersion", points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "1", SHA256: hex64("p1"), EffectiveAt: eff,
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650, TransfersAllowed: true, PointValueFen: 2}}, nil)
	for start := 0; start < accounts; start += points.MaxOpenAccounts {
		var batch points.OpenAccountsArgs
		for i := start; i < min(accounts, start+points.MaxOpenAccounts); i++ {
			batch.Accounts = append(batch.Accounts, points.OpenAccountArgs{AccountID: fmt.Sprintf("acct-%06d", i), Kind: points.KindConsumer})
		}
		p.call(tb, benchIssuer, "OpenAccounts", batch, nil)
		for _, a := range batch.Accounts {
			p.accounts = append(p.accounts, a.AccountID)
		}
	}
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

// BenchmarkIssue measures IssueBatch: each issuance writes its claim, its
// lot and its expiry index entry. b.N is the number of batches.
func BenchmarkIssue(b *testing.B) {
	for _, tc := range []struct{ size, workers int }{{1, 64}, {100, 16}, {1000, 4}} {
		b.Run(fmt.Sprintf("batch=%d", tc.size), func(b *testing.B) {
			p := setupPoints(b, 10_000)
			props := make([]issuer.Proposal, b.N)
			for i := range props {
				var args points.IssueBatchArgs
				for j := range tc.size {
					args.Items = append(args.Items, p.item(p.accounts[(i*tc.size+j)%len(p.accounts)], 10))
				}
				props[i] = issuer.Proposal{Caller: benchIssuer, Function: "IssueBatch", Args: contracttest.MustMarshal(b, args)}
			}
			h0 := height(b, p.l)
			cpu := readCPU()
			b.ResetTimer()
			elapsed := contracttest.RunWorkers(b, submitVia(p.l), tc.workers, props, func(payload []byte) error {
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
			b.ReportMetric(0, "ns/op")
		})
	}
}

// fund issues to each of the given accounts lots lots of pts points.
func fund(b *testing.B, p *pointsBench, accounts []string, lots int, pts int64) {
	b.Helper()
	var items []points.IssueItem
	for _, a := range accounts {
		for range lots {
			items = append(items, p.item(a, pts))
		}
	}
	for len(items) > 0 {
		n := min(len(items), points.MaxIssueBatch)
		p.call(b, benchIssuer, "IssueBatch", points.IssueBatchArgs{Items: items[:n]}, nil)
		items = items[n:]
	}
}

// families pairs accounts 2i and 2i+1 of the first n into families.
func families(b *testing.B, p *pointsBench, n int) {
	b.Helper()
	for i := 0; i+1 < n; i += 2 {
		fam := fmt.Sprintf("fam-%d", i)
		head, member := p.accounts[i], p.accounts[i+1]
		p.call(b, benchIssuer, "CreateFamily", points.CreateFamilyArgs{FamilyID: fam, Head: head, RequestHash: hex64("f" + fam)}, nil)
		p.call(b, benchIssuer, "InviteMember", points.FamilyMemberArgs{FamilyID: fam, Account: member, RequestHash: hex64("i" + fam)}, nil)
		p.call(b, benchIssuer, "AcceptInvite", points.FamilyMemberArgs{FamilyID: fam, Account: member, RequestHash: hex64("a" + fam)}, nil)
	}
}

// ownedProposals builds b.N proposals where proposal i belongs to worker
// i%workers, whose accounts no other worker touches: concurrent
// transactions of different workers never conflict, as with real users.
func ownedProposals(b *testing.B, workers int, mk func(worker, seq int) issuer.Proposal) [][]issuer.Proposal {
	perWorker := make([][]issuer.Proposal, workers)
	for i := range b.N {
		w := i % workers
		perWorker[w] = append(perWorker[w], mk(w, i))
	}
	return perWorker
}

// runOwned runs each worker's proposals in order, the workers concurrently.
func runOwned(b *testing.B, l *Ledger, perWorker [][]issuer.Proposal) time.Duration {
	b.Helper()
	var (
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	began := time.Now()
	for _, props := range perWorker {
		wg.Go(func() {
			for _, prop := range props {
				if _, err := l.Submit(context.Background(), prop); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		b.Fatal(*e)
	}
	return time.Since(began)
}

// BenchmarkTransfer measures Transfer between the two members of a family,
// one point at a time, 64 families concurrently. A lot may be the source of
// at most points.MaxLotChildren transfers, so each sender holds lots of
// exactly that many points: every transfer takes from one lot, as a
// consumer's transfer usually does.
func BenchmarkTransfer(b *testing.B) {
	const workers = 64
	p := setupPoints(b, 2*workers)
	var senders []string
	for w := range workers {
		senders = append(senders, p.accounts[2*w])
	}
	fund(b, p, senders, b.N/workers/points.MaxLotChildren+1, points.MaxLotChildren)
	families(b, p, 2*workers)
	perWorker := ownedProposals(b, workers, func(w, seq int) issuer.Proposal {
		return issuer.Proposal{Caller: benchIssuer, Function: "Transfer", Args: contracttest.MustMarshal(b, points.TransferArgs{
			From: p.accounts[2*w], To: p.accounts[2*w+1], Points: 1, RequestHash: hex64(fmt.Sprint("t", seq))})}
	})
	cpu := readCPU()
	b.ResetTimer()
	elapsed := runOwned(b, p.l, perWorker)
	b.StopTimer()
	cpu.report(b, b.N, "transfer")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transfers/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDonate measures Donate of one point to a charity project, 64
// donors concurrently.
func BenchmarkDonate(b *testing.B) {
	const workers = 64
	p := setupPoints(b, workers)
	fund(b, p, p.accounts, 1, 1_000_000)
	p.call(b, benchRegulator, "RegisterCharity", points.RegisterCharityArgs{CharityID: "trees", Name: "Trees"}, nil)
	p.call(b, benchRegulator, "RegisterProject", points.RegisterProjectArgs{CharityID: "trees", ProjectID: "p1", Name: "Plant"}, nil)
	perWorker := ownedProposals(b, workers, func(w, seq int) issuer.Proposal {
		return issuer.Proposal{Caller: benchIssuer, Function: "Donate", Args: contracttest.MustMarshal(b, points.DonateArgs{
			Account: p.accounts[w], CharityID: "trees", ProjectID: "p1", Points: 1, RequestHash: hex64(fmt.Sprint("d", seq))})}
	})
	cpu := readCPU()
	b.ResetTimer()
	elapsed := runOwned(b, p.l, perWorker)
	b.StopTimer()
	cpu.report(b, b.N, "donation")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "donations/s")
	b.ReportMetric(0, "ns/op")
}

// submitVia adapts a Ledger to contracttest.SubmitFunc.
func submitVia(l *Ledger) contracttest.SubmitFunc {
	return func(p issuer.Proposal) ([]byte, error) {
		res, err := l.Submit(context.Background(), p)
		if err != nil {
			return nil, err
		}
		return res.Payload, nil
	}
}
