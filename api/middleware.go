package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-contrib/requestid"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// HeaderRequestID carries the request id, in both directions.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds an incoming request id: it is logged on every line
// and echoed, so a caller must not be able to make it large.
const maxRequestIDLen = 64

// Context keys. Unexported string keys with a package prefix so that no
// other middleware can collide with them.
const (
	keyRequestID = "greenpoints/api.request_id"
	keyLogger    = "greenpoints/api.logger"
)

// routeUnmatched labels requests that matched no route (404 and 405), so
// that scanners probing random paths add one series, not one per path.
const routeUnmatched = "unmatched"

// requestIDMiddleware is built once: requestid.New writes a package-level
// variable of gin-contrib/requestid, which would race if every Server built
// its own while other Servers serve requests (as parallel tests do).
var requestIDMiddleware = requestid.New(
	requestid.WithCustomHeaderStrKey(HeaderRequestID),
	requestid.WithHandler(func(c *gin.Context, id string) { c.Set(keyRequestID, id) }),
)

// sanitizeRequestID drops an incoming request id unless it is one short token
// of safe characters, so that requestid generates a fresh one. An id is
// written into every log line of the request: it must not be able to forge
// log fields, carry secrets at length or blow up a log index.
func sanitizeRequestID(c *gin.Context) {
	h := c.Request.Header
	if v := h.Values(HeaderRequestID); len(v) > 0 && (len(v) != 1 || !saneRequestID(v[0])) {
		h.Del(HeaderRequestID)
	}
	c.Next()
}

// saneRequestID allows letters, digits and "-_.:": enough for UUIDs, ULIDs,
// hex trace ids and "service:id" forms.
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// RequestID returns the id of the request being served ("" outside the
// middleware chain of a Server).
func RequestID(c *gin.Context) string {
	return c.GetString(keyRequestID)
}

// Logger returns the Server's logger with the request id attached, for
// handlers that log: their lines then join the access log line by id.
func Logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(keyLogger); ok {
		if l, ok := l.(*slog.Logger); ok {
			return l
		}
	}
	return slog.Default()
}

// withLogger makes Logger(c) work for everything after it.
func withLogger(base *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(keyLogger, base.With(slog.String("request_id", RequestID(c))))
		c.Next()
	}
}

// routeOf returns the route template: the raw path would give metrics and
// logs one series per id in the URL.
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return routeUnmatched
}

// accessLog writes one JSON line per request after it is served. It logs
// the route template, never the raw path, query, headers or bodies: those
// carry bearer tokens, webhook signatures and personal data.
func accessLog(base *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		base.LogAttrs(c.Request.Context(), level, "http request",
			slog.String("method", c.Request.Method),
			slog.String("route", routeOf(c)),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
			slog.String("request_id", RequestID(c)),
			slog.String("client_ip", c.ClientIP()),
		)
	}
}

// httpMetrics holds the per-Server request metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method and route template.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.requests = registerOrReuse(reg, m.requests)
	m.duration = registerOrReuse(reg, m.duration)
	return m
}

// registerOrReuse registers c, or returns the identical collector already
// registered: a caller-supplied registry may outlive one Server.
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("api: registering metrics: %v", err)) // a programming error, like MustRegister
	}
	return c
}

// knownMethods bounds the method label: any other method, which a client
// can make up, is counted as "OTHER".
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

func (m *httpMetrics) middleware(c *gin.Context) {
	start := time.Now()
	c.Next()
	method := c.Request.Method
	if !knownMethods[method] {
		method = "OTHER"
	}
	route := routeOf(c)
	m.requests.WithLabelValues(method, route, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
}

// recovery turns a panic into a 500 problem. The panic value and stack go to
// the log only: they may reveal internals. It sits inside the access log and
// metrics middleware so that those record the 500, not a vanished request.
func recovery(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
			// The handler deliberately aborts the response; net/http handles it quietly.
			panic(r)
		}
		Logger(c).LogAttrs(c.Request.Context(), slog.LevelError, "panic serving request",
			slog.Any("panic", r),
			slog.String("stack", string(debug.Stack())),
		)
		WriteError(c, apperr.New(apperr.Internal, ReasonInternal, "internal error"))
	}()
	c.Next()
}

// ReasonBodyTooLarge is the reason of a request body over the limit.
const ReasonBodyTooLarge = "body_too_large"

// LimitBody bounds request bodies to n bytes. A declared Content-Length over
// n is rejected before any handler runs; a body without one (chunked) is cut
// by http.MaxBytesReader, which BindJSON reports as the same 413.
//
// Every Server applies it with Config.MaxBodyBytes; a route may add a
// smaller limit, never a larger one (the outer reader still applies).
func LimitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			// Tell net/http not to read the rest: the client may be sending
			// megabytes we will never look at.
			c.Header("Connection", "close")
			WriteError(c, apperr.New(apperr.TooLarge, ReasonBodyTooLarge,
				"request body is %d bytes; the limit is %d", c.Request.ContentLength, n))
			return
		}
		if c.Request.Body != nil && c.Request.Body != http.NoBody {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		}
		c.Next()
	}
}
