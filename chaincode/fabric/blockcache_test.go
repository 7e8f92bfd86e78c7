package fabric

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent lookups of a block share one fetch, later ones find it in the
// cache, a failed fetch is not kept, the cache is bounded, and a waiter
// whose context ends returns without waiting for another's fetch.
func TestBlockCache(t *testing.T) {
	var fetches atomic.Int64
	release := make(chan struct{})
	fail := errors.New("boom")
	c := newBlockCache(func(ctx context.Context, n uint64) (blockIndex, error) {
		fetches.Add(1)
		if n == 1 {
			<-release
		}
		if n == 99 {
			return nil, fail
		}
		return blockIndex{"tx": {index: int(n)}}, nil
	})
	ctxErr := func(err error) error { return err }
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			idx, err := c.get(ctx, 1, ctxErr)
			if err != nil || idx["tx"].index != 1 {
				t.Errorf("get(1) = %v, %v", idx, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if _, err := c.get(ctx, 1, ctxErr); err != nil || fetches.Load() != 1 {
		t.Errorf("fetches after 9 lookups of block 1: %d (%v), want 1", fetches.Load(), err)
	}

	for range 2 {
		if _, err := c.get(ctx, 99, ctxErr); !errors.Is(err, fail) {
			t.Errorf("get(99) = %v, want %v", err, fail)
		}
	}
	if fetches.Load() != 3 {
		t.Errorf("fetches after two failed lookups: %d, want 3", fetches.Load())
	}

	for n := uint64(100); n < 100+2*blockCacheSize; n++ {
		if _, err := c.get(ctx, n, ctxErr); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.entries) != blockCacheSize || c.lru.Len() != blockCacheSize {
		t.Errorf("cache holds %d/%d blocks, want %d", len(c.entries), c.lru.Len(), blockCacheSize)
	}

	block := make(chan struct{})
	slow := newBlockCache(func(ctx context.Context, n uint64) (blockIndex, error) {
		<-block
		return blockIndex{}, nil
	})
	go func() { _, _ = slow.get(ctx, 5, ctxErr) }()
	time.Sleep(20 * time.Millisecond)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := slow.get(wctx, 5, ctxErr); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter with an ended context: %v, want %v", err, context.DeadlineExceeded)
	}
	close(block)
}
