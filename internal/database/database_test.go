package database_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestMaskURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/gp?sslmode=require", "postgres://app:xxxxx@db:5432/gp?sslmode=require"},
		{"postgres://app@db/gp", "postgres://app@db/gp"},
		{"postgres://db/gp?user=app&password=s3cret", "postgres://db/gp?password=xxxxx&user=app"},
		{"postgres://app:s3cret@db:notaport/gp", "postgres://app:xxxxx@db:notaport/gp"},
		{"postgres://app:s3:c@ret@db/gp", "postgres://app:xxxxx@db/gp"},
		{"host=db user=app password=s3cret dbname=gp", "host=db user=app password=xxxxx dbname=gp"},
		{"host=db password='s3 cret' dbname=gp", "host=db password=xxxxx dbname=gp"},
		{"", ""},
	} {
		if got := database.MaskURL(tc.in); got != tc.want {
			t.Errorf("MaskURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: bind one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"empty", "", []string{"DATABASE_URL"}},
		{"bad port", "postgres://app:s3cret@db:notaport/gp", []string{"invalid database URL", "app:xxxxx@db", "invalid port", "DATABASE_URL"}},
		{"at in password", "postgres://app:s3:c@s3cret@db/gp?sslmode=bogus", []string{"app:xxxxx@db", "sslmode is invalid"}},
		{"bad keyword", "host=db password=s3cret port=abc", []string{"invalid database URL", "password=xxxxx"}},
		{"unreachable", "postgres://app:s3cret@" + closed + "/gp?connect_timeout=2", []string{"server at " + closed + " is unreachable", "--database-url"}},
		{"no such database", pgtest.ClusterURL("no_such_db"), []string{`connecting to database "no_such_db"`, "does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, err := database.Open(t.Context(), tc.url, database.WithPingTimeout(3*time.Second))
			if err == nil {
				pool.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "s3cret") {
				t.Errorf("error leaks the password: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestOpenOptions(t *testing.T) {
	t.Parallel()
	pool, err := database.Open(t.Context(), pgtest.NewDBURL(t), database.WithMaxConns(3),
		database.WithPoolConfig(func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["application_name"] = "gptest" }))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns = %d, want 3", got)
	}
	var app string
	if err := pool.QueryRow(t.Context(), "SHOW application_name").Scan(&app); err != nil || app != "gptest" {
		t.Errorf("application_name = %q, %v; want gptest", app, err)
	}
}

func count(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM app_meta").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInTx(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ctx := t.Context()
	insert := func(tx pgx.Tx, key string) error {
		_, err := tx.Exec(ctx, "INSERT INTO app_meta (key, value) VALUES ($1, 'v')", key)
		return err
	}

	if err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
		var iso string
		if err := tx.QueryRow(ctx, "SHOW transaction_isolation").Scan(&iso); err != nil {
			return err
		}
		if iso != "read committed" {
			t.Errorf("isolation = %q, want read committed", iso)
		}
		return insert(tx, "committed")
	}); err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if n := count(t, pool); n != 1 {
		t.Fatalf("after commit: %d rows, want 1", n)
	}

	sentinel := errors.New("domain failure")
	err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
		if err := insert(tx, "rolled back"); err != nil {
			return err
		}
		return sentinel
	})
	if err != sentinel { //nolint:errorlint // fn's error must come back unchanged
		t.Errorf("InTx returned %v, want fn's error unchanged", err)
	}
	if n := count(t, pool); n != 1 {
		t.Errorf("after rollback: %d rows, want 1", n)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in fn was swallowed")
			}
		}()
		_ = database.InTx(ctx, pool, func(tx pgx.Tx) error {
			if err := insert(tx, "panicked"); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if n := count(t, pool); n != 1 {
		t.Errorf("after panic: %d rows, want 1", n)
	}

	err = database.InTxOpts(ctx, pool, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return insert(tx, "read only") })
	if err == nil || !strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("write in read-only transaction: got %v", err)
	}

	// A transaction that cannot commit reports it, wrapped.
	err = database.InTxOpts(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED; CREATE TEMP TABLE d (x int UNIQUE DEFERRABLE INITIALLY DEFERRED); INSERT INTO d VALUES (1), (1)")
		return err
	})
	if err == nil || !strings.HasPrefix(err.Error(), "transaction: ") {
		t.Errorf("commit failure: got %v, want a wrapped error", err)
	}
}

// emptyDB creates a database without any migration applied.
func emptyDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	name := fmt.Sprintf("gpt_empty_%d_%d", os.Getpid(), time.Now().UnixNano())
	admin, err := pgx.Connect(t.Context(), pgtest.ClusterURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), pgtest.ClusterURL("postgres"))
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	pool, err := database.Open(t.Context(), pgtest.ClusterURL(name), database.WithMaxConns(8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	pool := emptyDB(t)
	ctx := t.Context()
	if v, err := database.MigrationVersion(ctx, pool); err != nil || v != 0 {
		t.Fatalf("MigrationVersion before Migrate = %d, %v; want 0", v, err)
	}
	// Replicas starting together: the advisory lock serialises them.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = database.Migrate(ctx, pool) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate when up to date: %v", err)
	}
	want, err := database.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if want < 1 {
		t.Fatalf("LatestVersion = %d, want at least 1", want)
	}
	if got, err := database.MigrationVersion(ctx, pool); err != nil || got != want {
		t.Errorf("MigrationVersion = %d, %v; want %d", got, err, want)
	}
}

// TestMigrationsRoundTrip reverts every migration and applies them again, so
// that a broken drop section is found when it is written, not when needed.
func TestMigrationsRoundTrip(t *testing.T) {
	t.Parallel()
	pool := emptyDB(t)
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "public.schema_version")
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.Sub(database.MigrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(files); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name   string
		target int32
	}{{"up", int32(len(m.Migrations))}, {"down", 0}, {"up again", int32(len(m.Migrations))}} {
		if err := m.MigrateTo(ctx, step.target); err != nil {
			t.Fatalf("%s to %d: %v", step.name, step.target, err)
		}
	}
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_version'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables == 0 {
		t.Error("no tables after migrating up again")
	}
}
