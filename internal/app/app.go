// Package app wires greenpoints together: database, migrations, ledger and
// HTTP API, with a lifecycle (Start, Run until the context ends, graceful
// shutdown). cmd/greenpoints is a thin shell around it, and end-to-end tests
// start a whole App on 127.0.0.1:0.
package app

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenpoints/greenpoints/api"
	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
	"github.com/greenpoints/greenpoints/issuer/projection"
)

// Config is the effective configuration of a server.
type Config struct {
	Addr            string        // listen address, host:port
	DatabaseURL     string        // PostgreSQL URL
	MaxBodyBytes    int64         // request body limit
	ShutdownTimeout time.Duration // graceful shutdown bound
	Version         string        // build version, reported by /v1/version
	Ledger          string        // ledger backend: "embedded" (default) or "fabric"
	KeysDir         string        // directory of the file key manager (development keys)
	IssuerMSP       string        // the issuer's ledger identity; "" means DemoIssuerMSP
	ProfileID       string        // the issuer's compliance profile; "" means "cn-default"
	RulesID         string        // the issuer's rule set; "" means "cn-default-rules"
	BatchSize       int           // issuances per ledger transaction; 0 means 500
	BatchWorkers    int           // ledger transactions in flight per instance; 0 means 4
	IntakeWorkers   int           // shared intake transactions in flight (group commit); 0 means pipeline.DefaultIntakeWorkers
	Fabric          FabricConfig  // the gateway peer and the issuer's identity, with Ledger "fabric"
	JWTIssuer       string        // consumer tokens' "iss"; "" means auth.DefaultIssuer (the demo's)
	JWTAudience     string        // consumer tokens' "aud"; "" means auth.DefaultAudience
	JWTKeysFile     string        // JWKS file of the token keys; with JWKSURL "", the dev token key (demo)
	JWKSURL         string        // JWKS URL of the identity provider (instead of JWTKeysFile)
	NotifyGateway   string        // URL of the SMS/push gateway of reminders and notices; "" means the log sender
	SweepInterval   time.Duration // between expiry sweeps, reminder and notice runs; 0 means 1 h
}

// App is a running greenpoints server.
type App struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	ledPool *pgxpool.Pool // the embedded ledger's own connections
	ln      net.Listener
	srv     *http.Server
	keys    keys.Manager
	led     LedgerBackend
	svc     *pipeline.Service
	bat     *pipeline.Batcher
	cbs     *pipeline.Deliverer
	proj    *projection.Projector
	ntf     noticesState // expiry sweep, reminders, notices (notices.go)
}

// Close releases what Start acquired, for callers that never Run.
func (a *App) Close() {
	a.ln.Close()
	_ = a.led.Close()
	a.ledPool.Close()
	a.pool.Close()
}

// Start opens and migrates the database, binds the listen address and
// prepares the HTTP server. Errors name what is wrong and what to do.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (a *App, err error) {
	if err := cfg.resolveLedger(); err != nil {
		return nil, err
	}
	switch {
	case cfg.BatchSize < 0 || cfg.BatchSize > points.MaxIssueBatch:
		return nil, fmt.Errorf("--batch-size %d: a ledger IssueBatch takes 1 to %d issuances", cfg.BatchSize, points.MaxIssueBatch)
	case cfg.BatchWorkers < 0 || cfg.IntakeWorkers < 0 || cfg.BatchWorkers > 64 || cfg.IntakeWorkers > 64:
		return nil, fmt.Errorf("--batch-workers %d, --intake-workers %d: each must be 1 to 64", cfg.BatchWorkers, cfg.IntakeWorkers)
	}
	workers := cfg.BatchWorkers
	if workers <= 0 {
		workers = pipeline.DefaultWorkers
	}
	cfg.IntakeWorkers = cmp.Or(cfg.IntakeWorkers, pipeline.DefaultIntakeWorkers)
	// Pool sizes: each batch worker holds a connection while its ledger
	// call runs, and intake requests, the projection and callbacks need
	// theirs meanwhile. The embedded ledger gets a pool of its own, so
	// however many workers wait on it, its endorsements and its block
	// producer always find a connection (a shared pool of 4 deadlocked
	// under the kill -9 test until the 2-minute block timeout).
	pool, err := database.Open(ctx, cfg.DatabaseURL, database.WithMaxConns(int32(2*workers+cfg.IntakeWorkers+16)))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := database.Migrate(ctx, pool); err != nil {
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	if cfg.KeysDir == "" {
		return nil, fmt.Errorf("no key directory: set --keys-dir or GREENPOINTS_KEYS_DIR")
	}
	km, err := keys.NewFileManager(cfg.KeysDir, keys.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open keys: %w", err)
	}
	ln, err := Listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	ledPool, err := database.Open(ctx, cfg.DatabaseURL, database.WithMaxConns(int32(workers+8)))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ledPool.Close()
		}
	}()
	led, err := OpenLedger(ctx, cfg, ledPool, km, log)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry() // shared by the HTTP layer and the pipeline
	svc, bat, cbs, err := startPipeline(ctx, cfg, pool, km, led, log, reg)
	if err != nil {
		_ = led.Close()
		return nil, err
	}
	s := api.New(api.Config{MaxBodyBytes: cfg.MaxBodyBytes, Logger: log, Version: cfg.Version}, api.Deps{
		Ready:    func(ctx context.Context) error { return pool.Ping(ctx) },
		Registry: reg,
	})
	s.Partners(svc, bat.Notify)
	mountConsumerPII(s, pool, km) // internal/app/consumers_pii.go
	proj := projection.New(pool, led, log)
	if err := mountConsumers(cfg, s, pool, km, led, proj, log); err != nil {
		_ = led.Close()
		return nil, err
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return &App{cfg: cfg, log: log, pool: pool, ledPool: ledPool, ln: ln, srv: srv, keys: km, led: led, svc: svc, bat: bat, cbs: cbs,
		proj: proj}, nil
}

