package api

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is 0:
// large enough for a batch of a few thousand purchase items, small enough
// that a burst of requests cannot exhaust memory.
const DefaultMaxBodyBytes = 1 << 20

// readyTimeout bounds /readyz: orchestrators probe it every few seconds and
// a check that hangs must read as "not ready", not as a stuck probe.
const readyTimeout = 2 * time.Second

// ReasonNotReady is the reason of a failed readiness check.
const ReasonNotReady = "not_ready"

//go:embed openapi.yaml
var openAPISpec []byte

// Config tunes the HTTP layer.
type Config struct {
	MaxBodyBytes   int64        // request body limit; 0 means DefaultMaxBodyBytes
	Logger         *slog.Logger // access and error log; nil means JSON to stderr
	Version        string       // reported by GET /v1/version; "" means "dev"
	TrustedProxies []string     // CIDRs whose X-Forwarded-For is believed; none by default, so logs show the peer address and clients cannot spoof it
}

// Deps are the Server's collaborators.
type Deps struct {
	// Ready reports whether the service can serve traffic (e.g. a database
	// ping). It gets a context with a 2 s deadline. Nil means always ready.
	// Its error is logged in full; the response shows only the Detail of an
	// *apperr.Error, since other errors may name hosts or users.
	Ready func(ctx context.Context) error
	// Registry collects the metrics GET /metrics serves. Nil means a fresh
	// registry per Server, so tests can build many; Go and process
	// collectors are added either way.
	Registry *prometheus.Registry
}

// Server is the HTTP layer: middleware, error mapping, operational routes
// and the /v1 group that feature handlers join.
type Server struct {
	cfg    Config
	deps   Deps
	engine *gin.Engine
	v1     *gin.RouterGroup
	reg    *prometheus.Registry
	log    *slog.Logger
}

// New builds a Server with its middleware and operational routes. Feature
// handlers are added with V1 before Handler is served.
func New(cfg Config, deps Deps) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	registerOrReuse(reg, collectors.NewGoCollector())
	registerOrReuse(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Release mode: no debug route dump, no colour codes in our JSON logs.
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// Every request either matches a route exactly or gets a problem: gin's
	// redirects would skip the middleware and bypass logs and metrics.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	// Handlers pass the gin.Context as a context.Context to the domain; it
	// must carry the request's deadline and cancellation.
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		panic("api: Config.TrustedProxies: " + err.Error()) // a configuration bug caught at start
	}

	s := &Server{cfg: cfg, deps: deps, engine: e, reg: reg, log: cfg.Logger}
	metrics := newHTTPMetrics(reg)
	// Order matters: the request id first so everything can log it; the
	// access log and metrics outside recovery so that a panic is recorded as
	// the 500 it became; the body limit last, before any handler reads.
	e.Use(
		sanitizeRequestID,
		requestIDMiddleware,
		withLogger(cfg.Logger),
		accessLog(cfg.Logger),
		metrics.middleware,
		recovery,
		LimitBody(cfg.MaxBodyBytes),
	)
	e.NoRoute(func(c *gin.Context) {
		WriteError(c, apperr.New(apperr.NotFound, "route_not_found", "no route matches this path"))
	})
	e.NoMethod(func(c *gin.Context) {
		WriteError(c, apperr.New(apperr.NotFound, ReasonMethodNotAllowed,
			"method %s is not allowed here; see the Allow header", c.Request.Method))
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	e.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openAPISpec) })
	s.v1 = e.Group("/v1")
	s.v1.GET("/version", s.version)
	return s
}

// Handler returns the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }

// V1 is the /v1 route group; every route added to it must also be described
// in openapi.yaml (TestOpenAPIMatchesRoutes enforces it).
func (s *Server) V1() *gin.RouterGroup { return s.v1 }

// Registry is where other packages register metrics that GET /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// healthz answers while the process can serve HTTP at all; it checks no
// dependency, so a database outage does not get the process restarted.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz runs the readiness check with a deadline. The check runs in its own
// goroutine so that one ignoring its context still cannot hold the probe.
func (s *Server) readyz(c *gin.Context) {
	if s.deps.Ready == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	done := make(chan error, 1) // buffered: a late check must not leak blocked
	go func() { done <- s.deps.Ready(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	detail := "readiness check failed"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		detail = "readiness check timed out after " + readyTimeout.String()
	case apperr.As(err) != nil && apperr.As(err).Detail != "":
		detail = "readiness check failed: " + apperr.As(err).Detail
	}
	WriteError(c, apperr.Wrap(err, apperr.Unavailable, ReasonNotReady, "%s", detail))
}

func (s *Server) version(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"version": s.cfg.Version})
}
