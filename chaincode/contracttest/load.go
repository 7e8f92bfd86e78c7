package contracttest

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/issuer"
)

// SubmitFunc submits one proposal, waits for its commit and returns the
// contract's result payload.
type SubmitFunc func(issuer.Proposal) ([]byte, error)

// RunWorkers submits props with the given concurrency, each proposal once,
// and returns the elapsed time. check validates each result payload; the
// first failure stops the workers and fails tb. The benchmarks of every
// backend drive their load through it, so their figures compare.
func RunWorkers(tb testing.TB, submit SubmitFunc, workers int, props []issuer.Proposal, check func([]byte) error) time.Duration {
	tb.Helper()
	var (
		next   atomic.Int64
		failed atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	began := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(props) || failed.Load() != nil {
					return
				}
				payload, err := submit(props[i])
				if err == nil {
					err = check(payload)
				}
				if err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	if e := failed.Load(); e != nil {
		tb.Fatalf("%s: %v", props[0].Function, *e)
	}
	return elapsed
}

// MustMarshal marshals v as a proposal's argument document or fails tb.
func MustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	doc, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}
