package embedded

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/issuer"
)

const testCaller = "Org1MSP"

// open starts a ledger over pool running testCC, closed when the test ends
// (before pgtest closes the pool). A zero Signer gets a fresh key.
func open(tb testing.TB, pool *pgxpool.Pool, opts Options) *Ledger {
	tb.Helper()
	return openCC(tb, pool, testCC{}, opts)
}

func openCC(tb testing.TB, pool *pgxpool.Pool, cc Chaincode, opts Options) *Ledger {
	tb.Helper()
	if opts.Signer == nil {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			tb.Fatal(err)
		}
		opts.Signer = priv
	}
	if opts.KeyID == "" {
		opts.KeyID = "ledger/v1"
	}
	l, err := New(context.Background(), pool, cc, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func proposal(ops ...op) issuer.Proposal {
	args, err := json.Marshal(ops)
	if err != nil {
		panic(err)
	}
	return issuer.Proposal{Caller: testCaller, Function: "ops", Args: args}
}

func decode(tb testing.TB, payload []byte) []opResult {
	tb.Helper()
	var out []opResult
	if err := json.Unmarshal(payload, &out); err != nil {
		tb.Fatalf("decoding result %q: %v", payload, err)
	}
	return out
}

// submit submits ops and fails the test unless the transaction is valid.
func submit(tb testing.TB, l *Ledger, ops ...op) (*issuer.TxResult, []opResult) {
	tb.Helper()
	res, err := l.Submit(context.Background(), proposal(ops...))
	if err != nil {
		tb.Fatalf("Submit: %v", err)
	}
	return res, decode(tb, res.Payload)
}

func evaluate(tb testing.TB, l *Ledger, ops ...op) []opResult {
	tb.Helper()
	out, err := l.Evaluate(context.Background(), proposal(ops...))
	if err != nil {
		tb.Fatalf("Evaluate: %v", err)
	}
	return decode(tb, out)
}

func endorse(tb testing.TB, l *Ledger, ops ...op) issuer.Endorsed {
	tb.Helper()
	e, err := l.Endorse(context.Background(), proposal(ops...))
	if err != nil {
		tb.Fatalf("Endorse: %v", err)
	}
	return e
}

// stateOf reads key's committed value straight from the database.
func stateOf(tb testing.TB, pool *pgxpool.Pool, key string) *string {
	tb.Helper()
	var v []byte
	err := pool.QueryRow(context.Background(), `SELECT value FROM ledger_state WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	s := string(v)
	return &s
}

func ptr(s string) *string { return &s }

func reasonOf(err error) string {
	if e := apperr.As(err); e != nil {
		return string(e.Code) + "/" + e.Reason
	}
	return "not an apperr: " + err.Error()
}

func height(tb testing.TB, l *Ledger) uint64 {
	tb.Helper()
	h, err := l.Height(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func verifyOK(tb testing.TB, l *Ledger) {
	tb.Helper()
	if err := l.VerifyChain(context.Background(), StaticKey(l.signer.Public())); err != nil {
		tb.Fatalf("VerifyChain: %v", err)
	}
}

// waitQueued waits until n transactions are queued to l's producer.
func waitQueued(tb testing.TB, l *Ledger, n int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.queue)
		l.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d transactions queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// commitInOrder commits es into ONE block, in the given order. l must have
// MaxBlockTxs == len(es) and a long BlockLinger, so the block is cut when
// the last one is queued.
func commitInOrder(tb testing.TB, l *Ledger, es ...issuer.Endorsed) []outcome {
	tb.Helper()
	out := make([]outcome, len(es))
	done := make(chan struct{}, len(es))
	for i, e := range es {
		go func() {
			res, err := l.Commit(context.Background(), e)
			out[i] = outcome{res: res, err: err}
			done <- struct{}{}
		}()
		if i < len(es)-1 {
			waitQueued(tb, l, i+1)
		}
	}
	for range es {
		<-done
	}
	return out
}

// collect subscribes from cp until n transactions arrived or timeout.
func collect(tb testing.TB, l *Ledger, from issuer.Checkpoint, n int, timeout time.Duration) []issuer.CommittedTx {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []issuer.CommittedTx
	errEnough := errors.New("enough")
	err := l.Subscribe(ctx, from, func(tx issuer.CommittedTx) error {
		got = append(got, tx)
		if len(got) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		tb.Fatalf("Subscribe: got %d of %d transactions, then %v", len(got), n, err)
	}
	return got
}

// StaticKeys looks up the keys of the given ledgers by their key ids.
func StaticKeys(ls ...*Ledger) KeyLookup {
	return func(_ context.Context, id keys.KeyID) (crypto.PublicKey, error) {
		for _, l := range ls {
			if string(id) == l.keyID {
				return l.signer.Public(), nil
			}
		}
		return nil, fmt.Errorf("unknown key %s", id)
	}
}
