package projection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgharness"
	"github.com/greenpoints/greenpoints/issuer"
)

// durableDB starts a DURABLE cluster (fsync, synchronous_commit and
// full_page_writes on: production settings, as published figures require;
// pgtest's cluster has them off) for the benchmark, and returns a pool on a
// migrated database of it and the cluster.
func durableDB(b *testing.B) (*pgxpool.Pool, *pgharness.Cluster) {
	b.Helper()
	ctx := context.Background()
	cluster, err := pgharness.Start(ctx, pgharness.Options{Durable: true})
	if err != nil {
		b.Fatalf("starting a durable cluster: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			b.Error(err)
		}
	})
	pool, err := database.Open(ctx, cluster.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	return pool, cluster
}

// cpuTimes is the CPU time this process and the cluster's server processes
// have spent (Linux), so that figures can be read apart from the other load
// on a shared machine.
func cpuTimes(cluster *pgharness.Cluster) (goCPU, pgCPU time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		goCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		ppid, _ := strconv.Atoi(f[1])
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if ppid != cluster.PID() && pid != cluster.PID() {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		pgCPU += time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
	}
	return goCPU, pgCPU
}

// benchWorkload fills the ledger with what the pipeline produces at scale:
// batches IssueBatch transactions of perBatch items spread over accounts,
// and every tenth batch a round of donations (each debiting several lots)
// and family transfers (debits plus new lots).
func benchWorkload(e *env, accounts, batches, perBatch int) {
	e.t.Helper()
	ids := make([]string, accounts)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%04d", i)
	}
	e.setup(ids, nil)
	// Families of three: head c(3k), members c(3k+1), c(3k+2).
	var heads []string
	for k := 0; 3*k+2 < accounts && k < 50; k++ {
		fam, head := fmt.Sprintf("fam%d", k), ids[3*k]
		e.submit(bankA, "CreateFamily", points.CreateFamilyArgs{FamilyID: fam, Head: head, RequestHash: hex64("create" + fam)})
		for _, m := range ids[3*k+1 : 3*k+3] {
			args := points.FamilyMemberArgs{FamilyID: fam, Account: m, RequestHash: hex64(fam + m)}
			e.submit(bankA, "InviteMember", args)
			e.submit(bankA, "AcceptInvite", args)
		}
		heads = append(heads, head)
	}
	now := e.now()
	for r := range batches {
		items := make([]points.IssueItem, perBatch)
		for j := range items {
			exp := now.Add(time.Duration(30+(7*r+j)%300) * 24 * time.Hour)
			items[j] = item(fmt.Sprintf("b%d-%d", r, j), ids[(r*perBatch+j)%accounts], 10, 1000, exp)
		}
		e.submit(bankA, "IssueBatch", points.IssueBatchArgs{Items: items})
		if r%10 != 9 {
			continue
		}
		for d := range 25 {
			acct := ids[(r*31+d*7)%accounts]
			e.submit(bankA, "Donate", points.DonateArgs{Account: acct, CharityID: "trees", ProjectID: "p1", Points: 35,
				RequestHash: hex64(fmt.Sprint("donate", r, d))})
		}
		// Transfers stay inside a family: heads send to their members.
		for k, head := range heads[:min(10, len(heads))] {
			to := ids[3*k+1+r/10%2]
			e.submit(bankA, "Transfer", points.TransferArgs{From: head, To: to, Points: 25, RequestHash: hex64(fmt.Sprint("transfer", r, k))})
		}
	}
}

// committedTxs reads every valid transaction up to the last one the
// workload submitted, and counts their changes.
func committedTxs(tb testing.TB, e *env) (txs []issuer.CommittedTx, changes int) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := errors.New("stop")
	err := e.led.Subscribe(ctx, issuer.Checkpoint{}, func(tx issuer.CommittedTx) error {
		var ev points.Event
		if err := json.Unmarshal(tx.Event, &ev); err != nil {
			return err
		}
		txs = append(txs, tx)
		changes += len(ev.Changes)
		if tx.TxID == e.lastTxID {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		tb.Fatalf("Subscribe: %v", err)
	}
	return txs, changes
}

// applyAll replays txs into the projection from scratch in groups shaped
// like follow's, as Rebuild (and Run, catching up) would.
func applyAll(tb testing.TB, e *env, txs []issuer.CommittedTx, groupTxs, groupBytes int) {
	tb.Helper()
	ctx := context.Background()
	prev, total := issuer.Checkpoint{}, 0
	for start := 0; start < len(txs); {
		end, size := start, 0
		for end < len(txs) && end-start < groupTxs && size < groupBytes {
			size += len(txs[end].Event)
			end++
		}
		next, n, err := applyGroup(ctx, e.pool, Name, prev, txs[start:end], start == 0)
		if err != nil {
			tb.Fatalf("applying transactions %d-%d: %v", start, end, err)
		}
		prev, total, start = next, total+n, end
	}
	if total != len(txs) {
		tb.Fatalf("applied %d transactions, want %d", total, len(txs))
	}
}

// BenchmarkApply measures how fast the projection applies a ledger of large
// IssueBatch transactions (200 x 500 items) with donations and transfers,
// on a durable cluster: one transaction per PostgreSQL transaction (Run
// following the pipeline), and Rebuild's groups. Besides the rates it
// reports the CPU this process and PostgreSQL spent per 1,000 changes.
// docs/benchmarks.md records the figures:
//
//	go test -run '^$' -bench Apply -benchtime 1x -timeout 30m ./issuer/projection/
func BenchmarkApply(b *testing.B) {
	pool, cluster := durableDB(b)
	e := newEnvOn(b, pool)
	benchWorkload(e, 500, 200, 500)
	txs, changes := committedTxs(b, e)
	var movements int
	for i := range txs {
		ev, err := decodeEvent(&txs[i])
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range ev.Changes {
			if c.Type == points.ChangeLotCreated || c.Type == points.ChangeLotDebited {
				movements++
			}
		}
	}
	b.Logf("%d transactions, %d changes, %d movements", len(txs), changes, movements)
	for _, bc := range []struct {
		name                 string
		groupTxs, groupBytes int
	}{
		{"group=1", 1, runGroupBytes},
		{"rebuild", rebuildGroupTxs, rebuildGroupBytes},
	} {
		b.Run(bc.name, func(b *testing.B) {
			go0, pg0 := cpuTimes(cluster)
			for b.Loop() {
				applyAll(b, e, txs, bc.groupTxs, bc.groupBytes)
			}
			go1, pg1 := cpuTimes(cluster)
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(len(txs)*b.N)/secs, "tx/s")
			b.ReportMetric(float64(changes*b.N)/secs, "changes/s")
			perK := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(changes*b.N) * 1000 }
			b.ReportMetric(perK(go1-go0), "go-cpu-µs/1k-changes")
			b.ReportMetric(perK(pg1-pg0), "pg-cpu-µs/1k-changes")
			if n := countRows(b, e.pool, "proj_movements"); n != movements {
				b.Fatalf("proj_movements has %d rows, want %d", n, movements)
			}
		})
	}
}