// Listen binds addr, turning the common failures into advice.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("cannot listen on %s: the address is already in use; stop the other process or choose another with --addr / GREENPOINTS_ADDR", addr)
	}
	return nil, fmt.Errorf("cannot listen on %s: %w; set a valid host:port with --addr / GREENPOINTS_ADDR", addr, err)
}

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// Pool is the database pool (for tests and embedding commands).
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Pipeline is the intake service.
func (a *App) Pipeline() *pipeline.Service { return a.svc }

// Projection is the ledger's read projection.
func (a *App) Projection() *projection.Projector { return a.proj }

// Batcher is the issuance batcher.
func (a *App) Batcher() *pipeline.Batcher { return a.bat }

// Callbacks is the partner callback deliverer.
func (a *App) Callbacks() *pipeline.Deliverer { return a.cbs }

// Ledger is the ledger client.
func (a *App) Ledger() issuer.Ledger { return a.led }

// VerifyLedger checks the embedded ledger's hash chain, block signatures and
// world state. On Fabric the peers validate every block themselves, and the
// issuer holds no copy of the chain to check: it returns an error.
func (a *App) VerifyLedger(ctx context.Context) error {
	led, ok := a.led.(*embedded.Ledger)
	if !ok {
		return fmt.Errorf("VerifyLedger checks the embedded ledger; this server uses --ledger %s", a.cfg.Ledger)
	}
	return led.VerifyChain(ctx, func(ctx context.Context, id keys.KeyID) (crypto.PublicKey, error) {
		return a.keys.PublicKey(ctx, id)
	})
}

// Run serves until ctx ends, then shuts down gracefully: it stops accepting,
// waits for in-flight requests (bounded by ShutdownTimeout), and closes the
// database pool.
func (a *App) Run(ctx context.Context) error {
	// Concurrent partner requests share transactions; the workers outlive
	// the HTTP server's drain, since its handlers wait on them.
	stopIntake := a.svc.EnableGroupCommit(a.cfg.IntakeWorkers)
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	// The background workers stop with ctx; each finishes the batch it has
	// in flight (its ledger call is not cancelled), so shutdown drains.
	var wg sync.WaitGroup
	for _, w := range []func(context.Context) error{a.bat.Run, a.cbs.Run, a.proj.Run, a.runNotices, a.RunRetention} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w(ctx)
		}()
	}
	a.log.Info("serving", "addr", a.Addr())
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	shutErr := a.srv.Shutdown(sctx)
	stopIntake()
	wg.Wait()
	// The ledger drains its pending commits before the pool goes away.
	if err := a.led.Close(); err != nil {
		a.log.Error("closing ledger", "err", err)
	}
	a.ledPool.Close()
	a.pool.Close()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", serveErr)
	}
	if shutErr != nil {
		return fmt.Errorf("graceful shutdown: %w", shutErr)
	}
	a.log.Info("stopped")
	return nil
}
