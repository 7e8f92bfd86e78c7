package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// TestConcurrentTransactionsAreSerializable runs random transactions over a
// small key space from many goroutines and two ledger instances, so that
// conflicts, phantoms, multi-transaction blocks, the window of recent writes
// and its resets all occur. Fabric's guarantee must hold: replaying the
// VALID transactions in ledger order, each one read exactly the state its
// predecessors left.
func TestConcurrentTransactionsAreSerializable(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ledgers := []*Ledger{
		open(t, pool, Options{BlockLinger: 2 * time.Millisecond, MaxBlockTxs: 8}),
		open(t, pool, Options{KeyID: "second/v1"}),
	}
	type committed struct {
		res *issuer.TxResult
		ops []op
		out []opResult
	}
	var (
		mu        sync.Mutex
		valid     []committed
		conflicts = map[string]int{}
		wg        sync.WaitGroup
	)
	key := func(r *rand.Rand) string { return fmt.Sprintf("k%02d", r.IntN(16)) }
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 42))
			l := ledgers[g%2]
			for i := range 25 {
				var ops []op
				for range 1 + r.IntN(4) {
					switch r.IntN(6) {
					case 0:
						ops = append(ops, get(key(r)))
					case 1:
						ops = append(ops, multi(key(r), key(r)))
					case 2:
						a, b := key(r), key(r)
						ops = append(ops, rng(min(a, b), max(a, b), r.IntN(4)))
					case 3:
						ops = append(ops, rng(key(r), "", 2))
					case 4:
						ops = append(ops, del(key(r)))
					default:
						ops = append(ops, put(key(r), fmt.Sprintf("g%d.%d", g, i)))
					}
				}
				res, err := l.Submit(context.Background(), proposal(ops...))
				mu.Lock()
				if err != nil {
					conflicts[reasonOf(err)]++
				} else {
					valid = append(valid, committed{res, ops, decode(t, res.Payload)})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d valid, conflicts %v", len(valid), conflicts)
	for reason := range conflicts {
		if reason != "conflict/mvcc_read_conflict" && reason != "conflict/phantom_read_conflict" {
			t.Errorf("unexpected failure %s", reason)
		}
	}

	sort.Slice(valid, func(i, j int) bool {
		a, b := valid[i].res, valid[j].res
		return issuer.Checkpoint{Block: a.Block, Index: a.Index}.Less(issuer.Checkpoint{Block: b.Block, Index: b.Index})
	})
	model := map[string]string{}
	value := func(k string) *string {
		if v, ok := model[k]; ok {
			return &v
		}
		return nil
	}
	for _, c := range valid {
		var writes []op
		for i, o := range c.ops {
			var want opResult
			switch o.Op {
			case "get":
				want.Value = value(o.Key)
			case "multi":
				for _, k := range o.Keys {
					want.Values = append(want.Values, value(k))
				}
			case "range":
				keys := make([]string, 0, len(model))
				for k := range model {
					if k >= o.Start && (o.End == "" || k < o.End) {
						keys = append(keys, k)
					}
				}
				slices.Sort(keys)
				if o.Limit > 0 && len(keys) > o.Limit {
					keys = keys[:o.Limit]
				}
				for _, k := range keys {
					want.KVs = append(want.KVs, kv{k, model[k]})
				}
			default:
				writes = append(writes, o)
			}
			if diff := cmp.Diff(want, c.out[i]); diff != "" {
				t.Fatalf("tx %s at (%d, %d) op %d %+v did not read its predecessors' state (-want +got):\n%s",
					c.res.TxID, c.res.Block, c.res.Index, i, o, diff)
			}
		}
		for _, w := range writes { // no read-your-writes: apply after the reads
			if w.Op == "del" || *w.Value == "" {
				delete(model, w.Key)
			} else {
				model[w.Key] = *w.Value
			}
		}
	}
	for k, v := range model {
		if got := stateOf(t, pool, k); got == nil || *got != v {
			t.Errorf("state of %s = %v, want %s", k, got, v)
		}
	}
	if err := ledgers[0].VerifyChain(context.Background(), StaticKeys(ledgers...)); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
}
