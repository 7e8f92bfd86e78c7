// Command greenpoints-load measures the issuance pipeline of a running
// greenpoints server (e.g. 'greenpoints demo') from a partner's side:
//
//   - intake: signed card-transaction requests at a fixed rate (open loop, so
//     a slow server cannot hide its latency by slowing the sender), reporting
//     latency percentiles; the purchases are dated now, so they wait out the
//     hold period and the batcher stays idle: this is intake alone.
//   - e2e: purchases dated past the hold period, sent as fast as the server
//     takes them, timed from the first signed request until every issuance is
//     committed on the ledger and visible in the read projection.
//
// It talks only to 127.0.0.1 by default, is bounded in count and time, and
// needs the database URL only to create sandbox card links (consent is the
// consumer's, not the load generator's, to give) and to see when issuances
// are visible.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

type options struct {
	url, keysDir, dbURL, mode, run string
	rate                           int
	duration                       time.Duration
	perRequest, total, accounts    int
	inFlight, warmup               int
	dueAfter                       time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "greenpoints-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("greenpoints-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: greenpoints-load --mode intake|e2e --keys-dir DIR --database-url URL [flags]

Measures a running greenpoints server (start one with 'greenpoints demo'; it
prints its URL and key directory) as the sandbox bank demo-bank.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&o.keysDir, "keys-dir", "", "the demo's key directory (holds demo-bank.whsk)")
	fs.StringVar(&o.dbURL, "database-url", "", "the server's PostgreSQL URL (sandbox card links; visibility checks)")
	fs.StringVar(&o.mode, "mode", "intake", "intake (latency at a fixed rate) or e2e (issuances/s, request to projection)")
	fs.StringVar(&o.run, "run-id", time.Now().UTC().Format("150405"), "prefix of transaction ids, so runs do not collide")
	fs.IntVar(&o.rate, "rate", 1000, "intake: requests per second")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "intake: how long to send (at most 5m)")
	fs.IntVar(&o.perRequest, "per-request", 1, "transactions per request (at most 500)")
	fs.IntVar(&o.total, "total", 20000, "e2e: issuances to make (at most 1,000,000)")
	fs.IntVar(&o.accounts, "accounts", 2000, "sandbox accounts (card links) to spread the purchases over, so caps never bind")
	fs.IntVar(&o.inFlight, "in-flight", 64, "at most this many requests outstanding")
	fs.DurationVar(&o.dueAfter, "due-after", 0, "e2e: date the purchases so that they fall due this long after sending starts (0: due at once); with a value longer than the sending takes, issuing is measured from that moment without intake competing")
	fs.IntVar(&o.warmup, "warmup", 0, "transactions sent (e2e: and issued) before measuring, not measured; then the tables are ANALYZEd, as autovacuum keeps them in steady state (at most 1,000,000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.keysDir == "" || o.dbURL == "":
		return errors.New("--keys-dir and --database-url are required (the demo prints both)")
	case o.duration > 5*time.Minute || o.total > 1_000_000 || o.perRequest < 1 || o.perRequest > 500 || o.rate < 1 || o.inFlight < 1 ||
		o.warmup < 0 || o.warmup > 1_000_000:
		return errors.New("out of bounds: --duration <= 5m, --total <= 1,000,000, 1 <= --per-request <= 500, --rate >= 1, --in-flight >= 1, 0 <= --warmup <= 1,000,000")
	}
	pool, err := database.Open(ctx, o.dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := linkCards(ctx, pool, o.accounts); err != nil {
		return err
	}
	// The sandbox bank's rate limit (200/s by default) would measure the
	// limiter, not the pipeline: lift it above the offered rate, and above
	// what a closed-loop warm-up or e2e run sends.
	if _, err := pool.Exec(ctx, `UPDATE partners SET rate_per_second = greatest(rate_per_second, $2), rate_burst = greatest(rate_burst, $2)
		WHERE id = $1`, app.DemoBank, max(4*o.rate, 20_000)); err != nil { // the warm-up and e2e send as fast as taken
		return fmt.Errorf("lift the sandbox rate limit: %w", err)
	}
	client, err := bankClient(o.url, o.keysDir)
	if err != nil {
		return err
	}
	client.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.inFlight, MaxConnsPerHost: o.inFlight}}
	if o.mode != "intake" && o.mode != "e2e" {
		return fmt.Errorf("unknown --mode %q: intake or e2e", o.mode)
	}
	if err := warmUp(ctx, client, pool, o, stdout); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if o.mode == "intake" {
		return intake(ctx, client, o, stdout)
	}
	return endToEnd(ctx, client, pool, o, stdout)
}

func bankClient(url, keysDir string) (*partnerclient.Client, error) {
	return partnerclient.FromKeyFile(url, app.DemoBank, filepath.Join(keysDir, app.DemoBank+".whsk"))
}

