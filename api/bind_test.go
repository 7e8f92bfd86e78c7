package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// bindReq exercises every custom rule and the common ones.
type bindReq struct {
	Merchant string     `json:"merchant" validate:"required,uscc"`
	MCC      string     `json:"mcc" validate:"required,mcc"`
	Amount   int64      `json:"amount_fen" validate:"fen"`
	Note     string     `json:"note,omitempty" validate:"max=10"`
	Items    []bindItem `json:"items" validate:"required,min=1,max=3,dive"`
	Tags     map[string]bindItem
}

type bindItem struct {
	SKU    string `json:"sku" validate:"required"`
	Points int64  `json:"points" validate:"points"`
}

// testBodyLimit is small so oversize cases stay small.
const testBodyLimit = 512

// newBindServer serves POST /v1/test/bind, which binds a bindReq and echoes
// it; reached counts the handler's invocations.
func newBindServer(tb testing.TB) (*Server, *atomic.Int64) {
	tb.Helper()
	// Logs are discarded: the fuzz test serves millions of requests.
	s := New(Config{MaxBodyBytes: testBodyLimit, Logger: slog.New(slog.DiscardHandler)}, Deps{})
	var reached atomic.Int64
	s.V1().POST("/test/bind", func(c *gin.Context) {
		reached.Add(1)
		var req bindReq
		if err := BindJSON(c, &req); err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, req)
	})
	return s, &reached
}

const validBody = `{"merchant":"91350100M000100Y43","mcc":"5411","amount_fen":1999,"items":[{"sku":"a","points":10}]}`

func TestBindJSON(t *testing.T) {
	t.Parallel()
	s, reached := newBindServer(t)
	type fe struct{ Field, Reason string }
	tests := []struct {
		name        string
		req         request
		wantStatus  int
		wantReason  string
		wantDetail  string // substring
		wantFields  []fe
		wantHandled bool // the handler ran
	}{
		{name: "valid", req: request{body: validBody}, wantStatus: 200, wantHandled: true},
		{name: "charset parameter", req: request{body: validBody, ctype: "application/json; charset=utf-8"}, wantStatus: 200, wantHandled: true},
		{name: "malformed", req: request{body: `{"merchant":"x",}`}, wantStatus: 400, wantReason: "malformed_json", wantDetail: "offset 17", wantHandled: true},
		{name: "truncated", req: request{body: `{"merchant":"x"`}, wantStatus: 400, wantReason: "malformed_json", wantDetail: "offset 15", wantHandled: true},
		{name: "empty", req: request{body: ``}, wantStatus: 400, wantReason: "malformed_json", wantDetail: "empty", wantHandled: true},
		{name: "trailing data", req: request{body: validBody + `{}`}, wantStatus: 400, wantReason: "malformed_json", wantDetail: "after the JSON value", wantHandled: true},
		{name: "trailing whitespace is fine", req: request{body: validBody + " \n"}, wantStatus: 200, wantHandled: true},
		{name: "unknown field", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"5411","colour":"green","items":[{"sku":"a","points":1}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"colour", "unknown_field"}}, wantHandled: true},
		{name: "unknown nested field", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"5411","items":[{"sku":"a","points":1},{"sku":"b","points":1,"sku2":"x"}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"items[1].sku2", "unknown_field"}}, wantHandled: true},
		{name: "unknown field in a map value", req: request{body: `{"Tags":{"sku":{"sku":"a","points":1,"sku":"b"},"k":{"x":1}},"items":[]}`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"Tags.k.x", "unknown_field"}}, wantHandled: true},
		{name: "case-insensitive match is not unknown", req: request{body: `{"MERCHANT":"91350100M000100Y43","mcc":"5411","items":[{"sku":"a","points":1}]}`},
			wantStatus: 200, wantHandled: true},
		{name: "wrong type", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"5411","items":[{"sku":"a","points":1},{"sku":"b","points":2},{"sku":"c","points":"3"}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"items[2].points", "type"}}, wantHandled: true},
		{name: "fraction for an integer", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"5411","amount_fen":1.5,"items":[{"sku":"a","points":1}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"amount_fen", "type"}}, wantHandled: true},
		{name: "int64 overflow", req: request{body: `{"amount_fen":99999999999999999999}`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"amount_fen", "type"}}, wantHandled: true},
		{name: "array for an object", req: request{body: `[]`},
			wantStatus: 400, wantReason: "validation_failed", wantFields: []fe{{"", "type"}}, wantHandled: true},
		{name: "missing content type", req: request{body: validBody, ctype: "-"}, wantStatus: 415, wantReason: "unsupported_media_type", wantHandled: true},
		{name: "text/plain", req: request{body: validBody, ctype: "text/plain"}, wantStatus: 415, wantReason: "unsupported_media_type", wantHandled: true},
		{name: "oversized, declared length", req: request{body: `{"note":"` + strings.Repeat("x", testBodyLimit) + `"}`},
			wantStatus: 413, wantReason: "body_too_large", wantHandled: false},
		{name: "oversized, chunked", req: request{body: `{"note":"` + strings.Repeat("x", testBodyLimit) + `"}`, chunked: true},
			wantStatus: 413, wantReason: "body_too_large", wantHandled: true},
		{name: "rules", req: request{body: `{"merchant":"91350100M000100Y44","mcc":"54a1","amount_fen":-1,"note":"01234567890","items":[{"sku":"a","points":1},{"sku":"","points":0}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantHandled: true, wantFields: []fe{
				{"merchant", "uscc"}, {"mcc", "mcc"}, {"amount_fen", "fen"}, {"note", "max"},
				{"items[1].sku", "required"}, {"items[1].points", "points"}}},
		{name: "required and min", req: request{body: `{"items":[]}`}, wantStatus: 400, wantReason: "validation_failed", wantHandled: true,
			wantFields: []fe{{"merchant", "required"}, {"mcc", "required"}, {"items", "min"}}},
		{name: "too many items", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"5411","items":[{"sku":"a","points":1},{"sku":"a","points":1},{"sku":"a","points":1},{"sku":"a","points":1}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantHandled: true, wantFields: []fe{{"items", "max"}}},
		{name: "bounds are inclusive", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"0000","amount_fen":1000000000000,"items":[{"sku":"a","points":1000000000}]}`},
			wantStatus: 200, wantHandled: true},
		{name: "just over the bounds", req: request{body: `{"merchant":"91350100M000100Y43","mcc":"0000","amount_fen":1000000000001,"items":[{"sku":"a","points":1000000001}]}`},
			wantStatus: 400, wantReason: "validation_failed", wantHandled: true, wantFields: []fe{{"amount_fen", "fen"}, {"items[0].points", "points"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: reached is shared and counted per case.
			switch tt.req.ctype {
			case "":
				tt.req.ctype = "application/json"
			case "-":
				tt.req.ctype = ""
			}
			tt.req.method, tt.req.path = http.MethodPost, "/v1/test/bind"
			before := reached.Load()
			rec := serve(t, s.Handler(), tt.req)
			if got := reached.Load() > before; got != tt.wantHandled {
				t.Errorf("handler reached = %v, want %v", got, tt.wantHandled)
			}
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			p := decodeProblem(t, rec)
			if p.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", p.Reason, tt.wantReason)
			}
			if !strings.Contains(p.Detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", p.Detail, tt.wantDetail)
			}
			var got []fe
			for _, f := range p.Errors {
				got = append(got, fe{f.Field, f.Reason})
				if f.Detail == "" {
					t.Errorf("field %q has no detail", f.Field)
				}
			}
			if diff := cmp.Diff(tt.wantFields, got); diff != "" {
				t.Errorf("field errors mismatch (-want +got):\n%s\nbody %s", diff, rec.Body)
			}
		})
	}
}

