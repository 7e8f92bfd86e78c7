package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/auth"
	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/logging"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

// serverFlags are the flags every server-running command shares.
type serverFlags struct {
	cfg      app.Config
	logLevel string
}

func (f *serverFlags) bind(b *config.Binder, dbDefault, keysDefault string) {
	b.String(&f.cfg.Addr, "addr", "GREENPOINTS_ADDR", "127.0.0.1:8080", "HTTP listen address, host:port")
	b.Secret(&f.cfg.DatabaseURL, "database-url", "DATABASE_URL", dbDefault, "PostgreSQL URL, e.g. postgres://user:pass@host:5432/greenpoints")
	b.Int64(&f.cfg.MaxBodyBytes, "max-body-bytes", "GREENPOINTS_MAX_BODY_BYTES", 1<<20, "largest accepted request body, bytes")
	b.Duration(&f.cfg.ShutdownTimeout, "shutdown-timeout", "GREENPOINTS_SHUTDOWN_TIMEOUT", 20*time.Second, "how long a graceful shutdown waits for in-flight work")
	b.String(&f.cfg.Ledger, "ledger", "GREENPOINTS_LEDGER", "embedded", "ledger backend: embedded (in-process, state and blocks in PostgreSQL) or fabric (serve only: a Hyperledger Fabric network, see the --fabric-* flags)")
	b.String(&f.cfg.KeysDir, "keys-dir", "GREENPOINTS_KEYS_DIR", keysDefault, "directory of the development file key manager (block-signing key, KEK); production uses a KMS")
	b.String(&f.logLevel, "log-level", "GREENPOINTS_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	b.Int(&f.cfg.BatchSize, "batch-size", "GREENPOINTS_BATCH_SIZE", 500, "issuances per ledger IssueBatch transaction (1-1000); larger batches amortise a ledger transaction's cost, smaller ones commit sooner")
	b.Int(&f.cfg.BatchWorkers, "batch-workers", "GREENPOINTS_BATCH_WORKERS", pipeline.DefaultWorkers, "ledger transactions (IssueBatch, reversals, grants) in flight at once per server instance")
	b.Int(&f.cfg.IntakeWorkers, "intake-workers", "GREENPOINTS_INTAKE_WORKERS", pipeline.DefaultIntakeWorkers, "partner-request transactions in flight at once; concurrent requests share them (group commit, docs/pipeline.md)")
	b.String(&f.cfg.NotifyGateway, "notify-gateway-url", "GREENPOINTS_NOTIFY_GATEWAY_URL", "", "SMS/push gateway that delivers expiry reminders and notices (POST JSON, see docs/notices.md); empty: log them (demo)")
	b.Duration(&f.cfg.SweepInterval, "sweep-interval", "GREENPOINTS_SWEEP_INTERVAL", time.Hour, "how often the expiry sweep, reminders, rights notices, grace check and notice anchoring run")
	b.String(&f.cfg.JWTIssuer, "jwt-issuer", "GREENPOINTS_JWT_ISSUER", auth.DefaultIssuer, "required \"iss\" of consumer bearer tokens")
	b.String(&f.cfg.JWTAudience, "jwt-audience", "GREENPOINTS_JWT_AUDIENCE", auth.DefaultAudience, "required \"aud\" of consumer bearer tokens")
	b.String(&f.cfg.JWTKeysFile, "jwt-keys-file", "GREENPOINTS_JWT_KEYS_FILE", "", "JWKS file of the keys consumer tokens are signed with (EdDSA, ES256, RS256); with neither this nor --jwks-url, the development key of 'greenpoints token' (demo only)")
	b.String(&f.cfg.JWKSURL, "jwks-url", "GREENPOINTS_JWKS_URL", "", "JWKS URL of the identity provider that signs consumer tokens (instead of --jwt-keys-file)")
	f.cfg.Version = version
}

// bindFabric binds the Fabric gateway settings (used with --ledger fabric):
// serve only, the demo stays on the embedded ledger.
func (f *serverFlags) bindFabric(b *config.Binder) { bindFabricFlags(b, &f.cfg.Fabric) }

// bindFabricFlags binds the Fabric gateway settings into fc: one set of
// flags for every command that reaches the ledger on Fabric (serve, ledger,
// projection rebuild). The identity is the issuer's for serve, the
// regulator's or the issuer's for the ledger commands.
func bindFabricFlags(b *config.Binder, fc *app.FabricConfig) {
	b.String(&fc.PeerEndpoint, "fabric-peer", "GREENPOINTS_FABRIC_PEER", "", "Fabric gateway peer, host:port (TLS)")
	b.String(&fc.TLSCACertFile, "fabric-tls-ca", "GREENPOINTS_FABRIC_TLS_CA", "", "PEM file of the CA the gateway peer's TLS certificate chains to")
	b.String(&fc.ServerName, "fabric-server-name", "GREENPOINTS_FABRIC_SERVER_NAME", "", "TLS server name of the gateway peer, when the --fabric-peer host is not in its certificate")
	b.String(&fc.MSPID, "fabric-msp-id", "GREENPOINTS_FABRIC_MSP_ID", "", "MSP id of the organisation whose identity signs (serve: the issuer's; it signs every ledger transaction)")
	b.String(&fc.CertFile, "fabric-cert", "GREENPOINTS_FABRIC_CERT", "", "PEM file of that identity's Fabric client (signing) certificate")
	b.String(&fc.KeyFile, "fabric-key", "GREENPOINTS_FABRIC_KEY", "", "PEM file of the private key of --fabric-cert")
	b.String(&fc.Channel, "fabric-channel", "GREENPOINTS_FABRIC_CHANNEL", app.DefaultFabricChannel, "Fabric channel of the points contract")
	b.String(&fc.Chaincode, "fabric-chaincode", "GREENPOINTS_FABRIC_CHAINCODE", app.DefaultFabricChaincode, "chaincode name of the points contract")
	b.String(&fc.WaitPeersSpec, "fabric-wait-peers", "GREENPOINTS_FABRIC_WAIT_PEERS", "", "other organisations' endorsing peers (on a consortium, the regulator's; for the regulator, the issuers') that each commit waits for until they have its block, so the next transaction's endorsers all see it: comma-separated host:port[=TLS-CA-PEM-file[=server-name]], the CA defaulting to --fabric-tls-ca")
	b.Duration(&fc.WaitTimeout, "fabric-wait-timeout", "GREENPOINTS_FABRIC_WAIT_TIMEOUT", app.DefaultFabricWaitTimeout, "how long a commit waits for the --fabric-wait-peers before it logs a warning and returns (the transaction is committed either way)")
}

func maskSecret(name, v string) string {
	if name == "database-url" {
		return database.MaskURL(v)
	}
	return "xxxxx"
}

func (f *serverFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	return logging.New(stderr, f.logLevel)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "Runs the issuer's HTTP API. Applies pending database migrations first.\nStops gracefully on SIGINT or SIGTERM.", stderr)
	var f serverFlags
	b := config.NewBinder(fs)
	f.bind(b, "", "data/keys")
	f.bindFabric(b)
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if f.cfg.DatabaseURL == "" {
		return fmt.Errorf("no database: set --database-url or DATABASE_URL (or run 'greenpoints demo' for a throwaway one)")
	}
	log, err := f.logger(stderr)
	if err != nil {
		return err
	}
	log.Info("starting greenpoints serve", "version", version, b.Effective(maskSecret))
	a, err := app.Start(ctx, f.cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "Applies the database migrations embedded in this binary and exits.\nSafe to run concurrently with other instances (an advisory lock serializes them).", stderr)
	var url string
	b := config.NewBinder(fs)
	b.Secret(&url, "database-url", "DATABASE_URL", "", "PostgreSQL URL")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("no database: set --database-url or DATABASE_URL")
	}
	pool, err := database.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	v, err := database.MigrationVersion(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database at schema version %d\n", v)
	return nil
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "Prints the version of this binary.", stderr)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "greenpoints %s\n", version)
	return nil
}
