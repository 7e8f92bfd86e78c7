package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestCertificateRateLimitPerIP: the public certificate check limits each
// client IP on its own. The limiter runs before the handler, and malformed
// receipt ids are refused without touching the ledger, so no collaborator
// is needed; a one-per-hour refill keeps the test free of timing.
func TestCertificateRateLimitPerIP(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{}, Deps{})
	s.Consumers(ConsumerDeps{CertificateRate: rate.Every(time.Hour), CertificateBurst: 2})
	get := func(ip string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/certificates/not-a-receipt", nil)
		req.RemoteAddr = ip + ":1234"
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := get("192.0.2.1"); rec.Code != http.StatusBadRequest {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := get("192.0.2.1")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), ReasonRateLimited) {
		t.Errorf("third request: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	// Another address has its own bucket.
	if rec := get("192.0.2.2"); rec.Code != http.StatusBadRequest {
		t.Errorf("other IP: %d %s", rec.Code, rec.Body)
	}
}

// TestConsumerRoutesNeedAToken: every /v1/me route answers 401 with a
// Bearer challenge before reaching anything else.
func TestConsumerRoutesNeedAToken(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{}, Deps{})
	s.Consumers(ConsumerDeps{})
	n := 0
	for _, r := range s.engine.Routes() {
		if !strings.HasPrefix(r.Path, "/v1/me/") {
			continue
		}
		n++
		req := httptest.NewRequest(r.Method, strings.ReplaceAll(r.Path, ":account", "demo-bob"), strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Basic ZGVtbzpkZW1v")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") ||
			!strings.Contains(rec.Body.String(), "token_malformed") {
			t.Errorf("%s %s: %d %v %s", r.Method, r.Path, rec.Code, rec.Header(), rec.Body)
		}
	}
	if n != 13 {
		t.Errorf("%d /v1/me routes, want 13", n)
	}
}