func TestFieldDetails(t *testing.T) {
	t.Parallel()
	s, _ := newBindServer(t)
	rec := serve(t, s.Handler(), request{method: http.MethodPost, path: "/v1/test/bind", ctype: "application/json",
		body: `{"merchant":"91350100M000100Y44","mcc":"5411","note":"01234567890","items":[{"sku":"a","points":0}]}`})
	p := decodeProblem(t, rec)
	want := []apperr.FieldError{
		{Field: "merchant", Reason: "uscc", Detail: "merchant must be an 18-character unified social credit code with a valid check character (GB 32100-2015)"},
		{Field: "note", Reason: "max", Detail: "note must have at most 10 characters"},
		{Field: "items[0].points", Reason: "points", Detail: "items[0].points must be a number of points from 1 to 1000000000"},
	}
	if diff := cmp.Diff(want, p.Errors); diff != "" {
		t.Errorf("field errors mismatch (-want +got):\n%s", diff)
	}
}

func TestStatusOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{apperr.New(apperr.Invalid, "x", ""), 400},
		{apperr.New(apperr.Invalid, ReasonUnsupportedMediaType, ""), 415},
		{apperr.New(apperr.NotFound, "x", ""), 404},
		{apperr.New(apperr.Conflict, "x", ""), 409},
		{apperr.New(apperr.Unauthorized, "x", ""), 401},
		{apperr.New(apperr.Forbidden, "x", ""), 403},
		{apperr.New(apperr.TooLarge, "x", ""), 413},
		{apperr.New(apperr.RateLimited, "x", ""), 429},
		{apperr.New(apperr.Unavailable, "x", ""), 503},
		{apperr.New(apperr.Internal, "x", ""), 500},
		{apperr.New("made_up", "x", ""), 500},
		{json.Unmarshal([]byte("{"), new(any)), 500},
	}
	for _, tt := range tests {
		if got := StatusOf(tt.err); got != tt.want {
			t.Errorf("StatusOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestWriteErrorUnknownError(t *testing.T) {
	t.Parallel()
	s, logs := newTestServer(t, Config{}, Deps{})
	s.V1().GET("/test/fail", func(c *gin.Context) {
		WriteError(c, &json.UnsupportedValueError{Str: "db password is hunter2"})
	})
	rec := serve(t, s.Handler(), request{path: "/v1/test/fail"})
	p := decodeProblem(t, rec)
	if p.Status != 500 || p.Reason != "internal_error" || p.Detail != "internal error" {
		t.Errorf("problem = %+v", p)
	}
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("internal error leaked: %s", rec.Body)
	}
	if !strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), p.RequestID) {
		t.Errorf("log lacks the error or request id:\n%s", logs)
	}
}

