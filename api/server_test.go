package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

func TestOperationalRoutes(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{Version: "v1.2.3"}, Deps{})
	tests := []struct {
		path     string
		wantCT   string
		wantBody string
	}{
		{"/healthz", "application/json; charset=utf-8", `{"status":"ok"}`},
		{"/readyz", "application/json; charset=utf-8", `{"status":"ready"}`},
		{"/v1/version", "application/json; charset=utf-8", `{"version":"v1.2.3"}`},
		{"/openapi.yaml", "application/yaml", string(openAPISpec)},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			rec := serve(t, s.Handler(), request{path: tt.path})
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
			}
			if diff := cmp.Diff(tt.wantCT, rec.Header().Get("Content-Type")); diff != "" {
				t.Errorf("Content-Type mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBody, rec.Body.String()); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorRoutes(t *testing.T) {
	t.Parallel()
	const secret = "password=hunter2 host=db.internal"
	tests := []struct {
		name       string
		ready      func(context.Context) error
		req        request
		wantStatus int
		wantReason string
		wantDetail string // substring
		wantHeader map[string]string
	}{
		{name: "404", req: request{path: "/nope"}, wantStatus: 404, wantReason: "route_not_found"},
		{name: "404 trailing slash, no redirect", req: request{path: "/healthz/"}, wantStatus: 404, wantReason: "route_not_found"},
		{name: "405", req: request{method: http.MethodPost, path: "/healthz"}, wantStatus: 405, wantReason: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "GET"}},
		{name: "readyz failure hides the cause", ready: func(context.Context) error { return errors.New(secret) },
			req: request{path: "/readyz"}, wantStatus: 503, wantReason: "not_ready", wantDetail: "readiness check failed"},
		{name: "readyz shows an apperr detail",
			ready: func(context.Context) error {
				return apperr.Wrap(errors.New(secret), apperr.Unavailable, "db_down", "database unreachable")
			},
			req: request{path: "/readyz"}, wantStatus: 503, wantReason: "not_ready", wantDetail: "database unreachable"},
		{name: "readyz times out on a check that ignores its context",
			ready: func(context.Context) error { time.Sleep(readyTimeout + time.Second); return nil },
			req:   request{path: "/readyz"}, wantStatus: 503, wantReason: "not_ready", wantDetail: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, logs := newTestServer(t, Config{}, Deps{Ready: tt.ready})
			start := time.Now()
			rec := serve(t, s.Handler(), tt.req)
			if el := time.Since(start); el > readyTimeout+500*time.Millisecond {
				t.Errorf("took %v; readiness must answer within %v", el, readyTimeout)
			}
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			p := decodeProblem(t, rec)
			if p.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", p.Reason, tt.wantReason)
			}
			if !strings.Contains(p.Detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", p.Detail, tt.wantDetail)
			}
			if p.Instance != tt.req.path {
				t.Errorf("instance = %q, want %q", p.Instance, tt.req.path)
			}
			if strings.Contains(rec.Body.String(), "hunter2") {
				t.Errorf("response leaks the check's error: %s", rec.Body)
			}
			for k, v := range tt.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.wantStatus >= 500 && tt.ready != nil && !strings.Contains(tt.wantDetail, "timed out") &&
				!strings.Contains(logs.String(), "hunter2") {
				t.Errorf("the full cause should be logged for operators; log:\n%s", logs)
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	s, logs := newTestServer(t, Config{}, Deps{})
	s.V1().GET("/test/panic", func(*gin.Context) { panic("boom: secret internals") })

	rec := serve(t, s.Handler(), request{path: "/v1/test/panic", headers: map[string]string{HeaderRequestID: "trace-42"}})
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500; body %s", rec.Code, rec.Body)
	}
	p := decodeProblem(t, rec)
	want := Problem{Type: ProblemTypeBase + "internal_error", Title: "Internal Server Error", Status: 500,
		Detail: "internal error", Instance: "/v1/test/panic", Reason: "internal_error", RequestID: "trace-42"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("problem mismatch (-want +got):\n%s", diff)
	}
	if strings.Contains(rec.Body.String(), "secret internals") {
		t.Errorf("panic value leaked to the client: %s", rec.Body)
	}
	log := logs.String()
	for _, w := range []string{"boom: secret internals", "goroutine", "trace-42", `"status":500`} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
	// The server keeps serving.
	if rec := serve(t, s.Handler(), request{path: "/healthz"}); rec.Code != http.StatusOK {
		t.Errorf("after a panic, /healthz = %d", rec.Code)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{}, Deps{})
	tests := []struct {
		name     string
		incoming string
		keep     bool
	}{
		{"none", "", false},
		{"uuid kept", "0190a5c2-7d1e-7c3a-9f00-123456789abc", true},
		{"token kept", "svc:abc_DEF.1", true},
		{"64 chars kept", strings.Repeat("a", 64), true},
		{"65 chars replaced", strings.Repeat("a", 65), false},
		{"space replaced", "a b", false},
		{"log injection replaced", `x","level":"ERROR`, false},
	}
	generated := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{}
			if tt.incoming != "" {
				h[HeaderRequestID] = tt.incoming
			}
			got := serve(t, s.Handler(), request{path: "/healthz", headers: h}).Header().Get(HeaderRequestID)
			if tt.keep {
				if got != tt.incoming {
					t.Errorf("request id = %q, want the incoming %q", got, tt.incoming)
				}
				return
			}
			if !generated.MatchString(got) {
				t.Errorf("request id = %q, want a generated UUID", got)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{}, Deps{})
	s.V1().GET("/test/items/:id", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	for _, p := range []string{"/v1/version", "/v1/test/items/1", "/v1/test/items/2", "/no/such/1", "/no/such/2"} {
		serve(t, s.Handler(), request{path: p})
	}
	serve(t, s.Handler(), request{method: "BREW", path: "/v1/version"})

	rec := serve(t, s.Handler(), request{path: "/metrics"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, w := range []string{
		`http_requests_total{method="GET",route="/v1/version",status="200"} 1`,
		`http_requests_total{method="GET",route="/v1/test/items/:id",status="204"} 2`,
		`http_requests_total{method="GET",route="unmatched",status="404"} 2`,
		`http_requests_total{method="OTHER",route="unmatched",status="405"} 1`,
		`http_request_duration_seconds_count{method="GET",route="/v1/test/items/:id"} 2`,
		"go_goroutines",
		"process_",
	} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	for _, raw := range []string{"/v1/test/items/1", "/no/such"} {
		if strings.Contains(body, raw) {
			t.Errorf("metrics contain the raw path %q: unbounded cardinality", raw)
		}
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	s, logs := newTestServer(t, Config{}, Deps{})
	const token, sig = "Bearer eyJsecret.token.value", "v1,c2lnbmF0dXJlLXNlY3JldA=="
	serve(t, s.Handler(), request{path: "/v1/version?api_key=querysecret", headers: map[string]string{
		"Authorization": token, "webhook-signature": sig, HeaderRequestID: "req-1",
	}})
	out := logs.String()
	for _, secret := range []string{token, "eyJsecret", sig, "querysecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	var line map[string]any
	for l := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		if m["msg"] == "http request" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no access log line in:\n%s", out)
	}
	want := map[string]any{"method": "GET", "route": "/v1/version", "status": float64(200), "request_id": "req-1", "client_ip": "192.0.2.1"}
	for k, v := range want {
		if diff := cmp.Diff(v, line[k]); diff != "" {
			t.Errorf("access log %s mismatch (-want +got):\n%s", k, diff)
		}
	}
	for _, k := range []string{"duration_ms", "bytes"} {
		if _, ok := line[k].(float64); !ok {
			t.Errorf("access log %s = %v, want a number", k, line[k])
		}
	}
}

func TestManyServers(t *testing.T) {
	// A fresh registry each: building several must not panic on duplicate metrics.
	t.Parallel()
	for range 3 {
		s, _ := newTestServer(t, Config{}, Deps{})
		if rec := serve(t, s.Handler(), request{path: "/metrics"}); rec.Code != http.StatusOK {
			t.Fatalf("metrics status = %d", rec.Code)
		}
	}
	// A shared registry is reused, not re-registered.
	shared := New(Config{}, Deps{}).Registry()
	a, _ := newTestServer(t, Config{}, Deps{Registry: shared})
	b, _ := newTestServer(t, Config{}, Deps{Registry: shared})
	serve(t, a.Handler(), request{path: "/healthz"})
	serve(t, b.Handler(), request{path: "/healthz"})
	body := serve(t, b.Handler(), request{path: "/metrics"}).Body.String()
	if !strings.Contains(body, `http_requests_total{method="GET",route="/healthz",status="200"} 2`) {
		t.Errorf("shared registry did not aggregate both servers:\n%s", body)
	}
}

func TestWriteErrorNil(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{}, Deps{})
	s.V1().GET("/test/nil", func(c *gin.Context) { WriteError(c, nil) })
	p := decodeProblem(t, serve(t, s.Handler(), request{path: "/v1/test/nil"}))
	if p.Status != http.StatusInternalServerError || p.Reason != ReasonInternal {
		t.Errorf("problem = %+v, want a 500 internal_error", p)
	}
}
