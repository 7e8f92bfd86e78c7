package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/go-cmp/cmp"
)

// loadSpec loads and validates the embedded OpenAPI document.
func loadSpec(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPISpec)
	if err != nil {
		tb.Fatalf("loading openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		tb.Fatalf("openapi.yaml is invalid: %v", err)
	}
	return doc
}

// ginParam matches gin's ":id" and "*path" segments.
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes keeps the document honest: every served route is
// described and every described operation is served. Later issues that add
// a /v1 route without documenting it fail here.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	var inSpec []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec = append(inSpec, method+" "+path)
		}
	}
	s := New(Config{}, Deps{})
	s.Partners(nil, nil) // mounting only: no request reaches the nil service
	s.Consumers(ConsumerDeps{})
	var served []string
	for _, r := range s.engine.Routes() {
		served = append(served, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(inSpec)
	slices.Sort(served)
	if diff := cmp.Diff(inSpec, served); diff != "" {
		t.Errorf("routes mismatch (-openapi.yaml +served):\n%s", diff)
	}
	for _, want := range []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.yaml", "GET /v1/version"} {
		if !slices.Contains(served, want) {
			t.Errorf("%s is not served", want)
		}
	}
}

// TestResponsesMatchOpenAPI checks real responses, errors included, against
// the documented schemas and headers.
func TestResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("building router: %v", err)
	}
	ok, _ := newTestServer(t, Config{Version: "v0.1.0"}, Deps{Ready: func(context.Context) error { return nil }})
	down, _ := newTestServer(t, Config{}, Deps{Ready: func(context.Context) error { return errors.New("connection refused") }})
	tests := []struct {
		name       string
		server     *Server
		path       string
		oversized  bool // declare a body over the limit
		wantStatus int
	}{
		{"healthz", ok, "/healthz", false, 200},
		{"readyz", ok, "/readyz", false, 200},
		{"readyz not ready", down, "/readyz", false, 503},
		{"version", ok, "/v1/version", false, 200},
		{"metrics", ok, "/metrics", false, 200},
		{"openapi", ok, "/openapi.yaml", false, 200},
		{"oversized body is a documented problem", ok, "/v1/version", true, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.oversized {
				req = httptest.NewRequest(http.MethodGet, tt.path, strings.NewReader("{}"))
				req.ContentLength = 2 * DefaultMaxBodyBytes // rejected before anything reads the body
			}
			rec := httptest.NewRecorder()
			tt.server.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("FindRoute: %v", err)
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 rec.Code,
				Header:                 rec.Header(),
				Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			}
			in.SetBodyBytes(rec.Body.Bytes())
			if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
				t.Errorf("response does not match openapi.yaml: %v\nbody: %s", err, rec.Body)
			}
		})
	}
}

// TestOpenAPIDetectsDrift guards the test above: a response that breaks the
// schema must fail validation, or the test proves nothing.
func TestOpenAPIDetectsDrift(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"200 with the wrong status word": `{"status":"ok"}`,
		"problem without reason":         `{"type":"https://greenpoints.dev/problems/x","title":"t","status":503,"detail":"d","instance":"/readyz","request_id":"r"}`,
	} {
		status, ct := 200, "application/json"
		if strings.HasPrefix(name, "problem") {
			status, ct = 503, contentTypeProblem
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 status,
			Header:                 http.Header{"Content-Type": {ct}, HeaderRequestID: {"r"}},
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		}
		in.SetBodyBytes([]byte(body))
		if err := openapi3filter.ValidateResponse(context.Background(), in); err == nil {
			t.Errorf("%s: validation passed, want a failure", name)
		}
	}
}
