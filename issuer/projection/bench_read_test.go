package projection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgharness"
)

// BenchmarkRead measures the latency of the projection's consumer reads
// (Balance, Lots, Movements) among 1,000,000 lots on a DURABLE cluster
// (fsync, synchronous_commit and full_page_writes on, logged tables): the
// test template cluster of pgtest is non-durable, so the benchmark starts
// its own. The tables are filled directly with COPY, in ledger order (a
// lot's heap page is where its block put it, so one account's lots are
// scattered as in production, not clustered), then VACUUM ANALYZE and a
// CHECKPOINT, as autovacuum and the checkpointer would have done.
//
// Each sub-benchmark reports the p50 and p99 of its calls in microseconds;
// every call's result is checked against what the fill wrote. See
// docs/benchmarks.md (issue 6) for the command and the figures.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	cluster, err := pgharness.Start(ctx, pgharness.Options{Durable: true})
	if err != nil {
		b.Fatalf("starting a durable cluster: %v", err)
	}
	b.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Stop(stopCtx); err != nil {
			b.Error(err)
		}
	})
	pool, err := database.Open(ctx, cluster.URL("postgres"), database.WithMaxConns(readBenchClients))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	d := fillReadBench(b, pool)
	// Not b.Logf: a benchmark with sub-benchmarks shows its log only on failure.
	fmt.Fprintf(os.Stderr, "BenchmarkRead: filled %d lots and %d movements of %d accounts in %s; the heaviest holds %d live lots and %d movements\n",
		d.lots, d.movements, readBenchAccounts, time.Since(began).Round(time.Second), d.accounts[0].live, len(d.accounts[0].positions))

	p := New(pool, nil, nil)
	heaviest := d.accounts[0]
	random := func(r *rand.Rand) int { return readBenchHeavy + r.IntN(readBenchAccounts-readBenchHeavy) }

	balance := func(a int) error {
		got, err := p.Balance(ctx, readAccountID(a), d.now)
		if err != nil {
			return err
		}
		if want := d.accounts[a]; got.Total != want.total || got.Lots != want.live {
			return fmt.Errorf("Balance(%s) = %d points in %d lots, want %d in %d", readAccountID(a), got.Total, got.Lots, want.total, want.live)
		}
		return nil
	}
	lots := func(a int) error {
		got, err := p.Lots(ctx, readAccountID(a), d.now)
		if err != nil {
			return err
		}
		children := 0
		for _, l := range got {
			children += len(l.Children)
		}
		if want := d.accounts[a]; len(got) != want.live || children != want.children {
			return fmt.Errorf("Lots(%s) = %d lots with %d children, want %d with %d", readAccountID(a), len(got), children, want.live, want.children)
		}
		return nil
	}
	// movements reads the page before the account's movement #pos (the
	// newest page when pos is past the end) and checks its length.
	movements := func(a, pos int) error {
		cursor := ""
		if pos < len(d.accounts[a].positions) {
			cursor = encodeCursor(d.accounts[a].positions[pos])
		} else {
			pos = len(d.accounts[a].positions)
		}
		got, _, err := p.Movements(ctx, readAccountID(a), cursor, DefaultMovementsPage)
		if err != nil {
			return err
		}
		if want := min(pos, DefaultMovementsPage); len(got) != want {
			return fmt.Errorf("Movements(%s) before #%d = %d movements, want %d", readAccountID(a), pos, len(got), want)
		}
		return nil
	}
	cases := []struct {
		name string
		call func(r *rand.Rand) error
	}{
		{"Balance/random", func(r *rand.Rand) error { return balance(random(r)) }},
		{"Balance/heaviest", func(*rand.Rand) error { return balance(0) }},
		{"Lots/random", func(r *rand.Rand) error { return lots(random(r)) }},
		{"Lots/heaviest", func(*rand.Rand) error { return lots(0) }},
		{"Movements/first/random", func(r *rand.Rand) error { return movements(random(r), 1<<30) }},
		{"Movements/first/heaviest", func(*rand.Rand) error { return movements(0, 1<<30) }},
		// A page somewhere in the older half of the heaviest history: tens
		// of pages deep.
		{"Movements/deep/heaviest", func(r *rand.Rand) error {
			return movements(0, DefaultMovementsPage+r.IntN(len(heaviest.positions)/2))
		}},
	}
	for _, clients := range []int{1, readBenchClients} {
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/clients=%d", c.name, clients), func(b *testing.B) {
				measureReads(b, clients, c.call)
			})
		}
	}
}

