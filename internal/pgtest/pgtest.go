// Package pgtest gives every test its own PostgreSQL database, migrated to
// the current schema, in milliseconds.
//
// A test binary calls Main from TestMain. Main uses the server named by
// $GREENPOINTS_TEST_DATABASE_URL (a superuser URL, e.g. of a server started
// once by `make test`) or else starts a throwaway pgharness cluster for the
// binary. It then migrates a template database once; NewDB and NewDBURL clone
// it with CREATE DATABASE ... TEMPLATE, which is far cheaper than running
// the migrations per test. Everything is dropped or stopped when Main
// returns, including when tests fail.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.NewDB(t)
//		...
//	}
package pgtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgharness"
)

// URLEnv names the environment variable holding the superuser URL of a
// running server to use instead of starting one.
const URLEnv = "GREENPOINTS_TEST_DATABASE_URL"

// cleanupTimeout bounds each DROP DATABASE and the final teardown.
const cleanupTimeout = 30 * time.Second

// State set up by Main before m.Run and only read afterwards.
var (
	serverURL *url.URL      // superuser URL of the server; its path is replaced per database
	admin     *pgxpool.Pool // connected to the server's postgres database, for CREATE/DROP DATABASE
	template  string        // the migrated template database
	prefix    string        // gpt_<pid>_<random>: names this binary's databases
	counter   atomic.Int64

	// cloneMu serialises clones: PostgreSQL refuses to copy a template that
	// has other connections, and a concurrent clone counts as one.
	cloneMu sync.Mutex
)

// Main sets up the server and the template database, runs the tests and
// tears everything down. It returns the exit code for os.Exit. When the
// server cannot be started (for instance PostgreSQL is not installed) it
// prints why and returns 1: tests needing a database fail, never skip.
func Main(m *testing.M) int {
	// Parse flags now so that testing.Verbose works before m.Run.
	flag.Parse()
	code, err := run(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func run(m *testing.M) (code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()

	base := os.Getenv(URLEnv)
	if base == "" {
		cluster, err := pgharness.Start(ctx, pgharness.Options{})
		if err != nil {
			return 1, fmt.Errorf("starting PostgreSQL for the tests (or set %s): %w", URLEnv, err)
		}
		// Deferred first so that it runs last, after the drops below.
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			if stopErr := cluster.Stop(stopCtx); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stopping PostgreSQL: %w", stopErr))
			}
		}()
		base = cluster.URL("postgres")
	}
	if serverURL, err = url.Parse(base); err != nil {
		return 1, fmt.Errorf("$%s is not a URL: %s", URLEnv, database.MaskURL(base))
	}
	if admin, err = database.Open(ctx, base, database.WithMaxConns(4)); err != nil {
		return 1, err
	}
	defer admin.Close()
	started := time.Since(began)

	// The PID and a random part keep binaries sharing one server apart.
	prefix = fmt.Sprintf("gpt_%d_%06x", os.Getpid(), rand.Uint32()&0xffffff)
	template = prefix + "_tpl"
	if err := createTemplate(ctx); err != nil {
		return 1, err
	}
	defer func() {
		if dropErr := dropDatabase(template); dropErr != nil {
			err = errors.Join(err, dropErr)
		}
	}()
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "pgtest: server ready in %s, template %s migrated in %s\n",
			started.Round(time.Millisecond), template, (time.Since(began) - started).Round(time.Millisecond))
	}
	return m.Run(), nil
}

func createTemplate(ctx context.Context) (err error) {
	// FILE_COPY: see clone.
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{template}.Sanitize()+" STRATEGY FILE_COPY"); err != nil {
		return fmt.Errorf("creating template database: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, dropDatabase(template))
		}
	}()
	pool, err := database.Open(ctx, ClusterURL(template), database.WithMaxConns(1))
	if err != nil {
		return fmt.Errorf("connecting to template database: %w", err)
	}
	// Closed before any clone: a template must have no connections.
	defer pool.Close()
	if err := database.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrating template database: %w", err)
	}
	return nil
}

// NewDB returns a pool on a new database migrated to the current schema.
// The pool is closed and the database dropped when the test ends.
func NewDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	dbURL := NewDBURL(tb)
	pool, err := database.Open(tb.Context(), dbURL)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	// Registered after NewDBURL's drop, so it runs before it.
	tb.Cleanup(pool.Close)
	return pool
}

// NewDBURL creates a new database migrated to the current schema and
// returns its superuser URL, for tests that start the whole server or a
// subprocess. The database is dropped when the test ends, even if
// connections to it remain.
func NewDBURL(tb testing.TB) string {
	tb.Helper()
	if admin == nil {
		tb.Fatal("pgtest: no server; call pgtest.Main from TestMain: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	name := fmt.Sprintf("%s_%d", prefix, counter.Add(1))
	if err := clone(tb.Context(), name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := dropDatabase(name); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return ClusterURL(name)
}

func clone(ctx context.Context, name string) error {
	cloneMu.Lock()
	defer cloneMu.Unlock()
	// FILE_COPY copies the directory at the file level; for our tiny
	// template it is faster than the default WAL_LOG, which writes every
	// block to the WAL.
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())
	if _, err := admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("creating database %s from template %s: %w", name, template, err)
	}
	return nil
}

// dropDatabase drops name, disconnecting whoever is still connected (a test
// that leaked a pool or a subprocess) so that cleanup cannot hang.
func dropDatabase(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// ClusterURL returns the superuser URL of database dbname on the test
// server. It may only be called after Main has set the server up, i.e.
// from tests.
func ClusterURL(dbname string) string {
	if serverURL == nil {
		panic("pgtest: ClusterURL called before pgtest.Main set up the server")
	}
	u := *serverURL
	u.Path, u.RawPath = "/"+dbname, ""
	return u.String()
}
