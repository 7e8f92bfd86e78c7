package pipeline

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/greenpoints/greenpoints/internal/webhook"
)

// TestDelivererParksCallbacksWithoutURL: callbacks of a partner without a
// callback URL are parked (never due again) in one pass, many more than one
// delivery round takes, and a due callback of a partner with a URL queued
// after them is delivered.
func TestDelivererParksCallbacksWithoutURL(t *testing.T) {
	f := newGroupFixture(t) // bank-a and bank-b, neither with a callback URL
	ctx := t.Context()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
	if _, err := f.pool.Exec(ctx, `UPDATE partners SET callback_url = $1 WHERE id = 'bank-b'`, srv.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `INSERT INTO callbacks (partner_id, event_type, payload)
		SELECT 'bank-a', 'evidence.rejected', '{}' FROM generate_series(1, 150)`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `INSERT INTO callbacks (partner_id, event_type, payload) VALUES ('bank-b', 'evidence.rejected', '{}')`); err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDeliverer(f.pool, webhook.CryptoSigner(key), CallbackConfig{}, slog.New(slog.DiscardHandler))
	if n, err := d.Step(ctx); err != nil || n != 151 {
		t.Fatalf("first step: %d callbacks, %v; want all 151", n, err)
	}
	if n, err := d.Step(ctx); err != nil || n != 0 {
		t.Fatalf("second step: %d callbacks, %v; want none due", n, err)
	}
	if got.Load() != 1 {
		t.Errorf("%d deliveries, want 1 (bank-b's)", got.Load())
	}
	if n := f.count(t, `SELECT count(*) FROM callbacks WHERE partner_id = 'bank-a' AND next_attempt_at = 'infinity'
		AND last_error = 'partner has no callback URL' AND delivered_at IS NULL`); n != 150 {
		t.Errorf("%d of bank-a's 150 callbacks parked", n)
	}
	if n := f.count(t, `SELECT count(*) FROM callbacks WHERE partner_id = 'bank-b' AND delivered_at IS NOT NULL`); n != 1 {
		t.Errorf("bank-b's callback delivered %d times in the table, want 1", n)
	}
}