// FuzzBindJSON feeds arbitrary bodies through the whole middleware chain:
// nothing may panic, every failure must be a well-formed problem with a
// known reason, and every path BindJSON reports must name a real field.
func FuzzBindJSON(f *testing.F) {
	for _, seed := range []string{
		validBody, `{`, `[]`, `null`, `{"items":[{"points":"x"}]}`, `{"a":1}`, `{"items":[{},{"q":1}]}`,
		`{"Tags":{"k":{"points":1e3}}}`, `{"merchant":"9135 0100M000100Y43"}`, `"x"`, `{"items":[[]]}`,
		`{"note":"\u0000"}`, `{} {}`, `{"items":null,"MCC":"1234","Amount_Fen":5}`,
	} {
		f.Add(seed)
	}
	s, _ := newBindServer(f)
	h := s.Handler()
	known := map[string]bool{"malformed_json": true, "validation_failed": true, "body_too_large": true}
	root := reflect.TypeOf(&bindReq{})
	f.Fuzz(func(t *testing.T, body string) {
		rec := serve(t, h, request{method: http.MethodPost, path: "/v1/test/bind", ctype: "application/json", body: body})
		switch rec.Code {
		case http.StatusOK:
			var got bindReq
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("200 with undecodable body %s", rec.Body)
			}
			if err := validate.Struct(&got); err != nil {
				t.Fatalf("accepted an invalid request: %v", err)
			}
			return
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		p := decodeProblem(t, rec)
		if !known[p.Reason] {
			t.Fatalf("unexpected reason %q", p.Reason)
		}
		for _, fe := range p.Errors {
			switch fe.Reason {
			case FieldReasonType:
				if _, ok := typeAt(root, parsePath(t, fe.Field)); !ok {
					t.Fatalf("type error path %q names no field (body %q)", fe.Field, body)
				}
			case FieldReasonUnknown:
				segs := parsePath(t, fe.Field)
				if len(segs) == 0 {
					t.Fatalf("unknown field with an empty path (body %q)", body)
				}
				parent, ok := typeAt(root, segs[:len(segs)-1])
				if !ok || parent.Kind() != reflect.Struct || hasJSONField(parent, segs[len(segs)-1].key) {
					t.Fatalf("unknown field path %q is wrong (body %q)", fe.Field, body)
				}
			}
		}
	})
}

// parsePath inverts formatPath.
func parsePath(tb testing.TB, p string) []pathSeg {
	tb.Helper()
	var segs []pathSeg
	for p != "" {
		switch {
		case strings.HasPrefix(p, `["`):
			q, err := strconv.QuotedPrefix(p[1:])
			if err != nil {
				tb.Fatalf("bad quoted segment in %q: %v", p, err)
			}
			key, _ := strconv.Unquote(q)
			segs = append(segs, pathSeg{key: key, index: -1})
			p = strings.TrimPrefix(p[1+len(q):], "]")
		case strings.HasPrefix(p, "["):
			n, rest, _ := strings.Cut(p[1:], "]")
			i, err := strconv.Atoi(n)
			if err != nil {
				tb.Fatalf("bad index in %q: %v", p, err)
			}
			segs = append(segs, pathSeg{index: i})
			p = rest
		default:
			p = strings.TrimPrefix(p, ".")
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			segs = append(segs, pathSeg{key: p[:end], index: -1})
			p = p[end:]
		}
	}
	return segs
}

func TestFormatPathRoundTrip(t *testing.T) {
	t.Parallel()
	for _, segs := range [][]pathSeg{
		nil,
		{{key: "items", index: -1}, {index: 2}, {key: "points", index: -1}},
		{{key: "", index: -1}},
		{{key: "a.b", index: -1}, {key: `q"[`, index: -1}, {index: 0}, {index: 1}, {key: "x", index: -1}},
	} {
		p := formatPath(segs)
		if diff := cmp.Diff(segs, parsePath(t, p), cmp.AllowUnexported(pathSeg{})); diff != "" {
			t.Errorf("round trip of %q mismatch (-want +got):\n%s", p, diff)
		}
	}
}
