// Package database opens the PostgreSQL pool, owns the project's one
// transaction helper (InTx) and applies the schema migrations embedded from
// migrations/.
package database

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// defaultPingTimeout bounds the connectivity check in Open, so that a wrong
// host fails startup in seconds rather than hanging on TCP retries.
const defaultPingTimeout = 5 * time.Second

// Option adjusts Open.
type Option func(*options)

type options struct {
	pingTimeout time.Duration
	configure   []func(*pgxpool.Config)
}

// WithMaxConns caps the pool size (pgxpool's default is max(4, NumCPU)).
func WithMaxConns(n int32) Option {
	return WithPoolConfig(func(c *pgxpool.Config) { c.MaxConns = n })
}

// WithPingTimeout bounds the initial ping (default 5s).
func WithPingTimeout(d time.Duration) Option {
	return func(o *options) { o.pingTimeout = d }
}

// WithPoolConfig lets the caller adjust the parsed pool configuration, e.g.
// to add a tracer or an AfterConnect hook.
func WithPoolConfig(fn func(*pgxpool.Config)) Option {
	return func(o *options) { o.configure = append(o.configure, fn) }
}

// Open parses databaseURL, creates a pool and pings the server. Its errors
// never contain the password: they are printed at startup.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*pgxpool.Pool, error) {
	o := options{pingTimeout: defaultPingTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if databaseURL == "" {
		// pgx would fall back to libpq defaults (localhost:5432), which
		// hides a missing setting behind a confusing connection error.
		return nil, errors.New("no database URL: set --database-url or DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// Not wrapped: pgx's message quotes the input, and its redaction of
		// malformed URLs is best effort.
		return nil, fmt.Errorf("invalid database URL %s (%s); check --database-url / DATABASE_URL (e.g. postgres://user:password@host:5432/dbname)",
			MaskURL(databaseURL), parseReason(err))
	}
	// JIT compilation costs tens of milliseconds and only pays off for long
	// analytical queries; ours are short, and one bad row estimate made a
	// balance read JIT-compile (docs/benchmarks.md, issue 6).
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	for _, fn := range o.configure {
		fn(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, o.pingTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		where := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
		// A server error (bad password, missing database) means the server
		// was reached; saying "unreachable" would send people the wrong way.
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
			return nil, fmt.Errorf("connecting to database %q at %s as %q: %w",
				cfg.ConnConfig.Database, where, cfg.ConnConfig.User, err)
		}
		return nil, fmt.Errorf("database server at %s is unreachable; check --database-url / DATABASE_URL: %w", where, err)
	}
	return pool, nil
}

// parseReason returns why pgx rejected a connection string, without the
// string itself: pgx's message is "cannot parse `<string>`: <reason>".
func parseReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+len("`: "):]
	}
	return "unparsable"
}

// InTx runs fn in a READ COMMITTED transaction on pool, committing if fn
// returns nil and rolling back otherwise (also when fn panics). It is the
// one transaction helper of the project. fn's error is returned unchanged,
// so that callers can match application errors; failures to begin or commit
// are wrapped.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return InTxOpts(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
}

// InTxOpts is InTx with explicit transaction options, e.g. SERIALIZABLE or
// read-only.
func InTxOpts(ctx context.Context, pool *pgxpool.Pool, txOpts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var fnErr error
	err := pgx.BeginTxFunc(ctx, pool, txOpts, func(tx pgx.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		return fnErr
	default:
		return fmt.Errorf("transaction: %w", err)
	}
}

var (
	// userinfoPassword matches the password of a URL that url.Parse rejects.
	// Greedy up to the last "@" of the authority, since an unescaped "@"
	// in the password is a common reason for a URL not to parse.
	userinfoPassword = regexp.MustCompile(`(://[^:/@]*:)[^/]*@`)
	// keywordPassword matches password=... in keyword/value connection strings.
	keywordPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// MaskURL returns the connection string with any password replaced by
// "xxxxx", for logging the effective configuration and for error messages.
// It handles URLs (also malformed ones, as well as it can) and keyword/value
// strings.
func MaskURL(s string) string {
	const mask = "xxxxx"
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
		// Re-encode the query only when it holds a password: Encode sorts it.
		if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
			for _, k := range []string{"password", "sslpassword"} {
				if q.Has(k) {
					q.Set(k, mask)
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	s = userinfoPassword.ReplaceAllString(s, "${1}"+mask+"@")
	return keywordPassword.ReplaceAllString(s, "${1}"+mask)
}