// linkCards creates the sandbox card links load-0000.. -> load-acct-0000..
func linkCards(ctx context.Context, pool *pgxpool.Pool, n int) error {
	_, err := pool.Exec(ctx, `INSERT INTO card_links (partner_id, card_token, account, consent_version, consented_at, consent_channel)
		SELECT $1, 'tok_load_' || lpad(i::text, 6, '0'), 'load-acct-' || lpad(i::text, 6, '0'), 'load-sandbox', now(), 'sandbox'
		FROM generate_series(0, $2 - 1) AS i ON CONFLICT DO NOTHING`, app.DemoBank, n)
	if err != nil {
		return fmt.Errorf("create sandbox card links: %w", err)
	}
	return nil
}

// body builds one request of k fridge purchases numbered from seq.
func body(o options, seq, k int, at time.Time) []byte {
	txs := make([]partnerclient.CardTransaction, k)
	for i := range txs {
		n := seq + i
		txs[i] = app.DemoFridge(fmt.Sprintf("load-%s-%07d", o.run, n), fmt.Sprintf("tok_load_%06d", n%o.accounts),
			fmt.Sprintf("FP-LOAD-%s-%07d", o.run, n), at)
	}
	b, _ := json.Marshal(partnerclient.CardTransactions{Transactions: txs})
	return b
}

// intake sends requests at a fixed rate and reports latency percentiles,
// measured from each request's scheduled time (no coordinated omission).
// Every request is built and signed before the clock starts, timestamped at
// its scheduled time: in production the partner signs on its own machine,
// and here its signing would take the two cores' CPU from the server it
// measures.
func intake(ctx context.Context, c *partnerclient.Client, o options, w io.Writer) error {
	n := int(o.duration.Seconds() * float64(o.rate))
	interval := time.Second / time.Duration(o.rate)
	lead := time.Duration(n)*30*time.Microsecond + time.Second // time to prepare them all, generously
	start := time.Now().Add(lead)
	type prepared struct {
		body   []byte
		signed http.Header
	}
	reqs := make([]prepared, n)
	for i := range reqs {
		due := start.Add(time.Duration(i) * interval)
		b := body(o, i*o.perRequest, o.perRequest, time.Now())
		reqs[i] = prepared{b, c.Sign(partnerclient.NewMessageID(), due, b)}
	}
	if time.Now().After(start) {
		return fmt.Errorf("preparing %d requests took longer than the %s allowed", n, lead)
	}
	lat := make([]time.Duration, n)
	var failed, dropped atomic.Int64
	sem := make(chan struct{}, o.inFlight)
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		select {
		case sem <- struct{}{}:
		default:
			dropped.Add(1) // the server fell behind by in-flight requests: counted, not hidden
			lat[i] = -1
			continue
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer func() { <-sem; wg.Done() }()
			r, err := c.SendSigned(ctx, http.MethodPost, "card-transactions", "application/json", reqs[i].signed, reqs[i].body)
			lat[i] = time.Since(due)
			if err != nil || r.Status != http.StatusAccepted {
				failed.Add(1)
			}
		}(i, due)
	}
	wg.Wait()
	took := time.Since(start)
	var ok []time.Duration
	for _, d := range lat {
		if d > 0 {
			ok = append(ok, d)
		}
	}
	slices.Sort(ok)
	if len(ok) == 0 {
		return errors.New("no request completed")
	}
	pct := func(p float64) time.Duration { return ok[min(len(ok)-1, int(p*float64(len(ok))))] }
	fmt.Fprintf(w, "intake: %d requests x %d transactions at %d/s target, %.0f/s achieved over %s\n", n, o.perRequest, o.rate, float64(len(ok))/took.Seconds(), took.Round(time.Millisecond))
	fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), ok[len(ok)-1].Round(10*time.Microsecond))
	fmt.Fprintf(w, "failed (not 202): %d   dropped (in-flight limit %d reached): %d\n", failed.Load(), o.inFlight, dropped.Load())
	if failed.Load() > 0 {
		return fmt.Errorf("%d requests failed", failed.Load())
	}
	return nil
}

