package idempotency

import (
	"os"
	"sync"
	"testing"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestBeginCompleteReplay(t *testing.T) {
	t.Parallel()
	s := New(pgtest.NewDB(t))
	ctx := t.Context()
	fp := Fingerprint("POST", "/v1/me/transfers", []byte(`{"to":"b","points":5}`))
	const route = "POST /v1/me/transfers"

	if r, err := s.Begin(ctx, "alice", "k1", route, fp); r != nil || err != nil {
		t.Fatalf("first Begin = %v, %v; want ownership", r, err)
	}
	// While in progress: 409.
	if _, err := s.Begin(ctx, "alice", "k1", route, fp); apperr.ReasonOf(err) != ReasonKeyInProgress || apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("Begin in progress = %v", err)
	}
	// Another subject's identical key is independent.
	if r, err := s.Begin(ctx, "bob", "k1", route, fp); r != nil || err != nil {
		t.Errorf("bob's k1 = %v, %v", r, err)
	}
	if err := s.Complete(ctx, "alice", "k1", 201, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Begin(ctx, "alice", "k1", route, fp)
	if err != nil || r == nil || r.Status != 201 || string(r.Body) != `{"ok":true}` {
		t.Errorf("replay = %+v, %v", r, err)
	}
	// Same key, different body or route: reused.
	other := Fingerprint("POST", "/v1/me/transfers", []byte(`{"to":"b","points":6}`))
	if _, err := s.Begin(ctx, "alice", "k1", route, other); apperr.ReasonOf(err) != ReasonKeyReused {
		t.Errorf("different body = %v", err)
	}
	if _, err := s.Begin(ctx, "alice", "k1", "POST /v1/me/donations", fp); apperr.ReasonOf(err) != ReasonKeyReused {
		t.Errorf("different route = %v", err)
	}
	// A released key runs again.
	if err := s.Release(ctx, "bob", "k1"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Begin(ctx, "bob", "k1", route, other); r != nil || err != nil {
		t.Errorf("after release = %v, %v", r, err)
	}
	// Completing a key twice is a bug the caller hears about.
	if err := s.Complete(ctx, "alice", "k1", 201, []byte(`{}`)); err == nil {
		t.Error("second Complete succeeded")
	}
}

func TestAbandonedKeyIsTakenOver(t *testing.T) {
	t.Parallel()
	s := New(pgtest.NewDB(t))
	s.lease = 0 // every claim is already past its lease: no clock needed
	ctx := t.Context()
	fp := Fingerprint("POST", "/x", nil)
	if _, err := s.Begin(ctx, "alice", "k", "POST /x", fp); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Begin(ctx, "alice", "k", "POST /x", fp); r != nil || err != nil {
		t.Errorf("takeover = %v, %v; want ownership", r, err)
	}
}

// TestConcurrentBeginOneOwner: of many simultaneous first requests with one
// key, exactly one runs.
func TestConcurrentBeginOneOwner(t *testing.T) {
	t.Parallel()
	s := New(pgtest.NewDB(t))
	fp := Fingerprint("POST", "/x", []byte("{}"))
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		owners int
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Begin(t.Context(), "alice", "k", "POST /x", fp)
			if r == nil && err == nil {
				mu.Lock()
				owners++
				mu.Unlock()
			} else if apperr.ReasonOf(err) != ReasonKeyInProgress {
				t.Errorf("Begin = %v, %v", r, err)
			}
		}()
	}
	wg.Wait()
	if owners != 1 {
		t.Errorf("%d owners, want 1", owners)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{`"8e03978e-40d5-43e8"`: "8e03978e-40d5-43e8", "abc": "abc"} {
		if got, err := ParseKey(in); err != nil || got != want {
			t.Errorf("ParseKey(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", `""`, "a b", "é", string(make([]byte, 256))} {
		if _, err := ParseKey(in); apperr.ReasonOf(err) != ReasonKeyInvalid {
			t.Errorf("ParseKey(%q) = %v", in, err)
		}
	}
}