const (
	readBenchLots     = 1_000_000
	readBenchAccounts = 100_000
	// readBenchHeavy accounts hold many lots each; account 0, the heaviest,
	// holds readBenchHeaviest, the others 1,000 to 3,000. The rest of the
	// lots go to the other accounts at random (about 9.6 each).
	readBenchHeavy    = 10
	readBenchHeaviest = 6_500
	// readBenchClients is the concurrency of the loaded runs (2 cores here).
	readBenchClients = 8
	// readBenchLotsPerBlock places lots in blocks: ledger order.
	readBenchLotsPerBlock = 100
	// readBenchDebitLag is how many lots later a lot's debit is recorded.
	readBenchDebitLag = 40_000
)

// measureReads runs call b.N times over clients goroutines and reports the p50
// and p99 of the calls in microseconds. The first failed call stops the
// benchmark (b.Fatal belongs to the benchmark's own goroutine).
func measureReads(b *testing.B, clients int, call func(r *rand.Rand) error) {
	var (
		mu     sync.Mutex
		all    = make([]time.Duration, 0, b.N)
		failed atomic.Pointer[error]
		seeds  atomic.Uint64
	)
	run := func(more func() bool) {
		r := rand.New(rand.NewPCG(seeds.Add(1), 6))
		var mine []time.Duration
		for more() && failed.Load() == nil {
			start := time.Now()
			if err := call(r); err != nil {
				failed.CompareAndSwap(nil, &err)
				break
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	}
	b.ResetTimer()
	if clients == 1 {
		n := 0
		run(func() bool { n++; return n <= b.N })
	} else {
		// RunParallel starts parallelism*GOMAXPROCS goroutines.
		b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			run(pb.Next)
			for pb.Next() { // drain after a failure: RunParallel wants it
			}
		})
	}
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	slices.Sort(all)
	pct := func(p int) float64 {
		i := (len(all)*p + 99) / 100 // nearest rank
		return float64(all[max(0, i-1)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(50), "p50-µs")
	b.ReportMetric(pct(99), "p99-µs")
}

// readBenchData is what the fill wrote, for checking the reads.
type readBenchData struct {
	now             time.Time
	lots, movements int
	accounts        []readBenchAccount
}

type readBenchAccount struct {
	total     int64      // points of live lots at now
	live      int        // lots holding points at now
	children  int        // lots transferred from the live lots
	positions [][3]int64 // the account's movements, oldest first
}

func readAccountID(a int) string { return fmt.Sprintf("acct-%06d", a) }

// readLot is one generated lot; its rows are derived from it.
type readLot struct {
	owner     int32
	source    int32 // the lot a transfer lot came from; -1 for an issued lot
	issuedAt  int64 // unix seconds
	expiresAt int64
	amount    int64
	remaining int64
	debit     string // cause of the debit movement; "" when none
}

// fillReadBench generates the lots deterministically and COPYs accounts,
// lots and movements into the projection tables.
func fillReadBench(b *testing.B, pool *pgxpool.Pool) *readBenchData {
	b.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(42, 6))
	now := time.Now().UTC().Truncate(time.Second)
	d := &readBenchData{now: now, accounts: make([]readBenchAccount, readBenchAccounts)}

	// Owners: the heavy accounts' lots, then the rest at random, shuffled
	// so that every account's lots are spread over the whole history.
	owners := make([]int32, 0, readBenchLots)
	for a := range readBenchHeavy {
		n := readBenchHeaviest
		if a > 0 {
			n = 1000 + (a-1)*250
		}
		for range n {
			owners = append(owners, int32(a))
		}
	}
	for len(owners) < readBenchLots {
		owners = append(owners, int32(readBenchHeavy+r.IntN(readBenchAccounts-readBenchHeavy)))
	}
	r.Shuffle(len(owners), func(i, j int) { owners[i], owners[j] = owners[j], owners[i] })

	// Two years of history, oldest first; validity one to three years, so
	// about a third of the lots have expired by now.
	start := now.Add(-2 * 365 * 24 * time.Hour).Unix()
	step := int64(2*365*24*3600) / readBenchLots
	lots := make([]readLot, readBenchLots)
	var transferred []int32 // lots that transferred points out: sources
	for i := range lots {
		l := &lots[i]
		l.owner, l.source = owners[i], -1
		l.issuedAt = start + int64(i)*step
		l.expiresAt = l.issuedAt + int64(1+r.IntN(3))*365*24*3600 + int64(r.IntN(86400))
		l.amount = int64(1 + r.IntN(500))
		l.remaining = l.amount
		// About one lot in twenty came by transfer from an earlier lot of
		// another account that transferred points out, keeping its expiry.
		if len(transferred) > 0 && r.IntN(20) == 0 {
			if src := transferred[r.IntN(len(transferred))]; lots[src].owner != l.owner {
				l.source, l.expiresAt = src, lots[src].expiresAt
			}
		}
		switch expired := l.expiresAt <= now.Unix(); {
		case expired && r.IntN(2) == 0:
			l.remaining, l.debit = 0, "expire" // swept
		case expired:
			// expired, not yet swept: no points for the balance
		case r.IntN(100) < 15:
			l.remaining, l.debit = 0, "donate"
		case r.IntN(100) < 30:
			l.remaining, l.debit = l.amount/2, "transfer_out"
			transferred = append(transferred, int32(i))
		}
		if l.expiresAt > now.Unix() && l.remaining > 0 {
			d.accounts[l.owner].total += l.remaining
			d.accounts[l.owner].live++
		}
	}
	for i := range lots {
		if src := lots[i].source; src >= 0 && lots[src].expiresAt > now.Unix() && lots[src].remaining > 0 {
			d.accounts[lots[src].owner].children++
		}
	}
	if live := d.accounts[0].live; live > MaxLots || live < 1000 {
		b.Fatalf("the heaviest account holds %d live lots; the benchmark wants 1,000 to MaxLots", live)
	}

	lotKey := func(i int32) string {
		l := &lots[i]
		return fmt.Sprintf("lot/%s/%012d/%s", readAccountID(int(l.owner)), l.expiresAt, readLotHex(i))
	}
	position := func(i int) (block, idx int64) {
		return int64(i/readBenchLotsPerBlock + 1), int64(i % readBenchLotsPerBlock / 10)
	}
	issuers := [2]string{"BankAMSP", "BankBMSP"}

	var rows []any
	copyRows := func(table string, cols []string, next func() bool) int64 {
		n, err := pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if !next() {
				return nil, nil
			}
			return rows, nil
		}))
		if err != nil {
			b.Fatalf("COPY %s: %v", table, err)
		}
		return n
	}

	a := 0
	copyRows("proj_accounts", []string{"account_id", "issuer", "kind", "opened_at", "opened_tx", "debt", "family_id"}, func() bool {
		if a == readBenchAccounts {
			return false
		}
		rows = []any{readAccountID(a), issuers[a%2], "consumer", time.Unix(start, 0), "tx-open", int64(0), ""}
		a++
		return true
	})

	i := 0
	d.lots = int(copyRows("proj_lots", []string{"lot_key", "lot_id", "account", "issuer", "cause", "claim", "item_id", "category",
		"amount", "remaining", "grams", "grams_remaining", "donated", "transferred_out", "reversed", "expired", "issued_at", "expires_at",
		"rule_id", "rule_version", "methodology_id", "methodology_version", "profile_id", "profile_version", "quantification_hash",
		"source_lot", "tx_id", "block", "idx"}, func() bool {
		if i == readBenchLots {
			return false
		}
		l, id := &lots[i], int32(i)
		cause, source := "issue", ""
		if l.source >= 0 {
			cause, source = "transfer_in", lotKey(l.source)
		}
		var donated, transferred, expired int64
		switch l.debit {
		case "donate":
			donated = l.amount - l.remaining
		case "transfer_out":
			transferred = l.amount - l.remaining
		case "expire":
			expired = l.amount - l.remaining
		}
		block, idx := position(i)
		rows = []any{lotKey(id), readLotHex(id), readAccountID(int(l.owner)), issuers[l.owner%2], cause, readClaimHex(id), "item-" + strconv.Itoa(i), "transit",
			l.amount, l.remaining, 10 * l.amount, 10 * l.remaining, donated, transferred, int64(0), expired,
			time.Unix(l.issuedAt, 0), time.Unix(l.expiresAt, 0),
			"rule", "1", "meth", "1", "cn", "1", readClaimHex(-id - 1), source, readTxHex(block, idx), block, idx}
		i++
		return true
	}))

	// Movements in ledger order: each lot's credit at its own position
	// (even seq), and its debit, if any, readBenchDebitLag lots later (odd
	// seq), so that debits interleave with later credits as in a ledger.
	i = 0
	creditDone := false // lot i's credit is written; next is the debit at i
	d.movements = int(copyRows("proj_movements", []string{"block", "idx", "seq", "account", "issuer", "tx_id", "cause", "points", "grams",
		"lot_key", "claim", "counterparty", "receipt_id", "ts", "request_hash"}, func() bool {
		for i < readBenchLots+readBenchDebitLag {
			at := i
			block, idx := position(at)
			seq := int64(at%10) * 2
			if !creditDone {
				creditDone = true
				if at < readBenchLots {
					l, id := &lots[at], int32(at)
					cause, counterparty := "issue", ""
					if l.source >= 0 {
						cause, counterparty = "transfer_in", readAccountID(int(lots[l.source].owner))
					}
					d.accounts[l.owner].positions = append(d.accounts[l.owner].positions, [3]int64{block, idx, seq})
					rows = []any{block, idx, seq, readAccountID(int(l.owner)), issuers[l.owner%2], readTxHex(block, idx), cause, l.amount, 10 * l.amount,
						lotKey(id), readClaimHex(id), counterparty, "", time.Unix(l.issuedAt, 0), ""}
					return true
				}
			}
			i, creditDone = i+1, false
			j := at - readBenchDebitLag
			if j < 0 || lots[j].debit == "" {
				continue
			}
			l, id := &lots[j], int32(j)
			counterparty, receipt := "", ""
			switch l.debit {
			case "donate":
				counterparty, receipt = "trees/p1", readLotHex(-id-1)
			case "transfer_out":
				counterparty = readAccountID(int(lots[(j+1)%readBenchLots].owner))
			}
			pts := l.remaining - l.amount
			d.accounts[l.owner].positions = append(d.accounts[l.owner].positions, [3]int64{block, idx, seq + 1})
			rows = []any{block, idx, seq + 1, readAccountID(int(l.owner)), issuers[l.owner%2], readTxHex(block, idx), l.debit, pts, 10 * pts,
				lotKey(id), readClaimHex(id), counterparty, receipt, time.Unix(start+int64(at)*step, 0), ""}
			return true
		}
		return false
	}))

	// What autovacuum and the checkpointer would have done long before:
	// statistics, the visibility map, no checkpoint during the run.
	for _, sql := range []string{"VACUUM (ANALYZE) proj_accounts, proj_lots, proj_movements", "CHECKPOINT"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	return d
}

func readLotHex(i int32) string { return readHex("lot", int64(i))[:32] }

func readClaimHex(i int32) string { return readHex("claim", int64(i)) }

func readTxHex(block, idx int64) string { return readHex("tx", block<<8|idx) }

func readHex(kind string, n int64) string {
	sum := sha256.Sum256(strconv.AppendInt([]byte(kind+"/"), n, 10))
	return hex.EncodeToString(sum[:])
}