// warmUp sends o.warmup transactions the way the measured run will (e2e:
// and waits until they are issued and projected), then ANALYZEs the
// database. A fresh server's tables are empty: plans cached while they are
// tiny (sequential scans) stay until autovacuum's next ANALYZE, up to a
// minute later, so a short run from an empty database measures that minute
// rather than the steady state.
func warmUp(ctx context.Context, c *partnerclient.Client, pool *pgxpool.Pool, o options, w io.Writer) error {
	if o.warmup == 0 {
		return nil
	}
	wo := o
	wo.run, wo.total = o.run+"w", o.warmup
	at := time.Now()
	if o.mode == "e2e" {
		at = at.AddDate(0, 0, -4)
	}
	start := time.Now()
	if err := send(ctx, c, wo, at); err != nil {
		return err
	}
	if o.mode == "e2e" {
		if _, _, err := waitIssued(ctx, pool, wo); err != nil {
			return err
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		return err
	}
	fmt.Fprintf(w, "warm-up: %d transactions in %s, then ANALYZE\n", o.warmup, time.Since(start).Round(time.Millisecond))
	return nil
}

// send posts o.total purchases dated at, o.perRequest per request, as fast
// as the server takes them (at most o.inFlight outstanding).
func send(ctx context.Context, c *partnerclient.Client, o options, at time.Time) error {
	reqs := (o.total + o.perRequest - 1) / o.perRequest
	var failed atomic.Int64
	sem := make(chan struct{}, o.inFlight)
	var wg sync.WaitGroup
	for i := 0; i < reqs && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			k := min(o.perRequest, o.total-i*o.perRequest)
			r, err := c.Post(ctx, "card-transactions", "application/json", body(o, i*o.perRequest, k, at))
			if err != nil || r.Status != http.StatusAccepted {
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if failed.Load() > 0 {
		return fmt.Errorf("%d requests failed", failed.Load())
	}
	return ctx.Err()
}

// endToEnd sends o.total purchases past the hold period and waits until all
// are issued and the projection has applied the block of the last one.
func endToEnd(ctx context.Context, c *partnerclient.Client, pool *pgxpool.Pool, o options, w io.Writer) error {
	start := time.Now()
	at := start.AddDate(0, 0, -4)
	if o.dueAfter > 0 {
		hold, err := holdPeriod(ctx, c)
		if err != nil {
			return err
		}
		at = start.Add(o.dueAfter - hold)
	}
	if err := send(ctx, c, o, at); err != nil {
		return err
	}
	sent := time.Since(start)
	reqs := (o.total + o.perRequest - 1) / o.perRequest
	fmt.Fprintf(w, "sent %d purchases in %d requests in %s (%.0f/s)\n", o.total, reqs, sent.Round(time.Millisecond), float64(o.total)/sent.Seconds())
	if o.dueAfter > 0 && sent > o.dueAfter {
		return fmt.Errorf("sending took %s, longer than --due-after %s: issuing overlapped intake", sent.Round(time.Millisecond), o.dueAfter)
	}
	issued, allIssued, err := waitIssued(ctx, pool, o)
	if err != nil {
		return err
	}
	if o.dueAfter > 0 {
		from := start.Add(o.dueAfter)
		took := time.Since(from)
		fmt.Fprintf(w, "issue only: %d issuances from falling due to visible in the projection in %s: %.0f issuances/s (all committed on the ledger after %s)\n",
			issued, took.Round(time.Millisecond), float64(issued)/took.Seconds(), allIssued.Sub(from).Round(time.Millisecond))
		return nil
	}
	took := time.Since(start)
	fmt.Fprintf(w, "e2e: %d issuances signed-request-to-projection in %s: %.0f issuances/s (all committed on the ledger after %s)\n",
		issued, took.Round(time.Millisecond), float64(issued)/took.Seconds(), (allIssued.Sub(start)).Round(time.Millisecond))
	return nil
}

// holdPeriod is the hold period the server discloses for purchases.
func holdPeriod(ctx context.Context, c *partnerclient.Client) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/v1/disclosure", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read the disclosure: %w", err)
	}
	defer resp.Body.Close()
	var d rules.Disclosure
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.Current == nil {
		return 0, fmt.Errorf("read the disclosure's hold period: %v", err)
	}
	return time.Duration(d.Current.Earning.HoldPeriodHours) * time.Hour, nil
}

// waitIssued waits until o.total purchases of run o.run are issued and the
// projection has applied the block of the last one; it returns how many
// and when all were issued. It polls what indexes answer cheaply (the
// queued outbox, the projection's checkpoint) and runs the exact count,
// which joins the run's actions to their issuances, only when nothing is
// queued any more: the load generator must not spend the database's CPU
// it is measuring.
func waitIssued(ctx context.Context, pool *pgxpool.Pool, o options) (int, time.Time, error) {
	prefix := fmt.Sprintf("load-%s-%%", o.run)
	deadline := time.Now().Add(10 * time.Minute)
	var allIssued time.Time
	var issued int
	var lastBlock int64
	for ctx.Err() == nil {
		if time.Now().After(deadline) {
			return 0, allIssued, fmt.Errorf("timed out: %d of %d issued", issued, o.total)
		}
		if allIssued.IsZero() {
			// Whether anything is queued, not how much: counting the
			// queue's index took PostgreSQL ~9 ms a poll, 4% of its time
			// in an end-to-end run.
			var queued bool
			if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM issuances WHERE status = 'queued')`).Scan(&queued); err != nil {
				return 0, allIssued, err
			}
			if queued {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			var pending int
			err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE i.status = 'issued'), count(*) FILTER (WHERE i.status = 'queued'),
				coalesce(max(i.block), 0) FROM actions a JOIN issuances i ON i.id = a.issuance_id WHERE a.partner_tx_id LIKE $1`, prefix).Scan(&issued, &pending, &lastBlock)
			if err != nil {
				return 0, allIssued, err
			}
			if issued < o.total {
				time.Sleep(200 * time.Millisecond) // not all queued yet (intake still sending), or some rejected: slow exact polls
				continue
			}
			allIssued = time.Now()
		}
		var projected int64
		if err := pool.QueryRow(ctx, `SELECT block FROM proj_checkpoint WHERE name = 'points'`).Scan(&projected); err != nil {
			return 0, allIssued, err
		}
		if projected >= lastBlock {
			return issued, allIssued, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, allIssued, ctx.Err()
}
