package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Group commit for intake. Every transaction costs a durable commit and
// four round trips whatever its size, so single-event requests arriving
// together are recorded in one transaction: a few workers each take what
// has queued while they were busy (no timer: a lone request waits for
// nobody), run it through the same set-based intake as one request, and
// answer each request with its own response. Requests stay independent: a
// replay, a conflict or a failure of one is answered for that one alone
// (see Service.process), and two requests with the same webhook id never
// share a transaction, so the second finds the first's stored response.
const (
	// DefaultIntakeWorkers is how many shared transactions run at once: two,
	// so that one transaction's commit (its WAL flush) overlaps the other's
	// statements. More only make the groups smaller: at 1,000 one-event
	// requests a second on two cores, 2, 3 and 4 workers gave p99 26, 28
	// and 31 ms (docs/benchmarks.md).
	DefaultIntakeWorkers = 2
	// groupMaxEvents: larger requests (and settlement files) already
	// amortise their transaction and go alone.
	groupMaxEvents = 64
	// groupMaxJobs and groupMaxEventsTotal bound one shared transaction, so
	// its locks and latency stay small.
	groupMaxJobs        = 64
	groupMaxEventsTotal = 512
	// groupTimeout bounds a shared transaction, which no single request's
	// context may cancel.
	groupTimeout = 30 * time.Second
)

// grouper runs the shared transactions.
type grouper struct {
	s       *Service
	jobs    chan *groupJob
	stopped <-chan struct{}
}

type groupJob struct {
	*job
	done chan struct{}
}

// EnableGroupCommit starts workers that record concurrent requests in
// shared transactions; without it every request has its own transaction.
// Call it before serving requests. stop ends the workers once the
// transactions they have taken are done (a request still waiting then gets
// a 503); call it after the HTTP server has drained.
func (s *Service) EnableGroupCommit(workers int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &grouper{s: s, jobs: make(chan *groupJob, 4*groupMaxJobs), stopped: ctx.Done()}
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() { g.work(ctx) })
	}
	s.group = g
	return func() {
		cancel()
		wg.Wait()
	}
}

// do records j in a shared transaction and waits for its outcome. A request
// whose context ends while it waits gets the context's error; its work,
// once taken, still commits (as a request whose client went away does), so
// a retry with the same webhook id gets the stored response.
func (g *grouper) do(ctx context.Context, j *job) error {
	gj := &groupJob{job: j, done: make(chan struct{})}
	select {
	case g.jobs <- gj:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopped:
		return errStopping
	}
	select {
	case <-gj.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopped:
		select {
		case <-gj.done: // finished as the workers stopped
			return nil
		default:
			return errStopping
		}
	}
}

var errStopping = apperr.New(apperr.Unavailable, "shutting_down", "the server is shutting down; retry the request (its webhook id makes that safe)")

func (g *grouper) work(ctx context.Context) {
	var carry []*groupJob // jobs held back for the next transaction
	for {
		var batch []*groupJob
		if len(carry) > 0 {
			batch, carry = carry, nil
		} else {
			select {
			case gj := <-g.jobs:
				batch = []*groupJob{gj}
			case <-ctx.Done():
				return
			}
		}
		batch, carry = g.fill(batch)
		jobs := make([]*job, len(batch))
		for i, gj := range batch {
			jobs[i] = gj.job
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
		g.s.process(tctx, jobs)
		cancel()
		for _, gj := range batch {
			close(gj.done)
		}
	}
}

// fill adds what is waiting to batch, within the bounds; a request reusing
// a webhook id already in the batch, or not fitting, is carried over.
func (g *grouper) fill(batch []*groupJob) (kept, carry []*groupJob) {
	hooks := map[[2]string]bool{}
	events := 0
	keep := func(gj *groupJob) bool {
		k := [2]string{gj.req.Partner.ID, gj.req.WebhookID}
		if hooks[k] || len(kept) >= groupMaxJobs || events+len(gj.evs) > groupMaxEventsTotal {
			return false
		}
		hooks[k], events = true, events+len(gj.evs)
		kept = append(kept, gj)
		return true
	}
	for _, gj := range batch {
		if !keep(gj) {
			carry = append(carry, gj)
		}
	}
	for len(carry) == 0 {
		select {
		case gj := <-g.jobs:
			if !keep(gj) {
				carry = append(carry, gj)
			}
		default:
			return kept, carry
		}
	}
	return kept, carry
}
