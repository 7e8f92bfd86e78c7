package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log sink that tests may read while a Server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestServer builds a Server whose log is captured at debug level.
func newTestServer(tb testing.TB, cfg Config, deps Deps) (*Server, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(cfg, deps), logs
}

// request describes one test request.
type request struct {
	method  string
	path    string
	body    string
	ctype   string            // Content-Type; "" sends none
	headers map[string]string // extra headers
	chunked bool              // hide the length, as a chunked upload would
}

func serve(tb testing.TB, h http.Handler, r request) *httptest.ResponseRecorder {
	tb.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(strings.NewReader(r.body))
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decodeProblem checks the problem+json framing and decodes the body.
func decodeProblem(tb testing.TB, rec *httptest.ResponseRecorder) Problem {
	tb.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != contentTypeProblem {
		tb.Fatalf("Content-Type = %q, want %q; body %s", ct, contentTypeProblem, rec.Body)
	}
	var p Problem
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		tb.Fatalf("decoding problem %s: %v", rec.Body, err)
	}
	if p.Status != rec.Code {
		tb.Errorf("problem status %d != HTTP status %d", p.Status, rec.Code)
	}
	if p.Type != ProblemTypeBase+p.Reason {
		tb.Errorf("problem type %q does not match reason %q", p.Type, p.Reason)
	}
	if p.RequestID == "" || p.RequestID != rec.Header().Get(HeaderRequestID) {
		tb.Errorf("problem request_id %q, header %q", p.RequestID, rec.Header().Get(HeaderRequestID))
	}
	return p
}
